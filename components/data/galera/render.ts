import type { ClusterNode } from "../../../config";
import { ACCOUNTS } from "../../security/secrets";
import { CONTAINER_NOFILE, imagePull, renderLockedImagePull } from "../../lib/container";
import { HostFile, secretRef } from "../../lib/remote";
import { hostScript, stepBody } from "../../lib/scripts";
import { DEFAULT_GALERA_HOST_SETTINGS, DEFAULT_GALERA_SERVER_SETTINGS, GaleraHostSettings, GaleraServerSettings } from "./settings";

/**
 * MariaDB Galera (spec 001, module 7; DESIGN.md decisions): three nodes running the official pinned
 * `mariadb:10.11.x` image (Galera 4 inside) on the host network, the XFS volume as datadir,
 * `mariabackup` SST through a dedicated user, bootstrapped exactly once.
 */

/** keybuzz-galera, the node-local helper (scripts/galera/galera-node.sh) installed on each node. */
export const GALERA_NODE_SCRIPT = hostScript("galera", "galera-node.sh");

/**
 * keybuzz-galera-start (scripts/galera/galera-start.sh), the container's entry point: after an
 * unclean stop it passes the position InnoDB recovered, so the node rejoins by IST, not SST.
 */
export const GALERA_START_SCRIPT = hostScript("galera", "galera-start.sh");
/** Where the entry point lands on the hosts (mounted read-only into the container). */
export const GALERA_START_SCRIPT_PATH = "/usr/local/sbin/keybuzz-galera-start";

/** Where the helper lands on the hosts, and where it reads its settings. */
export const GALERA_HELPER_PATH = "/usr/local/sbin/keybuzz-galera";
/** keybuzz-galera's settings file, rendered by {@link renderGaleraEnv}. */
export const GALERA_ENV_PATH = "/etc/keybuzz/galera.env";

/** Keys of the secret placeholders in the Galera files. */
export const GALERA_SECRET_KEYS = {
  root: "mariadb-root",
  app: "mariadb-app",
  sst: "mariadb-sst",
  monitor: "mariadb-monitor",
  exporter: "mariadb-exporter",
} as const;

/**
 * The renderer named in the rendered files' headers. It stays the pre-folder path: my.cnf is part
 * of each node's spec hash, so a new header would restart every Galera node for a comment.
 */
const RENDERED_BY = "components/data/galera.ts";

/** uid:gid of `mysql` in the official image: the server must read the SST file it is given. */
export const MYSQL_OWNER = "999:999";

/** One Galera node: its name is `wsrep_node_name`; the server, replication, IST and SST bind its address. */
export type GaleraNode = ClusterNode;

/** `gcomm://` address of the cluster: every member's Galera address, inventory order. Pure. */
export function galeraClusterAddress(
  members: readonly GaleraNode[],
  settings: GaleraServerSettings = DEFAULT_GALERA_SERVER_SETTINGS,
): string {
  return `gcomm://${members.map((member) => `${member.address}:${settings.galeraPort}`).join(",")}`;
}

/**
 * my.cnf of one node (spec 001, module 7, with the SST credentials moved to {@link renderSstAuthCnf}
 * so this file holds no secret). Pure.
 */
export function renderGaleraCnf(
  node: GaleraNode,
  members: readonly GaleraNode[],
  settings: GaleraServerSettings = DEFAULT_GALERA_SERVER_SETTINGS,
): string {
  const providerOptions = [
    `gmcast.listen_addr=tcp://${node.address}:${settings.galeraPort}`,
    `ist.recv_addr=${node.address}:${settings.istPort}`,
    `gcache.size=${settings.gcacheSize}`,
    // After a simultaneous loss of every node, the last primary component re-forms by itself.
    "pc.recovery=TRUE",
  ].join(";");
  return `# KeyBuzz MariaDB Galera node ${node.name} (rendered by ${RENDERED_BY}; do not edit)
[mysqld]
bind-address = ${node.address}
port = ${settings.port}
datadir = ${settings.datadir}
socket = ${settings.socket}
skip-name-resolve
max_connections = ${settings.maxConnections}
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci

# Galera
wsrep_on = ON
wsrep_provider = ${settings.providerPath}
wsrep_cluster_name = ${settings.clusterName}
wsrep_cluster_address = ${galeraClusterAddress(members, settings)}
wsrep_node_name = ${node.name}
wsrep_node_address = ${node.address}:${settings.galeraPort}
wsrep_sst_method = mariabackup
wsrep_sst_receive_address = ${node.address}:${settings.sstPort}
wsrep_provider_options = "${providerOptions}"

# Performance
innodb_buffer_pool_size = ${settings.innodbBufferPoolSize}
innodb_log_file_size = ${settings.innodbLogFileSize}
innodb_flush_log_at_trx_commit = 2
innodb_flush_method = O_DIRECT

# Replication
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
`;
}

