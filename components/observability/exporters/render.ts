import { createHash, createHmac, pbkdf2Sync } from "crypto";
import * as jwt from "jsonwebtoken";
import { GALERA_SECRET_KEYS } from "../../data/galera/render";
import { MINIO_ROOT_PASSWORD_KEY } from "../../data/minio/render";
import { REDIS_EXPORTER_PASSWORD_KEY } from "../../data/redis/render";
import { renderContainerFunctions, type ContainerSpec } from "../../lib/container";
import { secretRef, shellQuote, type HostFile } from "../../lib/remote";
import { hostScript, shellVariables, stepBody } from "../../lib/scripts";
import { ACCOUNTS } from "../../security/secrets";
import type { ExportersSettings } from "./settings";

/**
 * Pure renders of the exporters module: the service exporters (redis_exporter, mysqld_exporter)
 * on their clusters' hosts, and node_exporter on every server (README of
 * prometheus/node_exporter v1.12.1, "Docker": host network, host PID namespace, the host's root
 * read-only at /host with `--path.rootfs=/host`) and the hourly certificate scan its textfile
 * collector reads (scripts/exporters/cert-expiry.sh).
 */

/** Where the textfile collector's files live on the host (read through the /host mount). */
export const TEXTFILE_DIR = "/var/lib/keybuzz/node-exporter";
/** The certificate scan's output inside {@link TEXTFILE_DIR}. */
export const CERT_EXPIRY_FILE = `${TEXTFILE_DIR}/keybuzz_certificates.prom`;

/**
 * node_exporter's `nofile`: it opens a few /proc and /sys files per collector and closes them after
 * each scrape; 4096 covers several concurrent scrapes (Prometheus HA pairs) with room to spare.
 */
export const NODE_EXPORTER_NOFILE = 4096;

/** The node_exporter container of one server, listening on its private address only. Pure. */
export function nodeExporterContainer(image: string, privateIp: string, settings: ExportersSettings): ContainerSpec {
  return {
    name: "node-exporter",
    image,
    // The image runs as nobody (its Dockerfile's USER); the host's root is read-only.
    options: ["--pid", "host", "-v", "/:/host:ro,rslave"],
    command: [
      "--path.rootfs=/host",
      `--web.listen-address=${privateIp}:${settings.nodeExporterPort}`,
      `--collector.textfile.directory=/host${TEXTFILE_DIR}`,
    ],
    nofile: NODE_EXPORTER_NOFILE,
  };
}

/** The files of the certificate scan: the script, its environment, and its systemd service and timer. Pure. */
export function certExpiryFiles(settings: ExportersSettings): HostFile[] {
  return [
    { path: "/usr/local/lib/keybuzz/cert-expiry.sh", content: hostScript("exporters", "cert-expiry.sh"), mode: "0755" },
    {
      path: "/etc/keybuzz/exporters/cert-expiry.env",
      content: `KB_CERT_EXPIRY_FILE=${CERT_EXPIRY_FILE}\nKB_CERT_DIRS=${settings.certificateDirs.join(" ")}\n`,
    },
    { path: "/etc/systemd/system/keybuzz-cert-expiry.service", content: hostScript("exporters", "keybuzz-cert-expiry.service") },
    { path: "/etc/systemd/system/keybuzz-cert-expiry.timer", content: hostScript("exporters", "keybuzz-cert-expiry.timer") },
  ];
}

/** The node_exporter step's bash body on one server. Pure. */
export function renderNodeExporterScript(image: string, privateIp: string, settings: ExportersSettings): string {
  return [
    renderContainerFunctions(nodeExporterContainer(image, privateIp, settings)),
    shellVariables({ KB_NODE_IP: privateIp, KB_PORT: settings.nodeExporterPort, KB_TEXTFILE_DIR: TEXTFILE_DIR }),
    hostScript("exporters", "node-exporter.sh"),
  ].join("\n");
}

/** Where each service exporter's credentials file lives on its host (root only; Docker reads it as `--env-file`). */
export const EXPORTER_ENV_DIR = "/etc/keybuzz/exporters";

/**
 * `nofile` of redis_exporter and mysqld_exporter: one connection to their service per scrape plus
 * Prometheus's HTTP connections; 1024 would do, 4096 as node_exporter.
 */
export const SERVICE_EXPORTER_NOFILE = NODE_EXPORTER_NOFILE;

