import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { z } from "zod";
import { ClusterNode, clusterNodes, ConfigError, formatZodError, lockedImage, Versions } from "../../config";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../lib/remote";
import { CONTAINER_NOFILE, imagePull, renderContainerFunctions } from "../lib/container";
import type { HaproxyListener } from "./haproxy";
import { commonScript } from "../lib/scripts";

/**
 * Redis HA with Sentinel (spec 001 module 4 and design section C; spec 003; DESIGN.md "Redis
 * routing"): one `redis-server` and one `redis-sentinel` per node in pinned containers on the host
 * network, redis-01 the first master, HAProxy sending every client to the current master only.
 */

/** Placeholder key of the Redis data password (`requirepass`/`masterauth`, HAProxy's AUTH). */
export const REDIS_PASSWORD_KEY = "redis-password";
/** Placeholder key of the Sentinels' own password. */
export const SENTINEL_PASSWORD_KEY = "redis-sentinel-password";
/** uid:gid of the `redis` user of the official alpine image; owns the live configs and data. */
export const REDIS_IMAGE_OWNER = "999:1000";

/** One Redis node: Redis and Sentinel bind and announce its address. */
export type RedisNode = ClusterNode;

/**
 * Sentinel failover profiles: `down-after-milliseconds` is how long a master may leave a PING
 * unanswered before a Sentinel calls it subjectively down (Sentinel docs, sentinel.conf), so it is
 * both the detection time of a crash and the longest master stall ridden out without a failover
 * (a little less: Sentinel checks every 100 ms, and a resumed server first answers the PINGs
 * queued during the stall). Crash RTO ≈ down-after − up to 1 s (the PING period) + ~1.5 s of
 * agreement, election and promotion + ≤ 0.75 s of HAProxy checks.
 */
export const SENTINEL_PROFILES = {
  /** Default: crash RTO ≈ 3–4 s; rides out master stalls somewhat shorter than 2 s (issue 18's 1.5 s: measured, docs/redis.md). */
  fast: { downAfterMilliseconds: 2000 },
  /** Spec 001 module 4: crash RTO ≈ 6–7 s; rides out master stalls somewhat shorter than 5 s. */
  standard: { downAfterMilliseconds: 5000 },
} as const;

/** Name of a {@link SENTINEL_PROFILES} entry. */
export type SentinelProfileName = keyof typeof SENTINEL_PROFILES;

/** Operator-tunable settings, stack config `keybuzz:redis` (all optional). */
export interface RedisTuning {
  /** Share of the server's memory given to `maxmemory`, percent (10–90). Default 60: room for the AOF-rewrite fork. */
  readonly maxmemoryPercent: number;
  /** The Sentinel profile ({@link SENTINEL_PROFILES}). Default `fast`. */
  readonly failoverProfile: SentinelProfileName;
  /** Sentinel `down-after-milliseconds`, ms: the profile's unless set explicitly (1000–60000). */
  readonly downAfterMilliseconds: number;
  /** Sentinel `failover-timeout`, ms. Default 60000 (spec 001 module 4). */
  readonly failoverTimeoutMilliseconds: number;
}

const tuningSchema = z
  .strictObject({
    maxmemoryPercent: z.number().int().min(10).max(90).default(60),
    failoverProfile: z.enum(["fast", "standard"]).default("fast"),
    downAfterMilliseconds: z.number().int().min(1000).max(60000).optional(),
    failoverTimeoutMilliseconds: z.number().int().min(10000).max(600000).default(60000),
  })
  .transform((tuning): RedisTuning => ({
    ...tuning,
    downAfterMilliseconds: tuning.downAfterMilliseconds ?? SENTINEL_PROFILES[tuning.failoverProfile].downAfterMilliseconds,
  }));

/**
 * Validates the `keybuzz:redis` stack config (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:redis.maxmemoryPercent`.
 */
export function parseRedisTuning(raw: unknown): RedisTuning {
  const parsed = tuningSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:redis."));
  return parsed.data;
}

