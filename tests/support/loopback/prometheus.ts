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
 * Debian's Prometheus on loopback for the alert scenarios (tests/observability/*alerts*.loopback.test.ts):
 * the rendered alert rules, and the rendered ScrapeConfig specs of the scenario's exporters as its
 * own scrape_configs (what prometheus-operator generates from them), scraping and evaluating every
 * second. Runs under the scenario's supervisor, as the `prometheus` user.
 */

const PROMETHEUS = "/usr/bin/prometheus";
/** Outside the inventory's 127.0.10.0/24. */
const PROMETHEUS_ADDRESS = "127.0.11.9";
const PROMETHEUS_PORT = 9090;
const API = `http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}/api/v1`;

/** One alert as Prometheus's API lists it. */
export interface Alert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

/** The rule context of the scenarios: production's facts (synchronous mode on, ProxySQL's writer hostgroup 10). */
const RULE_CONTEXT = { postgresSynchronousMode: true, proxysqlWriterHostgroup: 10 } as const;

/**
 * A scenario's working directory for Prometheus and its exporters, owned by `prometheus`. Not under
 * the loopback clusters' prefix (tests/support/loopback/reaper.ts): another suite's reaper, started
 * meanwhile on the same machine, would kill Prometheus (its --config.file names the directory) and
 * remove its files mid-test.
 */
