import * as fs from "fs";
import * as path from "path";
import { serversOf } from "../../config";
import { ACCOUNTS } from "../../components/security/secrets";
import { parseExportersSettings } from "../../components/observability/exporters";
import { SCRAPE_JOBS, type ScrapeJobSpec } from "../../components/observability/monitoring";
import { loopbackInventory } from "../support/loopback/loopback";
import { alertsDir, LoopbackPrometheus } from "../support/loopback/prometheus";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, waitFor } from "../support/loopback/supervisor";
import { RedisLoopbackCluster } from "../redis/loopback";

/**
 * The rendered alert rules evaluated by Debian's real Prometheus, scraping Debian's redis_exporter
 * in front of the loopback Redis cluster's Redis and Sentinels (tests/redis/loopback.ts), logged in
 * as the rendered ACL user, through the rendered scrape targets moved to loopback: a Sentinel
 * failover fires RedisMasterChanged, a replica down fires RedisReplicaMissing, which resolves when
 * it rejoins. Prints the seconds from each crash to each alert. Run isolated: `unshare -n bash -c
 * 'ip link set lo up && npx jest -c jest.integration.config.js tests/observability'`.
 */

const REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter";
const EXPORTERS = parseExportersSettings(undefined);

class AlertsOnRedis {
  private constructor(
    readonly redis: RedisLoopbackCluster,
    readonly dir: string,
    readonly prometheus: LoopbackPrometheus,
  ) {}

  static async start(): Promise<AlertsOnRedis> {
    const redis = await RedisLoopbackCluster.start();
    const dir = alertsDir();
    const alerts = new AlertsOnRedis(redis, dir, new LoopbackPrometheus(redis.supervisor, dir));
    try {
      await alerts.boot();
    } catch (error) {
      await alerts.stop();
      throw error;
    }
    return alerts;
  }

  /** redis_exporter per node for Redis and for Sentinel (as the exporter ACL user, never CONFIG), then Prometheus. */
  private async boot(): Promise<void> {
    for (const node of this.redis.nodes) {
      const settings = this.redis.settings[node.name];
      for (const [service, port, listen] of [
        ["redis", settings.port, EXPORTERS.redisExporterPort],
        ["sentinel", settings.sentinelPort, EXPORTERS.sentinelExporterPort],
      ] as const) {
        this.redis.supervisor.start({
          name: `${node.name}-${service}-exporter`,
          command: REDIS_EXPORTER,
          args: [
            `-redis.addr=redis://${node.address}:${port}`,
            `-redis.user=${ACCOUNTS.redisExporter}`,
            `-web.listen-address=${node.address}:${listen}`,
            "-config-command=-",
          ],
          env: { REDIS_PASSWORD: this.redis.exporterPassword },
          user: "prometheus",
          logFile: path.join(this.dir, `${node.name}-${service}-exporter.log`),
        });
      }
    }
    const servers = serversOf(loopbackInventory(), "redis");
    const http = { metricsPath: "/metrics", scheme: "http" } as const;
    const jobs: ScrapeJobSpec[] = [
      { job: "redis", port: EXPORTERS.redisExporterPort, ...http, servers },
      { job: "sentinel", port: EXPORTERS.sentinelExporterPort, ...http, servers },
    ];
    await this.prometheus.start(jobs, `count(redis_up{job=~"${SCRAPE_JOBS.redis}|${SCRAPE_JOBS.sentinel}"} == 1)`, 6, () =>
      this.redis.supervisor.log(`${this.redis.nodes[0].name}-redis-exporter`),
    );
  }

  async stop(): Promise<void> {
    await this.redis.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("alert rules on loopback (Debian prometheus + redis_exporter, rendered rules and targets)", () => {
  const live = clusterForSuite(["redis-server", "redis-sentinel", "haproxy", "prometheus", "prometheus-redis-exporter"], () =>
    AlertsOnRedis.start(),
  );

  it("a healthy cluster fires no Redis alert", async () => {
    await sleep(5_000);
    for (const alert of ["RedisMasterChanged", "RedisMasterCount", "RedisReplicaMissing", "RedisNoReplica"]) {
      expect(await live().prometheus.firing(alert)).toEqual([]);
    }
    // The Sentinel ACL lets redis_exporter read Sentinel's own tables (sentinel_masters from INFO sentinel).
    expect(await live().prometheus.query(`count(redis_sentinel_masters{job="${SCRAPE_JOBS.sentinel}"} == 1)`)).toBe(3);
  }, 60_000);

  it("the master node crashes: RedisMasterChanged fires for the promoted replica", async () => {
    const oldMaster = await live().redis.agreedMaster();
    let crashedAt = 0;
    const watch = (async () => {
      await waitFor("the master to be killed", async () => !live().redis.supervisor.isRunning(`${oldMaster.name}-redis`), 60_000, 50);
      crashedAt = Date.now();
      return live().prometheus.secondsUntil(
        "RedisMasterChanged to fire",
        crashedAt,
        "RedisMasterChanged",
        (firing) => firing.length > 0,
        120_000,
        ['redis_instance_info{role="master"}', 'max_over_time(redis_instance_info{role="slave"}[10m])', "ALERTS"],
      );
    })();
    const result = await live().redis.failover();
    const seconds = await watch;
    const fired = await live().prometheus.firing("RedisMasterChanged");
    console.log(
      `alerts: RedisMasterChanged fired ${seconds.toFixed(1)} s after the master's crash (Sentinel failover ${result.secondsToWriteAgain.toFixed(1)} s)`,
    );
    expect(fired.map((alert) => alert.labels.node)).toEqual([result.newPrimary]);
    expect(fired[0].labels).toMatchObject({ cluster: "redis", job: "redis", severity: "warning" });
    expect(await live().prometheus.firing("RedisMasterCount")).toEqual([]);
  }, 300_000);

  it("a replica is down: RedisReplicaMissing fires, and resolves once it rejoins", async () => {
    const master = await live().redis.agreedMaster();
    const replica = live().redis.nodes.find((node) => node !== master)!;
    await live().redis.waitReplication(master, 60_000);
    await live().redis.supervisor.kill(`${replica.name}-redis`);
    const downAt = Date.now();
    const firedAfter = await live().prometheus.secondsUntil(
      "RedisReplicaMissing to fire",
      downAt,
      "RedisReplicaMissing",
      (firing) => firing.length > 0,
      180_000,
      ["redis_connected_slaves", 'count by (cluster) (up{job="redis"})', "ALERTS"],
    );
    expect((await live().prometheus.firing("RedisReplicaMissing"))[0].labels).toMatchObject({ cluster: "redis", severity: "warning" });
    expect(await live().prometheus.firing("RedisNoReplica")).toEqual([]);
    live().redis.supervisor.restart(`${replica.name}-redis`);
    const backAt = Date.now();
    await live().redis.waitReplication(master, 120_000);
    const resolvedAfter = await live().prometheus.secondsUntil(
      "RedisReplicaMissing to resolve",
      backAt,
      "RedisReplicaMissing",
      (firing) => firing.length === 0,
      60_000,
    );
    console.log(
      `alerts: RedisReplicaMissing fired ${firedAfter.toFixed(1)} s after the replica's crash (rule: for 1m), resolved ${resolvedAfter.toFixed(1)} s after its restart`,
    );
  }, 400_000);
});
