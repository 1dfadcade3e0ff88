import { backupHostsOf, parseBackupSettings } from "../components/backup/pgbackrest";
import { parseGaleraSettings } from "../components/data/galera/settings";
import { parseHaproxySettings } from "../components/data/haproxy/settings";
import { minioVolumes } from "../components/data/minio/render";
import { parseMinioSettings } from "../components/data/minio/settings";
import { parsePostgresSettings } from "../components/data/postgres/settings";
import { parseProxySqlSettings } from "../components/data/proxysql/settings";
import { parseRabbitMqSettings } from "../components/data/rabbitmq/settings";
import { parseRedisSettings } from "../components/data/redis/settings";
import { backendConfigData, ingressProxyProtocol } from "../components/k8s/addons/render";
import { parseK8sSettings } from "../components/k8s/cluster/settings";
import { parseExportersSettings } from "../components/observability/exporters/settings";
import { parseMonitoringSettings } from "../components/observability/monitoring/settings";
import { postgresProbePorts, probeLoadBalancers } from "../components/observability/probes/render";
import { parseProbesSettings } from "../components/observability/probes/settings";
import { parseBaseOsSettings } from "../components/os/base-os/settings";
import { isConfigError } from "./errors";
import { clusterNodes, Inventory, serversOf } from "./inventory";

/**
 * The modules' operator settings (`keybuzz:<module>`), validated in the same first pass as the
 * inventory. The schemas and their parse functions stay with their modules; this file only calls
 * them and gathers their problems.
 */

/**
 * Each module's settings parser, by its `keybuzz:` key: the schema and its defaults live in the
 * module's `settings.ts`; a parser throws a ConfigError naming `keybuzz:<key>.<field>`.
 */
const MODULE_SETTINGS = {
  baseOs: parseBaseOsSettings,
  redis: parseRedisSettings,
  haproxy: parseHaproxySettings,
  rabbitmq: parseRabbitMqSettings,
  minio: parseMinioSettings,
  postgres: parsePostgresSettings,
  galera: parseGaleraSettings,
  proxysql: parseProxySqlSettings,
  backup: parseBackupSettings,
  k8s: parseK8sSettings,
  exporters: parseExportersSettings,
  monitoring: parseMonitoringSettings,
  probes: parseProbesSettings,
} as const;

/** Every module's validated settings (defaults where a key is omitted), by its `keybuzz:` key. */
export type ModuleSettings = { readonly [Key in keyof typeof MODULE_SETTINGS]: ReturnType<(typeof MODULE_SETTINGS)[Key]> };

/** The `keybuzz:` keys that hold module settings. */
export const SETTINGS_KEYS = Object.keys(MODULE_SETTINGS) as readonly (keyof ModuleSettings)[];

/**
 * Validates every module's settings and returns them, or the problems of all of them together.
 *
 * @param raw the parsed values of the {@link SETTINGS_KEYS} (undefined = the module's defaults).
 * @returns `settings` when every module accepted its value, else `problems` (one line per problem,
 *   each naming its key, e.g. `keybuzz:redis.maxmemoryPercent: …`).
 * @throws whatever a parse function throws other than a ConfigError (a bug, not a bad value).
 */
export function parseModuleSettings(raw: Readonly<Record<string, unknown>>): { settings?: ModuleSettings; problems: string[] } {
  const problems: string[] = [];
  const parsed = Object.fromEntries(
    SETTINGS_KEYS.map((key) => [key, collectProblems(() => MODULE_SETTINGS[key](raw[key]), problems)] as const),
  );
  if (Object.values(parsed).some((value) => value === undefined)) return { problems };
  return { settings: parsed as ModuleSettings, problems };
}

/**
 * What the modules need from the inventory beyond its own checks, asked of the modules' pure
 * functions in the config pass, so a component never discovers it mid-program: the load balancers
 * of `keybuzz-backend-config` (5432, 6379, 5672, 3306) and a MinIO node, one PROXY-protocol setting
 * for the ingress services, a load balancer in front of the haproxy group (the PostgreSQL
 * endpoints, `postgresEndpointsOf`), MinIO node names that `MINIO_VOLUMES` can expand, and the
 * internal load balancers and PostgreSQL ports the backend probes use.
 *
 * @returns one line per problem, each naming its key.
 */
export function moduleInventoryProblems(inventory: Inventory): string[] {
  const problems: string[] = [];
  collectProblems(() => backendConfigData(inventory), problems);
  collectProblems(() => ingressProxyProtocol(inventory), problems);
  const minioNodes = clusterNodes(serversOf(inventory, "minio"));
  if (minioNodes.length > 0) collectProblems(() => minioVolumes(minioNodes), problems);
  collectProblems(() => backupHostsOf(inventory), problems);
  if (!inventory.loadBalancers.some((lb) => lb.targetGroup === "haproxy")) {
    problems.push(
      "keybuzz:loadBalancers: no load balancer targets the haproxy group; the PostgreSQL endpoints (5432, 5433, 6432) need one",
    );
  } else {
    // The internal load balancers and ports the backend probes connect to (components/observability/probes).
    collectProblems(() => probeLoadBalancers(inventory), problems);
    collectProblems(() => postgresProbePorts(inventory), problems);
  }
  return problems;
}

/**
 * Runs `parse`; a ConfigError's problems are appended to `problems` (and undefined returned),
 * anything else is rethrown.
 */
export function collectProblems<T>(parse: () => T, problems: string[]): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (!isConfigError(error)) throw error;
    problems.push(...error.problems);
    return undefined;
  }
}
