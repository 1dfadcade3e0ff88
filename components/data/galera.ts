import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { z } from "zod";
import { ClusterNode, clusterNodes, ConfigError, formatZodError, Inventory, lockedImage, serversOf, Versions } from "../../config";
import { ACCOUNTS } from "../security/secrets";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../lib/remote";
import { CONTAINER_NOFILE, imagePull, renderLockedImagePull } from "../lib/container";

/**
 * MariaDB Galera (spec 001, module 7; DESIGN.md decisions): three nodes running the official pinned
 * `mariadb:10.11.x` image (Galera 4 inside) on the host network, the XFS volume as datadir,
 * `mariabackup` SST through a dedicated user, bootstrapped exactly once.
 */

const SCRIPTS = path.join(__dirname, "..", "..", "scripts", "galera");

/** keybuzz-galera, the node-local helper (scripts/galera/galera-node.sh) installed on each node. */
export const GALERA_NODE_SCRIPT = fs.readFileSync(path.join(SCRIPTS, "galera-node.sh"), "utf8");

/**
 * keybuzz-galera-start (scripts/galera/galera-start.sh), the container's entry point: after an
 * unclean stop it passes the position InnoDB recovered, so the node rejoins by IST, not SST.
 */
export const GALERA_START_SCRIPT = fs.readFileSync(path.join(SCRIPTS, "galera-start.sh"), "utf8");
/** Where the entry point lands on the hosts (mounted read-only into the container). */
export const GALERA_START_SCRIPT_PATH = "/usr/local/sbin/keybuzz-galera-start";

/** Where the helper lands on the hosts, and where it reads its settings. */
export const GALERA_HELPER_PATH = "/usr/local/sbin/keybuzz-galera";
/** keybuzz-galera's settings file, rendered by {@link renderGaleraEnv}. */
export const GALERA_ENV_PATH = "/etc/keybuzz/galera.env";

/** Keys of the secret placeholders in the Galera files. */
export const GALERA_SECRET_KEYS = { root: "mariadb-root", app: "mariadb-app", sst: "mariadb-sst", monitor: "mariadb-monitor" } as const;

/** uid:gid of `mysql` in the official image: the server must read the SST file it is given. */
const MYSQL_OWNER = "999:999";

/** One Galera node: its name is `wsrep_node_name`; the server, replication, IST and SST bind its address. */
export type GaleraNode = ClusterNode;

/** Server settings of my.cnf; addresses and paths are inputs so loopback tests reuse the render. */
export interface GaleraServerSettings {
  /** `wsrep_cluster_name` (spec 001, module 7: `keybuzz-galera`). */
  readonly clusterName: string;
  /** Client port, TCP (3306). */
  readonly port: number;
  /** Galera group communication port, TCP (4567). */
  readonly galeraPort: number;
  /** Incremental state transfer port, TCP (4568). */
  readonly istPort: number;
  /** State snapshot transfer port, TCP (4444). */
  readonly sstPort: number;
  /** `datadir` as the server sees it (`/var/lib/mysql` inside the container). */
  readonly datadir: string;
  /** Unix socket path as the server sees it. */
  readonly socket: string;
  /** Galera 4 library (`/usr/lib/galera/libgalera_smm.so` in the image and in Debian's galera-4). */
  readonly providerPath: string;
  /** `innodb_buffer_pool_size` (spec 001, module 7: `1G`). */
  readonly innodbBufferPoolSize: string;
  /** `innodb_log_file_size` (spec: `256M`). */
  readonly innodbLogFileSize: string;
  /** Galera write-set cache (`gcache.size`): a node down for longer than it covers needs a full SST. */
  readonly gcacheSize: string;
  /** `max_connections`: above both ProxySQL nodes' per-backend limits plus monitor and admin. */
  readonly maxConnections: number;
}

/** Production defaults of {@link GaleraServerSettings} (spec 001, module 7). */
export const DEFAULT_GALERA_SERVER_SETTINGS: GaleraServerSettings = {
  clusterName: "keybuzz-galera",
  port: 3306,
  galeraPort: 4567,
  istPort: 4568,
  sstPort: 4444,
  datadir: "/var/lib/mysql",
  socket: "/run/mysqld/mysqld.sock",
  providerPath: "/usr/lib/galera/libgalera_smm.so",
  innodbBufferPoolSize: "1G",
  innodbLogFileSize: "256M",
  gcacheSize: "2G",
  maxConnections: 500,
};