/** One service exporter container on a host and how its step checks it. */
export interface ServiceExporter {
  readonly container: ContainerSpec;
  /**
   * Its credentials files (an `--env-file`, a password file, a CA), holding {@link secretRef}
   * placeholders: a rewritten one recreates the container (Docker reads them only at creation).
   */
  readonly files: readonly HostFile[];
  /** Its metrics URL on the host's private address. */
  readonly url: string;
  /** The unlabelled gauge that is 1 when the exporter reaches its service (`redis_up`, `mysql_up`). */
  readonly upMetric: string;
}

/** The credentials file of a service exporter. Pure. */
function envFile(container: string, variables: Readonly<Record<string, string>>): HostFile {
  const content = Object.entries(variables)
    .map(([name, value]) => `${name}=${value}\n`)
    .join("");
  return { path: `${EXPORTER_ENV_DIR}/${container}.env`, content, mode: "0600" };
}

/**
 * redis_exporter (oliver006/redis_exporter v1.88.0, README flags) in front of the node's Redis
 * (`service: "redis"`) or Sentinel: logs in as the ACL user {@link ACCOUNTS.redisExporter} (its
 * rules: components/data/redis/render.ts), password from `REDIS_PASSWORD` in the env file, and
 * never sends CONFIG (`--config-command=-`: the ACL denies it). The image runs as 59000:59000 (its
 * Dockerfile's USER). Pure.
 */
export function redisExporter(
  image: string,
  privateIp: string,
  service: "redis" | "sentinel",
  servicePort: number,
  settings: ExportersSettings,
): ServiceExporter {
  const name = `${service}-exporter`;
  const port = service === "redis" ? settings.redisExporterPort : settings.sentinelExporterPort;
  const env = envFile(name, { REDIS_PASSWORD: secretRef(REDIS_EXPORTER_PASSWORD_KEY) });
  return {
    container: {
      name,
      image,
      options: ["--env-file", env.path],
      command: [
        `--redis.addr=redis://${privateIp}:${servicePort}`,
        `--redis.user=${ACCOUNTS.redisExporter}`,
        `--web.listen-address=${privateIp}:${port}`,
        "--config-command=-",
      ],
      nofile: SERVICE_EXPORTER_NOFILE,
    },
    files: [env],
    url: `http://${privateIp}:${port}/metrics`,
    upMetric: "redis_up",
  };
}

/**
 * mysqld_exporter (prometheus/mysqld_exporter v0.20.0, README "General Flags") in front of the
 * node's MariaDB, as {@link ACCOUNTS.mariadbExporter} (`MYSQLD_EXPORTER_PASSWORD` in the env file;
 * its grants: components/data/galera/render.ts). `--collect.global_status` (on by default, named
 * because the Galera rules need it) exports every numeric `SHOW GLOBAL STATUS` value, the
 * `wsrep_*` ones included, as `mysql_global_status_<name>`. The image runs as nobody. Pure.
 */
export function mysqldExporter(image: string, privateIp: string, mysqlPort: number, settings: ExportersSettings): ServiceExporter {
  const name = "mysqld-exporter";
  const env = envFile(name, { MYSQLD_EXPORTER_PASSWORD: secretRef(GALERA_SECRET_KEYS.exporter) });
  return {
    container: {
      name,
      image,
      options: ["--env-file", env.path],
      command: [
        `--mysqld.address=${privateIp}:${mysqlPort}`,
        `--mysqld.username=${ACCOUNTS.mariadbExporter}`,
        `--web.listen-address=${privateIp}:${settings.mysqldExporterPort}`,
        "--collect.global_status",
      ],
      nofile: SERVICE_EXPORTER_NOFILE,
    },
    files: [env],
    url: `http://${privateIp}:${settings.mysqldExporterPort}/metrics`,
    upMetric: "mysql_up",
  };
}

/**
 * The step body of a host's service exporters (scripts/exporters/service-exporter.sh): each
 * container (re)started when its spec or credentials changed, then its endpoint must report its
 * service up. Pure.
 */
export function renderServiceExportersScript(exporters: readonly ServiceExporter[]): string {
  return [
    ...exporters.map((exporter) => renderContainerFunctions(exporter.container)),
    hostScript("exporters", "service-exporter.sh"),
    ...exporters.map(
      (exporter) =>
        `kb_service_exporter ${[exporter.container.name, exporter.url, exporter.upMetric, ...exporter.files.map((file) => file.path)].map(shellQuote).join(" ")}`,
    ),
  ].join("\n");
}