export function alertsDir(): string {
  return ownedDir(fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-alerts-")), "prometheus");
}

export class LoopbackPrometheus {
  constructor(
    private readonly supervisor: Supervisor,
    private readonly dir: string,
  ) {}

  /**
   * Writes the rule file and the config of `jobs` (every target checked to be on loopback; an https
   * job verified against its `caFiles` entry, by CA key; a client certificate or bearer token read
   * from its `secretFiles` entry, by the scrape Secret's key), starts Prometheus, and waits until
   * `ready` (a PromQL expression) equals `readyValue`; prints Prometheus's log and `diagnosticLog`'s
   * when it does not.
   */
  async start(
    jobs: readonly ScrapeJobSpec[],
    ready: string,
    readyValue: number,
    diagnosticLog: () => string,
    caFiles: Readonly<Record<string, string>> = {},
    secretFiles: Readonly<Record<string, string>> = {},
  ): Promise<void> {
    // A file Prometheus reads in its directory, for a ConfigMap's or a Secret's key.
    const keyFile = (files: Readonly<Record<string, string>>, key: string) => {
      if (files[key] === undefined) throw new Error(`prometheus: no file for ${key}`);
      return ownedFile(path.join(this.dir, key), fs.readFileSync(files[key], "utf8"), "prometheus", 0o400);
    };
    const rules = renderAlertRuleGroups(parseMonitoringSettings(undefined), RULE_CONTEXT);
    const ruleFile = ownedFile(path.join(this.dir, "keybuzz.rules.yaml"), renderRuleFile(rules), "prometheus");
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [ruleFile],
      scrape_configs: renderScrapeConfigSpecs(jobs, "scrape-ca", "scrape-secret").map((spec, index) => {
        // What the ScrapeConfig's ConfigMap and Secret keys hold in the cluster, as files.
        const tls = spec.tlsConfig as
          { ca?: { configMap: { key: string } }; cert?: { secret: { key: string } }; keySecret?: { key: string } } | undefined;
        const token = (spec.authorization as { credentials: { key: string } } | undefined)?.credentials.key;
        return {
          // The operator names the job itself and sets the `job` label from jobName (two objects may share it).
          job_name: `${String(spec.jobName)}-${index}`,
          relabel_configs: [{ target_label: "job", replacement: spec.jobName }],
          metrics_path: spec.metricsPath,
          scheme: String(spec.scheme).toLowerCase(),
          ...(tls
            ? {
                tls_config: {
                  ...(tls.ca ? { ca_file: keyFile(caFiles, tls.ca.configMap.key) } : {}),
                  ...(tls.cert ? { cert_file: keyFile(secretFiles, tls.cert.secret.key) } : {}),
                  ...(tls.keySecret ? { key_file: keyFile(secretFiles, tls.keySecret.key) } : {}),
                },
              }
            : {}),
          ...(token ? { authorization: { type: "Bearer", credentials_file: keyFile(secretFiles, token) } } : {}),
          static_configs: (spec.staticConfigs as { targets: string[]; labels: Record<string, string> }[]).map((group) => {
            group.targets.forEach((target) => assertLoopback(target.split(":")[0]));
            return { targets: group.targets, labels: group.labels };
          }),
        };
      }),
    };
    const configFile = ownedFile(path.join(this.dir, "prometheus.yml"), yaml.dump(config), "prometheus");
    this.supervisor.start({
      name: "prometheus",
      command: PROMETHEUS,
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${ownedDir(path.join(this.dir, "data"), "prometheus")}`,
        `--web.listen-address=${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}`,
      ],
      user: "prometheus",
      logFile: path.join(this.dir, "prometheus.log"),
    });
    try {
      await waitForPort(PROMETHEUS_ADDRESS, PROMETHEUS_PORT, 60_000);
      await waitFor(`Prometheus: ${ready} == ${readyValue}`, async () => (await this.query(ready)) === readyValue, 90_000, 500);
    } catch (error) {
      console.log(
        `alerts: Prometheus did not come up:\n${this.supervisor.log("prometheus")}\n${diagnosticLog()}\n${await this.diagnose([ready])}`,
      );
      throw error;
    }
  }

  /** The first sample of an instant query, undefined when it has none. */
  async query(expr: string): Promise<number | undefined> {
    const response = await fetch(`${API}/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { data: { result: { value: [number, string] }[] } };
    return body.data.result.length > 0 ? Number(body.data.result[0].value[1]) : undefined;
  }

  /** The firing alerts named `alertname`. */
  async firing(alertname: string): Promise<Alert[]> {
    const response = await fetch(`${API}/alerts`);
    const body = (await response.json()) as { data: { alerts: Alert[] } };
    return body.data.alerts.filter((alert) => alert.labels.alertname === alertname && alert.state === "firing");
  }

  /** What Prometheus says of the rules and the series an alert reads: printed when an alert does not come. */
  async diagnose(exprs: readonly string[]): Promise<string> {
    if (!this.supervisor.isRunning("prometheus")) return `Prometheus exited:\n${this.supervisor.log("prometheus")}`;
    try {
      const rules = await (await fetch(`${API}/rules`)).json();
      const groups = (rules as { data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] } }).data
        .groups;
      const unhealthy = groups.flatMap((group) =>
        group.rules.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.health} ${rule.lastError ?? ""}`),
      );
      const values = await Promise.all(
        exprs.map(async (expr) => {
          const response = await fetch(`${API}/query?query=${encodeURIComponent(expr)}`);
          return `${expr} = ${JSON.stringify(((await response.json()) as { data: unknown }).data)}`;
        }),
      );
      return [`rule groups loaded: ${groups.length}`, ...unhealthy, ...values].join("\n");
    } catch (error) {
      return `Prometheus does not answer: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  /** Seconds since `since` at which alert `alertname`'s firing set satisfies `done`, polled every 250 ms; diagnoses `exprs` on timeout. */
  async secondsUntil(
    what: string,
    since: number,
    alertname: string,
    done: (firing: readonly Alert[]) => boolean,
    timeoutMs: number,
    exprs: readonly string[] = ["ALERTS"],
  ): Promise<number> {
    try {
      await waitFor(what, async () => (done(await this.firing(alertname)) ? true : undefined), timeoutMs, 250);
    } catch (error) {
      console.log(`alerts: ${what} did not happen; Prometheus:\n${await this.diagnose(exprs)}`);
      throw error;
    }
    return (Date.now() - since) / 1000;
  }
}