/** Host-side paths and timings of a node (keybuzz-galera's environment). */
export interface GaleraHostSettings {
  /** Mount point of the XFS volume, mounted as the container's datadir (spec: /opt/keybuzz/mariadb/data). */
  readonly dataDir: string;
  /** Holds my.cnf and sst-auth.cnf (spec: /opt/keybuzz/mariadb/config). */
  readonly configDir: string;
  /** Root-only directory of the secret files (root password, client option file, accounts SQL). */
  readonly secretDir: string;
  /** Where keybuzz-galera records how it started the node (`bootstrap|member <spec hash>`). */
  readonly stateFile: string;
  /** Docker container name. */
  readonly container: string;
  /** Upper bound to reach Synced (a full SST of a large datadir takes a while), seconds. */
  readonly syncTimeoutSeconds: number;
}

/** Production defaults of {@link GaleraHostSettings}. */
export const DEFAULT_GALERA_HOST_SETTINGS: GaleraHostSettings = {
  dataDir: "/opt/keybuzz/mariadb/data",
  configDir: "/opt/keybuzz/mariadb/config",
  secretDir: "/opt/keybuzz/mariadb/secrets",
  stateFile: "/opt/keybuzz/mariadb/started-as",
  container: "mariadb",
  syncTimeoutSeconds: 1800,
};

const sizePattern = /^\d+[KMG]$/;
const settingsSchema = z
  .strictObject({
    /** `innodb_buffer_pool_size`, e.g. `1G` (spec) or about half the RAM of a dedicated node. */
    innodbBufferPoolSize: z.string().regex(sizePattern, "must be a size such as 1G or 512M").default("1G"),
    /** Galera `gcache.size`, e.g. `2G`: the writes a node may miss and still rejoin by IST. */
    gcacheSize: z.string().regex(sizePattern, "must be a size such as 2G").default("2G"),
    /** `max_connections` of each node. */
    maxConnections: z.number().int().min(100).max(10000).default(500),
    /** Upper bound to reach Synced after a (re)start, seconds. */
    syncTimeoutSeconds: z.number().int().min(60).max(14400).default(1800),
  })
  .default({ innodbBufferPoolSize: "1G", gcacheSize: "2G", maxConnections: 500, syncTimeoutSeconds: 1800 });

/** Operator-tunable settings, stack config `keybuzz:galera` (optional). */
export type GaleraStackSettings = z.infer<typeof settingsSchema>;

/** Validates raw `keybuzz:galera` data (undefined = defaults). @throws {ConfigError} naming the bad key. */
export function parseGaleraSettings(raw: unknown): GaleraStackSettings {
  const parsed = settingsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:galera."));
  return parsed.data;
}

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
  return `# KeyBuzz MariaDB Galera node ${node.name} (rendered by components/data/galera.ts; do not edit)
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
}

/** Default {@link GaleraAccounts}: `erpnext` user and database, `sst`, `monitor`. */
export const DEFAULT_GALERA_ACCOUNTS: GaleraAccounts = {
  appUser: ACCOUNTS.mariadbApp,
  appDatabase: "erpnext",
  sstUser: ACCOUNTS.mariadbSst,
  monitorUser: ACCOUNTS.mariadbMonitor,
};

/**
 * SQL that creates (or updates) the database and accounts, idempotent: `IF NOT EXISTS`, then
 * `ALTER USER` so a rotated password is applied. Passwords are placeholders. Replicated by Galera
 * to every node. Pure.
 */
export function renderAccountsSql(accounts: GaleraAccounts = DEFAULT_GALERA_ACCOUNTS): string {
  const user = (name: string, host: string, key: string) =>
    `CREATE USER IF NOT EXISTS '${name}'@'${host}' IDENTIFIED BY '${secretRef(key)}';\nALTER USER '${name}'@'${host}' IDENTIFIED BY '${secretRef(key)}';`;
  return `-- KeyBuzz MariaDB accounts (rendered by components/data/galera.ts)