/** Everything a redis.conf / sentinel.conf depends on besides the node; defaults are production values. */
export interface RedisSettings {
  /** Redis port. Default 6379. */
  readonly port: number;
  /** Sentinel port. Default 26379. */
  readonly sentinelPort: number;
  /** Name Sentinel monitors the master under. Default `kb-redis-master` (spec 001). */
  readonly masterName: string;
  /** Sentinels that must agree the master is down. Default 2 of 3 (spec 001). */
  readonly quorum: number;
  /** `down-after-milliseconds`, ms. Default 2000 (profile `fast`, {@link SENTINEL_PROFILES}). */
  readonly downAfterMilliseconds: number;
  /** `failover-timeout`, ms. Default 60000. */
  readonly failoverTimeoutMilliseconds: number;
  /** `parallel-syncs`. Default 1. */
  readonly parallelSyncs: number;
  /** `maxmemory`, MB. Production derives it from the server type ({@link maxmemoryMb}). */
  readonly maxmemoryMb: number;
  /** Redis `dir` (AOF and RDB) as the daemon sees it. Default `/data` (the container's volume). */
  readonly dataDir: string;
  /** Sentinel working `dir`. Default `/tmp` (spec 001; Sentinel keeps its state in its config file). */
  readonly sentinelDir: string;
  /** RDB `save` points, [seconds, changes]. Default 900 1 and 300 10 (spec 001). */
  readonly savePoints: readonly (readonly [number, number])[];
}

/** Production defaults of {@link RedisSettings} (maxmemory is per server type). */
export const DEFAULT_REDIS_SETTINGS: Omit<RedisSettings, "maxmemoryMb"> = {
  port: 6379,
  sentinelPort: 26379,
  masterName: "kb-redis-master",
  quorum: 2,
  downAfterMilliseconds: SENTINEL_PROFILES.fast.downAfterMilliseconds,
  failoverTimeoutMilliseconds: 60000,
  parallelSyncs: 1,
  dataDir: "/data",
  sentinelDir: "/tmp",
  savePoints: [
    [900, 1],
    [300, 10],
  ],
};

/** `maxmemory` in MB for a server: `percent` of its memory (GB), rounded down. Pure. */
export function maxmemoryMb(memoryGb: number, percent: number): number {
  return Math.floor((memoryGb * 1024 * percent) / 100);
}

/**
 * Renders the managed part of redis.conf for one node (spec 001 module 4 settings plus
 * `min-replicas-to-write 1` / `min-replicas-max-lag 10` and `replica-announce-ip`). The role is
 * not in it: the step appends `replicaof` for replicas, and Sentinel rewrites the live copy after a
 * failover. Passwords are {@link secretRef} placeholders. Pure.
 */
export function renderRedisConf(node: RedisNode, settings: RedisSettings): string {
  return [
    `# Managed by KeyBuzz (components/data/redis.ts) for ${node.name}. Live copy: rewritten by Sentinel.`,
    `bind ${node.address}`,
    `port ${settings.port}`,
    "protected-mode yes",
    "daemonize no",
    'logfile ""',
    `dir ${settings.dataDir}`,
    `requirepass ${secretRef(REDIS_PASSWORD_KEY)}`,
    `masterauth ${secretRef(REDIS_PASSWORD_KEY)}`,
    "appendonly yes",
    "appendfsync everysec",
    ...settings.savePoints.map(([seconds, changes]) => `save ${seconds} ${changes}`),
    `maxmemory ${settings.maxmemoryMb}mb`,
    "maxmemory-policy allkeys-lru",
    // A master cut off from every replica refuses writes: closes the dual-master window (spec 003).
    "min-replicas-to-write 1",
    "min-replicas-max-lag 10",
    `replica-announce-ip ${node.address}`,
    `replica-announce-port ${settings.port}`,
    "replica-read-only yes",
    "",
  ].join("\n");
}

/**
 * Renders sentinel.conf for one node: quorum, timings, `announce-ip/port`, `auth-pass` towards
 * Redis, and a password of its own (`requirepass` for clients, `sentinel-pass` between Sentinels)
 * instead of spec 001's open `protected-mode no`. `masterAddress` is the bootstrap master; the
 * step substitutes the current one when it regenerates the live copy. Pure.
 */
export function renderSentinelConf(node: RedisNode, masterAddress: string, settings: RedisSettings): string {
  const name = settings.masterName;
  return [
    `# Managed by KeyBuzz (components/data/redis.ts) for ${node.name}. Live copy: rewritten by Sentinel.`,
    `bind ${node.address}`,
    `port ${settings.sentinelPort}`,
    "protected-mode yes",
    "daemonize no",
    'logfile ""',
    `dir ${settings.sentinelDir}`,
    `requirepass ${secretRef(SENTINEL_PASSWORD_KEY)}`,
    `sentinel sentinel-pass ${secretRef(SENTINEL_PASSWORD_KEY)}`,
    `sentinel announce-ip ${node.address}`,
    `sentinel announce-port ${settings.sentinelPort}`,
    "sentinel deny-scripts-reconfig yes",
    `sentinel monitor ${name} ${masterAddress} ${settings.port} ${settings.quorum}`,
    `sentinel auth-pass ${name} ${secretRef(REDIS_PASSWORD_KEY)}`,
    `sentinel down-after-milliseconds ${name} ${settings.downAfterMilliseconds}`,
    `sentinel parallel-syncs ${name} ${settings.parallelSyncs}`,
    `sentinel failover-timeout ${name} ${settings.failoverTimeoutMilliseconds}`,
    "loglevel notice",
    "",
  ].join("\n");
}

