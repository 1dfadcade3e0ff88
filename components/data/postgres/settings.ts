import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";
import { pgbouncerSettingsSchema } from "../pgbouncer/settings";

/**
 * Operator settings of the PostgreSQL module, read from stack config `keybuzz:postgres`, and the
 * layout (addresses, ports, paths) its render functions take as inputs. Defaults are production
 * values; the loopback integration tests pass their own layout (127.0.10.x, temp dirs).
 */

/**
 * Patroni's own limits on the timing settings (Patroni docs, "Dynamic configuration settings";
 * `Config._validate_and_adjust_timeouts` since Patroni 3.2.0, so in the pinned 4.0.7): a smaller
 * value is raised to these minimums and a broken `loop_wait + 2 × retry_timeout ≤ ttl` rule is
 * "repaired" by shrinking `loop_wait`, both with only a warning. A profile below them would run
 * with other timings than it says. Debian bookworm's Patroni 3.0.2 (the loopback suite) does not
 * enforce them, so the profiles keep them themselves.
 */
export const PATRONI_TIMING_MINIMUMS = { ttl: 20, loopWait: 1, retryTimeout: 3 } as const;

/**
 * Patroni timing profiles (seconds). Every profile keeps Patroni's rule
 * `loop_wait + 2 × retry_timeout ≤ ttl` and its minimums ({@link PATRONI_TIMING_MINIMUMS}), which
 * the spec's 30/10/30 broke.
 *
 * A crashed leader node stops renewing its lease; etcd deletes the leader key `ttl` after the last
 * renewal, which happened up to `loop_wait` before the crash; the replicas watch the key and race
 * at once; HAProxy then needs about 0.5 s. So the crash RTO is `ttl − U(0, loop_wait)` plus ~2 s,
 * and up to `ttl` + ~3 s when the etcd leader died with the node (the new etcd leader restarts every
 * lease at its full TTL: etcd `lessor.Promote`). A clean stop or switchover releases the key at once.
 *
 * `rtoSeconds` is that worst case. {@link survivableNodeStallSeconds} says which freeze of the
 * leader node a profile rides out without a failover. An etcd stall (its leader frozen: the other
 * members elect a new one after the 1 s election timeout, and a new etcd leader extends every
 * lease) is ridden out by every profile: Patroni retries DCS calls for `retry_timeout`, then
 * `failsafe_mode` keeps the primary while it reaches every member's REST API.
 */
export const TIMING_PROFILES = {
  /** Default: crash RTO 15–20 s + ~2 s (≤ ~25 s with the etcd leader on the crashed node); rides out a 10 s node stall. */
  fast: { ttl: 20, loopWait: 5, retryTimeout: 5, primaryStartTimeout: 30, rtoSeconds: 25 },
  /**
   * The lease renewed every 10 s instead of 5 s: crash RTO 10–20 s + ~2 s (on average 2.5 s lower
   * than `fast`, same worst case); rides out a 5 s node stall. The price of the longer loop: a leader
   * notices a crashed local PostgreSQL, and replaces a dead synchronous standby (commits wait until
   * it does), up to 10 s later instead of 5 s.
   */
  rapid: { ttl: 20, loopWait: 10, retryTimeout: 5, primaryStartTimeout: 30, rtoSeconds: 25 },
  /** Patroni's defaults: crash RTO 20–30 s + ~2 s (≤ ~35 s); rides out a 10 s node stall. */
  standard: { ttl: 30, loopWait: 10, retryTimeout: 10, primaryStartTimeout: 60, rtoSeconds: 35 },
  /** For a noisy network: crash RTO 50–60 s + ~2 s (≤ ~65 s), rides out a 25 s node or DCS stall. */
  tolerant: { ttl: 60, loopWait: 10, retryTimeout: 25, primaryStartTimeout: 120, rtoSeconds: 65 },
} as const;

/** Name of a {@link TIMING_PROFILES} entry. */
export type TimingProfileName = keyof typeof TIMING_PROFILES;
/** One timing profile, seconds. */
export type TimingProfile = (typeof TIMING_PROFILES)[TimingProfileName];

const parameterValue = z.union([z.string(), z.number(), z.boolean()]);

/** Schema of `keybuzz:postgres` (all keys optional). */
export const postgresSettingsSchema = z.strictObject({
  /** DCS: `etcd3` (default, DESIGN.md) or Patroni's deprecated `raft` (the spec's first choice). */
  dcs: z.enum(["etcd3", "raft"]).default("etcd3"),
  /** Failover timing, see {@link TIMING_PROFILES}. */
  timingProfile: z.enum(["fast", "rapid", "standard", "tolerant"]).default("fast"),
  /**
   * Patroni `synchronous_mode` (spec 004 §16): on = a commit returns once a standby has it, so no
   * acknowledged commit is lost on failover. Not strict: with no healthy standby the leader keeps
   * accepting writes, unprotected, until one returns.
   */
  synchronousMode: z.boolean().default(true),
  /** Patroni `maximum_lag_on_failover`, bytes (spec 001: 1048576): a replica further behind is never promoted. */
  maximumLagOnFailoverBytes: z.number().int().positive().default(1048576),
  /** HAProxy's read port keeps only replicas whose lag is at most this many bytes (`/replica?lag=`). */
  readMaxLagBytes: z.number().int().positive().default(1048576),
  /** Extra PostgreSQL parameters merged over the spec's node parameters (e.g. `shared_buffers: 2GB`). */
  parameters: z.record(z.string().regex(/^[a-z_][a-z0-9_.]*$/), parameterValue).default({}),
  /** PgBouncer pools (spec 001, "PgBouncer"): the PgBouncer module's schema, kept under this key (components/data/pgbouncer/settings.ts). */
  pgbouncer: pgbouncerSettingsSchema,
});