CREATE DATABASE IF NOT EXISTS \`${accounts.appDatabase}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
${user(accounts.appUser, "%", GALERA_SECRET_KEYS.app)}
GRANT ALL PRIVILEGES ON \`${accounts.appDatabase}\`.* TO '${accounts.appUser}'@'%';
-- mariabackup SST: connects locally on the donor.
${user(accounts.sstUser, "localhost", GALERA_SECRET_KEYS.sst)}
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '${accounts.sstUser}'@'localhost';
-- ProxySQL health checks: USAGE only (DESIGN.md).
${user(accounts.monitorUser, "%", GALERA_SECRET_KEYS.monitor)}
GRANT USAGE ON *.* TO '${accounts.monitorUser}'@'%';
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
 * /etc/keybuzz/galera.env: keybuzz-galera's settings. Each line keeps a value already set in the
 * environment, so tests and operators can override any of them. Pure.
 */
export function renderGaleraEnv(input: GaleraEnvInput): string {
  const server = input.server ?? DEFAULT_GALERA_SERVER_SETTINGS;
  const host = input.host ?? DEFAULT_GALERA_HOST_SETTINGS;
  const peers = input.members.filter((member) => member.name !== input.node.name).map((member) => `${member.address}:${server.galeraPort}`);
  const values: Record<string, string> = {
    GALERA_NODE_NAME: input.node.name,
    GALERA_IMAGE: imagePull(input.image).run,
    GALERA_NOFILE: String(CONTAINER_NOFILE.mariadb),
    GALERA_CONTAINER: host.container,
    GALERA_DATADIR: host.dataDir,
    GALERA_CONFDIR: host.configDir,
    GALERA_SECRETDIR: host.secretDir,
    GALERA_STATE_FILE: host.stateFile,
    GALERA_PEERS: peers.join(" "),
    GALERA_CLUSTER_SIZE: String(input.members.length),
    GALERA_SYNC_TIMEOUT: String(host.syncTimeoutSeconds),
  };
  const lines = Object.entries(values).map(([key, value]) => `${key}="\${${key}:-${value}}"`);
  return `# keybuzz-galera settings for ${input.node.name} (rendered by components/data/galera.ts)\n${lines.join("\n")}\n`;
}

/**
 * Step body that mounts the node's Hetzner volume (XFS, `noatime`, by its stable
 * `/dev/disk/by-id/scsi-0HC_Volume_*` link) at `dataDir` through /etc/fstab. The node has exactly
 * one volume; the step refuses otherwise. Pure.
 */
export function renderVolumeMountScript(host: GaleraHostSettings = DEFAULT_GALERA_HOST_SETTINGS): string {
  return `mount_point=${host.dataDir}
devices=()
for _ in $(seq 1 60); do
  mapfile -t devices < <(compgen -G '/dev/disk/by-id/scsi-0HC_Volume_*' || true)
  if [ "\${#devices[@]}" -gt 0 ]; then break; fi
  sleep 2
done
if [ "\${#devices[@]}" -ne 1 ]; then
  echo "expected exactly one Hetzner volume on this node, found \${#devices[@]}: \${devices[*]:-none}" >&2
  exit 1
fi
device=\${devices[0]}
fstype=$(blkid -o value -s TYPE "$device" || true)
if [ -z "$fstype" ]; then
  mkfs.xfs -q "$device"
elif [ "$fstype" != xfs ]; then
  echo "$device holds a $fstype file system, expected xfs; refusing to touch it" >&2
  exit 1
fi
install -d -m 0755 "$mount_point"
entry="$device $mount_point xfs defaults,noatime,nofail 0 2"
if ! grep -qxF "$entry" /etc/fstab; then
  grep -v "[[:space:]]\${mount_point}[[:space:]]" /etc/fstab >/etc/fstab.keybuzz || true
  echo "$entry" >>/etc/fstab.keybuzz
  mv -f /etc/fstab.keybuzz /etc/fstab
  systemctl daemon-reload
fi
mountpoint -q "$mount_point" || mount "$mount_point"
install -d -m 0755 ${host.configDir}
install -d -m 0700 ${host.secretDir}`;
}

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

/** Arguments of {@link GaleraCluster}. */
export interface GaleraClusterArgs {
  readonly inventory: Inventory;
  /** `images.mariadb`: official `mariadb:10.11.x` (DESIGN.md decisions). */
  readonly versions: Versions;
  /** Every server by inventory name (`ServerFleet.hosts`); the `mariadb` group is used. */
  readonly hosts: Readonly<Record<string, Host>>;
  /** XFS data volumes by inventory name (`ServerFleet.volumes`); a replaced volume re-runs the mount. */
  readonly volumes: Readonly<Record<string, hcloud.Volume>>;
  /** Verified base OS per host (`BaseOs.ready`); each node's first step waits for it. */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
  /** Passwords (`PlatformSecrets.mariadb`): root, app (`erpnext`), SST, ProxySQL monitor. */
  readonly passwords: {
    readonly root: pulumi.Input<string>;
    readonly app: pulumi.Input<string>;
    readonly sst: pulumi.Input<string>;
    readonly monitor: pulumi.Input<string>;
  };
  /** `keybuzz:galera` settings; defaults when omitted. */
  readonly settings?: GaleraStackSettings;
}

