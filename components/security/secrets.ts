import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { createHash } from "crypto";

/**
 * Fixed account names of the platform. Not secret; the passwords are. Sources: spec 001 (module 3:
 * `postgres`, `replicator`; module 7: `erpnext`), DESIGN.md.
 */
export const ACCOUNTS = {
  postgresSuperuser: "postgres",
  postgresReplication: "replicator",
  postgresApp: "keybuzz",
  postgresBackend: "kb_backend",
  /** postgres_exporter's role, member of `pg_monitor` only (components/observability/exporters). */
  postgresExporter: "kb_exporter",
  /** PgBouncer's console user of pgbouncer_exporter (`stats_users`: read-only SHOW commands). */
  pgbouncerStats: "kb_pgbouncer_stats",
  patroniRestApi: "patroni",
  rabbitmqUser: "keybuzz",
  minioRootUser: "keybuzz-root",
  minioAppUser: "keybuzz-backend",
  mariadbApp: "erpnext",
  mariadbSst: "sst",
  mariadbMonitor: "monitor",
  /** mysqld_exporter's MariaDB account (PROCESS, REPLICATION CLIENT, SELECT). */
  mariadbExporter: "exporter",
  /** redis_exporter's Redis and Sentinel ACL user (INFO and the few read-only commands it issues). */
  redisExporter: "exporter",
  proxysqlAdmin: "admin",
  grafanaAdmin: "admin",
} as const;

/**
 * Fixed names of the application databases, each owned by its account (issue 19): the product
 * database `keybuzz` ({@link ACCOUNTS.postgresApp}) and the backend's own `keybuzz_backend`
 * ({@link ACCOUNTS.postgresBackend}). Here beside the accounts so that config/ and the add-ons read
 * them without loading the PostgreSQL module.
 */
export const DATABASES = { product: "keybuzz", backend: "keybuzz_backend" } as const;

/** Arguments of {@link PlatformSecrets}; none: every value is generated. */
export type PlatformSecretsArgs = Record<string, never>;

/**
 * Every credential of the platform, generated once per stack with `@pulumi/random` and held as
 * Pulumi secrets (encrypted in state, `[secret]` in previews and outputs). Passwords are 32
 * alphanumeric characters, safe inside URLs, YAML, INI and shell without escaping. Rotating one is
 * `pulumi up --replace <urn>`: the steps that use it re-run.
 */
export class PlatformSecrets extends pulumi.ComponentResource {
  public readonly postgres: {
    readonly superuser: pulumi.Output<string>;
    readonly replication: pulumi.Output<string>;
    /** Owner of the product database `keybuzz` ({@link ACCOUNTS.postgresApp}). */
    readonly app: pulumi.Output<string>;
    /** Owner of the backend's own database `keybuzz_backend` ({@link ACCOUNTS.postgresBackend}). */
    readonly backend: pulumi.Output<string>;
    /** Basic auth of Patroni's REST API (writes: switchover, restart). */
    readonly restApi: pulumi.Output<string>;
    /** postgres_exporter's role {@link ACCOUNTS.postgresExporter}. */
    readonly exporter: pulumi.Output<string>;
    /** PgBouncer's `stats_users` user {@link ACCOUNTS.pgbouncerStats} (pgbouncer_exporter). */
    readonly pgbouncerStats: pulumi.Output<string>;
  };
  public readonly redis: {
    /** `requirepass` / `masterauth` of every Redis node. */
    readonly password: pulumi.Output<string>;
    /** `requirepass` of the Sentinels (their own, not the data password). */
    readonly sentinel: pulumi.Output<string>;
    /** Password of redis_exporter's ACL user {@link ACCOUNTS.redisExporter}, on Redis and on Sentinel. */
    readonly exporter: pulumi.Output<string>;
  };
  public readonly rabbitmq: {
    readonly password: pulumi.Output<string>;
    readonly erlangCookie: pulumi.Output<string>;
    /** The `monitoring`-tag user HAProxy's health check logs in as (its own, not the administrator's). */
    readonly monitor: pulumi.Output<string>;
  };
  public readonly minio: {
    readonly rootPassword: pulumi.Output<string>;
    /** Secret key of the application's own access key {@link ACCOUNTS.minioAppUser}, limited to its bucket. */
    readonly appSecretKey: pulumi.Output<string>;
  };
  public readonly mariadb: {
    readonly root: pulumi.Output<string>;
    readonly app: pulumi.Output<string>;
    readonly sst: pulumi.Output<string>;
    /** The `USAGE`-only account ProxySQL monitors the Galera nodes with. */
    readonly monitor: pulumi.Output<string>;
    /** mysqld_exporter's account {@link ACCOUNTS.mariadbExporter}. */
    readonly exporter: pulumi.Output<string>;
  };
  public readonly proxysql: { readonly admin: pulumi.Output<string> };
  public readonly grafana: { readonly admin: pulumi.Output<string> };
  public readonly kubeadm: {
    /** Bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm's format). */
    readonly token: pulumi.Output<string>;
    /** `--certificate-key` of `kubeadm init --upload-certs`: 32 bytes, hex. */
    readonly certificateKey: pulumi.Output<string>;
  };

  constructor(name: string, _args: PlatformSecretsArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:security:PlatformSecrets", name, {}, opts);
    const password = (key: string, options: Partial<random.RandomPasswordArgs> = {}) =>
      new random.RandomPassword(`${name}-${key}`, { length: 32, special: false, ...options }, { parent: this }).result;
    const lowerAlphanumeric = { upper: false, special: false, minNumeric: 1, minLower: 1 };

    this.postgres = {
      superuser: password("postgres-superuser"),
      replication: password("postgres-replication"),
      app: password("postgres-app"),
      backend: password("postgres-backend"),
      restApi: password("patroni-restapi"),
      exporter: password("postgres-exporter"),
      pgbouncerStats: password("pgbouncer-stats"),
    };
    this.redis = { password: password("redis"), sentinel: password("redis-sentinel"), exporter: password("redis-exporter") };
    this.rabbitmq = {
      password: password("rabbitmq"),
      erlangCookie: password("rabbitmq-erlang-cookie", { length: 48, lower: false }),
      monitor: password("rabbitmq-monitor"),
    };
    this.minio = { rootPassword: password("minio-root"), appSecretKey: password("minio-app") };
    this.mariadb = {
      root: password("mariadb-root"),
      app: password("mariadb-app"),
      sst: password("mariadb-sst"),
      monitor: password("mariadb-monitor"),
      exporter: password("mariadb-exporter"),
    };
    this.proxysql = { admin: password("proxysql-admin") };
    this.grafana = { admin: password("grafana-admin") };
    const tokenId = password("kubeadm-token-id", { length: 6, ...lowerAlphanumeric });
    const tokenSecret = password("kubeadm-token-secret", { length: 16, ...lowerAlphanumeric });
    const certificateSeed = password("kubeadm-certificate-key-seed", { length: 64 });
    this.kubeadm = {
      token: pulumi.secret(pulumi.interpolate`${tokenId}.${tokenSecret}`),
      certificateKey: pulumi.secret(certificateSeed.apply((seed) => createHash("sha256").update(seed).digest("hex"))),
    };
    this.registerOutputs({
      postgres: this.postgres,
      redis: this.redis,
      rabbitmq: this.rabbitmq,
      minio: this.minio,
      mariadb: this.mariadb,
      proxysql: this.proxysql,
      grafana: this.grafana,
      kubeadm: this.kubeadm,
    });
  }
}
