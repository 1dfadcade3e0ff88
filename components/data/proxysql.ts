import * as pulumi from "@pulumi/pulumi";
import { ConfigError, Inventory, lockedImage, serversOf, Versions } from "../../config";
import { ACCOUNTS } from "../security/secrets";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../lib/remote";
import { CONTAINER_NOFILE, imagePull, renderImagePull, renderLockedImagePull } from "../lib/container";

/**
 * ProxySQL in front of Galera (spec 001, module 8; DESIGN.md decisions): `mysql_galera_hostgroups`
 * with one writer, the backup writers as readers, a `USAGE`-only monitor user, listening on
 * `0.0.0.0:3306` behind the internal load balancer 10.0.0.20 (never on the LB IP), admin on
 * localhost only. Both nodes get the identical rendered proxysql.cnf (see docs/proxysql.md).
 */

/** Keys of the secret placeholders in the ProxySQL files. */
export const PROXYSQL_SECRET_KEYS = { admin: "proxysql-admin", app: "mariadb-app", monitor: "mariadb-monitor" } as const;

/** The Galera hostgroups (ProxySQL `mysql_galera_hostgroups`). */
export interface GaleraHostgroups {
  /** Receives every write (and SELECT … FOR UPDATE); `max_writers = 1` keeps one node in it. */
  readonly writer: number;
  /** Writer candidates beyond `max_writers`. */
  readonly backupWriter: number;
  /** Plain SELECTs; with `writer_is_also_reader = 2` it holds the backup writers. */
  readonly reader: number;
  /** Nodes that are not Synced or not in the primary component. */
  readonly offline: number;
}

/** One Galera backend of ProxySQL. */
export interface ProxySqlBackend {
  /** Inventory name, kept as the server's comment. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /**
   * Writer preference: every ProxySQL picks the writer by the same fixed order (weight, then
   * hostname, then port), so both nodes agree on the single writer without talking to each other.
   */
  readonly weight: number;
}

/** Settings of proxysql.cnf; addresses and ports are inputs so loopback tests reuse the render. */
export interface ProxySqlSettings {
  /** Client interface (DESIGN.md: `0.0.0.0`, never the load balancer IP). */
  readonly listenAddress: string;
  readonly port: number;
  /** Admin interface: localhost only. */
  readonly adminAddress: string;
  readonly adminPort: number;
  /** ProxySQL datadir as the process sees it. */
  readonly datadir: string;
  readonly hostgroups: GaleraHostgroups;
  /** Connections ProxySQL opens to one backend (spec: 100). */
  readonly maxConnectionsPerBackend: number;
  /** A node more write-sets behind than this leaves the reader hostgroup. */
  readonly maxTransactionsBehind: number;
  /** Worker threads (spec: 4). */
  readonly threads: number;
}

/** Production defaults of {@link ProxySqlSettings}. */
export const DEFAULT_PROXYSQL_SETTINGS: ProxySqlSettings = {
  listenAddress: "0.0.0.0",
  port: 3306,
  adminAddress: "127.0.0.1",
  adminPort: 6032,
  datadir: "/var/lib/proxysql",
  hostgroups: { writer: 10, backupWriter: 20, reader: 30, offline: 40 },
  maxConnectionsPerBackend: 100,
  maxTransactionsBehind: 100,
  threads: 4,
};

/** Account names used in proxysql.cnf. */
export interface ProxySqlAccounts {
  readonly adminUser: string;
  readonly appUser: string;
  readonly monitorUser: string;
}

/** Default {@link ProxySqlAccounts} (ACCOUNTS). */
export const DEFAULT_PROXYSQL_ACCOUNTS: ProxySqlAccounts = {
  adminUser: ACCOUNTS.proxysqlAdmin,
  appUser: ACCOUNTS.mariadbApp,
  monitorUser: ACCOUNTS.mariadbMonitor,
};

/**
 * The version ProxySQL announces to clients, matching the MariaDB behind it: `10.11.14-MariaDB`
 * for `mariadb:10.11.14`. Pure.
 *
 * @throws {ConfigError} when the image tag carries no x.y.z version.
 */
export function mariadbServerVersion(image: string): string {
  const match = /:(\d+\.\d+\.\d+)/.exec(image);
  if (!match)
    throw new ConfigError([`versions.yaml: images.mariadb: ${image} has no x.y.z tag; ProxySQL's server_version is derived from it`]);
  return `${match[1]}-MariaDB`;
}