/** Options of {@link redisHaproxyListener}. */
export interface RedisListenerOptions {
  /** Port HAProxy binds and the Redis port of the nodes. Default 6379. */
  readonly port?: number;
  /** Health-check interval of an UP or DOWN server (`inter`, `downinter`), ms (≤ 1000). Default 500. */
  readonly checkIntervalMs?: number;
}

/**
 * The HAProxy listen section for Redis: every client goes to the current master only (spec 003,
 * DESIGN.md). A `tcp-check` authenticates, pings and expects `role:master`; a node that stops being
 * master is marked down within `inter + fastinter` (0.75 s by default) and its sessions are cut
 * (`on-marked-down shutdown-sessions`); a promoted replica is routed to within `downinter +
 * fastinter` (0.75 s). `balance first` keeps one target even if two nodes briefly claim the role.
 */
export function redisHaproxyListener(nodes: readonly RedisNode[], options: RedisListenerOptions = {}): HaproxyListener {
  const port = options.port ?? DEFAULT_REDIS_SETTINGS.port;
  const inter = options.checkIntervalMs ?? 500;
  if (inter > 1000) throw new Error(`redis HAProxy check interval ${inter} ms: must be at most 1000 ms`);
  return {
    name: "redis",
    port,
    lines: [
      "mode tcp",
      "balance first",
      "option tcp-check",
      "tcp-check connect",
      `tcp-check send AUTH\\ ${secretRef(REDIS_PASSWORD_KEY)}\\r\\n`,
      "tcp-check expect string +OK",
      "tcp-check send PING\\r\\n",
      "tcp-check expect string +PONG",
      "tcp-check send info\\ replication\\r\\n",
      "tcp-check expect string role:master",
      "tcp-check send QUIT\\r\\n",
      "tcp-check expect string +OK",
      `default-server inter ${inter}ms fastinter ${Math.min(inter, 250)}ms downinter ${inter}ms fall 2 rise 2 on-marked-down shutdown-sessions`,
      ...nodes.map((node) => `server ${node.name} ${node.address}:${port} check`),
    ],
  };
}

const SCRIPTS = path.join(__dirname, "..", "..", "scripts", "redis");

/** Host paths of the Redis module; the defaults are production. */
export interface RedisHostPaths {
  /** Managed (rendered) configs, root-only. */
  readonly managedDir: string;
  /** Live redis.conf directory (mounted writable, Sentinel/`CONFIG REWRITE` persist here). */
  readonly redisDir: string;
  /** Live sentinel.conf directory (mounted writable). */
  readonly sentinelDir: string;
  /** Redis data (AOF, RDB). */
  readonly dataDir: string;
  /** The sysctl drop-in of Redis nodes. */
  readonly sysctlFile: string;
}

/** Production host paths (spec 001 keeps Redis under /opt/keybuzz/redis). */
export const REDIS_HOST_PATHS: RedisHostPaths = {
  managedDir: "/etc/keybuzz/redis",
  redisDir: "/opt/keybuzz/redis/conf",
  sentinelDir: "/opt/keybuzz/redis/sentinel",
  dataDir: "/opt/keybuzz/redis/data",
  sysctlFile: "/etc/sysctl.d/60-keybuzz-redis.conf",
};

const REDIS_CONTAINER_CONF = "/usr/local/etc/redis";
const SENTINEL_CONTAINER_CONF = "/usr/local/etc/redis-sentinel";