/**
 * postgres_exporter's port on each DB node's private address: its default (prometheus-community/
 * postgres_exporter v0.20.1 README, `web.listen-address`, `:9187`).
 */
export const POSTGRES_EXPORTER_PORT = 9187;
/** The uid the exporter images run as: `nobody` (their Dockerfiles' `USER nobody`); owns their files. */
export const EXPORTER_UID = 65534;
/** postgres_exporter's files on a DB node, mounted read-only at the same path in its container. */
export const POSTGRES_EXPORTER_DIR = "/etc/keybuzz/exporters/postgres";
/** Secret placeholder keys of the exporters' files. */
export const EXPORTER_SECRET_KEYS = {
  /** The exporter role's password (postgres_exporter's `DATA_SOURCE_PASS_FILE`). */
  postgresExporter: "postgres-exporter",
  /** Its SCRAM-SHA-256 verifier, the only form of the password PostgreSQL receives. */
  postgresExporterVerifier: "postgres-exporter-verifier",
  /** The superuser's password: the role step logs in with it. */
  postgresSuperuser: "postgres-superuser",
  /** The platform CA: the exporter verifies PostgreSQL's certificate with it. */
  caCert: "pki-ca-cert",
  /** PgBouncer's console user's password (pgbouncer_exporter's pgpass). */
  pgbouncerStats: "pgbouncer-stats",
} as const;
/** postgres_exporter's `nofile`: one connection to PostgreSQL and the scrapes' HTTP sockets. */
export const POSTGRES_EXPORTER_NOFILE = 1024;

/**
 * SCRAM-SHA-256 verifier of `password` (RFC 5802 / RFC 7677, PostgreSQL 16 `scram_build_secret`
 * in src/common/scram-common.c): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, all
 * base64. PostgreSQL stores it as given (`ALTER ROLE … PASSWORD '<verifier>'`), so the password
 * itself never reaches the server, its logs or pg_stat_statements. Pure.
 *
 * @param saltBase64 a random salt (base64), kept in state so the verifier is stable.
 * @param iterations PBKDF2 rounds; PostgreSQL's default `scram_iterations`, 4096.
 */
export function scramSha256Verifier(password: string, saltBase64: string, iterations = 4096): string {
  const salted = pbkdf2Sync(password, Buffer.from(saltBase64, "base64"), iterations, 32, "sha256");
  const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();
  const storedKey = createHash("sha256").update(hmac(salted, "Client Key")).digest("base64");
  const serverKey = hmac(salted, "Server Key").toString("base64");
  return `SCRAM-SHA-256$${iterations}:${saltBase64}$${storedKey}:${serverKey}`;
}

/**
 * The SQL of the exporter role (run on the leader as the superuser): a LOGIN role that is member
 * of `pg_monitor` only (the README's "Running as non-superuser" for PostgreSQL ≥ 10), no other
 * attribute, with its SCRAM verifier as a secret placeholder. Idempotent. Pure.
 */
export function renderPostgresExporterRoleSql(): string {
  const role = ACCOUNTS.postgresExporter;
  return `-- Rendered by KeyBuzz (components/observability/exporters): postgres_exporter's role, pg_monitor only.
SELECT format('CREATE ROLE %I LOGIN', '${role}') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') \\gexec
ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 PASSWORD '${secretRef(EXPORTER_SECRET_KEYS.postgresExporterVerifier)}';
GRANT pg_monitor TO ${role};
SELECT format('REVOKE %I FROM %I', b.rolname, '${role}') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '${role}' AND b.rolname <> 'pg_monitor' \\gexec
`;
}

/** The role step's pgpass: the superuser on every host (libpq picks the leader among them). Pure. */
export function renderPostgresExporterRolePgpass(): string {
  return `*:*:*:${ACCOUNTS.postgresSuperuser}:${secretRef(EXPORTER_SECRET_KEYS.postgresSuperuser)}\n`;
}

/** Where the role step reads PostgreSQL: the DB nodes, its port, and the Patroni container's config and TLS directories. */
export interface PostgresRoleTarget {
  /** Private addresses of every DB node: libpq's `target_session_attrs=read-write` connects to the leader. */
  readonly addresses: readonly string[];
  readonly port: number;
  /** The Patroni container's config directory (mounted in it): the role step's files go there. */
  readonly configDir: string;
  /** Its TLS directory (the platform CA as `ca.crt`). */
  readonly tlsDir: string;
}

