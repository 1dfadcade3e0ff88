import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { serversOf } from "../../config";
import {
  parseMonitoringSettings,
  renderAlertRuleGroups,
  renderRuleFile,
  renderScrapeConfigSpecs,
  SCRAPE_JOBS,
  type ScrapeJobSpec,
} from "../../components/observability/monitoring";
import { loopbackInventory } from "../support/loopback/loopback";
import { clusterForSuite } from "../support/loopback/suite";
import { assertLoopback, ownedDir, ownedFile, sleep, waitFor, waitForPort } from "../support/loopback/supervisor";
import { RedisLoopbackCluster } from "../redis/loopback";

/**
 * The rendered alert rules evaluated by Debian's real Prometheus, scraping Debian's redis_exporter
 * in front of the loopback Redis cluster (tests/redis/loopback.ts) through the rendered scrape
 * targets moved to loopback: a Sentinel failover fires RedisMasterChanged, a replica down fires
 * RedisReplicaMissing, which resolves when it rejoins. Prints the seconds from each crash to each
 * alert. Run isolated: `unshare -n bash -c 'ip link set lo up && npx jest -c
 * jest.integration.config.js tests/observability'`.
 */

const PROMETHEUS = "/usr/bin/prometheus";
const REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter";
/** redis_exporter's default port. */
const REDIS_EXPORTER_PORT = 9121;
/** Outside the inventory's 127.0.10.0/24. */
const PROMETHEUS_ADDRESS = "127.0.11.9";
const PROMETHEUS_PORT = 9090;

interface Alert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

class AlertsOnRedis {
  private constructor(
    readonly redis: RedisLoopbackCluster,
    readonly dir: string,
  ) {}

