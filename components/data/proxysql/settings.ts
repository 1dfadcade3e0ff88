import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Operator settings of the ProxySQL module (stack config `keybuzz:proxysql`, optional) and the
 * layout (addresses, ports, hostgroups, paths) its render functions take as inputs. Defaults are
 * the spec's values (spec 001, module 8); the loopback tests pass their own layout.
 */

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

/**
 * Schema of `keybuzz:proxysql` (every key optional; omitted = the spec's values). The bounds are
 * ProxySQL 2.6.6's own (lib/MySQL_Thread.cpp: `threads` 1–255, `max_connections` 1–1000000;
 * include/MySQL_HostGroups_Manager.h: `mysql_servers.max_connections` and
 * `mysql_galera_hostgroups.max_transactions_behind` ≥ 0), the per-backend limit also capped by
 * `keybuzz:galera.maxConnections`' own maximum (10000).
 */
export const proxySqlSettingsSchema = z
  .strictObject({
    /** `mysql-threads`, ProxySQL's worker threads (spec 001, module 8: 4). */
    threads: z.number().int().min(1).max(255).default(4),
    /** `mysql-max_connections`: client connections one ProxySQL node accepts (2048 as before this setting; ProxySQL 2.6.6 defaults to 10000). */
    maxConnections: z.number().int().min(1).max(1000000).default(2048),
    /**
     * `max_connections` of each backend in `mysql_servers`: connections one ProxySQL node opens to
     * one Galera node (spec: 100). Keep the ProxySQL nodes' sum below `keybuzz:galera.maxConnections`.
     */
    maxConnectionsPerBackend: z.number().int().min(1).max(10000).default(100),
    /** `max_transactions_behind` of `mysql_galera_hostgroups`: a node further behind (write-sets) leaves the readers. */
    maxTransactionsBehind: z.number().int().min(0).max(1000000).default(100),
  })
  .default({ threads: 4, maxConnections: 2048, maxConnectionsPerBackend: 100, maxTransactionsBehind: 100 });

/** Operator-tunable settings, stack config `keybuzz:proxysql` (optional), validated. */
export type ProxySqlSettings = z.infer<typeof proxySqlSettingsSchema>;

/**
 * Validates raw `keybuzz:proxysql` data (undefined = defaults); called by config/ in its one pass.
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:proxysql.threads: …`.
 */
export function parseProxySqlSettings(raw: unknown): ProxySqlSettings {
  const parsed = proxySqlSettingsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:proxysql."));
  return parsed.data;
}

/** Settings of proxysql.cnf; addresses and ports are inputs so loopback tests reuse the render. */
export interface ProxySqlCnfSettings extends ProxySqlSettings {
  /** Client interface (DESIGN.md: `0.0.0.0`, never the load balancer IP). */
  readonly listenAddress: string;
  /** Client port, TCP (3306: the load balancer 10.0.0.20 forwards 3306 to it). */
  readonly port: number;
  /** Admin interface: localhost only. */
  readonly adminAddress: string;
  /** Admin port, TCP (ProxySQL's 6032). */
  readonly adminPort: number;
  /**
   * Port of ProxySQL's REST API, which serves its Prometheus `/metrics` without authentication
   * (ProxySQL 2.6.6 lib/ProxySQL_Admin.cpp: `admin-restapi_port`, default 6070; the server binds
   * every address, lib/ProxySQL_RESTAPI_Server.cpp): UFW opens it to the Kubernetes nodes only.
   */
  readonly restapiPort: number;
  /** ProxySQL datadir as the process sees it. */
  readonly datadir: string;
  readonly hostgroups: GaleraHostgroups;
}

/** Production defaults of {@link ProxySqlCnfSettings}. */
export const DEFAULT_PROXYSQL_CNF_SETTINGS: ProxySqlCnfSettings = {
  ...parseProxySqlSettings(undefined),
  listenAddress: "0.0.0.0",
  port: 3306,
  adminAddress: "127.0.0.1",
  adminPort: 6032,
  restapiPort: 6070,
  datadir: "/var/lib/proxysql",
  hostgroups: { writer: 10, backupWriter: 20, reader: 30, offline: 40 },
};

/** Host-side paths of a ProxySQL node. */
export interface ProxySqlHostSettings {
  /** proxysql.cnf on the host, mounted read-only as the container's /etc/proxysql.cnf. */
  readonly configFile: string;
  /** Root-only record of the proxysql.cnf (sha256) the running container was started with. */
  readonly startedFile: string;
  /** ProxySQL's datadir on the host. */
  readonly dataDir: string;
  /** Root-only client option files used by the verification. */
  readonly secretDir: string;
  /** Docker container name. */
  readonly container: string;
}

/** Production defaults (spec 001, module 8: /opt/keybuzz/proxysql). */
export const DEFAULT_PROXYSQL_HOST_SETTINGS: ProxySqlHostSettings = {
  configFile: "/opt/keybuzz/proxysql/config/proxysql.cnf",
  startedFile: "/opt/keybuzz/proxysql/config/proxysql.cnf.started",
  dataDir: "/opt/keybuzz/proxysql/data",
  secretDir: "/opt/keybuzz/proxysql/secrets",
  container: "proxysql",
};
