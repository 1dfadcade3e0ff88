import * as path from "path";
import { ClusterNode, clusterNodes, ConfigError, Inventory, serversOf, Versions } from "../../../config";
import { secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
// node_exporter's textfile collector directory (the exporters module's), where the backups write their last-success metric.
import { TEXTFILE_DIR } from "../../observability/exporters/render";
import { PgBackRestSettings } from "./settings";

/**
 * Pure render functions of the PostgreSQL backups (pgBackRest): inventory, versions and settings
 * in, text out. Every option is one of pgBackRest's (src/build/config/config.yaml at the pinned
 * release, the same in Debian bookworm's 2.45 that the loopback suite runs); docs/backups.md.
 *
 * Topology: backup-01 is the repository host. It runs pgBackRest's TLS server (the DB nodes push
 * WAL to it) and the backups themselves (pgBackRest runs `backup` only on the repository host),
 * reaching every DB node's own TLS server, which reads PGDATA and PostgreSQL's socket. Both sides
 * authenticate with client certificates of the platform CA (components/security/pki.ts): a server
 * accepts only the certificate CNs listed in its `tls-server-auth`.
 */

/**
 * The repository host, the one server of the inventory's `backup` group, and the DB nodes it backs
 * up; undefined when the inventory has no backup server (a stack without backups, e.g. staging).
 * @throws {ConfigError} when the `backup` group has more than one server (config/ calls it first).
 */
export function backupHostsOf(inventory: Inventory): { repoHost: ClusterNode; members: ClusterNode[] } | undefined {
  const backup = serversOf(inventory, "backup");
  if (backup.length > 1) {
    throw new ConfigError([
      `keybuzz:servers: the backup group (role backup) holds the one pgBackRest repository host; found ${backup.length} servers (${backup.map((server) => server.name).join(", ")})`,
    ]);
  }
  if (backup.length === 0) return undefined;
  return { repoHost: clusterNodes(backup)[0], members: clusterNodes(serversOf(inventory, "postgres")) };
}

/** Secret keys of the placeholders in the rendered files. */
export const PGBACKREST_SECRET_KEYS = {
  s3Key: "pgbackrest-s3-key",
  s3KeySecret: "pgbackrest-s3-key-secret",
  cipherPass: "pgbackrest-cipher-pass",
  caCert: "pgbackrest-ca-cert",
  nodeCert: "pgbackrest-node-cert",
  nodeKey: "pgbackrest-node-key",
} as const;

/** Where pgBackRest's files are on a DB node (paths inside the Patroni container = on the host). */
export interface DbNodePaths {
  /** pgbackrest.conf; beside patroni.yml, in the directory the Patroni container mounts read-only. */
  readonly configFile: string;
  /** PGDATA. */
  readonly dataDir: string;
  /** The first of PostgreSQL's `unix_socket_directories` (Patroni's own). */
  readonly socketDir: string;
  /**
   * pgBackRest's own directory on the data volume, owned by the postgres uid: a second socket
   * directory of PostgreSQL (the TLS server's container reaches the socket there), the spool of
   * the asynchronous archive push, locks and logs.
   */
  readonly workDir: string;
  /** CA, node certificate and key (the Patroni node's own pair, client + server auth). */
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** Where pgBackRest's files are on backup-01. */
export interface RepoHostPaths {
  readonly configFile: string;
  /** The repository (`repo1-path`). */
  readonly repoPath: string;
  /** Locks and logs. */
  readonly workDir: string;
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** Production paths of a DB node (components/data/postgres's DEFAULT_POSTGRES_LAYOUT). */
export const DEFAULT_DB_NODE_PATHS: DbNodePaths = {
  configFile: "/etc/keybuzz/postgres/pgbackrest.conf",
  dataDir: "/opt/keybuzz/postgres/data",
  socketDir: "/var/run/postgresql",
  workDir: "/opt/keybuzz/postgres/pgbackrest",
  tls: { ca: "/etc/keybuzz/postgres/tls/ca.crt", cert: "/etc/keybuzz/postgres/tls/node.crt", key: "/etc/keybuzz/postgres/tls/node.key" },
};

/** Production paths of backup-01. */
export const DEFAULT_REPO_HOST_PATHS: RepoHostPaths = {
  configFile: "/etc/pgbackrest/pgbackrest.conf",
  repoPath: "/var/lib/pgbackrest",
  workDir: "/var/lib/keybuzz/pgbackrest",
  tls: { ca: "/etc/pgbackrest/tls/ca.crt", cert: "/etc/pgbackrest/tls/node.crt", key: "/etc/pgbackrest/tls/node.key" },
};

/** One `[name]` section of an INI-style file (pgbackrest.conf, a systemd unit): `key=value` lines, undefined values left out. */
function section(name: string, options: readonly (readonly [string, string | number | undefined])[]): string {
  const lines = options.filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${String(value)}`);
  return `[${name}]\n${lines.join("\n")}\n`;
}

/** A systemd unit file: its sections separated by a blank line. */
function unitFile(sections: readonly string[]): string {
  return sections.join("\n");
}

/** The S3 repository's options (repo2), identical on both sides: both push or read it. */
function s3Options(settings: PgBackRestSettings): [string, string | number][] {
  const s3 = settings.s3;
  if (!s3) return [];
  return [
    ["repo2-type", "s3"],
    ["repo2-path", s3.path],
    ["repo2-s3-endpoint", s3.endpoint],
    ["repo2-s3-bucket", s3.bucket],
    ["repo2-s3-region", s3.region],
    ["repo2-s3-uri-style", s3.uriStyle],
    ["repo2-s3-key", secretRef(PGBACKREST_SECRET_KEYS.s3Key)],
    ["repo2-s3-key-secret", secretRef(PGBACKREST_SECRET_KEYS.s3KeySecret)],
    // Encrypted client-side: the provider sees only ciphertext (pgBackRest "repo-cipher-type").
    ["repo2-cipher-type", "aes-256-cbc"],
    ["repo2-cipher-pass", secretRef(PGBACKREST_SECRET_KEYS.cipherPass)],
    ["repo2-retention-full-type", "count"],
    ["repo2-retention-full", s3.retentionFull],
  ];
}

function logAndLock(workDir: string): [string, string][] {
  return [
    ["lock-path", path.posix.join(workDir, "lock")],
    ["log-path", path.posix.join(workDir, "log")],
    ["log-level-console", "warn"],
    ["log-level-file", "info"],
  ];
}

/** Inputs of {@link renderDbNodeConfig}. */
export interface DbNodeConfigInput {
  readonly node: ClusterNode;
  readonly repoHost: ClusterNode;
  readonly settings: PgBackRestSettings;
  /** Default {@link DEFAULT_DB_NODE_PATHS}. */
  readonly paths?: DbNodePaths;
  /** PostgreSQL's port on the node (default 5432). */
  readonly postgresPort?: number;
  /** How a peer is named when connecting (default {@link tlsHostName}). */
  readonly tlsHost?: (node: ClusterNode) => string;
  /** The repository's path on backup-01 (default {@link DEFAULT_REPO_HOST_PATHS}'s). */
  readonly repoPath?: string;
}

/**
 * The name a TLS client connects to: the inventory name (every host resolves it through its
 * managed /etc/hosts block), because pgBackRest verifies the server certificate's DNS names only,
 * not its IP addresses (src/common/io/tls/client.c, `tlsClientHostVerify`: GEN_DNS entries, else
 * the CN), and the platform's certificates carry the name as a DNS SAN (components/security/pki.ts).
 */
export function tlsHostName(node: ClusterNode): string {
  return node.name;
}

/**
 * pgbackrest.conf of a DB node: WAL pushed asynchronously to backup-01's TLS server (and to S3
 * when configured), and this node's own TLS server that backup-01's backups go through.
 */
export function renderDbNodeConfig(input: DbNodeConfigInput): string {
  const paths = input.paths ?? DEFAULT_DB_NODE_PATHS;
  const { settings, node, repoHost } = input;
  const global = section("global", [
    ["repo1-host", (input.tlsHost ?? tlsHostName)(repoHost)],
    ["repo1-host-type", "tls"],
    ["repo1-host-port", settings.tlsPort],
    // The TLS server's commands take their options from the client, the repository's path included.
    ["repo1-path", input.repoPath ?? DEFAULT_REPO_HOST_PATHS.repoPath],
    ["repo1-host-ca-file", paths.tls.ca],
    ["repo1-host-cert-file", paths.tls.cert],
    ["repo1-host-key-file", paths.tls.key],
    ...s3Options(settings),
    // PostgreSQL's archive_command returns as soon as the segment is queued in the spool; a
    // background process pushes the queue (pgBackRest "Asynchronous Archiving").
    ["archive-async", "y"],
    ["spool-path", path.posix.join(paths.workDir, "spool")],
    ["process-max", settings.processMax],
    ...logAndLock(paths.workDir),
    ["tls-server-address", node.address],
    ["tls-server-port", settings.tlsPort],
    ["tls-server-ca-file", paths.tls.ca],
    ["tls-server-cert-file", paths.tls.cert],
    ["tls-server-key-file", paths.tls.key],
    // Only backup-01's certificate, and only for this stanza.
    ["tls-server-auth", `${repoHost.name}=${settings.stanza}`],
  ]);
  const stanza = section(settings.stanza, [
    ["pg1-path", paths.dataDir],
    ["pg1-port", input.postgresPort ?? 5432],
    ["pg1-socket-path", paths.workDir],
  ]);
  return `# Rendered by KeyBuzz (components/backup/pgbackrest): pgBackRest on DB node ${node.name}.\n${global}\n${stanza}`;
}

/** A DB node as backup-01's config lists it. */
export interface RepoHostMember {
  readonly node: ClusterNode;
  /** Default {@link DEFAULT_DB_NODE_PATHS}. */
  readonly paths?: DbNodePaths;
  readonly postgresPort?: number;
}

/** Inputs of {@link renderRepoHostConfig}. */
export interface RepoHostConfigInput {
  readonly repoHost: ClusterNode;
  /** The DB nodes in inventory order (pg1, pg2, …); pgBackRest finds the primary among them. */
  readonly members: readonly RepoHostMember[];
  readonly settings: PgBackRestSettings;
  /** Default {@link DEFAULT_REPO_HOST_PATHS}. */
  readonly paths?: RepoHostPaths;
  /** How a DB node is named when connecting (default {@link tlsHostName}). */
  readonly tlsHost?: (node: ClusterNode) => string;
}

/**
 * pgbackrest.conf of backup-01: the repository with its retention, the TLS server the DB nodes
 * push WAL to, and one `pgN-host` per DB node (TLS, client certificate) for the backups.
 */
export function renderRepoHostConfig(input: RepoHostConfigInput): string {
  const paths = input.paths ?? DEFAULT_REPO_HOST_PATHS;
  const { settings, repoHost, members } = input;
  const global = section("global", [
    ["repo1-path", paths.repoPath],
    ["repo1-retention-full-type", "count"],
    ["repo1-retention-full", settings.retentionFull],
    ["repo1-retention-diff", settings.retentionDiff],
    ...s3Options(settings),
    // A checkpoint at once instead of waiting for the next one (pgBackRest "start-fast").
    ["start-fast", "y"],
    ["backup-standby", settings.fromStandby ? "y" : "n"],
    ["process-max", settings.processMax],
    ["compress-type", "zst"],
    ...logAndLock(paths.workDir),
    ["tls-server-address", repoHost.address],
    ["tls-server-port", settings.tlsPort],
    ["tls-server-ca-file", paths.tls.ca],
    ["tls-server-cert-file", paths.tls.cert],
    ["tls-server-key-file", paths.tls.key],
    // The DB nodes' certificates, for this stanza only (archive-push, archive-get, check); one
    // line per client CN (pgBackRest help, "tls-server-auth": the option repeats, CN=stanza).
    ...members.map((member): [string, string] => ["tls-server-auth", `${member.node.name}=${settings.stanza}`]),
  ]);
  const stanza = section(
    settings.stanza,
    members.flatMap((member, index): [string, string | number][] => {
      const pg = `pg${index + 1}`;
      const memberPaths = member.paths ?? DEFAULT_DB_NODE_PATHS;
      return [
        [`${pg}-host`, (input.tlsHost ?? tlsHostName)(member.node)],
        [`${pg}-host-type`, "tls"],
        [`${pg}-host-port`, settings.tlsPort],
        [`${pg}-host-ca-file`, paths.tls.ca],
        [`${pg}-host-cert-file`, paths.tls.cert],
        [`${pg}-host-key-file`, paths.tls.key],
        [`${pg}-host-config`, memberPaths.configFile],
        [`${pg}-path`, memberPaths.dataDir],
        [`${pg}-port`, member.postgresPort ?? 5432],
        [`${pg}-socket-path`, memberPaths.workDir],
      ];
    }),
  );
  return `# Rendered by KeyBuzz (components/backup/pgbackrest): pgBackRest repository host ${repoHost.name}.\n${global}\n${stanza}`;
}

/**
 * The PostgreSQL parameters that archive WAL through pgBackRest, for Patroni's
 * `postgresql.parameters` of every DB node: `archive_mode` (a replica archives nothing until it is
 * promoted), the asynchronous `archive-push`, `archive_timeout` (the RPO bound under a light load),
 * and a second socket directory on the data volume for pgBackRest's TLS server.
 */
export function pgBackRestPatroniParameters(
  settings: PgBackRestSettings,
  paths: DbNodePaths = DEFAULT_DB_NODE_PATHS,
  pgbackrest = "pgbackrest",
): Record<string, string | number> {
  return {
    archive_mode: "on",
    archive_command: `${pgbackrest} --config=${paths.configFile} --stanza=${settings.stanza} archive-push %p`,
    archive_timeout: settings.archiveTimeoutSeconds,
    unix_socket_directories: `${paths.socketDir},${paths.workDir}`,
  };
}

/** The systemd units of backup-01: the TLS server and the two backup timers. */
export interface RepoHostUnits {
  /** File name (under /etc/systemd/system) → content. */
  readonly files: Readonly<Record<string, string>>;
  /** Units the step enables and starts. */
  readonly enable: readonly string[];
}

/** Name of the backup wrapper on backup-01 (scripts/pgbackrest/backup-run.sh). */
export const BACKUP_RUN_PATH = "/usr/local/sbin/keybuzz-pgbackrest-backup";

/**
 * systemd units on backup-01: `keybuzz-pgbackrest-server.service` (pgBackRest's TLS server, as
 * `postgres`), and per backup type a oneshot service started by its timer (`Persistent=true`: a
 * run missed while the host was down happens at boot). A oneshot unit never runs twice at once,
 * and the wrapper takes one lock for both types (`flock`), so a full and a differential never
 * overlap; pgBackRest's own stanza lock is the last guard.
 */
export function renderRepoHostUnits(settings: PgBackRestSettings, paths: RepoHostPaths = DEFAULT_REPO_HOST_PATHS): RepoHostUnits {
  const server = unitFile([
    section("Unit", [
      ["Description", "KeyBuzz pgBackRest TLS server (repository host)"],
      ["After", "network-online.target"],
      ["Wants", "network-online.target"],
    ]),
    section("Service", [
      ["User", "postgres"],
      ["Group", "postgres"],
      ["ExecStart", `/usr/bin/pgbackrest --config=${paths.configFile} server`],
      ["Restart", "always"],
      ["RestartSec", 5],
    ]),
    section("Install", [["WantedBy", "multi-user.target"]]),
  ]);
  const files: Record<string, string> = { "keybuzz-pgbackrest-server.service": server };
  for (const [type, schedule] of [
    ["full", settings.fullSchedule],
    ["diff", settings.diffSchedule],
  ] as const) {
    files[`keybuzz-pgbackrest-${type}.service`] = unitFile([
      section("Unit", [
        ["Description", `KeyBuzz pgBackRest ${type} backup of stanza ${settings.stanza}`],
        ["After", "network-online.target keybuzz-pgbackrest-server.service"],
      ]),
      section("Service", [
        ["Type", "oneshot"],
        ["User", "postgres"],
        ["Group", "postgres"],
        ["ExecStart", `${BACKUP_RUN_PATH} ${type}`],
      ]),
    ]);
    files[`keybuzz-pgbackrest-${type}.timer`] = unitFile([
      section("Unit", [["Description", `KeyBuzz pgBackRest ${type} backup schedule`]]),
      section("Timer", [
        ["OnCalendar", schedule],
        ["Persistent", "true"],
        ["RandomizedDelaySec", 60],
      ]),
      section("Install", [["WantedBy", "timers.target"]]),
    ]);
  }
  return { files, enable: ["keybuzz-pgbackrest-server.service", "keybuzz-pgbackrest-full.timer", "keybuzz-pgbackrest-diff.timer"] };
}

/** Variables of the backup wrapper (scripts/pgbackrest/backup-run.sh), baked into the installed file. */
export function renderBackupRunScript(
  settings: PgBackRestSettings,
  paths: RepoHostPaths = DEFAULT_REPO_HOST_PATHS,
  textfileDir = TEXTFILE_DIR,
): string {
  return stepBody("pgbackrest", ["backup-run.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_PGBACKREST_CONFIG: paths.configFile,
      KB_STANZA: settings.stanza,
      KB_LOCK_FILE: path.posix.join(paths.workDir, "backup.flock"),
      KB_TEXTFILE_DIR: textfileDir,
    },
  });
}

/** The Patroni image's pgBackRest pin and backup-01's, from config/versions.yaml. */
export function pgBackRestPins(versions: Versions): { image: string; repoHost: string } {
  return { image: versions.packages.pgbackrest, repoHost: versions.packages.pgbackrestRepoHost };
}

/** The DB node's unit running pgBackRest's TLS server. */
export const DB_NODE_SERVER_UNIT = "keybuzz-pgbackrest-server.service";

/**
 * The DB node's TLS server unit: a container of the node's Patroni image (the pgBackRest that
 * archive_command runs, so both sides speak the same protocol version) as the postgres uid, with
 * the data volume and the config directory (read-only) at the same paths as in the Patroni
 * container. It keeps no state: the unit replaces the container at each start.
 */
export function renderDbNodeServerUnit(
  imageTag: string,
  volumeMount: string,
  configDir: string,
  configFile: string,
  postgresUid: number,
): string {
  const docker = "/usr/bin/docker";
  return unitFile([
    section("Unit", [
      ["Description", "KeyBuzz pgBackRest TLS server (DB node, for backup-01)"],
      ["After", "docker.service"],
      ["Requires", "docker.service"],
    ]),
    section("Service", [
      ["ExecStartPre", `-${docker} rm -f keybuzz-pgbackrest`],
      [
        "ExecStart",
        `${docker} run --rm --name keybuzz-pgbackrest --network host --user ${postgresUid}:${postgresUid} --entrypoint pgbackrest -v ${volumeMount}:${volumeMount} -v ${configDir}:${configDir}:ro ${imageTag} --config=${configFile} server`,
      ],
      ["ExecStop", `${docker} stop -t 30 keybuzz-pgbackrest`],
      ["Restart", "always"],
      ["RestartSec", 5],
    ]),
    section("Install", [["WantedBy", "multi-user.target"]]),
  ]);
}

/** PGDG's apt signing key (https://www.postgresql.org/media/keys/ACCC4CF8.asc), as the official postgres image pins it. */
export const PGDG_KEY_FINGERPRINT = "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8";

/** Body of backup-01's step: pgBackRest installed (pinned), repository, TLS server, timers. */
export function renderRepoHostStepBody(
  repoHost: ClusterNode,
  settings: PgBackRestSettings,
  versions: Versions,
  paths: RepoHostPaths = DEFAULT_REPO_HOST_PATHS,
): string {
  return stepBody("pgbackrest", ["repo-host.sh"], {
    common: ["apt.sh"],
    variables: {
      KB_PGBACKREST_VERSION: pgBackRestPins(versions).repoHost,
      KB_PGDG_KEY_FINGERPRINT: PGDG_KEY_FINGERPRINT,
      KB_PGBACKREST_CONFIG: paths.configFile,
      KB_REPO_PATH: paths.repoPath,
      KB_WORK_DIR: paths.workDir,
      KB_TLS_DIR: path.posix.dirname(paths.tls.ca),
      KB_TEXTFILE_DIR: TEXTFILE_DIR,
      KB_ADDRESS: repoHost.address,
      KB_TLS_PORT: settings.tlsPort,
    },
  });
}

/** Body of a DB node's step: pgBackRest's directories and its TLS server. */
export function renderDbNodeStepBody(
  node: ClusterNode,
  settings: PgBackRestSettings,
  imageTag: string,
  postgresUid: number,
  paths: DbNodePaths = DEFAULT_DB_NODE_PATHS,
): string {
  return stepBody("pgbackrest", ["db-node.sh"], {
    variables: {
      KB_POSTGRES_UID: postgresUid,
      KB_WORK_DIR: paths.workDir,
      KB_PGBACKREST_CONFIG: paths.configFile,
      KB_TLS_DIR: path.posix.dirname(paths.tls.ca),
      KB_UNIT: DB_NODE_SERVER_UNIT,
      KB_ADDRESS: node.address,
      KB_TLS_PORT: settings.tlsPort,
      KB_IMAGE_TAG: imageTag,
    },
  });
}

/**
 * Body of the verification on backup-01: stanza-create, then `pgbackrest check` (its WAL switch
 * must be archived within `archive_timeout` + 60 s), then the repository's status.
 */
export function renderVerifyStepBody(settings: PgBackRestSettings, paths: RepoHostPaths = DEFAULT_REPO_HOST_PATHS): string {
  return stepBody("pgbackrest", ["verify.sh"], {
    variables: {
      KB_PGBACKREST_CONFIG: paths.configFile,
      KB_STANZA: settings.stanza,
      KB_WORK_DIR: paths.workDir,
      KB_CHECK_TIMEOUT: settings.archiveTimeoutSeconds + 60,
    },
  });
}

/** Where every DB node gets keybuzz-postgres-restore. */
export const RESTORE_CLUSTER_PATH = "/usr/local/sbin/keybuzz-postgres-restore";

/** The commands keybuzz-postgres-restore runs on a DB node (production: the Patroni container). */
export interface RestoreClusterCommands {
  /** patronictl (command words; it reads its config file at the host's path). */
  readonly patronictl: string;
  /** python3 with PyYAML, reading its script on stdin, the config directory writable at the host's path. */
  readonly python: string;
  /** Stops Patroni (and so PostgreSQL, cleanly). */
  readonly stop: string;
  /** Starts Patroni with patroni.yml again. */
  readonly start: string;
  /** Starts Patroni with patroni-restore.yml (the custom bootstrap). */
  readonly startRestore: string;
}

/**
 * Production commands: one-off containers of the node's Patroni image for patronictl and python3,
 * and the `patroni` container of the PostgreSQL module's node step (scripts/postgres/patroni-lib.sh,
 * `patroni_recreate`: same options), started with patroni-restore.yml as its argument (the image's
 * ENTRYPOINT is patroni, scripts/patroni/Dockerfile). The next `pulumi up` sees another spec label
 * and recreates it with patroni.yml.
 */
export function productionRestoreClusterCommands(
  imageTag: string,
  paths: { readonly volumeMount: string; readonly configDir: string },
  postgresUid: number,
  nofile: number,
): RestoreClusterCommands {
  const config = `-v ${paths.configDir}:${paths.configDir}`;
  return {
    patronictl: `docker run --rm -i --network host --user ${postgresUid}:${postgresUid} ${config}:ro --entrypoint patronictl ${imageTag}`,
    python: `docker run --rm -i --user 0 ${config} --entrypoint python3 ${imageTag}`,
    stop: "docker stop -t 120 patroni",
    start: "docker start patroni",
    startRestore: [
      "docker rm -f -v patroni >/dev/null &&",
      "docker run -d --name patroni --network host --restart unless-stopped --shm-size 1g --stop-timeout 120",
      `--log-opt max-size=50m --log-opt max-file=5 --ulimit nofile=${nofile}:${nofile}`,
      `-v ${paths.volumeMount}:${paths.volumeMount} ${config}:ro ${imageTag} ${path.posix.join(paths.configDir, "patroni-restore.yml")} >/dev/null`,
    ].join(" "),
  };
}

/** Inputs of {@link renderRestoreClusterScript}. */
export interface RestoreClusterInput {
  readonly settings: PgBackRestSettings;
  /** Patroni's scope (`PATRONI_SCOPE`). */
  readonly scope: string;
  /** The PostgreSQL module's paths on the node: patroni.yml's directory, PGDATA, the WAL directory. */
  readonly paths: { readonly configDir: string; readonly dataDir: string; readonly walDir: string };
  /** `uid:gid` of PostgreSQL's files. */
  readonly owner: string;
  /** The node's pgbackrest.conf. */
  readonly pgbackrestConfig: string;
  readonly commands: RestoreClusterCommands;
}

/** keybuzz-postgres-restore (scripts/pgbackrest/restore-cluster.sh), the in-cluster restore of a DB node. */
export function renderRestoreClusterScript(input: RestoreClusterInput): string {
  return stepBody("pgbackrest", ["restore-cluster.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_CONFIG_DIR: input.paths.configDir,
      KB_DATA_DIR: input.paths.dataDir,
      KB_WAL_DIR: input.paths.walDir,
      KB_OWNER: input.owner,
      KB_PGBACKREST_CONFIG: input.pgbackrestConfig,
      KB_STANZA: input.settings.stanza,
      KB_SCOPE: input.scope,
      KB_PATRONICTL: input.commands.patronictl,
      KB_PYTHON: input.commands.python,
      KB_STOP: input.commands.stop,
      KB_START: input.commands.start,
      KB_START_RESTORE: input.commands.startRestore,
    },
  });
}
