import type { ClusterNode } from "../../../config";
import { CONTAINER_NOFILE, imagePull, renderContainerFunctions, renderImagePull } from "../../lib/container";
import type { HaproxyListener } from "../../lib/contract";
import { secretRef } from "../../lib/remote";
import { ACCOUNTS } from "../../security/secrets";
import { stepBody } from "../../lib/scripts";
import { DEFAULT_REDIS_DAEMON_SETTINGS, RedisDaemonSettings } from "./settings";

/**
 * Pure renders of the Redis module (spec 001 module 4 and design section C; spec 003): redis.conf,
 * sentinel.conf, the HAProxy listener and the step bodies (scripts/redis/), from the inventory's
 * nodes and the daemon settings. Secrets appear only as {@link secretRef} placeholders.
 */

/** Placeholder key of the Redis data password (`requirepass`/`masterauth`, HAProxy's AUTH). */
export const REDIS_PASSWORD_KEY = "redis-password";
/** Placeholder key of the Sentinels' own password. */
export const SENTINEL_PASSWORD_KEY = "redis-sentinel-password";
/** Placeholder key of redis_exporter's ACL user's password, the same on Redis and Sentinel. */
export const REDIS_EXPORTER_PASSWORD_KEY = "redis-exporter-password";

/**
 * ACL rules of redis_exporter's user on Redis: only the commands redis_exporter v1.88.0 issues on
 * a standalone node without key checks or Lua scripts (exporter/exporter.go `scrapeRedisHost`:
 * PING, CLIENT SETNAME, INFO; slowlog.go; latency.go). No keys, no channels (`user` starts with
 * none), and no CONFIG GET, which would hand it `requirepass` and `masterauth`: the exporter runs
 * with `--config-command=-` and reads maxmemory from INFO (`redis_memory_max_bytes`). Narrower
 * than the README's ACL, whose GET/SCAN/EVAL serve the key-check options not used here.
 */
export const REDIS_EXPORTER_ACL = [
  "-@all",
  "+ping",
  "+client|setname",
  "+info",
  "+slowlog|len",
  "+slowlog|get",
  "+latency|latest",
  "+latency|histogram",
] as const;

/** ACL rules of the same user on Sentinel: the SENTINEL subcommands of exporter/sentinels.go (the README's Sentinel ACL, without CONFIG GET). */
export const SENTINEL_EXPORTER_ACL = [
  "-@all",
  "+ping",
  "+client|setname",
  "+info",
  "+sentinel|masters",
  "+sentinel|replicas",
  "+sentinel|slaves",
  "+sentinel|sentinels",
  "+sentinel|ckquorum",
] as const;

/** The `user` line of redis_exporter's ACL user (Redis 7.2 redis.conf "ACL": `user <name> ... acl rules ...`). */
function exporterUserLine(rules: readonly string[]): string {
  return `user ${ACCOUNTS.redisExporter} on >${secretRef(REDIS_EXPORTER_PASSWORD_KEY)} ${rules.join(" ")}`;
}

/** uid:gid of the `redis` user of the official alpine image; owns the live configs and data. */
export const REDIS_IMAGE_OWNER = "999:1000";

/** One Redis node: Redis and Sentinel bind and announce its address. */
export type RedisNode = ClusterNode;

/**
 * Renders the managed part of redis.conf for one node (spec 001 module 4 settings plus
 * `min-replicas-to-write 1` / `min-replicas-max-lag 10` and `replica-announce-ip`). The role is
 * not in it: the step appends `replicaof` for replicas, and Sentinel rewrites the live copy after a
 * failover. Passwords are {@link secretRef} placeholders. Pure.
 */
