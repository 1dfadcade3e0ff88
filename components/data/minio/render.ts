import { ConfigError } from "../../../config/errors";
import type { ClusterNode } from "../../../config/inventory";
import { CONTAINER_NOFILE, renderContainerFunctions } from "../../lib/container";
import { secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { DEFAULT_MINIO_SETTINGS, MinioSettings } from "./settings";

/**
 * The MinIO module's pure render functions (spec 001 design section B, spec 003; DESIGN.md): one
 * erasure set over one drive per node, the same `MINIO_*` environment everywhere, the step bodies
 * (scripts/minio/).
 */

/** Placeholder key of the root password. */
export const MINIO_ROOT_PASSWORD_KEY = "minio-root-password";

/** One MinIO node: its host name `<name>.<domain>` is in the managed /etc/hosts; S3 API and console bind its address. */
export type MinioNode = ClusterNode;

/** What the render functions read: the module's settings and the domain of the node host names. */
export interface MinioLayout extends MinioSettings {
  /** Domain of the node host names (`minio-01.keybuzz.io`) and of `s3.<domain>`: the inventory's `internalDomain`. */
  readonly domain: string;
}

/** Production layout: the default settings and spec 001's domain, `keybuzz.io`. */
export const DEFAULT_MINIO_LAYOUT: MinioLayout = { ...DEFAULT_MINIO_SETTINGS, domain: "keybuzz.io" };

/**
 * `MINIO_VOLUMES` of one server pool, with MinIO's `{x...y}` expansion:
 * `http://minio-0{1...3}.keybuzz.io:9000/data`. The names must share a prefix and carry
 * consecutive numbers of the same width (the IPs need not be sequential: names resolve through
 * /etc/hosts). Pure; config/ calls it on the inventory before any resource.
 *
 * @throws {ConfigError} naming `keybuzz:servers` when the names are not consecutive, which the
 *   expansion cannot express.
 */
export function minioVolumes(nodes: readonly MinioNode[], layout: MinioLayout = DEFAULT_MINIO_LAYOUT): string {
  const names = nodes.map((node) => node.name).join(", ");
  const parsed = nodes.map((node) => /^(.*?)(\d+)$/.exec(node.name));
  const first = parsed[0];
  if (!first) throw new ConfigError([`keybuzz:servers: MinIO node names must end in a number (got ${names})`]);
  const [, prefix, firstNumber] = first;
  const start = Number(firstNumber);
  parsed.forEach((match, index) => {
    if (!match || match[1] !== prefix || match[2].length !== firstNumber.length || Number(match[2]) !== start + index) {
      throw new ConfigError([
        `keybuzz:servers: MinIO node names must be consecutive (${prefix}${firstNumber}, ${prefix}${String(start + 1).padStart(firstNumber.length, "0")}, …) for MINIO_VOLUMES; got ${names}`,
      ]);
    }
  });
  const last = String(start + nodes.length - 1).padStart(firstNumber.length, "0");
  // Common leading characters of the first and last numbers stay outside the braces (0{1...3}).
  let common = 0;
  while (common < firstNumber.length - 1 && firstNumber[common] === last[common]) common++;
  const range = `${firstNumber.slice(0, common)}{${firstNumber.slice(common)}...${last.slice(common)}}`;
  return `http://${prefix}${range}.${layout.domain}:${layout.apiPort}${layout.dataPath}`;
}

/**
 * The console behind {@link MinioSettings.consolePort} of the first node (spec 001: minio-01's console). Pure.
 * @throws Error without nodes (config/ requires the minio group).
 */
export function minioConsoleUrl(
  nodes: readonly MinioNode[],
  settings: Pick<MinioSettings, "consolePort"> = DEFAULT_MINIO_SETTINGS,
): string {
  if (nodes.length === 0) throw new Error("MinIO: no nodes");
  return `http://${nodes[0].address}:${settings.consolePort}`;
}

/** The S3 endpoint, `http://s3.<domain>:<apiPort>` (spec 001 design B: minio-01 through the managed /etc/hosts). Pure. */
export function minioS3Endpoint(layout: MinioLayout = DEFAULT_MINIO_LAYOUT): string {
  return `http://s3.${layout.domain}:${layout.apiPort}`;
}

/**
 * Renders the MinIO environment file (read through `MINIO_CONFIG_ENV_FILE`): the pool, the root
 * credentials (password as a placeholder), the console redirect. The same text for every node: at
 * startup MinIO compares every `MINIO_*` variable across the servers and refuses to form the
 * cluster on a difference (minio cmd/bootstrap-peer-server.go, `ServerSystemConfig.Diff`; only a
 * few such as the root credentials are exempt). Pure.
 */
export function renderMinioEnv(nodes: readonly MinioNode[], layout: MinioLayout = DEFAULT_MINIO_LAYOUT): string {
  return [
    // The file's path in this header predates the module folder; it stays as it is, because any
    // change of the environment file restarts every node (one at a time).
    "# Managed by KeyBuzz (components/data/minio.ts); identical on every node (MinIO refuses a MINIO_* mismatch).",
    `MINIO_VOLUMES="${minioVolumes(nodes, layout)}"`,
    `MINIO_ROOT_USER="${layout.rootUser}"`,
    `MINIO_ROOT_PASSWORD="${secretRef(MINIO_ROOT_PASSWORD_KEY)}"`,
    `MINIO_BROWSER_REDIRECT_URL="${minioConsoleUrl(nodes, layout)}"`,
    "",
  ].join("\n");
}

/** Host paths of the MinIO module; defaults are production (spec 003: /opt/keybuzz/minio/data). */
export interface MinioHostPaths {
  /** The node's drive, mounted as {@link MinioSettings.dataPath}. */
  readonly dataDir: string;
  /** The environment file (root-only), mounted read-only. */
  readonly envFile: string;
}

/** Production host paths. */
export const MINIO_HOST_PATHS: MinioHostPaths = { dataDir: "/opt/keybuzz/minio/data", envFile: "/etc/keybuzz/minio/config.env" };

const CONTAINER_ENV_FILE = "/etc/minio/config.env";

/** The node step's bash body: container functions, variables, scripts/minio/minio-node.sh. Pure. */
export function renderMinioNodeScript(
  node: MinioNode,
  image: string,
  settings: MinioSettings = DEFAULT_MINIO_SETTINGS,
  paths: MinioHostPaths = MINIO_HOST_PATHS,
): string {
  const containerFunctions = renderContainerFunctions({
    name: "minio",
    image,
    options: [
      "-e",
      `MINIO_CONFIG_ENV_FILE=${CONTAINER_ENV_FILE}`,
      "-v",
      `${paths.envFile}:${CONTAINER_ENV_FILE}:ro`,
      "-v",
      `${paths.dataDir}:${settings.dataPath}`,
    ],
    // The pool and the credentials come from the environment file.
    command: ["server", "--address", `${node.address}:${settings.apiPort}`, "--console-address", `${node.address}:${settings.consolePort}`],
    nofile: CONTAINER_NOFILE.minio,
  });
  return stepBody("minio", ["minio-node.sh"], {
    prefix: [containerFunctions],
    variables: { KB_NODE_IP: node.address, KB_API_PORT: settings.apiPort, KB_DATA_DIR: paths.dataDir, KB_ENV_FILE: paths.envFile },
  });
}

/** The verification bash body (scripts/minio/verify.sh): `/minio/health/cluster` answers 200 (write quorum) on every node. Pure. */
export function renderMinioVerifyScript(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  const urls = nodes.map((node) => `http://${node.address}:${settings.apiPort}/minio/health/cluster`);
  return stepBody("minio", ["verify.sh"], { variables: { KB_HEALTH_URLS: urls.join(" ") } });
}