/** Backends in inventory order with descending weights: the first node is the preferred writer. Pure. */
export function galeraBackends(nodes: readonly { name: string; address: string }[], port = 3306): ProxySqlBackend[] {
  return nodes.map((node, index) => ({ name: node.name, address: node.address, port, weight: 1000 - index * 100 }));
}

/** Input of {@link renderProxySqlCnf}. */
export interface ProxySqlCnfInput {
  readonly backends: readonly ProxySqlBackend[];
  /** See {@link mariadbServerVersion}. */
  readonly serverVersion: string;
  readonly settings?: ProxySqlSettings;
  readonly accounts?: ProxySqlAccounts;
}

/**
 * proxysql.cnf (libconfig syntax), identical on every ProxySQL node; passwords as placeholders.
 * Loaded with `--initial` at every start, so this file is the whole configuration. Pure.
 */
export function renderProxySqlCnf(input: ProxySqlCnfInput): string {
  const settings = input.settings ?? DEFAULT_PROXYSQL_SETTINGS;
  const accounts = input.accounts ?? DEFAULT_PROXYSQL_ACCOUNTS;
  const hg = settings.hostgroups;
  const servers = input.backends
    .map(
      (backend) =>
        `    { address = "${backend.address}", port = ${backend.port}, hostgroup = ${hg.writer}, weight = ${backend.weight}, max_connections = ${settings.maxConnectionsPerBackend}, comment = "${backend.name}" }`,
    )
    .join(",\n");
  return `# KeyBuzz ProxySQL (rendered by components/data/proxysql.ts; identical on every ProxySQL node)
datadir = "${settings.datadir}"

admin_variables =
{
    admin_credentials = "${accounts.adminUser}:${secretRef(PROXYSQL_SECRET_KEYS.admin)}"
    mysql_ifaces = "${settings.adminAddress}:${settings.adminPort}"
    refresh_interval = 2000
}

mysql_variables =
{
    threads = ${settings.threads}
    max_connections = 2048
    default_query_delay = 0
    default_query_timeout = 36000000
    have_compress = true
    poll_timeout = 2000
    interfaces = "${settings.listenAddress}:${settings.port}"
    default_schema = "information_schema"
    stacksize = 1048576
    server_version = "${input.serverVersion}"
    connect_timeout_server = 3000
    monitor_username = "${accounts.monitorUser}"
    monitor_password = "${secretRef(PROXYSQL_SECRET_KEYS.monitor)}"
    monitor_history = 600000
    monitor_connect_interval = 60000
    monitor_ping_interval = 10000
    monitor_galera_healthcheck_interval = 2000
    monitor_galera_healthcheck_timeout = 800
    ping_timeout_server = 500
    commands_stats = true
    sessions_sort = true
}

mysql_servers =
(
${servers}
)

mysql_galera_hostgroups =
(
    {
        writer_hostgroup = ${hg.writer}
        backup_writer_hostgroup = ${hg.backupWriter}
        reader_hostgroup = ${hg.reader}
        offline_hostgroup = ${hg.offline}
        active = 1
        max_writers = 1
        writer_is_also_reader = 2
        max_transactions_behind = ${settings.maxTransactionsBehind}
        comment = "keybuzz-galera"
    }
)

mysql_users =
(
    { username = "${accounts.appUser}", password = "${secretRef(PROXYSQL_SECRET_KEYS.app)}", default_hostgroup = ${hg.writer}, transaction_persistent = 1, active = 1 }
)

mysql_query_rules =
(
    { rule_id = 1, active = 1, match_digest = "^SELECT.*FOR UPDATE", destination_hostgroup = ${hg.writer}, apply = 1 },
    { rule_id = 2, active = 1, match_digest = "^SELECT", destination_hostgroup = ${hg.reader}, apply = 1 }
)
`;
}

/** Host-side paths of a ProxySQL node. */
export interface ProxySqlHostSettings {
  readonly configFile: string;
  readonly dataDir: string;
  /** Root-only client option files used by the verification. */
  readonly secretDir: string;
  readonly container: string;
}

/** Production defaults (spec 001, module 8: /opt/keybuzz/proxysql). */
export const DEFAULT_PROXYSQL_HOST_SETTINGS: ProxySqlHostSettings = {
  configFile: "/opt/keybuzz/proxysql/config/proxysql.cnf",
  dataDir: "/opt/keybuzz/proxysql/data",
  secretDir: "/opt/keybuzz/proxysql/secrets",
  container: "proxysql",
};