export function renderRedisConf(node: RedisNode, settings: RedisDaemonSettings): string {
  return [
    // The header names the file as it was before the module became a folder: changing it would restart every node for a comment.
    `# Managed by KeyBuzz (components/data/redis.ts) for ${node.name}. Live copy: rewritten by Sentinel.`,
    `bind ${node.address}`,
    `port ${settings.port}`,
    "protected-mode yes",
    "daemonize no",
    'logfile ""',
    `dir ${settings.dataDir}`,
    `requirepass ${secretRef(REDIS_PASSWORD_KEY)}`,
    `masterauth ${secretRef(REDIS_PASSWORD_KEY)}`,
    exporterUserLine(REDIS_EXPORTER_ACL),
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
export function renderSentinelConf(node: RedisNode, masterAddress: string, settings: RedisDaemonSettings): string {
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
    exporterUserLine(SENTINEL_EXPORTER_ACL),
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
 *
 * @throws Error for a check interval above 1000 ms (a caller's bug: no setting reaches it).
 */
export function redisHaproxyListener(nodes: readonly RedisNode[], options: RedisListenerOptions = {}): HaproxyListener {
  const port = options.port ?? DEFAULT_REDIS_DAEMON_SETTINGS.port;
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

/**
 * Seconds Redis gets to exit after SIGTERM before Docker kills it (the container's `stopGraceSeconds`, components/lib/container.ts).
 * On SIGTERM Redis 7.2 (`shutdown-on-sigterm default`; src/server.c `prepareForShutdown` and
 * `finishShutdown`) first waits up to `shutdown-timeout` (default 10 s, src/config.c) for lagging
 * replicas, then fsyncs the AOF and, since save points are configured, writes a final RDB in the
 * foreground. So: the 10 s, plus the dataset (at most `maxmemory`) written at an assumed 100 MB/s,
 * a floor for the servers' SSDs (an assumption, not measured). Pure.
 */
export function redisStopGraceSeconds(maxmemoryMb: number): number {
  return REDIS_SHUTDOWN_TIMEOUT_SECONDS + Math.ceil(maxmemoryMb / RDB_WRITE_MB_PER_SECOND);
}
const REDIS_SHUTDOWN_TIMEOUT_SECONDS = 10;
const RDB_WRITE_MB_PER_SECOND = 100;

/**
 * Which of a node's two steps a script is for. `node`: the node step, which restarts an outdated
 * replica but leaves a master that has replicas running (its restart is deferred); `master-roll`:
 * the step after every node step, which hands a deferred master's role over through Sentinel and
 * then restarts it, so the master restarts last (docs/redis.md, "Order and rolling changes").
 */
export type RedisStepPhase = "node" | "master-roll";

const REDIS_CONTAINER_CONF = "/usr/local/etc/redis";
const SENTINEL_CONTAINER_CONF = "/usr/local/etc/redis-sentinel";

/**
 * A node's step body for `phase` ({@link RedisStepPhase}): container functions, `kb_redis_image`
 * (the pinned image made present before any probe), variables, then scripts/redis/cli.sh and
 * scripts/redis/redis-node.sh. Pure.
 */
export function renderRedisNodeScript(
  node: RedisNode,
  nodes: readonly RedisNode[],
  image: string,
  settings: RedisDaemonSettings,
  phase: RedisStepPhase = "node",
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  const user = ["--user", REDIS_IMAGE_OWNER];
  return stepBody("redis", ["cli.sh", "redis-node.sh"], {
    prefix: [
      renderContainerFunctions({
        name: "redis",
        image,
        options: [...user, "-v", `${paths.redisDir}:${REDIS_CONTAINER_CONF}`, "-v", `${paths.dataDir}:${settings.dataDir}`],
        command: ["redis-server", `${REDIS_CONTAINER_CONF}/redis.conf`],
        nofile: CONTAINER_NOFILE.redis,
        stopGraceSeconds: redisStopGraceSeconds(settings.maxmemoryMb),
      }),
      renderContainerFunctions({
        name: "redis-sentinel",
        image,
        options: [...user, "-v", `${paths.sentinelDir}:${SENTINEL_CONTAINER_CONF}`],
        command: ["redis-sentinel", `${SENTINEL_CONTAINER_CONF}/sentinel.conf`],
        nofile: CONTAINER_NOFILE.redis,
      }),
      `kb_redis_image() {\n  ${renderImagePull(image).replace(/\n/g, "\n  ")}\n}`,
    ],
    variables: {
      KB_PHASE: phase,
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
    },
    common: ["host.sh"],
  });
}

/** The verification step's bash body (scripts/redis/verify.sh). Pure. */
export function renderRedisVerifyScript(
  nodes: readonly RedisNode[],
  image: string,
  settings: RedisDaemonSettings,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  return stepBody("redis", ["verify.sh"], {
    variables: {
      KB_PORT: settings.port,
      KB_SENTINEL_PORT: settings.sentinelPort,
      KB_MASTER_NAME: settings.masterName,
      KB_NODE_IPS: nodes.map((node) => node.address).join(" "),
      KB_IMAGE: image,
      KB_MANAGED_DIR: paths.managedDir,
    },
  });
}

/**
 * The body of the step that ends a password rotation once HAProxy has the new password
 * (scripts/redis/password-finish.sh): every Redis and Sentinel of `nodes` that still accepts a
 * second password keeps only the managed one. Pure.
 */
export function renderRedisPasswordFinishScript(
  nodes: readonly RedisNode[],
  image: string,
  settings: RedisDaemonSettings,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  return stepBody("redis", ["cli.sh", "password-finish.sh"], {
    variables: {
      KB_PORT: settings.port,
      KB_SENTINEL_PORT: settings.sentinelPort,
      KB_NODE_IPS: nodes.map((node) => node.address).join(" "),
      KB_IMAGE: image,
      KB_MANAGED_DIR: paths.managedDir,
    },
  });
}

/**
 * The bash body that writes a key through `address:port` (the load balancer in front of HAProxy)
 * and reads it back, with the password of the node's managed redis.conf (scripts/redis/endpoint-check.sh).
 * Pure.
 */
export function renderRedisEndpointCheckScript(
  address: string,
  port: number,
  image: string,
  paths: RedisHostPaths = REDIS_HOST_PATHS,
): string {
  return stepBody("redis", ["endpoint-check.sh"], {
    variables: { KB_ADDRESS: address, KB_PORT: port, KB_IMAGE: image, KB_MANAGED_DIR: paths.managedDir },
  });
}

/** The sysctl drop-in of Redis nodes: the background save / AOF rewrite fork must not fail. */
export function renderRedisSysctl(): string {
  return "# Managed by KeyBuzz: Redis forks for RDB saves and AOF rewrites (redis.io admin guide).\nvm.overcommit_memory = 1\n";
}
