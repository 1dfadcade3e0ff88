import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Operator settings of the Galera module (stack config `keybuzz:galera`, optional) and the layout
 * (ports, paths, names) its render functions take as inputs. Defaults are production values (spec
 * 001, module 7); the loopback suite passes its own layout (127.0.10.x, temp dirs).
 */

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

/** Schema of `keybuzz:galera` (every key optional; omitted = the spec's values). */
export const galeraSettingsSchema = z
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

/** Operator-tunable settings, stack config `keybuzz:galera` (optional), validated. */
export type GaleraSettings = z.infer<typeof galeraSettingsSchema>;

/**
 * Validates raw `keybuzz:galera` data (undefined = defaults); called by config/ in its one pass.
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:galera.gcacheSize: …`.
 */
export function parseGaleraSettings(raw: unknown): GaleraSettings {
  const parsed = galeraSettingsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:galera."));
  return parsed.data;
}

/** my.cnf settings of the production layout with the operator's `keybuzz:galera` values. Pure. */
export function galeraServerSettings(settings: GaleraSettings): GaleraServerSettings {
  return {
    ...DEFAULT_GALERA_SERVER_SETTINGS,
    innodbBufferPoolSize: settings.innodbBufferPoolSize,
    gcacheSize: settings.gcacheSize,
    maxConnections: settings.maxConnections,
  };
}

/** keybuzz-galera's settings of the production layout with the operator's `keybuzz:galera` values. Pure. */
export function galeraHostSettings(settings: GaleraSettings): GaleraHostSettings {
  return { ...DEFAULT_GALERA_HOST_SETTINGS, syncTimeoutSeconds: settings.syncTimeoutSeconds };
}
