import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { lockedImage, Versions } from "../../config";
import { Host, HostFile, remoteStep, secretRef, shellQuote } from "../lib/remote";
import { ContainerSpec, imagePull, pgbouncerNofile, renderContainerFunctions, renderLockedImagePull } from "../lib/container";
import { ACCOUNTS } from "../security/secrets";
import { PostgresSettings } from "./postgres/settings";

/**
 * PgBouncer on haproxy-01/02 (spec 001 module 3, "PgBouncer"): port 6432, transaction pooling,
 * upstream the local HAProxy write port (so it always reaches the current leader), SCRAM for the
 * application user. Its own small component beside the HAProxy layer: it is a PostgreSQL-only
 * service, while HAProxy is shared with Redis and RabbitMQ.
 */

/** Config directory on the host, mounted read-only at /etc/pgbouncer in the container. */
export const PGBOUNCER_HOST_DIR = "/etc/keybuzz/pgbouncer";
export const PGBOUNCER_CONTAINER_DIR = "/etc/pgbouncer";
/** uid the container runs as (the image's `postgres` user); owns the secret files. */
export const PGBOUNCER_UID = 70;
/** Secret placeholder keys of the PgBouncer files. */
export const PGBOUNCER_SECRET_KEYS = { appPassword: "postgres-app", caCert: "pki-ca-cert" } as const;