/** The SST credentials (`wsrep_sst_auth`), read by the server only; secret placeholder. Pure. */
export function renderSstAuthCnf(sstUser: string = ACCOUNTS.mariadbSst): string {
  return `[mysqld]\nwsrep_sst_auth = ${sstUser}:${secretRef(GALERA_SECRET_KEYS.sst)}\n`;
}

/** Client option file for root over the local socket (keybuzz-galera's SQL). Pure. */
export function renderRootClientCnf(): string {
  return `[client]\nuser = root\npassword = ${secretRef(GALERA_SECRET_KEYS.root)}\n`;
}

/** The accounts every node needs (names from ACCOUNTS, spec 001 module 7 and DESIGN.md). */
export interface GaleraAccounts {
  readonly appUser: string;
  readonly appDatabase: string;
  readonly sstUser: string;
  readonly monitorUser: string;
  readonly exporterUser: string;
}

/** Default {@link GaleraAccounts}: `erpnext` user and database, `sst`, `monitor`, `exporter`. */
export const DEFAULT_GALERA_ACCOUNTS: GaleraAccounts = {
  appUser: ACCOUNTS.mariadbApp,
  appDatabase: "erpnext",
  sstUser: ACCOUNTS.mariadbSst,
  monitorUser: ACCOUNTS.mariadbMonitor,
  exporterUser: ACCOUNTS.mariadbExporter,
};

/**
 * SQL that creates (or updates) the database and accounts, idempotent: `IF NOT EXISTS`, then
 * `ALTER USER` so a rotated password is applied. Passwords are placeholders. Replicated by Galera
 * to every node. Pure.
 */
export function renderAccountsSql(accounts: GaleraAccounts = DEFAULT_GALERA_ACCOUNTS): string {
  const user = (name: string, host: string, key: string) =>
    `CREATE USER IF NOT EXISTS '${name}'@'${host}' IDENTIFIED BY '${secretRef(key)}';\nALTER USER '${name}'@'${host}' IDENTIFIED BY '${secretRef(key)}';`;
  return `-- KeyBuzz MariaDB accounts (rendered by ${RENDERED_BY})
CREATE DATABASE IF NOT EXISTS \`${accounts.appDatabase}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
${user(accounts.appUser, "%", GALERA_SECRET_KEYS.app)}
GRANT ALL PRIVILEGES ON \`${accounts.appDatabase}\`.* TO '${accounts.appUser}'@'%';
-- mariabackup SST: connects locally on the donor.
${user(accounts.sstUser, "localhost", GALERA_SECRET_KEYS.sst)}
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '${accounts.sstUser}'@'localhost';
-- ProxySQL health checks: USAGE only (DESIGN.md).
${user(accounts.monitorUser, "%", GALERA_SECRET_KEYS.monitor)}
GRANT USAGE ON *.* TO '${accounts.monitorUser}'@'%';
-- mysqld_exporter (docs/monitoring.md): its README's PROCESS and REPLICATION CLIENT, plus SLAVE MONITOR
-- (MariaDB 10.5+ checks it for SHOW SLAVE STATUS, a default collector); no SELECT: no default collector
-- reads a table, and SELECT ON *.* would read ERPNext's data.
${user(accounts.exporterUser, "%", GALERA_SECRET_KEYS.exporter)}
ALTER USER '${accounts.exporterUser}'@'%' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '${accounts.exporterUser}'@'%';
`;
}

/** Everything keybuzz-galera needs to know about one node. */
export interface GaleraEnvInput {
  readonly node: GaleraNode;
  readonly members: readonly GaleraNode[];
  /** Pinned image (`images.mariadb`), `tag@sha256:…` when the digest lock pins it (`lockedImage`). */
  readonly image: string;
  readonly server?: GaleraServerSettings;
  readonly host?: GaleraHostSettings;
}

/**
 * Lines `NAME="${NAME:-value}"` of a file that a script sources: each keeps a value already set in
 * the environment, so an operator (or a test) can override one for a single run of the script.
 * Pure.
 *
 * @throws Error when a name is not a shell identifier or a value holds a character the shell would
 *   expand or end the word at (`$`, backquote, `"`, `\`, `}`): the rendered values are inventory
 *   names, addresses, image references and paths, so such a value is a bug.
 */
