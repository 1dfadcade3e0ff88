import { ContainerSpec, imagePull, renderContainerFunctions, renderLockedImagePull } from "../../lib/container";
import { secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { ACCOUNTS } from "../../security/secrets";
import type { ApplicationDatabase } from "../postgres/render";
import { PgbouncerSettings } from "./settings";

/** Pure render functions of PgBouncer: settings and versions in, text out. */

/** Config directory on the host, mounted read-only at /etc/pgbouncer in the container. */
export const PGBOUNCER_HOST_DIR = "/etc/keybuzz/pgbouncer";
export const PGBOUNCER_CONTAINER_DIR = "/etc/pgbouncer";
/** uid the container runs as (the image's `postgres` user); owns the secret files. */
export const PGBOUNCER_UID = 70;
/**
 * Secret placeholder keys of the CA file and of pgbouncer_exporter's console user (the owners'
 * passwords use their databases' keys, `ApplicationDatabase.secretKey`).
 */
export const PGBOUNCER_SECRET_KEYS = { statsPassword: "pgbouncer-stats", caCert: "pki-ca-cert" } as const;
/** Port PgBouncer listens on (spec 001: 6432; the LB 10.0.0.10:6432 forwards here). */
export const PGBOUNCER_PORT = 6432;

/** Inputs of {@link renderPgbouncerIni}. */
export interface PgbouncerRenderInput {
  /** The pools (`keybuzz:postgres.pgbouncer`). */
  readonly settings: PgbouncerSettings;
  /** Databases of `[databases]`, each pooled to the same name upstream (`APPLICATION_DATABASES`: `keybuzz`, `keybuzz_backend`). */
  readonly databases: readonly string[];
  /** Upstream: the local HAProxy write listener; default 127.0.0.1:5432. */
  readonly upstreamHost?: string;
  readonly upstreamPort?: number;
  /** Listen address and port; default 0.0.0.0:{@link PGBOUNCER_PORT}. */
  readonly listenAddress?: string;
  readonly listenPort?: number;
  /** Directory of userlist.txt and the CA as PgBouncer sees it; default /etc/pgbouncer. */
  readonly configDir?: string;
}

/**
 * pgbouncer.ini: spec 001's pools, transaction mode, SCRAM, TLS to PostgreSQL verified against the
 * platform CA (the DB nodes accept `hostssl` only), and `max_prepared_statements` so drivers'
 * prepared statements work in transaction mode (PgBouncer ≥ 1.21).
 */
export function renderPgbouncerIni(input: PgbouncerRenderInput): string {
  const pools = input.settings;
  const upstream = `host=${input.upstreamHost ?? "127.0.0.1"} port=${input.upstreamPort ?? 5432}`;
  const dir = input.configDir ?? PGBOUNCER_CONTAINER_DIR;
  return `; Rendered by KeyBuzz (components/data/pgbouncer). Do not edit on the host.
[databases]
${input.databases.map((database) => `${database} = ${upstream} dbname=${database}\n`).join("")}postgres = ${upstream} dbname=postgres

[pgbouncer]
listen_addr = ${input.listenAddress ?? "0.0.0.0"}
listen_port = ${input.listenPort ?? PGBOUNCER_PORT}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
; pgbouncer_exporter's console user: SHOW commands only (config.md, stats_users).
stats_users = ${ACCOUNTS.pgbouncerStats}
pool_mode = transaction
max_client_conn = ${pools.maxClientConn}
default_pool_size = ${pools.defaultPoolSize}
reserve_pool_size = ${pools.reservePoolSize}
reserve_pool_timeout = 3
max_prepared_statements = ${pools.maxPreparedStatements}
server_tls_sslmode = verify-ca
server_tls_ca_file = ${dir}/ca.crt
; A failover cuts server connections (HAProxy shutdown-sessions); reconnect quickly.
server_login_retry = 2
server_connect_timeout = 5
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
`;
}

/**
/**
 * userlist.txt: each application database's owner with its password as a secret placeholder (SCRAM
 * is computed by PgBouncer; the same password logs in to PostgreSQL upstream), and
 * pgbouncer_exporter's console user (stats_users, absent from PostgreSQL).
 */
export function renderPgbouncerUserlist(databases: readonly ApplicationDatabase[]): string {
  const owners = databases.map(({ owner, secretKey }) => `"${owner}" "${secretRef(secretKey)}"\n`).join("");
  return `${owners}"${ACCOUNTS.pgbouncerStats}" "${secretRef(PGBOUNCER_SECRET_KEYS.statsPassword)}"\n`;
}

/**
 * PgBouncer's `nofile`: twice PgBouncer's theoretical maximum (PgBouncer 1.24 config.md,
 * `max_client_conn`: max_client_conn + max pool_size × databases × users, "set the number of file
 * descriptors to a safely high number"), the largest pool being default + reserve pool size.
 *
 * @param pools the pool settings rendered into pgbouncer.ini (spec 001, "PgBouncer").
 * @param databases entries of `[databases]` in pgbouncer.ini.
 * @param users users in userlist.txt.
 */
export function pgbouncerNofile(pools: PgbouncerSettings, databases: number, users: number): number {
  return 2 * (pools.maxClientConn + (pools.defaultPoolSize + pools.reservePoolSize) * databases * users);
}

/**
 * The PgBouncer container's `nofile` for its rendered pgbouncer.ini and userlist.txt
 * ({@link pgbouncerNofile}: the entries of `[databases]` and the users are counted from the files).
 */
export function renderedPgbouncerNofile(settings: PgbouncerSettings, ini: string, userlist: string): number {
  const databases = (/^\[databases\]\n([\s\S]*?)^\[/m.exec(ini)?.[1] ?? "").split("\n").filter((line) => /^[^;\s]\S* = /.test(line)).length;
  // Console-only users (stats_users, absent from PostgreSQL) never get a server pool.
  const consoleUsers = (/^stats_users = (.*)$/m.exec(ini)?.[1] ?? "").split(",").map((user) => `"${user.trim()}"`);
  const users = userlist
    .split("\n")
    .filter((line) => line.startsWith('"') && !consoleUsers.some((user) => line.startsWith(`${user} `))).length;
  return pgbouncerNofile(settings, databases, users);
}

/**
 * Body of the PgBouncer step: the container's lifecycle functions, then scripts/pgbouncer/
 * check-version.sh (the image must run the pinned PgBouncer release) and pgbouncer.sh ((re)create
 * the container when its spec or files changed, then check the port).
 *
 * @param image `images.pgbouncer` (config/versions.yaml), `tag@sha256:…` when locked (`lockedImage`).
 * @param version `packages.pgbouncer`: the release `pgbouncer --version` must name inside the image.
 * @param nofile the container's open-files limit ({@link renderedPgbouncerNofile}).
 * @param listenPort the port pgbouncer.ini listens on; default {@link PGBOUNCER_PORT}.
 */
export function renderPgbouncerStepScript(image: string, version: string, nofile: number, listenPort = PGBOUNCER_PORT): string {
  const container: ContainerSpec = {
    name: "pgbouncer",
    image,
    options: ["--user", `${PGBOUNCER_UID}:${PGBOUNCER_UID}`, "-v", `${PGBOUNCER_HOST_DIR}:${PGBOUNCER_CONTAINER_DIR}:ro`],
    command: [],
    nofile,
  };
  const lockedPull = renderLockedImagePull(image).trimEnd();
  return stepBody("pgbouncer", ["check-version.sh", "pgbouncer.sh"], {
    prefix: [renderContainerFunctions(container), ...(lockedPull ? [lockedPull] : [])],
    variables: { KB_PGBOUNCER_IMAGE: imagePull(image).run, KB_PGBOUNCER_VERSION: version, KB_PGBOUNCER_PORT: listenPort },
  });
}
