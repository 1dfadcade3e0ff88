import * as path from "path";
import { serversOf } from "../../config";
import { SCRAPE_JOBS, type ScrapeJobSpec } from "../../components/observability/monitoring";
import { loopbackInventory } from "../support/loopback/loopback";
import { LoopbackPrometheus } from "../support/loopback/prometheus";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, waitFor } from "../support/loopback/supervisor";
import { RedisLoopbackCluster } from "../redis/loopback";

/**
 * The rendered alert rules evaluated by Debian's real Prometheus, scraping Debian's redis_exporter
 * in front of the loopback Redis cluster (tests/redis/loopback.ts) through the rendered scrape
 * targets moved to loopback: a Sentinel failover fires RedisMasterChanged, a replica down fires
 * RedisReplicaMissing, which resolves when it rejoins. Prints the seconds from each crash to each
 * alert. Run isolated: `unshare -n bash -c 'ip link set lo up && npx jest -c
 * jest.integration.config.js tests/observability'`.
 */

const REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter";
/** redis_exporter's default port. */
const REDIS_EXPORTER_PORT = 9121;

class AlertsOnRedis {
  private constructor(
    readonly redis: RedisLoopbackCluster,
    readonly prometheus: LoopbackPrometheus,
  ) {}

  /** The Redis cluster, redis_exporter per node (password from the environment), then Prometheus with the rendered rules and targets. */
  static async start(): Promise<AlertsOnRedis> {
    const redis = await RedisLoopbackCluster.start();
    try {
      const password = redis["password"] as string;
      for (const node of redis.nodes) {
        redis.supervisor.start({
          name: `${node.name}-redis-exporter`,
          command: REDIS_EXPORTER,
          args: [
            `-redis.addr=redis://${node.address}:${redis.settings[node.name].port}`,
            `-web.listen-address=${node.address}:${REDIS_EXPORTER_PORT}`,
          ],
          env: { REDIS_PASSWORD: password },
          user: "prometheus",
          logFile: path.join(redis.dir, `${node.name}-redis-exporter.log`),
        });
      }
      const servers = serversOf(loopbackInventory(), "redis");
      const job: ScrapeJobSpec = { job: "redis", port: REDIS_EXPORTER_PORT, metricsPath: "/metrics", scheme: "http", servers };
      const prometheus = await LoopbackPrometheus.start(redis.supervisor, {
        jobs: [job],
        readyQuery: `count(redis_up{job="${SCRAPE_JOBS.redis}"} == 1)`,
        readyValue: 3,
      }).catch((error: unknown) => {
        console.log(`alerts: ${redis.supervisor.log(`${redis.nodes[0].name}-redis-exporter`)}`);
        throw error;
      });
      return new AlertsOnRedis(redis, prometheus);
    } catch (error) {
      await redis.stop();
      throw error;
    }
  }

  firing(alertname: string) {
    return this.prometheus.firing(alertname);
  }

  async stop(): Promise<void> {
    await this.redis.stop();
    this.prometheus.remove();
  }
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
      return live().prometheus.secondsUntil("RedisMasterChanged", crashedAt, 120_000, {
        diagnose: ['redis_instance_info{role="master"}', 'max_over_time(redis_instance_info{role="slave"}[10m])'],
      });
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
    const firedAfter = await live().prometheus.secondsUntil("RedisReplicaMissing", downAt, 180_000, {
      diagnose: ["redis_connected_slaves", 'count by (cluster) (up{job="redis"})'],
    });
    expect((await live().firing("RedisReplicaMissing"))[0].labels).toMatchObject({ cluster: "redis", severity: "warning" });
    expect(await live().firing("RedisNoReplica")).toEqual([]);
    live().redis.supervisor.restart(`${replica.name}-redis`);
    const backAt = Date.now();
    await live().redis.waitReplication(master, 120_000);
    const resolvedAfter = await live().prometheus.secondsUntil("RedisReplicaMissing", backAt, 60_000, { resolved: true });
    console.log(
      `alerts: RedisReplicaMissing fired ${firedAfter.toFixed(1)} s after the replica's crash (rule: for 1m), resolved ${resolvedAfter.toFixed(1)} s after its restart`,
    );
  }, 400_000);
});