/** Client option file for the admin interface or the app user through this node. Pure. */
export function renderProxySqlClientCnf(user: string, secretKey: string, port: number): string {
  return `[client]\nuser = ${user}\npassword = ${secretRef(secretKey)}\nhost = 127.0.0.1\nport = ${port}\nprotocol = tcp\n`;
}

/**
 * Step body that (re)creates the ProxySQL container when its image or rendered config changed
 * (label `keybuzz.spec`), else leaves it alone. Pure.
 */
export function renderProxySqlRunScript(image: string, host: ProxySqlHostSettings = DEFAULT_PROXYSQL_HOST_SETTINGS): string {
  // Locked (`tag@sha256:…`): the spec names the digest, the container runs the tag pulled by digest.
  const pinned = imagePull(image);
  const locked = pinned.pull !== pinned.run;
  return `image=${pinned.run}
container=${host.container}
nofile=${CONTAINER_NOFILE.proxysql}
install -d -m 0755 ${host.dataDir}
spec=$( { echo "${locked ? image : "$image"} nofile=$nofile"; sha256sum ${host.configFile}; } | sha256sum | cut -d' ' -f1)
current=$(docker inspect -f '{{ index .Config.Labels "keybuzz.spec" }}' "$container" 2>/dev/null || true)
running=$(docker inspect -f '{{ .State.Running }}' "$container" 2>/dev/null || true)
if [ "$current" != "$spec" ] || [ "$running" != true ]; then
  ${locked ? renderImagePull(image).replace(/\n/g, "\n  ") : `docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null`}
  docker rm -f "$container" >/dev/null 2>&1 || true
  # --initial: the rendered file is the whole configuration at every start (no drift in proxysql.db).
  docker run -d --name "$container" --label "keybuzz.spec=$spec" \\
    --network host --restart unless-stopped --log-opt max-size=10m --log-opt max-file=3 --ulimit "nofile=$nofile:$nofile" \\
    -v ${host.configFile}:/etc/proxysql.cnf:ro -v ${host.dataDir}:/var/lib/proxysql \\
    --entrypoint proxysql "$image" -f --idle-threads -c /etc/proxysql.cnf -D /var/lib/proxysql --initial >/dev/null
  echo "proxysql (re)started with configuration $spec"
fi`;
}

/**
 * Step body that verifies one ProxySQL node: exactly one ONLINE backend in the writer hostgroup,
 * then a write and a read as the app user through this node (table `keybuzz_healthcheck` of the
 * app database). The MariaDB image serves as the client (pulled by digest when locked). Pure.
 */
export function renderProxySqlVerifyScript(input: {
  clientImage: string;
  hostName: string;
  appDatabase: string;
  settings?: ProxySqlSettings;
  host?: ProxySqlHostSettings;
}): string {
  const settings = input.settings ?? DEFAULT_PROXYSQL_SETTINGS;
  const host = input.host ?? DEFAULT_PROXYSQL_HOST_SETTINGS;
  return `${renderLockedImagePull(input.clientImage)}client() {
  docker run --rm -i --network host -v "${host.secretDir}/$1.cnf:/run/keybuzz/client.cnf:ro" ${imagePull(input.clientImage).run} \\
    mariadb --defaults-extra-file=/run/keybuzz/client.cnf -N -B "\${@:2}"
}
one_online_writer() {
  [ "$(client admin <<<"SELECT COUNT(*) FROM runtime_mysql_servers WHERE hostgroup_id=${settings.hostgroups.writer} AND status='ONLINE';")" = 1 ]
}
kb_wait_until 300 3 "ProxySQL does not have exactly one ONLINE writer" one_online_writer || {
  client admin <<<"SELECT hostgroup_id, hostname, status, weight FROM runtime_mysql_servers ORDER BY hostgroup_id, hostname;" >&2 || true
  exit 1
}
token="${input.hostName}-$(date +%s)-$RANDOM"
client app -D ${input.appDatabase} <<SQL
CREATE TABLE IF NOT EXISTS keybuzz_healthcheck (probe VARCHAR(64) PRIMARY KEY, token VARCHAR(128) NOT NULL, checked_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP);
REPLACE INTO keybuzz_healthcheck (probe, token) VALUES ('${input.hostName}', '$token');
SQL
# The read goes to a reader (another Galera node), which applies the write within moments.
for _ in $(seq 1 30); do
  if [ "$(client app -D ${input.appDatabase} <<<"SELECT token FROM keybuzz_healthcheck WHERE probe='${input.hostName}';")" = "$token" ]; then
    echo "ProxySQL ${input.hostName}: one ONLINE writer; write and read as the app user succeeded"
    exit 0
  fi
  sleep 1
done
echo "ProxySQL ${input.hostName}: the row written through this node was not read back" >&2
exit 1`;
}