/** Validated `keybuzz:postgres`. */
export type PostgresSettings = z.infer<typeof postgresSettingsSchema>;

/**
 * Validates `keybuzz:postgres` (undefined = all defaults).
 * @throws {ConfigError} naming each bad key, e.g. `keybuzz:postgres.timingProfile: Invalid option …`.
 */
export function parsePostgresSettings(raw: unknown): PostgresSettings {
  const result = postgresSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:postgres."));
  return result.data;
}

/**
 * The longest freeze of the whole leader node (Patroni, PostgreSQL and etcd stopped, then resumed)
 * that cannot cost it the lease, seconds: the last renewal is up to `loop_wait` old when the node
 * freezes, and the renewal after it may take up to `retry_timeout`, all within `ttl`.
 */
export function survivableNodeStallSeconds(profile: {
  readonly ttl: number;
  readonly loopWait: number;
  readonly retryTimeout: number;
}): number {
  return profile.ttl - profile.loopWait - profile.retryTimeout;
}

/** The timing profile the settings select. */
export function timingOf(settings: PostgresSettings): TimingProfile {
  return TIMING_PROFILES[settings.timingProfile];
}

/** Ports of the PostgreSQL tier. */
export interface PostgresPorts {
  readonly postgres: number;
  readonly restApi: number;
  readonly etcdClient: number;
  readonly etcdPeer: number;
  /** Patroni Raft (only with `dcs: raft`); spec 001 uses 5000. */
  readonly raft: number;
}

/**
 * Where things live. Paths are the same on the host and inside the containers (bind mounts keep
 * them), so one set of paths serves Patroni, the scripts and the loopback tests.
 */
export interface PostgresPaths {
  /** Mount point of the node's XFS volume (spec 001: /opt/keybuzz/postgres). */
  readonly volumeMount: string;
  /** PGDATA, on the volume. */
  readonly dataDir: string;
  /** WAL directory (initdb/pg_basebackup `--waldir`), on the volume. */
  readonly walDir: string;
  /** PostgreSQL binaries inside the Patroni image. */
  readonly binDir: string;
  /** patroni.yml, dynamic.yml, secrets (read-only in the container). */
  readonly configDir: string;
  /** CA, node certificate and key for Patroni and PostgreSQL, owned by the postgres uid. */
  readonly tlsDir: string;
  /** Unix socket directory of PostgreSQL. */
  readonly socketDir: string;
  /** Patroni Raft data (only with `dcs: raft`), local disk. */
  readonly raftDir: string;
  /** etcd data, local disk (fsync latency matters more than volume durability: 3 copies exist). */
  readonly etcdDataDir: string;
  /** etcd env file and its TLS material, owned by the etcd uid. */
  readonly etcdConfigDir: string;
  /** Patroni's password file for replication and pg_rewind connections (the container's own /tmp in production). */
  readonly pgpass: string;
}

/** Addresses, ports and paths the render functions take. */
export interface PostgresLayout {
  readonly ports: PostgresPorts;
  readonly paths: PostgresPaths;
  /** CIDR that may connect as a client (`hostssl all all`): the private network. */
  readonly clientCidr: string;
  /**
   * CIDRs replication connections may come from, one `hostssl replication` line each. Default:
   * each member's own address /32, the source of its connections on the private network. On
   * loopback every connection leaves from 127.0.0.1 (the kernel's source address on `lo`).
   */
  readonly replicationSourceCidrs?: readonly string[];
}

/** Production layout (spec 001 module 3 paths; spec 004 ports). */
export const DEFAULT_POSTGRES_LAYOUT: PostgresLayout = {
  ports: { postgres: 5432, restApi: 8008, etcdClient: 2379, etcdPeer: 2380, raft: 5000 },
  paths: {
    volumeMount: "/opt/keybuzz/postgres",
    dataDir: "/opt/keybuzz/postgres/data",
    walDir: "/opt/keybuzz/postgres/wal",
    binDir: "/usr/lib/postgresql/16/bin",
    configDir: "/etc/keybuzz/postgres",
    tlsDir: "/etc/keybuzz/postgres/tls",
    socketDir: "/var/run/postgresql",
    raftDir: "/var/lib/keybuzz/patroni-raft",
    etcdDataDir: "/var/lib/keybuzz/etcd",
    etcdConfigDir: "/etc/keybuzz/etcd",
    pgpass: "/tmp/pgpass",
  },
  clientCidr: "10.0.0.0/16",
};

/** uid/gid of `postgres` in the official postgres Debian image (and so in the Patroni image). */
export const POSTGRES_UID = 999;
/** uid/gid the etcd container runs as (the image needs no passwd entry). */
export const ETCD_UID = 2379;
/** Patroni `scope` (cluster name) and etcd key `namespace`, spec 001. */
export const PATRONI_SCOPE = "keybuzz-postgres";
export const PATRONI_NAMESPACE = "/keybuzz/";

/** Keys of the secret placeholders the module's files use. */
export const SECRET_KEYS = {
  superuser: "postgres-superuser",
  replication: "postgres-replication",
  app: "postgres-app",
  backend: "postgres-backend",
  restApi: "patroni-restapi",
  rewind: "postgres-rewind",
  caCert: "pki-ca-cert",
  nodeCert: "pki-node-cert",
  nodeKey: "pki-node-key",
} as const;