  static async start(): Promise<AlertsOnRedis> {
    const redis = await RedisLoopbackCluster.start();
    // Not under the loopback clusters' prefix (tests/support/loopback/reaper.ts): another suite's
    // reaper, started meanwhile on the same machine, would kill Prometheus (its --config.file names
    // the directory) and remove its files mid-test.
    const alerts = new AlertsOnRedis(redis, ownedDir(fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-alerts-")), "prometheus"));
    try {
      await alerts.boot();
    } catch (error) {
      await redis.stop();
      throw error;
    }
    return alerts;
  }

  /** redis_exporter per node (password from the environment), then Prometheus with the rendered rules and targets. */
  private async boot(): Promise<void> {
    const password = this.redis["password"] as string;
    for (const node of this.redis.nodes) {
      this.redis.supervisor.start({
        name: `${node.name}-redis-exporter`,
        command: REDIS_EXPORTER,
        args: [
          `-redis.addr=redis://${node.address}:${this.redis.settings[node.name].port}`,
          `-web.listen-address=${node.address}:${REDIS_EXPORTER_PORT}`,
        ],
        env: { REDIS_PASSWORD: password },
        user: "prometheus",
        logFile: path.join(this.dir, `${node.name}-redis-exporter.log`),
      });
    }
    const servers = serversOf(loopbackInventory(), "redis");
    const job: ScrapeJobSpec = { job: "redis", port: REDIS_EXPORTER_PORT, metricsPath: "/metrics", scheme: "http", servers };
    const rules = renderAlertRuleGroups(parseMonitoringSettings(undefined), { postgresSynchronousMode: true, proxysqlWriterHostgroup: 10 });
    const ruleFile = ownedFile(path.join(this.dir, "keybuzz.rules.yaml"), renderRuleFile(rules), "prometheus");
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [ruleFile],
      // The rendered ScrapeConfig specs, as Prometheus's own scrape_configs (what the operator generates from them).
      scrape_configs: renderScrapeConfigSpecs([job], "unused").map((spec) => ({
        job_name: spec.jobName,
        metrics_path: spec.metricsPath,
        scheme: String(spec.scheme).toLowerCase(),
        static_configs: (spec.staticConfigs as { targets: string[]; labels: Record<string, string> }[]).map((group) => {
          group.targets.forEach((target) => assertLoopback(target.split(":")[0]));
          return { targets: group.targets, labels: group.labels };
        }),
      })),
    };
    const configFile = ownedFile(path.join(this.dir, "prometheus.yml"), yaml.dump(config), "prometheus");
    this.redis.supervisor.start({
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
      await waitFor(
        "Prometheus to scrape the three redis_exporters with Redis up",
        async () => (await this.query(`count(redis_up{job="${SCRAPE_JOBS.redis}"} == 1)`)) === 3,
        60_000,
        500,
      );
    } catch (error) {
      console.log(
        `alerts: Prometheus did not come up:\n${this.redis.supervisor.log("prometheus")}\n${this.redis.supervisor.log(`${this.redis.nodes[0].name}-redis-exporter`)}`,
      );
      throw error;
    }
  }

  async query(expr: string): Promise<number | undefined> {
    const response = await fetch(`http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { data: { result: { value: [number, string] }[] } };
    return body.data.result.length > 0 ? Number(body.data.result[0].value[1]) : undefined;
  }

  async firing(alertname: string): Promise<Alert[]> {
    const response = await fetch(`http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}/api/v1/alerts`);
    const body = (await response.json()) as { data: { alerts: Alert[] } };
    return body.data.alerts.filter((alert) => alert.labels.alertname === alertname && alert.state === "firing");
  }

  /** What Prometheus says of the rules and the series an alert reads: printed when an alert does not come. */
  async diagnose(exprs: readonly string[]): Promise<string> {
    if (!this.redis.supervisor.isRunning("prometheus")) return `Prometheus exited:\n${this.redis.supervisor.log("prometheus")}`;
    const rules = await (await fetch(`http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}/api/v1/rules`)).json();
    const groups = (rules as { data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] } }).data
      .groups;
    const unhealthy = groups.flatMap((group) =>
      group.rules.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.health} ${rule.lastError ?? ""}`),
    );
    const values = await Promise.all(
      exprs.map(async (expr) => {
        const response = await fetch(`http://${PROMETHEUS_ADDRESS}:${PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(expr)}`);
        return `${expr} = ${JSON.stringify(((await response.json()) as { data: unknown }).data)}`;
      }),
    );
    return [`rule groups loaded: ${groups.length}`, ...unhealthy, ...values].join("\n");
  }

  async stop(): Promise<void> {
    await this.redis.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Seconds since `since` at which `probe` first holds, polled every 250 ms. */
async function secondsUntil(
  what: string,
  since: number,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  diagnose?: () => Promise<string>,
): Promise<number> {
  try {
    await waitFor(what, async () => ((await probe()) ? true : undefined), timeoutMs, 250);
  } catch (error) {
    if (diagnose) console.log(`alerts: ${what} did not happen; Prometheus:\n${await diagnose()}`);
    throw error;
  }
  return (Date.now() - since) / 1000;
}

describe("alert rules on loopback (Debian prometheus + redis_exporter, rendered rules and targets)", () => {
  const live = clusterForSuite(["redis-server", "redis-sentinel", "haproxy", "prometheus", "prometheus-redis-exporter"], () =>
    AlertsOnRedis.start(),
  );

  it("a healthy cluster fires no Redis alert", async () => {
    await sleep(5_000);
    for (const alert of ["RedisMasterChanged", "RedisMasterCount", "RedisReplicaMissing", "RedisNoReplica"]) {
      expect(await live().firing(alert)).toEqual([]);
    }
  }, 60_000);

  it("the master node crashes: RedisMasterChanged fires for the promoted replica", async () => {
    const oldMaster = await live().redis.agreedMaster();
    let crashedAt = 0;
    const watch = (async () => {
      await waitFor("the master to be killed", async () => !live().redis.supervisor.isRunning(`${oldMaster.name}-redis`), 60_000, 50);
      crashedAt = Date.now();
      return secondsUntil(
        "RedisMasterChanged to fire",
        crashedAt,
        async () => (await live().firing("RedisMasterChanged")).length > 0,
        120_000,
        () => live().diagnose(['redis_instance_info{role="master"}', 'max_over_time(redis_instance_info{role="slave"}[10m])', "ALERTS"]),
      );
    })();
    const result = await live().redis.failover();
    const seconds = await watch;
    const fired = await live().firing("RedisMasterChanged");
    console.log(
      `alerts: RedisMasterChanged fired ${seconds.toFixed(1)} s after the master's crash (Sentinel failover ${result.secondsToWriteAgain.toFixed(1)} s)`,
    );
    expect(fired.map((alert) => alert.labels.node)).toEqual([result.newPrimary]);
    expect(fired[0].labels).toMatchObject({ cluster: "redis", job: "redis", severity: "warning" });
    expect(await live().firing("RedisMasterCount")).toEqual([]);
  }, 300_000);

  it("a replica is down: RedisReplicaMissing fires, and resolves once it rejoins", async () => {
    const master = await live().redis.agreedMaster();
    const replica = live().redis.nodes.find((node) => node !== master)!;
    await live().redis.waitReplication(master, 60_000);
    await live().redis.supervisor.kill(`${replica.name}-redis`);
    const downAt = Date.now();
    const firedAfter = await secondsUntil(
      "RedisReplicaMissing to fire",
      downAt,
      async () => (await live().firing("RedisReplicaMissing")).length > 0,
      180_000,
      () => live().diagnose(["redis_connected_slaves", 'count by (cluster) (up{job="redis"})', "ALERTS"]),
    );
    expect((await live().firing("RedisReplicaMissing"))[0].labels).toMatchObject({ cluster: "redis", severity: "warning" });
    expect(await live().firing("RedisNoReplica")).toEqual([]);
    live().redis.supervisor.restart(`${replica.name}-redis`);
    const backAt = Date.now();
    await live().redis.waitReplication(master, 120_000);
    const resolvedAfter = await secondsUntil(
      "RedisReplicaMissing to resolve",
      backAt,
      async () => (await live().firing("RedisReplicaMissing")).length === 0,
      60_000,
    );
    console.log(
      `alerts: RedisReplicaMissing fired ${firedAfter.toFixed(1)} s after the replica's crash (rule: for 1m), resolved ${resolvedAfter.toFixed(1)} s after its restart`,
    );
  }, 400_000);
});