export function renderEnvDefaults(values: Readonly<Record<string, string | number>>): string {
  return Object.entries(values)
    .map(([name, value]) => {
      const text = String(value);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`env file: "${name}" is not a shell identifier`);
      if (/[$`"\\}\n]/.test(text)) throw new Error(`env file: the value of ${name} holds a character the shell would expand: ${text}`);
      return `${name}="\${${name}:-${text}}"`;
    })
    .join("\n");
}

/**
 * /etc/keybuzz/galera.env: keybuzz-galera's settings. keybuzz-galera sources it at every run (the
 * steps', an operator's, recover.sh's over SSH), so it is a file on the host rather than a step
 * preamble; each line keeps a value already set in the environment ({@link renderEnvDefaults}).
 * Pure.
 */
export function renderGaleraEnv(input: GaleraEnvInput): string {
  const server = input.server ?? DEFAULT_GALERA_SERVER_SETTINGS;
  const host = input.host ?? DEFAULT_GALERA_HOST_SETTINGS;
  const peers = input.members.filter((member) => member.name !== input.node.name).map((member) => `${member.address}:${server.galeraPort}`);
  const lines = renderEnvDefaults({
    GALERA_NODE_NAME: input.node.name,
    GALERA_IMAGE: imagePull(input.image).run,
    GALERA_NOFILE: CONTAINER_NOFILE.mariadb,
    GALERA_CONTAINER: host.container,
    GALERA_DATADIR: host.dataDir,
    GALERA_CONFDIR: host.configDir,
    GALERA_SECRETDIR: host.secretDir,
    GALERA_STATE_FILE: host.stateFile,
    GALERA_PEERS: peers.join(" "),
    GALERA_CLUSTER_SIZE: input.members.length,
    GALERA_SYNC_TIMEOUT: host.syncTimeoutSeconds,
  });
  return `# keybuzz-galera settings for ${input.node.name} (rendered by ${RENDERED_BY})\n${lines}\n`;
}

/**
 * Body of a node's volume step: the Hetzner volume mounted as the datadir by `kb_xfs_volume`
 * (scripts/common/xfs-volume.sh: XFS, `noatime`, /etc/fstab by file-system UUID), then the config
 * and secret directories (scripts/galera/volume.sh). Pure.
 */
export function renderVolumeStep(host: GaleraHostSettings = DEFAULT_GALERA_HOST_SETTINGS): string {
  return stepBody("galera", ["volume.sh"], {
    variables: { KB_DATA_DIR: host.dataDir, KB_CONFIG_DIR: host.configDir, KB_SECRET_DIR: host.secretDir },
    common: ["xfs-volume.sh"],
  });
}

/**
 * Body of a node's converge step: the locked image's tag pointed at its digest (when locked), then
 * keybuzz-galera `converge first` (may bootstrap a new cluster, then applies the accounts SQL) or
 * `converge member`. Pure.
 */
export function renderConvergeStep(
  image: string,
  role: "first" | "member",
  host: GaleraHostSettings = DEFAULT_GALERA_HOST_SETTINGS,
): string {
  const accounts = role === "first" ? `\n${GALERA_HELPER_PATH} apply-sql ${host.secretDir}/accounts.sql` : "";
  return `${renderLockedImagePull(image)}${GALERA_HELPER_PATH} converge ${role}${accounts}`;
}

/** Body of the step that restarts the bootstrap node as an ordinary member (`keybuzz-galera finalize`). */
export const FINALIZE_STEP = `${GALERA_HELPER_PATH} finalize`;
/** Body of a node's verification step (`keybuzz-galera verify`: Synced, Primary, full cluster size). */
export const VERIFY_STEP = `${GALERA_HELPER_PATH} verify`;

/**
 * The digest a locked image was pulled by, as a comment line of my.cnf, else nothing: keybuzz-galera
 * hashes my.cnf into the node's spec, so a new digest restarts the node through the normal roll.
 */
function lockedImageComment(image: string): string {
  const { pull, run } = imagePull(image);
  return pull === run ? "" : `# Image: ${pull} (config/versions.lock.yaml), run as ${run}.\n`;
}

/** The files of one node; the accounts SQL only where it is applied (the first node). Pure. */
export function galeraNodeFiles(
  input: GaleraEnvInput,
  withAccounts: boolean,
  accounts: GaleraAccounts = DEFAULT_GALERA_ACCOUNTS,
): HostFile[] {
  const server = input.server ?? DEFAULT_GALERA_SERVER_SETTINGS;
  const host = input.host ?? DEFAULT_GALERA_HOST_SETTINGS;
  const files: HostFile[] = [
    { path: GALERA_HELPER_PATH, content: GALERA_NODE_SCRIPT, mode: "0755" },
    { path: GALERA_START_SCRIPT_PATH, content: GALERA_START_SCRIPT, mode: "0755" },
    { path: GALERA_ENV_PATH, content: renderGaleraEnv(input) },
    { path: `${host.configDir}/my.cnf`, content: renderGaleraCnf(input.node, input.members, server) + lockedImageComment(input.image) },
    { path: `${host.configDir}/sst-auth.cnf`, content: renderSstAuthCnf(accounts.sstUser), mode: "0600", owner: MYSQL_OWNER },
    // Read by the image's entrypoint (MARIADB_ROOT_PASSWORD_FILE) on first start, possibly as mysql.
    { path: `${host.secretDir}/root-password`, content: secretRef(GALERA_SECRET_KEYS.root), mode: "0600", owner: MYSQL_OWNER },
    { path: `${host.secretDir}/client.cnf`, content: renderRootClientCnf(), mode: "0600" },
  ];
  if (withAccounts) files.push({ path: `${host.secretDir}/accounts.sql`, content: renderAccountsSql(accounts), mode: "0600" });
  return files;
}
