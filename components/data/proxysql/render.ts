import { ACCOUNTS } from "../../security/secrets";
import { CONTAINER_NOFILE, ContainerSpec, imagePull, renderContainerFunctions, renderLockedImagePull } from "../../lib/container";
import { HostFile, secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { DEFAULT_PROXYSQL_CNF_SETTINGS, DEFAULT_PROXYSQL_HOST_SETTINGS, ProxySqlCnfSettings, ProxySqlHostSettings } from "./settings";

/**
 * ProxySQL in front of Galera (spec 001, module 8; DESIGN.md decisions): `mysql_galera_hostgroups`
 * with one writer, the backup writers as readers, a `USAGE`-only monitor user, listening on
 * `0.0.0.0:3306` behind the internal load balancer 10.0.0.20 (never on the LB IP), admin on
 * localhost only. Both nodes get the identical rendered proxysql.cnf (see docs/proxysql.md).
 */

/** Keys of the secret placeholders in the ProxySQL files. */
export const PROXYSQL_SECRET_KEYS = { admin: "proxysql-admin", app: "mariadb-app", monitor: "mariadb-monitor" } as const;

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
 * @throws Error when the image tag carries no x.y.z version (config/versions.ts refuses such an
 *   `images.mariadb` pin before any resource, so this is a bug).
 */
export function mariadbServerVersion(image: string): string {
  const match = /:(\d+\.\d+\.\d+)/.exec(image);
  if (!match) throw new Error(`images.mariadb: ${image} has no x.y.z tag; ProxySQL's server_version is derived from it`);
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
  readonly settings?: ProxySqlCnfSettings;
  readonly accounts?: ProxySqlAccounts;
}

/**
 * proxysql.cnf (libconfig syntax), identical on every ProxySQL node; passwords as placeholders.
 * Loaded with `--initial` at every start, so this file is the whole configuration. Pure.
 */
export function renderProxySqlCnf(input: ProxySqlCnfInput): string {
  const settings = input.settings ?? DEFAULT_PROXYSQL_CNF_SETTINGS;
  const accounts = input.accounts ?? DEFAULT_PROXYSQL_ACCOUNTS;
  const hg = settings.hostgroups;
  const servers = input.backends
    .map(
      (backend) =>
        `    { address = "${backend.address}", port = ${backend.port}, hostgroup = ${hg.writer}, weight = ${backend.weight}, max_connections = ${settings.maxConnectionsPerBackend}, comment = "${backend.name}" }`,
    )
    .join(",\n");
  return `# KeyBuzz ProxySQL (rendered by components/data/proxysql/render.ts; identical on every ProxySQL node)
datadir = "${settings.datadir}"

admin_variables =
{
    admin_credentials = "${accounts.adminUser}:${secretRef(PROXYSQL_SECRET_KEYS.admin)}"
    mysql_ifaces = "${settings.adminAddress}:${settings.adminPort}"
    refresh_interval = 2000
    restapi_enabled = true
    restapi_port = ${settings.restapiPort}
}

mysql_variables =
{
    threads = ${settings.threads}
    max_connections = ${settings.maxConnections}
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

/** Client option file for the admin interface or the app user through this node. Pure. */
export function renderProxySqlClientCnf(user: string, secretKey: string, port: number): string {
  return `[client]\nuser = ${user}\npassword = ${secretRef(secretKey)}\nhost = 127.0.0.1\nport = ${port}\nprotocol = tcp\n`;
}

/** The ProxySQL container (components/lib/container.ts): `--initial`, so proxysql.cnf is the whole configuration at every start. */
export function proxySqlContainer(image: string, host: ProxySqlHostSettings = DEFAULT_PROXYSQL_HOST_SETTINGS): ContainerSpec {
  return {
    name: host.container,
    image,
    options: ["-v", `${host.configFile}:/etc/proxysql.cnf:ro`, "-v", `${host.dataDir}:/var/lib/proxysql`, "--entrypoint", "proxysql"],
    command: ["-f", "--idle-threads", "-c", "/etc/proxysql.cnf", "-D", "/var/lib/proxysql", "--initial"],
    nofile: CONTAINER_NOFILE.proxysql,
  };
}

/**
 * Body of a node's deploy step (scripts/proxysql/proxysql-node.sh): (re)creates the container when
 * its image or options changed, when it is not running, or when proxysql.cnf differs from the one
 * it was started with; else leaves it alone. Pure.
 */
export function renderProxySqlNodeStep(image: string, host: ProxySqlHostSettings = DEFAULT_PROXYSQL_HOST_SETTINGS): string {
  return stepBody("proxysql", ["proxysql-node.sh"], {
    prefix: [renderContainerFunctions(proxySqlContainer(image, host))],
    variables: { KB_CONFIG_FILE: host.configFile, KB_DATA_DIR: host.dataDir, KB_STARTED_FILE: host.startedFile },
  });
}

/**
 * Body of a node's verification step (scripts/proxysql/verify.sh): exactly one ONLINE backend in
 * the writer hostgroup, then a write and a read as the app user through this node. The MariaDB
 * image serves as the client (pulled by digest when locked). Pure.
 */
export function renderProxySqlVerifyStep(input: {
  readonly clientImage: string;
  readonly hostName: string;
  readonly appDatabase: string;
  readonly settings?: ProxySqlCnfSettings;
  readonly host?: ProxySqlHostSettings;
}): string {
  const settings = input.settings ?? DEFAULT_PROXYSQL_CNF_SETTINGS;
  const host = input.host ?? DEFAULT_PROXYSQL_HOST_SETTINGS;
  const lockedPull = renderLockedImagePull(input.clientImage).trimEnd();
  return stepBody("proxysql", ["verify.sh"], {
    prefix: lockedPull ? [lockedPull] : [],
    variables: {
      KB_CLIENT_IMAGE: imagePull(input.clientImage).run,
      KB_SECRET_DIR: host.secretDir,
      KB_HOST_NAME: input.hostName,
      KB_APP_DATABASE: input.appDatabase,
      KB_WRITER_HOSTGROUP: settings.hostgroups.writer,
    },
  });
}

/**
 * The files of every ProxySQL node (identical on each): proxysql.cnf and the client option files
 * of the verification; passwords as placeholders. Pure.
 */
export function proxySqlNodeFiles(
  cnf: string,
  settings: ProxySqlCnfSettings = DEFAULT_PROXYSQL_CNF_SETTINGS,
  host: ProxySqlHostSettings = DEFAULT_PROXYSQL_HOST_SETTINGS,
  accounts: ProxySqlAccounts = DEFAULT_PROXYSQL_ACCOUNTS,
): HostFile[] {
  return [
    { path: host.configFile, content: cnf, mode: "0600" },
    {
      path: `${host.secretDir}/admin.cnf`,
      content: renderProxySqlClientCnf(accounts.adminUser, PROXYSQL_SECRET_KEYS.admin, settings.adminPort),
      mode: "0600",
    },
    {
      path: `${host.secretDir}/app.cnf`,
      content: renderProxySqlClientCnf(accounts.appUser, PROXYSQL_SECRET_KEYS.app, settings.port),
      mode: "0600",
    },
  ];
}
