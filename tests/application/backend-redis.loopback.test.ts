import Redis from "ioredis";
import { backendConnectionValues, backendEndpoints } from "../../components/k8s/addons";
import { RedisLoopbackCluster } from "../redis/loopback";
import { loopbackInventory, testPassword } from "../support/loopback/loopback";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, waitFor } from "../support/loopback/supervisor";

/**
 * The backend's REDIS_URL on loopback (issue 19): the Redis + Sentinel + HAProxy cluster of
 * tests/redis/loopback.ts and the real ioredis with the options keybuzz-backend gives it
 * (src/lib/redis.config.ts: `maxRetriesPerRequest: 3`, `enableReadyCheck: true`). The URL is the
 * Secret's for the loopback inventory; its host, the internal LB (a TCP forwarder to haproxy-01/02),
 * is replaced by its target haproxy-01, where the cluster's HAProxy listens.
 */
describe("the backend's REDIS_URL through HAProxy on the loopback Redis cluster", () => {
  const live = clusterForSuite(["redis-server", "redis-sentinel", "haproxy"], () => RedisLoopbackCluster.start());

  const redisUrl = () => {
    const endpoints = backendEndpoints(loopbackInventory("prod"));
    const url = new URL(
      backendConnectionValues(endpoints, {
        postgresBackend: testPassword(),
        postgresProduct: testPassword(),
        redis: live().password,
        rabbitmq: testPassword(),
        minioApp: testPassword(),
      }).REDIS_URL,
    );
    expect(url.hostname).toBe(endpoints.redis);
    url.hostname = live().proxy.address;
    url.port = String(live().proxy.port);
    return url.toString();
  };

  it("ioredis survives a Sentinel failover: writes resume on the new master", async () => {
    const client = new Redis(redisUrl(), { maxRetriesPerRequest: 3, enableReadyCheck: true });
    client.on("error", () => undefined);
    const key = `kb:it:backend:${Date.now()}`;
    const acknowledged: { at: number; count: number }[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        try {
          acknowledged.push({ at: Date.now(), count: await client.incr(key) });
        } catch {
          await sleep(50);
        }
        await sleep(20);
      }
    })();
    try {
      expect(await client.ping()).toBe("PONG");
      await waitFor("ioredis writes before the failover", async () => acknowledged.length >= 20, 10_000, 100);
      const result = await live().failover();
      const after = acknowledged.length;
      await waitFor("ioredis writes after the failover", async () => acknowledged.length >= after + 20, 30_000, 100);
      const gaps = acknowledged.slice(1).map((write, index) => write.at - acknowledged[index].at);
      console.log(
        `ioredis through HAProxy: ${result.oldPrimary} -> ${result.newPrimary}, longest interruption ${(Math.max(...gaps) / 1000).toFixed(1)} s (HAProxy path: ${result.secondsToWriteAgain.toFixed(1)} s)`,
      );
      writing = false;
      await writer;
      // The counter is on the new master, as high as the last acknowledged increment.
      const onNewMaster = Number(
        await live().redis(
          live().nodes.find((node) => node.name === result.newPrimary)!,
          ["GET", key],
        ),
      );
      expect(onNewMaster).toBeGreaterThanOrEqual(acknowledged.at(-1)!.count);
      expect(result.newPrimary).not.toBe(result.oldPrimary);
    } finally {
      writing = false;
      await writer;
      client.disconnect();
    }
  });
});