/** The role step's file names inside {@link PostgresRoleTarget.configDir}. */
export const POSTGRES_EXPORTER_ROLE_FILES = { sql: "exporter-role.sql", pgpass: "exporter-role.pgpass" } as const;

/** The role step's bash body: the role SQL on the leader, through the Patroni container's psql. Pure. */
export function renderPostgresExporterRoleScript(target: PostgresRoleTarget): string {
  return [
    shellVariables({
      KB_PG_HOSTS: target.addresses.join(","),
      KB_PG_PORT: target.port,
      KB_CONFIG_DIR: target.configDir,
      KB_TLS_DIR: target.tlsDir,
      KB_ROLE: ACCOUNTS.postgresExporter,
      KB_SQL_FILE: POSTGRES_EXPORTER_ROLE_FILES.sql,
      KB_PGPASS_FILE: POSTGRES_EXPORTER_ROLE_FILES.pgpass,
    }),
    hostScript("exporters", "postgres-exporter-role.sh"),
  ].join("\n");
}

/** What the postgres_exporter of one DB node connects to: its own PostgreSQL, over TLS. */
export interface PostgresExporterTarget {
  /** The DB node's private address: the exporter listens there and connects there (pg_hba `hostssl` for the private network). */
  readonly privateIp: string;
  /** PostgreSQL's port. */
  readonly postgresPort: number;
}

/**
 * The postgres_exporter container of one DB node (v0.20.1 README: `DATA_SOURCE_URI`,
 * `DATA_SOURCE_USER`, `DATA_SOURCE_PASS_FILE`): TLS verified against the platform CA
 * (`sslmode=verify-ca`, lib/pq), the password read from a file, never from the environment. Pure.
 */
export function postgresExporterContainer(image: string, target: PostgresExporterTarget): ContainerSpec {
  const dir = POSTGRES_EXPORTER_DIR;
  return {
    name: "postgres-exporter",
    image,
    options: [
      "--user",
      `${EXPORTER_UID}:${EXPORTER_UID}`,
      "-v",
      `${dir}:${dir}:ro`,
      "-e",
      `DATA_SOURCE_URI=${target.privateIp}:${target.postgresPort}/postgres?sslmode=verify-ca&sslrootcert=${dir}/ca.crt`,
      "-e",
      `DATA_SOURCE_USER=${ACCOUNTS.postgresExporter}`,
      "-e",
      `DATA_SOURCE_PASS_FILE=${dir}/password`,
    ],
    command: [`--web.listen-address=${target.privateIp}:${POSTGRES_EXPORTER_PORT}`],
    nofile: POSTGRES_EXPORTER_NOFILE,
  };
}

/** postgres_exporter's files: its password and the platform CA, owned by the image's user. Pure. */
export function postgresExporterFiles(): HostFile[] {
  const owner = `${EXPORTER_UID}:${EXPORTER_UID}`;
  return [
    { path: `${POSTGRES_EXPORTER_DIR}/password`, content: secretRef(EXPORTER_SECRET_KEYS.postgresExporter), mode: "0400", owner },
    { path: `${POSTGRES_EXPORTER_DIR}/ca.crt`, content: secretRef(EXPORTER_SECRET_KEYS.caCert), mode: "0400", owner },
  ];
}

/** postgres_exporter on one DB node: its container and files, up when it reports `pg_up 1`. Pure. */
export function postgresExporter(image: string, target: PostgresExporterTarget): ServiceExporter {
  return {
    container: postgresExporterContainer(image, target),
    files: postgresExporterFiles(),
    url: `http://${target.privateIp}:${POSTGRES_EXPORTER_PORT}/metrics`,
    upMetric: "pg_up",
  };
}

/**
 * pgbouncer_exporter's port on each haproxy node's private address: its default
 * (prometheus-community/pgbouncer_exporter v0.12.1 README, "Exports metrics at `9127/metrics`").
 */
export const PGBOUNCER_EXPORTER_PORT = 9127;
/** pgbouncer_exporter's files on a haproxy node (its pgpass), mounted read-only at the same path. */
export const PGBOUNCER_EXPORTER_DIR = "/etc/keybuzz/exporters/pgbouncer";
/** pgbouncer_exporter's `nofile`: one console connection and the scrapes' HTTP sockets. */
export const PGBOUNCER_EXPORTER_NOFILE = 1024;

