import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import {
  parseMonitoringSettings,
  renderAlertRuleGroups,
  renderRuleFile,
  renderScrapeConfigSpecs,
  type ScrapeJobSpec,
} from "../../../components/observability/monitoring";
import { assertLoopback, ownedDir, ownedFile, Supervisor, waitFor, waitForPort } from "./supervisor";

/**
 * Debian's real Prometheus on loopback, evaluating the rendered alert rules over the rendered scrape
 * targets (moved to loopback with the inventory): the alert scenarios' shared harness
 * (tests/observability/*alerts*.loopback.test.ts).
 */

const PROMETHEUS = "/usr/bin/prometheus";
/** Outside the inventory's 127.0.10.0/24. */
const PROMETHEUS_ADDRESS = "127.0.11.9";
const PROMETHEUS_PORT = 9090;

/** An alert as Prometheus's `/api/v1/alerts` lists it. */
export interface Alert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

/** What to start Prometheus with. */
export interface PrometheusScenario {
  /** The scrape jobs, as monitoring's `deployedScrapeJobs` would give them on the loopback inventory. */
  readonly jobs: readonly ScrapeJobSpec[];
  /** https jobs: the CA file for each `caConfigMapKey` (what the ScrapeConfig's ConfigMap holds in the cluster). */
  readonly caFiles?: Readonly<Record<string, string>>;
  /** Ready when this PromQL's first value equals `readyValue` (e.g. every exporter up). */
  readonly readyQuery: string;
  readonly readyValue: number;
}

/** A running Prometheus, under the scenario's supervisor. */
export class LoopbackPrometheus {
  private constructor(
    private readonly supervisor: Supervisor,
    readonly dir: string,
  ) {}

  /**
   * Starts Prometheus (1 s scrape and evaluation) with the rendered rules, the rendered
   * ScrapeConfig specs as its own `scrape_configs` (what the operator generates from them), and
   * waits for `readyQuery`. Its directory is not under the loopback clusters' prefix
   * (tests/support/loopback/reaper.ts): another suite's reaper, started meanwhile on the same
   * machine, would kill Prometheus (its --config.file names the directory) and remove its files.
   */
  static async start(supervisor: Supervisor, scenario: PrometheusScenario): Promise<LoopbackPrometheus> {
    const dir = ownedDir(fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-alerts-")), "prometheus");
    const prometheus = new LoopbackPrometheus(supervisor, dir);
    const rules = renderAlertRuleGroups(parseMonitoringSettings(undefined), { postgresSynchronousMode: true, proxysqlWriterHostgroup: 10 });
    const ruleFile = ownedFile(path.join(dir, "keybuzz.rules.yaml"), renderRuleFile(rules), "prometheus");
    const caConfigMap = "scrape-ca";
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [ruleFile],
      scrape_configs: renderScrapeConfigSpecs(scenario.jobs, caConfigMap).map((spec) => {
        const caKey = (spec.tlsConfig as { ca: { configMap: { key: string } } } | undefined)?.ca.configMap.key;
        const caFile = caKey === undefined ? undefined : scenario.caFiles?.[caKey];
        if (caKey !== undefined && caFile === undefined) throw new Error(`prometheus: no CA file for ${caKey}`);
        return {
          job_name: spec.jobName,
          metrics_path: spec.metricsPath,
          scheme: String(spec.scheme).toLowerCase(),
          ...(caFile
            ? { tls_config: { ca_file: ownedFile(path.join(dir, `${caKey}`), fs.readFileSync(caFile, "utf8"), "prometheus") } }
            : {}),
          static_configs: (spec.staticConfigs as { targets: string[]; labels: Record<string, string> }[]).map((group) => {
            group.targets.forEach((target) => assertLoopback(target.split(":")[0]));
            return { targets: group.targets, labels: group.labels };
          }),
        };
      }),
    };
    const configFile = ownedFile(path.join(dir, "prometheus.yml"), yaml.dump(config), "prometheus");
    supervisor.start({
      name: "prometheus",
      command: PROMETHEUS,
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${ownedDir(path.join(dir, "data"), "prometheus")}`,
        `--web.listen-address=${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}`,
      ],
      user: "prometheus",
      logFile: path.join(dir, "prometheus.log"),
    });
    try {
      await waitForPort(PROMETHEUS_ADDRESS, PROMETHEUS_PORT, 60_000);
      await waitFor(
        `Prometheus: ${scenario.readyQuery} = ${scenario.readyValue}`,
        async () => (await prometheus.query(scenario.readyQuery)) === scenario.readyValue,
        60_000,
        500,
      );
    } catch (error) {
      console.log(
        `alerts: Prometheus did not come up:\n${supervisor.log("prometheus")}\n${await prometheus.diagnose(["up"]).catch(() => "")}`,
      );
      throw error;
    }
    return prometheus;
  }

  private async api(urlPath: string): Promise<unknown> {
    return (await fetch(`http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}${urlPath}`)).json();
  }

  /** The first value of an instant query, or undefined when it has none. */
  async query(expr: string): Promise<number | undefined> {
    const body = (await this.api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { data: { result: { value: [number, string] }[] } };
    return body.data.result.length > 0 ? Number(body.data.result[0].value[1]) : undefined;
  }

  /** The firing alerts named `alertname`. */
  async firing(alertname: string): Promise<Alert[]> {
    const body = (await this.api("/api/v1/alerts")) as { data: { alerts: Alert[] } };
    return body.data.alerts.filter((alert) => alert.labels.alertname === alertname && alert.state === "firing");
  }

  /** What Prometheus says of the rules and the series an alert reads: printed when an alert does not come. */
  async diagnose(exprs: readonly string[]): Promise<string> {
    if (!this.supervisor.isRunning("prometheus")) return `Prometheus exited:\n${this.supervisor.log("prometheus")}`;
    const rules = (await this.api("/api/v1/rules")) as {
      data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const unhealthy = rules.data.groups.flatMap((group) =>
      group.rules.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.health} ${rule.lastError ?? ""}`),
    );
    const values = await Promise.all(
      exprs.map(
        async (expr) =>
          `${expr} = ${JSON.stringify(((await this.api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { data: unknown }).data)}`,
      ),
    );
    return [`rule groups loaded: ${rules.data.groups.length}`, ...unhealthy, ...values].join("\n");
  }

  /** Seconds since `since` at which alert `alertname` is firing (or, with `resolved`, no longer firing), polled every 250 ms. */
  async secondsUntil(
    alertname: string,
    since: number,
    timeoutMs: number,
    options: { resolved?: boolean; diagnose?: readonly string[] } = {},
  ): Promise<number> {
    const what = `${alertname} to ${options.resolved ? "resolve" : "fire"}`;
    try {
      await waitFor(
        what,
        async () => ((await this.firing(alertname)).length > 0 !== Boolean(options.resolved) ? true : undefined),
        timeoutMs,
        250,
      );
    } catch (error) {
      console.log(`alerts: ${what} did not happen; Prometheus:\n${await this.diagnose([...(options.diagnose ?? []), "ALERTS"])}`);
      throw error;
    }
    return (Date.now() - since) / 1000;
  }

  /** Removes its directory (the supervisor that runs it stops the daemon). */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