function shellAssignments(values: Record<string, string | number>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key}='${String(value)}'`)
    .join("\n");
}

/** The node step's bash body: container functions, variables, then scripts/redis/redis-node.sh. Pure. */
export function renderRedisNodeScript(
  node: RedisNode,
  nodes: readonly RedisNode[],
  image: string,
  settings: RedisSettings,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  const user = ["--user", REDIS_IMAGE_OWNER];
  return [
    renderContainerFunctions({
      name: "redis",
      image,
      options: [...user, "-v", `${paths.redisDir}:${REDIS_CONTAINER_CONF}`, "-v", `${paths.dataDir}:${settings.dataDir}`],
      command: ["redis-server", `${REDIS_CONTAINER_CONF}/redis.conf`],
      nofile: CONTAINER_NOFILE.redis,
    }),
    renderContainerFunctions({
      name: "redis-sentinel",
      image,
      options: [...user, "-v", `${paths.sentinelDir}:${SENTINEL_CONTAINER_CONF}`],
      command: ["redis-sentinel", `${SENTINEL_CONTAINER_CONF}/sentinel.conf`],
      nofile: CONTAINER_NOFILE.redis,
    }),
    shellAssignments({
      KB_NODE_IP: node.address,
      KB_PORT: settings.port,
      KB_SENTINEL_PORT: settings.sentinelPort,
      KB_MASTER_NAME: settings.masterName,
      KB_QUORUM: settings.quorum,
      KB_BOOT_MASTER_IP: nodes[0].address,
      KB_PEER_IPS: nodes.map((peer) => peer.address).join(" "),
      KB_IMAGE: imagePull(image).run,
      KB_OWNER: REDIS_IMAGE_OWNER,
      KB_MANAGED_DIR: paths.managedDir,
      KB_REDIS_DIR: paths.redisDir,
      KB_SENTINEL_DIR: paths.sentinelDir,
      KB_DATA_DIR: paths.dataDir,
      KB_SYSCTL_FILE: paths.sysctlFile,
    }),
    commonScript("host.sh"),
    fs.readFileSync(path.join(SCRIPTS, "redis-node.sh"), "utf8"),
  ].join("\n");
}

/** The verification step's bash body (scripts/redis/verify.sh). Pure. */
export function renderRedisVerifyScript(
  nodes: readonly RedisNode[],
  image: string,
  settings: RedisSettings,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  return [
    shellAssignments({
      KB_PORT: settings.port,
      KB_SENTINEL_PORT: settings.sentinelPort,
      KB_MASTER_NAME: settings.masterName,
      KB_NODE_IPS: nodes.map((node) => node.address).join(" "),
      KB_IMAGE: image,
      KB_MANAGED_DIR: paths.managedDir,
    }),
    fs.readFileSync(path.join(SCRIPTS, "verify.sh"), "utf8"),
  ].join("\n");
}

/** The bash body that writes a key through the load balancer and reads it back. Pure. */
export function renderRedisEndpointCheckScript(
  address: string,
  port: number,
  image: string,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  return `REDISCLI_AUTH=$(awk '$1 == "requirepass" { print $2 }' ${paths.managedDir}/redis.conf)