/** Inputs of {@link renderPgbouncerIni}. */
export interface PgbouncerRenderInput {
  readonly settings: PostgresSettings;
  /** Database the pooled entries point to; default `keybuzz`. */
  readonly database?: string;
  /** Upstream: the local HAProxy write listener; default 127.0.0.1:5432. */
  readonly upstreamHost?: string;
  readonly upstreamPort?: number;
  /** Listen address and port; default 0.0.0.0:6432 (the LB 10.0.0.10:6432 forwards here). */
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
  const pools = input.settings.pgbouncer;
  const database = input.database ?? "keybuzz";
  const upstream = `host=${input.upstreamHost ?? "127.0.0.1"} port=${input.upstreamPort ?? 5432}`;
  const dir = input.configDir ?? PGBOUNCER_CONTAINER_DIR;
  return `; Rendered by KeyBuzz (components/data/pgbouncer.ts). Do not edit on the host.
[databases]
${database} = ${upstream} dbname=${database}
postgres = ${upstream} dbname=postgres

[pgbouncer]
listen_addr = ${input.listenAddress ?? "0.0.0.0"}
listen_port = ${input.listenPort ?? 6432}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
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

/** userlist.txt: the application user with its password as a secret placeholder (SCRAM is computed by PgBouncer). */
export function renderPgbouncerUserlist(): string {
  return `"${ACCOUNTS.postgresApp}" "${secretRef(PGBOUNCER_SECRET_KEYS.appPassword)}"\n`;
}

/**
 * The PgBouncer container's `nofile` for its rendered pgbouncer.ini and userlist.txt
 * ({@link pgbouncerNofile}: the entries of `[databases]` and the users are counted from the files).
 */
export function renderedPgbouncerNofile(settings: PostgresSettings, ini: string, userlist: string): number {
  const databases = (/^\[databases\]\n([\s\S]*?)^\[/m.exec(ini)?.[1] ?? "").split("\n").filter((line) => /^[^;\s]\S* = /.test(line)).length;
  const users = userlist.split("\n").filter((line) => line.startsWith('"')).length;
  return pgbouncerNofile(settings.pgbouncer, databases, users);
}

/** scripts/pgbouncer/check-version.sh: the step stops when the image does not run the pinned PgBouncer. */
const CHECK_VERSION_SCRIPT = path.join(__dirname, "..", "..", "scripts", "pgbouncer", "check-version.sh");

/**
 * Body of the PgBouncer step: check that the image runs the pinned PgBouncer release, (re)create the
 * container when its spec or files changed, then check the port.
 *
 * @param image `images.pgbouncer` (config/versions.yaml), `tag@sha256:…` when locked (`lockedImage`).
 * @param version `packages.pgbouncer`: the release `pgbouncer --version` must name inside the image.
 * @param nofile the container's open-files limit ({@link renderedPgbouncerNofile}).
 */
export function renderPgbouncerStepScript(image: string, version: string, nofile: number, listenPort = 6432): string {
  const container: ContainerSpec = {
    name: "pgbouncer",
    image,
    options: ["--user", `${PGBOUNCER_UID}:${PGBOUNCER_UID}`, "-v", `${PGBOUNCER_HOST_DIR}:${PGBOUNCER_CONTAINER_DIR}:ro`],
    command: [],
    nofile,
  };
  return `${renderContainerFunctions(container)}
${renderLockedImagePull(image)}KB_PGBOUNCER_IMAGE=${shellQuote(imagePull(image).run)}
KB_PGBOUNCER_VERSION=${shellQuote(version)}
${fs.readFileSync(CHECK_VERSION_SCRIPT, "utf8")}
# PgBouncer reads its files at start: recreate it when they changed in this run, too.
if [ "$(kb_pgbouncer_state)" != current ] || [ "\${#kb_changed[@]}" -gt 0 ]; then
  kb_pgbouncer_run >/dev/null
fi
listening() { (exec 3<>/dev/tcp/127.0.0.1/${listenPort}); }
kb_wait_until --logs pgbouncer 60 2 "PgBouncer: port ${listenPort} not listening" listening
echo "PgBouncer: listening on ${listenPort}"`;
}

/** Arguments of {@link PgBouncerLayer}. */
export interface PgBouncerLayerArgs {
  /** The haproxy group's hosts, in inventory order (changes roll in this order). */
  readonly hosts: readonly Host[];
  readonly settings: PostgresSettings;
  /** `images.pgbouncer` and the release it must run, `packages.pgbouncer` (config/versions.yaml). */
  readonly versions: Versions;
  /** The application user's password (`PlatformSecrets.postgres.app`). */
  readonly appPassword: pulumi.Input<string>;
  /** CA of the DB nodes' certificates (`Pki.caCertPem`). */
  readonly caCertPem: pulumi.Input<string>;
  /** Per host name: what must run first there (the HAProxy layer's verified step). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
}

/** PgBouncer on each haproxy host (`keybuzz:data:PgBouncerLayer`), one host after the other. */
export class PgBouncerLayer extends pulumi.ComponentResource {
  /** The verified step of each host, by host name. */
  public readonly ready: Readonly<Record<string, command.remote.Command>>;

  constructor(name: string, args: PgBouncerLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:PgBouncerLayer", name, {}, opts);
    const owner = `${PGBOUNCER_UID}:${PGBOUNCER_UID}`;
    const ini = renderPgbouncerIni({ settings: args.settings });
    const userlist = renderPgbouncerUserlist();
    const files: HostFile[] = [
      { path: `${PGBOUNCER_HOST_DIR}/pgbouncer.ini`, content: ini, owner },
      { path: `${PGBOUNCER_HOST_DIR}/userlist.txt`, content: userlist, mode: "0600", owner },
      { path: `${PGBOUNCER_HOST_DIR}/ca.crt`, content: secretRef(PGBOUNCER_SECRET_KEYS.caCert), mode: "0600", owner },
    ];
    const script = renderPgbouncerStepScript(
      lockedImage(args.versions, "pgbouncer"),
      args.versions.packages.pgbouncer,
      renderedPgbouncerNofile(args.settings, ini, userlist),
    );
    const secrets = { [PGBOUNCER_SECRET_KEYS.appPassword]: args.appPassword, [PGBOUNCER_SECRET_KEYS.caCert]: args.caCertPem };
    const ready: Record<string, command.remote.Command> = {};
    let previous: pulumi.Resource | undefined;
    for (const host of args.hosts) {
      const hostReady = args.ready[host.spec.name];
      if (!hostReady) throw new Error(`PgBouncerLayer ${name}: nothing to wait for on ${host.spec.name}`);
      const step = remoteStep(
        `${host.spec.name}-pgbouncer`,
        { host, files, script, secrets, timeoutMinutes: 10 },
        { parent: this, dependsOn: [hostReady, ...(previous ? [previous] : [])] },
      );
      ready[host.spec.name] = step;
      previous = step;
    }
    this.ready = ready;
    this.registerOutputs({});
  }
}