/** Where pgbouncer_exporter finds PgBouncer: the local port (PgBouncer listens on every address). */
export interface PgbouncerExporterTarget {
  /** The haproxy node's private address: the exporter listens there. */
  readonly privateIp: string;
  /** PgBouncer's port (6432). */
  readonly pgbouncerPort: number;
}

/**
 * The pgbouncer_exporter container of one haproxy node (v0.12.1 `--pgBouncer.connectionString`,
 * lib/pq v1.12.3 `passfile`): the console database `pgbouncer` on 127.0.0.1 as the `stats_users`
 * user, its password read from a pgpass file, so the command line holds none. PgBouncer has no
 * client TLS (clients reach it through the private network's HAProxy host), hence `sslmode=disable`
 * on the host's own loopback. Pure.
 */
export function pgbouncerExporterContainer(image: string, target: PgbouncerExporterTarget): ContainerSpec {
  const dir = PGBOUNCER_EXPORTER_DIR;
  return {
    name: "pgbouncer-exporter",
    image,
    options: ["--user", `${EXPORTER_UID}:${EXPORTER_UID}`, "-v", `${dir}:${dir}:ro`],
    command: [
      `--pgBouncer.connectionString=postgres://${ACCOUNTS.pgbouncerStats}@127.0.0.1:${target.pgbouncerPort}/pgbouncer?sslmode=disable&passfile=${dir}/pgpass`,
      `--web.listen-address=${target.privateIp}:${PGBOUNCER_EXPORTER_PORT}`,
    ],
    nofile: PGBOUNCER_EXPORTER_NOFILE,
  };
}

/** pgbouncer_exporter's pgpass (0400, the image's user: lib/pq refuses a group- or world-readable one). Pure. */
export function pgbouncerExporterFiles(): HostFile[] {
  return [
    {
      path: `${PGBOUNCER_EXPORTER_DIR}/pgpass`,
      content: `*:*:pgbouncer:${ACCOUNTS.pgbouncerStats}:${secretRef(EXPORTER_SECRET_KEYS.pgbouncerStats)}\n`,
      mode: "0400",
      owner: `${EXPORTER_UID}:${EXPORTER_UID}`,
    },
  ];
}

/** pgbouncer_exporter on one haproxy node: its container and pgpass, up when it reports `pgbouncer_up 1`. Pure. */
export function pgbouncerExporter(image: string, target: PgbouncerExporterTarget): ServiceExporter {
  return {
    container: pgbouncerExporterContainer(image, target),
    files: pgbouncerExporterFiles(),
    url: `http://${target.privateIp}:${PGBOUNCER_EXPORTER_PORT}/metrics`,
    upMetric: "pgbouncer_up",
  };
}

// ---- MinIO's metrics account ----

/**
 * MinIO's Prometheus account (an IAM user, its access key): it may call `admin:Prometheus` and
 * nothing else. MinIO's metrics endpoints check that the bearer token's account is allowed that
 * action (minio RELEASE.2025-09-07T16-13-09Z cmd/metrics.go `AuthMiddleware`: IAM policy check of
 * `policy.PrometheusAdminAction`).
 */
export const MINIO_METRICS_USER = "kb-prometheus";
/**
 * MinIO's cluster metrics (v2): the whole cluster's view, nodes and drives offline included, from
 * any node (minio cmd/metrics-router.go `prometheusMetricsV2ClusterPath` under the reserved
 * `/minio` prefix; cmd/metrics-v2.go `clusterMetricsGroups`).
 */
export const MINIO_METRICS_PATH = "/minio/v2/metrics/cluster";
/** Its IAM policy's name. */
export const MINIO_METRICS_POLICY = "keybuzz-prometheus";
/** Root-only directory of the account step's files on the first MinIO node. */
export const MINIO_METRICS_DIR = "/etc/keybuzz/exporters/minio";
/** Secret placeholder keys of the account step. */
export const MINIO_METRICS_SECRET_KEYS = {
  /** MinIO's root password (the MinIO module's placeholder key): the step administers IAM with it. */
  rootPassword: MINIO_ROOT_PASSWORD_KEY,
  /** The account's secret key. */
  secretKey: "minio-metrics-secret-key",
  /** The bearer token signed with that key (the step checks the endpoint with it). */
  token: "minio-metrics-token",
} as const;
/** mc alias of MinIO's root credentials in the account step. */
const MINIO_METRICS_MC_ALIAS = "keybuzz";