/**
 * The Galera cluster. Order of steps: every node mounts its volume; the first node (inventory order)
 * converges with role `first` — it bootstraps a new cluster only when it has no data and no peer
 * answers — and applies the accounts; the other nodes join one at a time, each waiting until Synced;
 * then the first node, if it still runs as the bootstrap node, is restarted as an ordinary member;
 * finally every node is verified (Synced, Primary, `wsrep_cluster_size` = node count).
 * A configuration change re-runs the same chain: a rolling restart, one node at a time.
 */
export class GaleraCluster extends pulumi.ComponentResource {
  /** Nodes and addresses, inventory order. */
  public readonly nodes: readonly GaleraNode[];
  /** The verification steps; ProxySQL waits for them. */
  public readonly verified: readonly pulumi.Resource[];

  constructor(name: string, args: GaleraClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:GaleraCluster", name, {}, opts);
    const specs = serversOf(args.inventory, "mariadb");
    if (specs.length === 0)
      throw new ConfigError(["keybuzz:servers: no server with role db / subrole mariadb; the Galera cluster needs them"]);
    const stackSettings = args.settings ?? parseGaleraSettings(undefined);
    const server: GaleraServerSettings = {
      ...DEFAULT_GALERA_SERVER_SETTINGS,
      innodbBufferPoolSize: stackSettings.innodbBufferPoolSize,
      gcacheSize: stackSettings.gcacheSize,
      maxConnections: stackSettings.maxConnections,
    };
    const host: GaleraHostSettings = { ...DEFAULT_GALERA_HOST_SETTINGS, syncTimeoutSeconds: stackSettings.syncTimeoutSeconds };
    const members: GaleraNode[] = clusterNodes(specs);
    const secrets = {
      [GALERA_SECRET_KEYS.root]: args.passwords.root,
      [GALERA_SECRET_KEYS.app]: args.passwords.app,
      [GALERA_SECRET_KEYS.sst]: args.passwords.sst,
      [GALERA_SECRET_KEYS.monitor]: args.passwords.monitor,
    };
    const timeoutMinutes = Math.ceil(host.syncTimeoutSeconds / 60) + 15;

    const missing = members.filter((node) => args.volumes[node.name] === undefined).map((node) => node.name);
    if (missing.length > 0)
      throw new ConfigError([`keybuzz:servers: ${missing.join(", ")} need volumeSizeGb (the Galera datadir is an XFS volume)`]);
    const mounts = Object.fromEntries(
      members.map((node) => [
        node.name,
        remoteStep(
          `${name}-${node.name}-volume`,
          {
            host: args.hosts[node.name],
            script: renderVolumeMountScript(host),
            timeoutMinutes: 10,
            triggers: [args.volumes[node.name].id],
          },
          { parent: this, dependsOn: [args.ready[node.name]] },
        ),
      ]),
    );

    const [first, ...joiners] = members;
    const image = lockedImage(args.versions, "mariadb");
    const filesOf = (node: GaleraNode, withAccounts: boolean) => galeraNodeFiles({ node, members, image, server, host }, withAccounts);
    let previous: pulumi.Resource = remoteStep(
      `${name}-${first.name}-bootstrap`,
      {
        host: args.hosts[first.name],
        files: filesOf(first, true),
        script: `${renderLockedImagePull(image)}${GALERA_HELPER_PATH} converge first\n${GALERA_HELPER_PATH} apply-sql ${host.secretDir}/accounts.sql`,
        secrets,
        timeoutMinutes,
      },
      { parent: this, dependsOn: [mounts[first.name]] },
    );
    for (const node of joiners) {
      previous = remoteStep(
        `${name}-${node.name}-join`,
        {
          host: args.hosts[node.name],
          files: filesOf(node, false),
          script: `${renderLockedImagePull(image)}${GALERA_HELPER_PATH} converge member`,
          secrets,
          timeoutMinutes,
        },
        { parent: this, dependsOn: [mounts[node.name], previous] },
      );
    }
    const finalize = remoteStep(
      `${name}-${first.name}-finalize`,
      { host: args.hosts[first.name], script: `${GALERA_HELPER_PATH} finalize`, timeoutMinutes },
      { parent: this, dependsOn: [previous] },
    );
    // Re-verify whenever anything rendered for the cluster changes.
    const fingerprint = sha256(JSON.stringify(members.map((node) => filesOf(node, node === first).map((file) => file.content))));
    this.verified = members.map((node) =>
      remoteStep(
        `${name}-${node.name}-verify`,
        { host: args.hosts[node.name], script: `${GALERA_HELPER_PATH} verify`, timeoutMinutes: 5, triggers: [fingerprint] },
        { parent: this, dependsOn: [finalize] },
      ),
    );
    this.nodes = members;
    this.registerOutputs({ nodes: this.nodes });
  }
}