/** Arguments of {@link ProxySqlLayer}. */
export interface ProxySqlLayerArgs {
  readonly inventory: Inventory;
  /** `images.proxysql` (2.6.x) and `images.mariadb` (server version, and the client of the checks). */
  readonly versions: Versions;
  /** Every server by inventory name (`ServerFleet.hosts`); the `proxysql` group is used. */
  readonly hosts: Readonly<Record<string, Host>>;
  /** Verified base OS per host (`BaseOs.ready`). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
  /** The Galera nodes (`GaleraCluster.nodes`), inventory order: the first is the preferred writer. */
  readonly galeraNodes: readonly { name: string; address: string }[];
  /** Waits for these (`GaleraCluster.verified`: accounts exist, cluster healthy). */
  readonly galeraReady: readonly pulumi.Resource[];
  /** Passwords: ProxySQL admin, the app user (`erpnext`), the monitor user. */
  readonly passwords: {
    readonly admin: pulumi.Input<string>;
    readonly app: pulumi.Input<string>;
    readonly monitor: pulumi.Input<string>;
  };
  /** App database the verification writes to (spec 001, module 7: `erpnext`). */
  readonly appDatabase?: string;
}

/**
 * ProxySQL on every node of the `proxysql` group, one node at a time: deploy, then verify through
 * that node before the next one changes. The load balancer 10.0.0.20:3306 (components/infra) checks
 * TCP 3306 on each node.
 */
export class ProxySqlLayer extends pulumi.ComponentResource {
  /** The verification step of each node. */
  public readonly verified: readonly pulumi.Resource[];

  constructor(name: string, args: ProxySqlLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:ProxySqlLayer", name, {}, opts);
    const specs = serversOf(args.inventory, "proxysql");
    if (specs.length === 0)
      throw new ConfigError(["keybuzz:servers: no server with role db / subrole proxysql; ProxySQL needs at least one"]);
    const host = DEFAULT_PROXYSQL_HOST_SETTINGS;
    const settings = DEFAULT_PROXYSQL_SETTINGS;
    const cnf = renderProxySqlCnf({
      backends: galeraBackends(args.galeraNodes),
      serverVersion: mariadbServerVersion(args.versions.images.mariadb),
      settings,
    });
    const files: HostFile[] = [
      { path: host.configFile, content: cnf, mode: "0600" },
      {
        path: `${host.secretDir}/admin.cnf`,
        content: renderProxySqlClientCnf(ACCOUNTS.proxysqlAdmin, PROXYSQL_SECRET_KEYS.admin, settings.adminPort),
        mode: "0600",
      },
      {
        path: `${host.secretDir}/app.cnf`,
        content: renderProxySqlClientCnf(ACCOUNTS.mariadbApp, PROXYSQL_SECRET_KEYS.app, settings.port),
        mode: "0600",
      },
    ];
    const secrets = {
      [PROXYSQL_SECRET_KEYS.admin]: args.passwords.admin,
      [PROXYSQL_SECRET_KEYS.app]: args.passwords.app,
      [PROXYSQL_SECRET_KEYS.monitor]: args.passwords.monitor,
    };
    const script = renderProxySqlRunScript(lockedImage(args.versions, "proxysql"), host);
    const fingerprint = sha256(script + files.map((file) => file.content).join(""));
    const verified: pulumi.Resource[] = [];
    let previous: readonly pulumi.Resource[] = args.galeraReady;
    for (const spec of specs) {
      const deploy = remoteStep(
        `${name}-${spec.name}`,
        { host: args.hosts[spec.name], files, script, secrets, timeoutMinutes: 15 },
        { parent: this, dependsOn: [args.ready[spec.name], ...previous] },
      );
      const verify = remoteStep(
        `${name}-${spec.name}-verify`,
        {
          host: args.hosts[spec.name],
          script: renderProxySqlVerifyScript({
            clientImage: lockedImage(args.versions, "mariadb"),
            hostName: spec.name,
            appDatabase: args.appDatabase ?? "erpnext",
            settings,
            host,
          }),
          timeoutMinutes: 10,
          triggers: [fingerprint],
        },
        { parent: this, dependsOn: [deploy] },
      );
      verified.push(verify);
      previous = [verify];
    }
    this.verified = verified;
    this.registerOutputs({});
  }
}