export REDISCLI_AUTH
rcli() { timeout 10 docker run --rm --network host -e REDISCLI_AUTH ${image} redis-cli --no-auth-warning -h ${address} -p ${port} "$@"; }
key="keybuzz:endpoint-check:$(hostname):$(date +%s)"
reads_back() { [ "$(rcli SET "$key" ok EX 300)" = "OK" ] && [ "$(rcli GET "$key")" = "ok" ]; }
kb_wait_until 120 2 "redis endpoint: a write through ${address}:${port} does not read back" reads_back
echo "redis endpoint: a write through ${address}:${port} reads back"`;
}

/** The sysctl drop-in of Redis nodes: the background save / AOF rewrite fork must not fail. */
export function renderRedisSysctl(): string {
  return "# Managed by KeyBuzz: Redis forks for RDB saves and AOF rewrites (redis.io admin guide).\nvm.overcommit_memory = 1\n";
}

/** Arguments of {@link RedisCluster}. */
export interface RedisClusterArgs {
  /** The redis group's hosts in inventory order (spec 001 module 4: redis-01..03); the first is the bootstrap master. */
  readonly hosts: readonly Host[];
  /** Pinned versions; uses `images.redis` (config/versions.yaml). */
  readonly versions: Versions;
  /** `PlatformSecrets.redis.password`: `requirepass`/`masterauth` and Sentinel's `auth-pass`. */
  readonly password: pulumi.Input<string>;
  /** `PlatformSecrets.redis.sentinel`: the Sentinels' own `requirepass`. */
  readonly sentinelPassword: pulumi.Input<string>;
  /** Verified end of the base OS per host name (`BaseOs.ready`). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
  /** Stack config `keybuzz:redis` (validated by {@link parseRedisTuning} in the config pass, config/settings.ts); defaults when omitted. */
  readonly tuning?: RedisTuning;
}

/**
 * Redis + Sentinel on the redis group (`keybuzz:data:RedisCluster`). Nodes go one at a time in
 * inventory order (redis-01 first, as master; the others join as its replicas); a later change
 * rolls the same way, the master handing its role over through Sentinel before it restarts. Ends
 * with a verification step: one master agreed by every Sentinel, all replicas online, a write
 * read back on every node.
 */
export class RedisCluster extends pulumi.ComponentResource {
  /** The verification step; what depends on a healthy Redis waits for it. */
  public readonly ready: command.remote.Command;
  /** Per host: the node's step (Redis + Sentinel up, replica linked). */
  public readonly nodeSteps: Readonly<Record<string, command.remote.Command>>;
  /** Sentinel endpoints `ip:26379`, for Sentinel-aware clients. */
  public readonly sentinelEndpoints: readonly string[];
  private readonly hosts: readonly Host[];
  private readonly image: string;
  private readonly fingerprint: string;

  constructor(name: string, args: RedisClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:RedisCluster", name, {}, opts);
    if (args.hosts.length === 0) throw new Error(`RedisCluster ${name}: no hosts`);
    const tuning = args.tuning ?? parseRedisTuning(undefined);
    const nodes = clusterNodes(args.hosts.map((host) => host.spec));
    const image = args.versions.images.redis;
    const secrets = { [REDIS_PASSWORD_KEY]: args.password, [SENTINEL_PASSWORD_KEY]: args.sentinelPassword };
    const nodeSteps: Record<string, command.remote.Command> = {};
    const fingerprints: string[] = [];
    let previous: pulumi.Resource | undefined;
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const baseReady = args.ready[node.name];
      if (!baseReady) throw new Error(`RedisCluster ${name}: no base OS readiness for ${node.name}`);
      const settings: RedisSettings = {
        ...DEFAULT_REDIS_SETTINGS,
        downAfterMilliseconds: tuning.downAfterMilliseconds,
        failoverTimeoutMilliseconds: tuning.failoverTimeoutMilliseconds,
        maxmemoryMb: maxmemoryMb(host.spec.memoryGb, tuning.maxmemoryPercent),
      };
      const files: HostFile[] = [
        { path: `${REDIS_HOST_PATHS.managedDir}/redis.conf`, content: renderRedisConf(node, settings), mode: "0600" },
        {
          path: `${REDIS_HOST_PATHS.managedDir}/sentinel.conf`,
          content: renderSentinelConf(node, nodes[0].address, settings),
          mode: "0600",
        },
        { path: REDIS_HOST_PATHS.sysctlFile, content: renderRedisSysctl() },
      ];
      const script = renderRedisNodeScript(node, nodes, lockedImage(args.versions, "redis"), settings);
      fingerprints.push(sha256(script + files.map((file) => file.content).join("")));
      const step = remoteStep(
        `${node.name}-redis`,
        { host, files, script, secrets, timeoutMinutes: 15 },
        { parent: this, dependsOn: [baseReady, ...(previous ? [previous] : [])] },
      );
      nodeSteps[node.name] = step;
      previous = step;
    });
    const verifyScript = renderRedisVerifyScript(nodes, image, { ...DEFAULT_REDIS_SETTINGS, maxmemoryMb: 0 });
    this.ready = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 5, triggers: [sha256(fingerprints.join("") + verifyScript)] },
      { parent: this, dependsOn: Object.values(nodeSteps) },
    );
    this.nodeSteps = nodeSteps;
    this.sentinelEndpoints = nodes.map((node) => `${node.address}:${DEFAULT_REDIS_SETTINGS.sentinelPort}`);
    this.hosts = args.hosts;
    this.image = image;
    this.fingerprint = sha256(fingerprints.join(""));
    this.registerOutputs({ sentinelEndpoints: this.sentinelEndpoints });
  }

  /**
   * Declares the end-to-end check (a write through the load balancer reads back), run on the
   * bootstrap node once the HAProxy layer that serves `address:port` is ready.
   */
  public checkThroughLoadBalancer(address: string, port: number, after: readonly pulumi.Resource[]): command.remote.Command {
    return remoteStep(
      `${this.hosts[0].spec.name}-redis-endpoint-check`,
      {
        host: this.hosts[0],
        script: renderRedisEndpointCheckScript(address, port, this.image),
        timeoutMinutes: 5,
        triggers: [this.fingerprint],
      },
      { parent: this, dependsOn: [this.ready, ...after] },
    );
  }
}
