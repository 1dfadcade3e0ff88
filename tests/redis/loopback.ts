import * as fs from "fs";
import * as path from "path";
import { clusterNodes, serversOf } from "../../config";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import {
  DEFAULT_REDIS_DAEMON_SETTINGS,
  parseRedisSettings,
  RedisDaemonSettings,
  redisDaemonSettings,
  redisHaproxyListener,
  RedisNode,
  REDIS_EXPORTER_PASSWORD_KEY,
  REDIS_PASSWORD_KEY,
  RedisSettings,
  renderRedisConf,
  renderSentinelConf,
  SENTINEL_PASSWORD_KEY,
} from "../../components/data/redis";
import { fillSecrets } from "../../components/lib/remote";
import { clusterDir, loopbackInventory, stackModuleConfig, testPassword } from "../support/loopback/loopback";
import { RespClient, respCall, RespValue } from "../support/loopback/resp";
import { FailoverResult, longestPause, StallResult } from "../support/loopback/failover";
import { haproxyUpServers } from "../support/loopback/haproxy";
import {
  assertLoopback,
  assertLoopbackText,
  ownedDir,
  ownedFile,
  settlesWithin,
  sleep,
  Supervisor,
  waitFor,
  waitForPort,
} from "../support/loopback/supervisor";

/**
 * Redis + Sentinel + HAProxy on loopback, from the files components/data/redis/ and
 * components/data/haproxy/ render for the stack's own inventory (moved to 127.0.10.0/24), run by
 * Debian's redis-server, redis-sentinel and haproxy as the `redis` and `haproxy` users. Shared by
 * tests/redis/redis.loopback.test.ts (correctness) and scripts/bench-failover.ts (timings).
 */

const REDIS_SERVER = "/usr/bin/redis-server";
const REDIS_SENTINEL = "/usr/bin/redis-sentinel";
const HAPROXY = "/usr/sbin/haproxy";

/** A running loopback Redis cluster. */
export class RedisLoopbackCluster {
  readonly supervisor = new Supervisor();
  readonly nodes: readonly RedisNode[];
  readonly settings: Readonly<Record<string, RedisDaemonSettings>>;
  /** The `keybuzz:redis` settings the cluster runs with (the stack's, with the start overrides). */
  readonly tuning: RedisSettings;
  /** Where HAProxy listens for Redis clients (haproxy-01's address, the Redis port). */
  readonly proxy: { readonly address: string; readonly port: number; readonly statsPort: number };
  /** The haproxy.cfg HAProxy runs (secrets filled in). */
  readonly haproxyConfigFile: string;
  /** The data password (`requirepass`) clients log in with. */
  readonly password = testPassword();
  private readonly sentinelPassword = testPassword();
  /** redis_exporter's ACL user's password (tests/observability/alerts.loopback.test.ts scrapes as that user). */
  readonly exporterPassword = testPassword();
  private runs = 0;

  private constructor(
    readonly dir: string,
    stack: string,
    overrides: Readonly<Record<string, unknown>>,
  ) {
    const inventory = loopbackInventory(stack);
    // The stack's own tuning, with the caller's overrides on top (the benchmark measures another profile that way).
    this.tuning = parseRedisSettings({ ...((stackModuleConfig(stack, "redis") as object | undefined) ?? {}), ...overrides });
    const tuning = this.tuning;
    const servers = serversOf(inventory, "redis");
    this.nodes = clusterNodes(servers);
    const settings: Record<string, RedisDaemonSettings> = {};
    for (const server of servers) {
      settings[server.name] = {
        ...redisDaemonSettings(tuning, server.memoryGb),
        dataDir: path.join(dir, server.name, "data"),
        sentinelDir: path.join(dir, server.name, "sentinel"),
      };
    }
    this.settings = settings;
    const haproxyHost = serversOf(inventory, "haproxy")[0];
    const service = inventory.loadBalancers.flatMap((lb) => lb.services).find((candidate) => candidate.name === "redis");
    this.proxy = { address: haproxyHost.privateIp, port: service?.destinationPort ?? DEFAULT_REDIS_DAEMON_SETTINGS.port, statsPort: 8404 };
    this.haproxyConfigFile = path.join(dir, "haproxy", "haproxy.cfg");
    for (const address of [...this.nodes.map((node) => node.address), this.proxy.address]) assertLoopback(address);
  }