/**
 * Expiry of MinIO's Prometheus token, Unix seconds: 2126-01-01T00:00:00Z, a constant so the token
 * is the same on every `pulumi up` (a `Date.now()` would re-sign it each run and re-deploy the
 * Secret). `mc admin prometheus generate` signs for 100 years from now (minio/mc cmd/utils.go
 * `getPrometheusToken`, `defaultPrometheusJWTExpiry`); this is the same horizon from a fixed date.
 * A token is revoked by rotating the account's secret key.
 */
export const MINIO_PROMETHEUS_TOKEN_EXPIRY = Date.UTC(2126, 0, 1) / 1000;

/**
 * MinIO's Prometheus bearer token for `accessKey`, as `mc admin prometheus generate` makes it
 * (minio/mc cmd/utils.go `getPrometheusToken`): HS512 over `{ exp, sub: accessKey, iss:
 * "prometheus" }`, keyed with the account's secret key. MinIO looks the key up by `sub` (or
 * `accessKey`), checks the HMAC, `exp`, and the issuer `prometheus` (minio cmd/jwt.go
 * `metricsRequestAuthenticate`, internal/jwt/parser.go `ParseWithClaims`, cmd/metrics.go
 * `AuthMiddleware`). No `iat`: with a fixed `exp` the token is a pure function of its inputs. Pure.
 */
export function minioPrometheusToken(accessKey: string, secretKey: string): string {
  return jwt.sign({ exp: MINIO_PROMETHEUS_TOKEN_EXPIRY, sub: accessKey, iss: "prometheus" }, secretKey, {
    algorithm: "HS512",
    noTimestamp: true,
  });
}

/**
 * The account's IAM policy: `admin:Prometheus` only (minio/pkg v3.1.3 policy/admin-action.go
 * `PrometheusAdminAction`; an admin statement needs no resource, policy/statement.go). Pure.
 */
export function renderMinioMetricsPolicy(): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["admin:Prometheus"] }] }, null, 2) + "\n";
}

/**
 * Files of the account step, root-only: mc's root alias (`MC_HOST_<alias>`, a Docker env file),
 * the account's secret key alone (`mc admin user add` reads it on stdin), the policy, and the
 * bearer token as a curl header file (`curl -H @file`), so no command line holds a secret. Pure.
 *
 * @param address the node's `ip:port` of the S3 API.
 * @param dir where the files go (tests move it).
 */
export function minioMetricsFiles(address: string, rootUser: string, dir = MINIO_METRICS_DIR): HostFile[] {
  const file = (name: string, content: string): HostFile => ({ path: `${dir}/${name}`, content, mode: "0600" });
  return [
    file(
      "mc.env",
      `MC_HOST_${MINIO_METRICS_MC_ALIAS}=http://${rootUser}:${secretRef(MINIO_METRICS_SECRET_KEYS.rootPassword)}@${address}\n`,
    ),
    file("secret-key", `${secretRef(MINIO_METRICS_SECRET_KEYS.secretKey)}\n`),
    file("policy.json", renderMinioMetricsPolicy()),
    file("auth-header", `Authorization: Bearer ${secretRef(MINIO_METRICS_SECRET_KEYS.token)}\n`),
  ];
}

/**
 * The account step's bash body (scripts/minio/metrics-user.sh) on the first MinIO node: the policy
 * and the user with mc from the pinned MinIO image, then the cluster metrics endpoint must answer
 * 200 to the account's token and 403 without it. Pure.
 *
 * @param image the MinIO image as `imagePull(...).run` gives it.
 * @param metricsUrl `http://<node>:<api port><path>` of the cluster metrics.
 * @param dir the files' directory ({@link minioMetricsFiles}).
 */
export function renderMinioMetricsUserScript(image: string, metricsUrl: string, dir = MINIO_METRICS_DIR): string {
  return stepBody("minio", ["metrics-user.sh"], {
    variables: {
      KB_IMAGE: image,
      KB_DIR: dir,
      KB_ROOT_ALIAS: MINIO_METRICS_MC_ALIAS,
      KB_POLICY: MINIO_METRICS_POLICY,
      KB_USER: MINIO_METRICS_USER,
      KB_METRICS_URL: metricsUrl,
    },
  });
}
