import * as fs from "fs";
import * as path from "path";
import { clusterNodes, serversOf } from "../../config";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import {
  DEFAULT_REDIS_DAEMON_SETTINGS,
  parseRedisSettings,
  RedisHostPaths,
  REDIS_HOST_PATHS,
  RedisStepPhase,
  renderRedisNodeScript,
  renderRedisPasswordFinishScript,
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
import { fillSecrets, HostFile, renderStepScript, secretKeysIn } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { clusterDir, loopbackInventory, stackModuleConfig, testPassword } from "../support/loopback/loopback";
import { RespClient, respCall, RespValue } from "../support/loopback/resp";
import { FailoverResult, longestPause, ReplaceNodeResult, StallResult } from "../support/loopback/failover";
import { runBounded } from "../support/loopback/process";
import { haproxyUpServers } from "../support/loopback/haproxy";
import {
  assertLoopback,
  assertLoopbackText,
  ownedDir,
  ownedFile,
  portOpen,
  settlesWithin,
  sleep,
  Supervisor,
  userIds,
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
/** The `docker` the node steps run with here (tests/redis/docker-shim.sh). */
const DOCKER_SHIM = path.join(__dirname, "docker-shim.sh");

/** What a password rotation under a writing client measured (docs/redis.md, "Password rotation"). */
export interface RotationResult {
  /** The masters the Sentinels agreed on, in the order seen (polled every 200 ms): one change is the planned switchover. */
  readonly mastersSeen: readonly string[];
  /** Polls at which two nodes reported `role:master` at once. */
  readonly pollsWithTwoMasters: number;
  /** The longest time without an acknowledged write, over the whole rotation, seconds. */
  readonly longestWritePauseSeconds: number;
  /** The longest such time during the master-roll steps (the planned hand-over), seconds. */
  readonly handOverPauseSeconds: number;
  readonly acknowledgedWrites: number;
  readonly acknowledgedLost: number;
  /** Per daemon (`redis-01 redis`, `redis-01 sentinel`, `haproxy`): whether the old password still logs in afterwards. */
  readonly oldPasswordAccepted: Readonly<Record<string, boolean>>;
  /** The same for the new password. */
  readonly newPasswordAccepted: Readonly<Record<string, boolean>>;
  /** The passwords the live files hold afterwards besides the new ones (must be none). */
  readonly oldPasswordInLiveFiles: boolean;
}

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
  /** The data password (`requirepass`) clients log in with; {@link rotatePasswords} replaces it. */
  get password(): string {
    return this.redisPassword;
  }
  private redisPassword = testPassword();
  private sentinelPassword = testPassword();
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
    this.writeHaproxyConfig();
    this.supervisor.start({
      name: "haproxy",
      command: HAPROXY,
      // Master-worker, as production's image runs it: SIGHUP reloads the configuration (scripts/haproxy/haproxy-step.sh).
      args: ["-W", "-db", "-f", this.haproxyConfigFile],
      user: "haproxy",
      logFile: path.join(this.dir, "haproxy.log"),
    });
    await waitForPort(this.proxy.address, this.proxy.port, 30_000);
    await waitFor("HAProxy to route Redis to the master", async () => (await this.upServers()).length === 1, 30_000, 500);
  }

  /** Renders haproxy.cfg with the cluster's current password, as HaproxyLayer's step lands it. */
  private writeHaproxyConfig(): void {
    const config = renderHaproxyConfig([redisHaproxyListener(this.nodes, { port: this.proxy.port })], {
      bindAddress: this.proxy.address,
      statsAddress: this.proxy.address,
      statsPort: this.proxy.statsPort,
    });
    assertLoopbackText(this.haproxyConfigFile, config);
    ownedFile(this.haproxyConfigFile, fillSecrets(config, this.secrets()), "haproxy");
  }

  /** Stops every daemon (also on failure) and removes the working directory. */
  async stop(): Promise<void> {
    for (const node of this.nodes) for (const name of ["redis", "redis-sentinel"]) this.shimKill(node, name);
    await this.supervisor.stopAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The node's host paths for its rendered step: the loopback cluster's own files (the live redis.conf is the node directory's). */
  private hostPaths(node: RedisNode): RedisHostPaths {
    const settings = this.settings[node.name];
    const nodeDir = path.join(this.dir, node.name);
    return {
      ...REDIS_HOST_PATHS,
      managedDir: path.join(nodeDir, "managed"),
      redisDir: nodeDir,
      sentinelDir: settings.sentinelDir,
      dataDir: settings.dataDir,
      sysctlFile: path.join(nodeDir, "sysctl.conf"),
    };
  }

  private shimDir(node: RedisNode): string {
    return path.join(this.dir, node.name, "shim");
  }

  /** The pid the shim keeps for `container` of `node`, if that process runs. */
  private shimPid(node: RedisNode, container: string): number | undefined {
    const file = path.join(this.shimDir(node), `${container}.pid`);
    if (!fs.existsSync(file)) return undefined;
    const pid = Number(fs.readFileSync(file, "utf8").trim());
    try {
      if (/^State:\s*Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"))) return undefined;
      return pid;
    } catch {
      return undefined;
    }
  }

  /** SIGKILL of what the shim started for `container` of `node`. */
  private shimKill(node: RedisNode, container: string): void {
    const pid = this.shimPid(node, container);
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  /**
   * The node's daemons the supervisor started become the shim's containers (label `adopted`: older
   * than the rendered spec, as containers of an earlier deployment), so the step stops them itself.
   */
  private adopt(node: RedisNode): void {
    const dir = ownedDir(this.shimDir(node), "root");
    for (const [container, daemon] of [
      ["redis", `${node.name}-redis`],
      ["redis-sentinel", `${node.name}-sentinel`],
    ]) {
      const pid = this.supervisor.pid(daemon);
      if (pid === undefined || this.shimPid(node, container) !== undefined) continue;
      fs.writeFileSync(path.join(dir, `${container}.pid`), `${pid}\n`);
      fs.writeFileSync(path.join(dir, `${container}.label`), "adopted\n");
    }
  }

  /**
   * Runs a whole rendered step (components/lib/remote.ts renderStepScript) on `node`'s files, with
   * tests/redis/docker-shim.sh as `docker` and the secret files on stdin as the provider sends
   * them; throws on a non-zero exit with the step's log.
   */
  private async runStep(node: RedisNode, title: string, files: readonly HostFile[], body: string): Promise<string> {
    this.adopt(node);
    // The image's redis user (999:1000) is Debian's redis user on this machine.
    const { uid, gid } = userIds("redis");
    const script = renderStepScript(title, files, body.replace(/^KB_OWNER='[^']*'$/m, `KB_OWNER='${uid}:${gid}'`), { timeoutMinutes: 10 });
    const stdin = files
      .filter((file) => secretKeysIn(file.content).length > 0)
      .map((file) => `${Buffer.from(fillSecrets(`${file.content.replace(/\n?$/, "\n")}`, this.secrets())).toString("base64")}\n`)
      .join("");
    for (const file of files) assertLoopbackText(file.path, fillSecrets(file.content, this.secrets()));
    const bin = path.join(this.dir, "bin");
    if (!fs.existsSync(bin)) {
      fs.mkdirSync(bin, { mode: 0o755 });
      fs.symlinkSync(DOCKER_SHIM, path.join(bin, "docker"));
    }
    const logDir = path.join(this.dir, "steps");
    const result = await runBounded(
      "bash",
      ["-c", script],
      {
        PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
        LANG: "C.UTF-8",
        HOME: this.dir,
        KB_SHIM_DIR: this.shimDir(node),
        KB_STEP_LOG_DIR: logDir,
      },
      600_000,
      stdin,
    );
    if (result.code !== 0) {
      const logs = fs
        .readdirSync(logDir)
        .filter((name) => name.endsWith(".log"))
        .sort();
      const last = logs.length > 0 ? fs.readFileSync(path.join(logDir, logs[logs.length - 1]), "utf8").slice(-3000) : "";
      throw new Error(`redis: step ${title} exited ${result.code}: ${result.stderr.trim()}\n${last}`);
    }
    return result.stdout + result.stderr;
  }

  /** `node`'s node step (`phase` node) or master-roll step, rendered as RedisCluster declares it. */
  runNodeStep(node: RedisNode, phase: RedisStepPhase): Promise<string> {
    const settings = this.settings[node.name];
    const paths = this.hostPaths(node);
    const files: HostFile[] = [
      { path: path.join(paths.managedDir, "redis.conf"), content: renderRedisConf(node, settings), mode: "0600" },
      {
        path: path.join(paths.managedDir, "sentinel.conf"),
        content: renderSentinelConf(node, this.nodes[0].address, settings),
        mode: "0600",
      },
    ];
    const body = renderRedisNodeScript(node, this.nodes, loadVersions().images.redis, settings, phase, paths);
    // The node step lands the managed files; the master-roll step lands none (component.ts).
    return this.runStep(node, `${node.name}-${phase}`, phase === "node" ? files : [], body);
  }

  /** The rotation's finish step (on the first node, after HAProxy has the new password). */
  runPasswordFinish(): Promise<string> {
    const node = this.nodes[0];
    const body = renderRedisPasswordFinishScript(this.nodes, loadVersions().images.redis, this.settings[node.name], this.hostPaths(node));
    return this.runStep(node, `${node.name}-redis-password-finish`, [], body);
  }

  /** HAProxy's step on a configuration change: the new haproxy.cfg, then SIGHUP (a master-worker reload). */
  async reloadHaproxy(): Promise<void> {
    this.writeHaproxyConfig();
    const pid = this.supervisor.pid("haproxy");
    if (pid === undefined) throw new Error("redis: HAProxy does not run");
    process.kill(pid, "SIGHUP");
    await sleep(1500);
    await waitFor("HAProxy to route Redis to one master after the reload", async () => (await this.upServers()).length === 1, 30_000, 250);
  }

  /** Whether `password` logs in to `address:port` (PING answered). */
  private async logsIn(address: string, port: number, password: string): Promise<boolean> {
    try {
      return (await respCall(address, port, password, ["PING"], 2000)) === "PONG";
    } catch {
      return false;
    }
  }

  /**
   * Rotates both passwords the way `pulumi up --replace secrets-redis secrets-redis-sentinel` runs
   * it, while a client writes through HAProxy: the node steps in inventory order, the master-roll
   * steps, HAProxy's reload with the new password, then the finish step. The client keeps the old
   * password until HAProxy has the new one (the application's Secret follows), then logs in with
   * the new one. Watches the Sentinels' master and every node's role all along.
   */
  async rotatePasswords(): Promise<RotationResult> {
    this.runs += 1;
    const before = await this.agreedMaster();
    await this.waitReplication(before, 60_000);
    const old = { redis: this.redisPassword, sentinel: this.sentinelPassword };
    let clientPassword = old.redis;
    const writer = new ProxyWriter(this.proxy.address, this.proxy.port, () => clientPassword, `kb:it:rotation:${Date.now()}:${this.runs}`);
    const writing = writer.run();
    const mastersSeen: string[] = [before.name];
    let pollsWithTwoMasters = 0;
    let watching = true;
    const sentinelPassword = () => this.sentinelPassword;
    const watch = (async () => {
      while (watching) {
        const answers = await Promise.all(
          this.nodes.map((node) =>
            respCall(
              node.address,
              this.settings[node.name].sentinelPort,
              sentinelPassword(),
              ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", DEFAULT_REDIS_DAEMON_SETTINGS.masterName],
              500,
            )
              .then((reply) => (reply as string[])[0])
              .catch(() =>
                respCall(
                  node.address,
                  this.settings[node.name].sentinelPort,
                  old.sentinel,
                  ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", DEFAULT_REDIS_DAEMON_SETTINGS.masterName],
                  500,
                ).then((reply) => (reply as string[])[0]),
              )
              .catch(() => undefined),
          ),
        );
        const named = new Set(answers.filter((answer): answer is string => answer !== undefined));
        if (named.size === 1) {
          const name = this.nodeAt([...named][0]).name;
          if (mastersSeen[mastersSeen.length - 1] !== name) mastersSeen.push(name);
        }
        const roles = await Promise.all(
          this.nodes.map((node) =>
            respCall(node.address, this.settings[node.name].port, this.redisPassword, ["ROLE"], 500)
              .catch(() => respCall(node.address, this.settings[node.name].port, old.redis, ["ROLE"], 500))
              .then((role) => (role as RespValue[])[0])
              .catch(() => undefined),
          ),
        );
        if (roles.filter((role) => role === "master").length > 1) pollsWithTwoMasters += 1;
        await sleep(200);
      }
    })();
    try {
      await waitFor("writes through HAProxy before the rotation", async () => writer.acknowledged.length >= 50, 10_000, 100);
      const startedAt = Date.now();
      this.redisPassword = testPassword();
      this.sentinelPassword = testPassword();
      for (const node of this.nodes) await this.runNodeStep(node, "node");
      const rollStartedAt = Date.now();
      for (const node of this.nodes) await this.runNodeStep(node, "master-roll");
      const rollEndedAt = Date.now();
      await this.reloadHaproxy();
      clientPassword = this.redisPassword;
      await this.runPasswordFinish();
      // Long enough for the old HAProxy worker's checks (old password) to fail and cut its sessions.
      await sleep(3000);
      const endedAt = Date.now();
      watching = false;
      await watch;
      writer.stop();
      await writing;
      const master = await this.agreedMaster();
      const daemons: [string, string, number][] = [
        ...this.nodes.flatMap((node): [string, string, number][] => [
          [`${node.name} redis`, node.address, this.settings[node.name].port],
          [`${node.name} sentinel`, node.address, this.settings[node.name].sentinelPort],
        ]),
        ["haproxy", this.proxy.address, this.proxy.port],
      ];
      const accepted = async (password: (name: string) => string) =>
        Object.fromEntries(
          await Promise.all(daemons.map(async ([name, address, port]) => [name, await this.logsIn(address, port, password(name))])),
        );
      const isSentinel = (name: string) => name.endsWith(" sentinel");
      const liveFiles = this.nodes.flatMap((node) => [
        path.join(this.dir, node.name, "redis.conf"),
        path.join(this.settings[node.name].sentinelDir, "sentinel.conf"),
      ]);
      return {
        mastersSeen,
        pollsWithTwoMasters,
        longestWritePauseSeconds: longestPause(writer.ackTimesSince(startedAt), startedAt, endedAt) / 1000,
        handOverPauseSeconds: longestPause(writer.ackTimesSince(rollStartedAt), rollStartedAt, rollEndedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: await this.missingKeys(master, writer),
        oldPasswordAccepted: await accepted((name) => (isSentinel(name) ? old.sentinel : old.redis)),
        newPasswordAccepted: await accepted((name) => (isSentinel(name) ? this.sentinelPassword : this.redisPassword)),
        oldPasswordInLiveFiles: liveFiles.some((file) => {
          const text = fs.readFileSync(file, "utf8");
          return text.includes(old.redis) || text.includes(old.sentinel);
        }),
      };
    } finally {
      watching = false;
      await watch;
      writer.stop();
      await writing;
    }
  }

  /**
   * Replaces the master node as `pulumi up --replace` of its server does (docs/operations.md): while
   * a client writes through HAProxy, the node's Redis and Sentinel are killed, every file of it is
   * wiped (data, live and managed configs, containers), and its node step and master-roll step run
   * again at once. Polls the node's role all along: it must never serve as master.
   */
  async replaceNode(): Promise<ReplaceNodeResult & { readonly servedAsMaster: boolean; readonly newMaster: string }> {
    this.runs += 1;
    const old = await this.agreedMaster();
    await this.waitReplication(old, 60_000);
    const writer = new ProxyWriter(
      this.proxy.address,
      this.proxy.port,
      () => this.redisPassword,
      `kb:it:replace:${Date.now()}:${this.runs}`,
    );
    const writing = writer.run();
    let servedAsMaster = false;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const role = (await this.redis(old, ["ROLE"], 500).catch(() => undefined)) as RespValue[] | undefined;
        if (role?.[0] === "master") servedAsMaster = true;
        await sleep(100);
      }
    })();
    try {
      await waitFor("writes through HAProxy before the kill", async () => writer.acknowledged.length >= 50, 10_000, 100);
      const killedAt = Date.now();
      await Promise.all([this.supervisor.kill(`${old.name}-redis`), this.supervisor.kill(`${old.name}-sentinel`)]);
      this.shimKill(old, "redis");
      this.shimKill(old, "redis-sentinel");
      await waitFor(`${old.name} to stop answering`, async () => !(await portOpen(old.address, this.settings[old.name].port)), 10_000, 100);
      // A new server: its data, live and managed configs and containers are gone (Redis has no volume).
      const settings = this.settings[old.name];
      const paths = this.hostPaths(old);
      for (const dir of [settings.dataDir, settings.sentinelDir]) {
        fs.rmSync(dir, { recursive: true, force: true });
        ownedDir(dir, "redis");
      }
      for (const file of [
        path.join(paths.redisDir, "redis.conf"),
        paths.managedDir,
        this.shimDir(old),
        path.join(this.dir, "steps.pending"),
      ])
        fs.rmSync(file, { recursive: true, force: true });
      servedAsMaster = false;
      const stepStarted = Date.now();
      let rejoinFailure: string | undefined;
      let fresh: RedisNode | undefined;
      try {
        await this.runNodeStep(old, "node");
        await this.runNodeStep(old, "master-roll");
        fresh = await this.agreedMaster();
        await this.waitReplication(fresh, 120_000);
        await waitFor("HAProxy to route to the new master only", async () => (await this.upServers()).join() === fresh?.name, 30_000, 250);
      } catch (error) {
        rejoinFailure = error instanceof Error ? error.message : String(error);
      }
      const stepSeconds = (Date.now() - stepStarted) / 1000;
      const firstWrite = writer.firstAckAfter(killedAt);
      await sleep(500);
      watching = false;
      await watch;
      writer.stop();
      await writing;
      const master = fresh ?? (await this.agreedMasterAmong(this.nodes.filter((node) => node !== old))) ?? old;
      const rejoined = rejoinFailure === undefined && fresh !== old;
      if (rejoined) await this.waitInSync(master, old, 30_000);
      return {
        system: "redis",
        scenario: "replace-node",
        replaced: old.name,
        newMaster: master.name,
        secondsToWriteAgain: firstWrite === undefined ? Number.POSITIVE_INFINITY : (firstWrite - killedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: await this.missingKeys(master, writer),
        rejoined,
        rejoinedBy: rejoined ? "full resync" : undefined,
        stepSeconds,
        rejoinFailure,
        servedAsMaster,
      };
    } finally {
      watching = false;
      await watch;
      writer.stop();
      await writing;
    }
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
    private readonly password: string | (() => string),
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
        client ??= await RespClient.connect(
          this.address,
          this.port,
          typeof this.password === "string" ? this.password : this.password(),
          1000,
        );
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