  /**
   * Renders the configs, starts the 3 nodes the way the node step does, then the Sentinels and
   * HAProxy. `overrides` are `keybuzz:redis` keys laid over the stack's (e.g. `failoverProfile`).
   */
  static async start(stack = "prod", overrides: Readonly<Record<string, unknown>> = {}): Promise<RedisLoopbackCluster> {
    const cluster = new RedisLoopbackCluster(clusterDir("redis"), stack, overrides);
    try {
      await cluster.boot();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private secrets(): Record<string, string> {
    return {
      [REDIS_PASSWORD_KEY]: this.password,
      [SENTINEL_PASSWORD_KEY]: this.sentinelPassword,
      [REDIS_EXPORTER_PASSWORD_KEY]: this.exporterPassword,
    };
  }

  private async boot(): Promise<void> {
    const bootstrap = this.nodes[0];
    for (const node of this.nodes) {
      const settings = this.settings[node.name];
      const nodeDir = ownedDir(path.join(this.dir, node.name), "redis");
      ownedDir(settings.dataDir, "redis");
      ownedDir(settings.sentinelDir, "redis");
      // As scripts/redis/redis-node.sh: the managed file, plus `replicaof` on every node but the current master.
      const managed = fillSecrets(renderRedisConf(node, settings), this.secrets());
      const replicaOf = node === bootstrap ? "" : `replicaof ${bootstrap.address} ${settings.port}\n`;
      const sentinelConf = fillSecrets(renderSentinelConf(node, bootstrap.address, settings), this.secrets());
      assertLoopbackText(`${node.name} redis.conf`, managed + replicaOf);
      assertLoopbackText(`${node.name} sentinel.conf`, sentinelConf);
      ownedFile(path.join(nodeDir, "redis.conf"), managed + replicaOf, "redis");
      ownedFile(path.join(settings.sentinelDir, "sentinel.conf"), sentinelConf, "redis");
      this.supervisor.start({
        name: `${node.name}-redis`,
        command: REDIS_SERVER,
        args: [path.join(nodeDir, "redis.conf")],
        user: "redis",
        cwd: nodeDir,
        logFile: path.join(this.dir, `${node.name}-redis.log`),
      });
    }
    for (const node of this.nodes)
      await waitFor(`PONG from ${node.name}`, async () => (await this.redis(node, ["PING"])) === "PONG", 30_000);
    await this.waitReplication(bootstrap, 60_000);
    for (const node of this.nodes) {
      this.supervisor.start({
        name: `${node.name}-sentinel`,
        command: REDIS_SENTINEL,
        args: [path.join(this.settings[node.name].sentinelDir, "sentinel.conf")],
        user: "redis",
        cwd: this.settings[node.name].sentinelDir,
        logFile: path.join(this.dir, `${node.name}-sentinel.log`),
      });
    }
    for (const node of this.nodes) await waitForPort(node.address, this.settings[node.name].sentinelPort, 30_000);
    // Every Sentinel must have discovered the two others (hello messages every 2 s).
    await waitFor(
      "every Sentinel to know the other two",
      async () => {
        for (const node of this.nodes) {
          const peers = (await this.sentinel(node, ["SENTINEL", "SENTINELS", DEFAULT_REDIS_DAEMON_SETTINGS.masterName])) as RespValue[];
          if (peers.length !== this.nodes.length - 1) return false;
        }
        return true;
      },
      60_000,
      500,
    );

    ownedDir(path.dirname(this.haproxyConfigFile), "haproxy");
    const config = renderHaproxyConfig([redisHaproxyListener(this.nodes, { port: this.proxy.port })], {
      bindAddress: this.proxy.address,
      statsAddress: this.proxy.address,
      statsPort: this.proxy.statsPort,
    });
    assertLoopbackText(this.haproxyConfigFile, config);
    ownedFile(this.haproxyConfigFile, fillSecrets(config, this.secrets()), "haproxy");
    this.supervisor.start({
      name: "haproxy",
      command: HAPROXY,
      args: ["-db", "-f", this.haproxyConfigFile],
      user: "haproxy",
      logFile: path.join(this.dir, "haproxy.log"),
    });
    await waitForPort(this.proxy.address, this.proxy.port, 30_000);
    await waitFor("HAProxy to route Redis to the master", async () => (await this.upServers()).length === 1, 30_000, 500);
  }

  /** Stops every daemon (also on failure) and removes the working directory. */
  async stop(): Promise<void> {
    await this.supervisor.stopAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** One command to a node's Redis. */
  redis(node: RedisNode, args: readonly (string | number)[], timeoutMs = 2000): Promise<RespValue> {
    return respCall(node.address, this.settings[node.name].port, this.password, args, timeoutMs);
  }

  /** One command to a node's Sentinel. */
  sentinel(node: RedisNode, args: readonly (string | number)[], timeoutMs = 2000): Promise<RespValue> {
    return respCall(node.address, this.settings[node.name].sentinelPort, this.sentinelPassword, args, timeoutMs);
  }

  /** One command through HAProxy. */
  throughProxy(args: readonly (string | number)[], timeoutMs = 2000): Promise<RespValue> {
    return respCall(this.proxy.address, this.proxy.port, this.password, args, timeoutMs);
  }

  /** `INFO replication` of a node as key → value. */
  async replication(node: RedisNode): Promise<Record<string, string>> {
    const text = String(await this.redis(node, ["INFO", "replication"]));
    return Object.fromEntries(
      text
        .split("\r\n")
        .filter((line) => line.includes(":"))
        .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
    );
  }

  nodeAt(address: string): RedisNode {
    const node = this.nodes.find((candidate) => candidate.address === address);
    if (!node) throw new Error(`redis: no node at ${address}`);
    return node;
  }

  /** The master every Sentinel names; throws when they disagree or one does not answer. */
  async agreedMaster(): Promise<RedisNode> {
    const answers = new Set<string>();
    for (const node of this.nodes) {
      const reply = (await this.sentinel(node, [
        "SENTINEL",
        "GET-MASTER-ADDR-BY-NAME",
        DEFAULT_REDIS_DAEMON_SETTINGS.masterName,
      ])) as string[];
      answers.add(reply[0]);
    }
    if (answers.size !== 1) throw new Error(`redis: Sentinels disagree on the master: ${[...answers].join(", ")}`);
    return this.nodeAt([...answers][0]);
  }

  /** Waits until `master` is master with every other node an in-sync replica linked to it. */
  async waitReplication(master: RedisNode, timeoutMs: number): Promise<void> {
    await waitFor(
      `${master.name} to be master of every other node`,
      async () => {
        const info = await this.replication(master);
        if (info.role !== "master" || Number(info.connected_slaves) !== this.nodes.length - 1) return false;
        for (const node of this.nodes.filter((candidate) => candidate !== master)) {
          const replica = await this.replication(node);
          if (replica.role !== "slave" || replica.master_host !== master.address || replica.master_link_status !== "up") return false;
        }
        return true;
      },
      timeoutMs,
      500,
    );
  }

  /** Names of the Redis backends HAProxy's stats page shows UP. */
  upServers(): Promise<string[]> {
    return haproxyUpServers(this.proxy.address, this.proxy.statsPort, "redis");
  }

  /**
   * Kills the master node (SIGKILL of its redis-server and Sentinel: the node is gone) while a
   * client writes through HAProxy without pause, measures the time until a write is acknowledged
   * again, brings the node back, waits for it to rejoin as a replica, and counts the acknowledged
   * writes the new master does not have.
   */
  async failover(): Promise<FailoverResult> {
    this.runs += 1;
    const old = await this.agreedMaster();
    await this.waitReplication(old, 60_000);
    const writer = new ProxyWriter(this.proxy.address, this.proxy.port, this.password, `kb:it:${Date.now()}:${this.runs}`);
    const writing = writer.run();
    try {
      await waitFor("writes through HAProxy before the kill", async () => writer.acknowledged.length >= 50, 10_000, 100);
      const killedAt = Date.now();
      const stopWatchingPromotion = this.watchPromotion(this.nodes.filter((node) => node !== old));
      let promotionToRouted: (name: string) => number | undefined;
      let firstWrite: number, fresh: RedisNode;
      try {
        await Promise.all([this.supervisor.kill(`${old.name}-redis`), this.supervisor.kill(`${old.name}-sentinel`)]);
        firstWrite = await waitFor(
          "a write acknowledged through HAProxy after the kill",
          async () => writer.firstAckAfter(killedAt),
          180_000,
          50,
        );
        fresh = await waitFor(
          "the Sentinels to agree on a new master",
          async () => {
            const agreed = await this.agreedMasterAmong(this.nodes.filter((node) => node !== old));
            return agreed !== old ? agreed : undefined;
          },
          60_000,
          500,
        );
      } finally {
        promotionToRouted = await stopWatchingPromotion();
      }
      this.supervisor.restart(`${old.name}-redis`);
      this.supervisor.restart(`${old.name}-sentinel`);
      let rejoinFailure: string | undefined;
      try {
        await this.waitReplication(fresh, 120_000);
        // HAProxy stops routing to the returned node once it is no longer master (fall 2).
        await waitFor("HAProxy to route to the new master only", async () => (await this.upServers()).join() === fresh.name, 30_000, 250);
      } catch (error) {
        rejoinFailure = error instanceof Error ? error.message : String(error);
      }
      const rejoined = rejoinFailure === undefined;
      await sleep(500);
      writer.stop();
      await writing;
      const lost = await this.missingKeys(fresh, writer);
      if (rejoined) await this.waitInSync(fresh, old, 30_000);
      return {
        system: "redis",
        secondsToWriteAgain: (firstWrite - killedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: lost,
        oldPrimary: old.name,
        newPrimary: fresh.name,
        rejoinedAsReplica: rejoined,
        rejoinFailure,
        secondsFromPromotionToRouted: promotionToRouted(fresh.name),
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * Polls, every 100 ms until stopped, each candidate's `ROLE` and HAProxy's stats, noting when each
   * first reported `master` and when HAProxy first showed it UP. The returned function stops
   * polling and resolves to the seconds from a node's promotion to HAProxy routing to it.
   */
  private watchPromotion(candidates: readonly RedisNode[]): () => Promise<(name: string) => number | undefined> {
    const promotedAt = new Map<string, number>();
    const routedAt = new Map<string, number>();
    let stopped = false;
    const polling = (async () => {
      while (!stopped) {
        const polls = candidates.map(async (node) => {
          if (promotedAt.has(node.name)) return;
          const role = (await this.redis(node, ["ROLE"], 500).catch(() => undefined)) as RespValue[] | undefined;
          if (role?.[0] === "master") promotedAt.set(node.name, Date.now());
        });
        polls.push(
          this.upServers()
            .then((up) => up.forEach((name) => routedAt.has(name) || routedAt.set(name, Date.now())))
            .catch(() => undefined),
        );
        await Promise.all([...polls, sleep(100)]);
      }
    })();
    return async () => {
      stopped = true;
      await polling;
      return (name) => {
        const promoted = promotedAt.get(name);
        const routed = routedAt.get(name);
        return promoted === undefined || routed === undefined ? undefined : Math.max(0, routed - promoted) / 1000;
      };
    };
  }

  /**
   * The master's redis-server freezes for `seconds` (SIGSTOP, then SIGCONT; its Sentinel keeps
   * running) while a client writes through HAProxy; then a watch of `down-after-milliseconds` +
   * 10 s (the time a failover it caused would take to show), polling every 250 ms what the
   * Sentinels of the other nodes name as master and which server HAProxy has UP. No failover may follow.
   */
  async masterStall(seconds = 1.5): Promise<StallResult> {
    this.runs += 1;
    const master = await this.agreedMaster();
    await this.waitReplication(master, 60_000);
    const others = this.nodes.filter((node) => node !== master);
    const watchMs = this.settings[master.name].downAfterMilliseconds + 10_000;
    const writer = new ProxyWriter(this.proxy.address, this.proxy.port, this.password, `kb:it:stall:${Date.now()}:${this.runs}`);
    const writing = writer.run();
    try {
      await waitFor("writes through HAProxy before the stall", async () => writer.acknowledged.length >= 50, 10_000, 100);
      const mastersSeen = new Set<string>();
      let proxyMarkedPrimaryDown = false;
      let watching = true;
      const startedAt = Date.now();
      const polling = (async () => {
        while (watching) {
          await Promise.all([
            this.agreedMasterAmong(others)
              .then((agreed) => agreed && mastersSeen.add(agreed.name))
              .catch(() => undefined),
            this.upServers()
              .then((up) => (proxyMarkedPrimaryDown ||= !up.includes(master.name)))
              .catch(() => undefined),
            sleep(250),
          ]);
        }
      })();
      let thawedAt = startedAt;
      let endedAt = startedAt;
      try {
        try {
          this.supervisor.signal(`${master.name}-redis`, "SIGSTOP");
          await sleep(seconds * 1000);
        } finally {
          this.supervisor.signal(`${master.name}-redis`, "SIGCONT");
          thawedAt = Date.now();
        }
        await sleep(Math.max(0, startedAt + watchMs - Date.now()));
        endedAt = Date.now();
      } finally {
        watching = false;
        await polling;
      }
      const after = await this.agreedMaster();
      writer.stop();
      await writing;
      return {
        system: "redis-stall",
        frozen: `${master.name}: redis-server`,
        stalledSeconds: (thawedAt - startedAt) / 1000,
        watchedSeconds: (endedAt - startedAt) / 1000,
        primaryBefore: master.name,
        primaryAfter: after.name,
        failedOver: after !== master || [...mastersSeen].some((name) => name !== master.name),
        proxyMarkedPrimaryDown,
        longestWritePauseSeconds: longestPause(writer.ackTimesSince(startedAt), startedAt, endedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: await this.missingKeys(after, writer),
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * A planned switchover (`SENTINEL FAILOVER`) while a client connection through HAProxy is open on
   * the master: measures the seconds from the old master reporting `role:slave` to HAProxy closing
   * that connection (Redis itself keeps a demoted master's clients connected; HAProxy cuts them when
   * it marks the server down, `on-marked-down shutdown-sessions`). Waits until the cluster is whole again.
   */
  async demotedSessionCut(): Promise<{ oldMaster: string; newMaster: string; secondsFromDemotionToCut: number }> {
    const old = await this.agreedMaster();
    await this.waitReplication(old, 60_000);
    const client = await RespClient.connect(this.proxy.address, this.proxy.port, this.password, 2000);
    try {
      const bind = (await client.call(["CONFIG", "GET", "bind"], 2000)) as string[];
      if (bind[1] !== old.address) throw new Error(`redis: HAProxy sent the client to ${bind[1]}, not the master ${old.address}`);
      const sentinelNode = this.nodes.find((node) => node !== old) ?? old;
      await this.sentinel(sentinelNode, ["SENTINEL", "FAILOVER", DEFAULT_REDIS_DAEMON_SETTINGS.masterName]);
      const demotedAt = await waitFor(
        `${old.name} to be demoted`,
        async () => ((await this.redis(old, ["ROLE"], 500)) as RespValue[])[0] === "slave" && Date.now(),
        30_000,
        50,
      );
      if (!(await settlesWithin(client.closed, 10_000)))
        throw new Error(`redis: HAProxy kept the connection to the demoted ${old.name} open`);
      const cutAt = await client.closed;
      const fresh = await waitFor(
        "the Sentinels to agree on the new master",
        async () => {
          const agreed = await this.agreedMaster();
          return agreed !== old ? agreed : undefined;
        },
        30_000,
        250,
      );
      await this.waitReplication(fresh, 60_000);
      return { oldMaster: old.name, newMaster: fresh.name, secondsFromDemotionToCut: Math.max(0, cutAt - demotedAt) / 1000 };
    } finally {
      client.close();
    }
  }

  /** The master the Sentinels of `nodes` agree on (the killed node's Sentinel is not asked). */
  private async agreedMasterAmong(nodes: readonly RedisNode[]): Promise<RedisNode | undefined> {
    const answers = new Set<string>();
    for (const node of nodes) {
      const reply = (await this.sentinel(node, [
        "SENTINEL",
        "GET-MASTER-ADDR-BY-NAME",
        DEFAULT_REDIS_DAEMON_SETTINGS.masterName,
      ])) as string[];
      answers.add(reply[0]);
    }
    return answers.size === 1 ? this.nodeAt([...answers][0]) : undefined;
  }

  /** Acknowledged keys absent from `node` (MGET in batches). */
  async missingKeys(node: RedisNode, writer: ProxyWriter): Promise<number> {
    let missing = 0;
    const keys = writer.acknowledged.map((sequence) => writer.key(sequence));
    for (let start = 0; start < keys.length; start += 1000) {
      const values = (await this.redis(node, ["MGET", ...keys.slice(start, start + 1000)], 10_000)) as (string | null)[];
      missing += values.filter((value) => value === null).length;
    }
    return missing;
  }

  /** Waits until `replica` has applied everything `master` has (replication offsets equal). */
  private async waitInSync(master: RedisNode, replica: RedisNode, timeoutMs: number): Promise<void> {
    await waitFor(
      `${replica.name} to catch up with ${master.name}`,
      async () => {
        const [ours, theirs] = await Promise.all([this.replication(master), this.replication(replica)]);
        return ours.master_repl_offset === theirs.slave_repl_offset;
      },
      timeoutMs,
      250,
    );
  }
}

/** A client writing `SET <prefix>:<n> <n>` through HAProxy without pause, reconnecting on any error. */
export class ProxyWriter {
  /** Sequence numbers whose SET was acknowledged (+OK). */
  readonly acknowledged: number[] = [];
  private readonly ackTimes: number[] = [];
  private stopped = false;

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly password: string,
    private readonly prefix: string,
  ) {}

  key(sequence: number): string {
    return `${this.prefix}:${sequence}`;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Time (ms epoch) of the first acknowledgement after `time`, if any. */
  firstAckAfter(time: number): number | undefined {
    return this.ackTimes.find((ackTime) => ackTime > time);
  }

  /** Times (ms epochs) of the acknowledgements from `time` on. */
  ackTimesSince(time: number): number[] {
    return this.ackTimes.filter((ackTime) => ackTime >= time);
  }

  /** Writes until {@link stop}; bounded by a 10-minute safety limit. */
  async run(): Promise<void> {
    const limit = Date.now() + 600_000;
    let client: RespClient | undefined;
    let sequence = 0;
    while (!this.stopped && Date.now() < limit) {
      try {
        client ??= await RespClient.connect(this.address, this.port, this.password, 1000);
        sequence += 1;
        const reply = await client.call(["SET", this.key(sequence), sequence], 1000);
        if (reply === "OK") {
          this.acknowledged.push(sequence);
          this.ackTimes.push(Date.now());
        }
        await sleep(2);
      } catch {
        client?.close();
        client = undefined;
        await sleep(50);
      }
    }
    client?.close();
  }
}
