import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ClusterNode, clusterNodes, lockedImage, Versions } from "../../config";
import { ACCOUNTS } from "../security/secrets";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../lib/remote";
import { CONTAINER_NOFILE, renderContainerFunctions } from "../lib/container";

/**
 * MinIO distributed on 3 nodes (spec 001 design section B, spec 003; DESIGN.md): one erasure set
 * over one drive per node (EC:1 — any one node may be lost), pinned release, host network, the
 * same `MINIO_*` environment everywhere, `http://s3.<domain>:9000` as the S3 endpoint.
 */

/** Placeholder key of the root password. */
export const MINIO_ROOT_PASSWORD_KEY = "minio-root-password";

/** One MinIO node: its host name `<name>.<domain>` is in the managed /etc/hosts; S3 API and console bind its address. */
export type MinioNode = ClusterNode;

/** Ports, domain and paths of the deployment; defaults are production. */
export interface MinioSettings {
  /** S3 API port. Default 9000. */
  readonly apiPort: number;
  /** Console port. Default 9001 (spec 001). */
  readonly consolePort: number;
  /** Domain of the node host names (`minio-01.keybuzz.io`). Default `keybuzz.io`. */
  readonly domain: string;
  /** The drive path as the server sees it. Default `/data`. */
  readonly dataPath: string;
  /** Root user. Default `ACCOUNTS.minioRootUser`. */
  readonly rootUser: string;
}

/** Production defaults of {@link MinioSettings}. */
export const DEFAULT_MINIO_SETTINGS: MinioSettings = {
  apiPort: 9000,
  consolePort: 9001,
  domain: "keybuzz.io",
  dataPath: "/data",
  rootUser: ACCOUNTS.minioRootUser,
};

/**
 * `MINIO_VOLUMES` of one server pool, with MinIO's `{x...y}` expansion:
 * `http://minio-0{1...3}.keybuzz.io:9000/data`. The names must share a prefix and carry
 * consecutive numbers of the same width (the IPs need not be sequential: names resolve through
 * /etc/hosts). Pure.
 *
 * @throws Error when the names are not consecutive, which the expansion cannot express.
 */
export function minioVolumes(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  const parsed = nodes.map((node) => /^(.*?)(\d+)$/.exec(node.name));
  const first = parsed[0];
  if (!first) throw new Error(`MinIO node names must end in a number (got ${nodes.map((node) => node.name).join(", ")})`);
  const [, prefix, firstNumber] = first;
  const start = Number(firstNumber);
  parsed.forEach((match, index) => {
    if (!match || match[1] !== prefix || match[2].length !== firstNumber.length || Number(match[2]) !== start + index) {
      throw new Error(
        `MinIO node names must be consecutive (${prefix}${firstNumber}, ${prefix}${String(start + 1).padStart(firstNumber.length, "0")}, …) for MINIO_VOLUMES; got ${nodes.map((node) => node.name).join(", ")}`,
      );
    }
  });
  const last = String(start + nodes.length - 1).padStart(firstNumber.length, "0");
  // Common leading characters of the first and last numbers stay outside the braces (0{1...3}).
  let common = 0;
  while (common < firstNumber.length - 1 && firstNumber[common] === last[common]) common++;
  const range = `${firstNumber.slice(0, common)}{${firstNumber.slice(common)}...${last.slice(common)}}`;
  return `http://${prefix}${range}.${settings.domain}:${settings.apiPort}${settings.dataPath}`;
}

/** The console behind {@link MinioSettings.consolePort} of the first node (spec 001: minio-01's console). Pure. */
export function minioConsoleUrl(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  if (nodes.length === 0) throw new Error("MinIO: no nodes");
  return `http://${nodes[0].address}:${settings.consolePort}`;
}

/**
 * Renders the MinIO environment file (read through `MINIO_CONFIG_ENV_FILE`): the pool, the root
 * credentials (password as a placeholder), the console redirect. The same text for every node: at
 * startup MinIO compares every `MINIO_*` variable across the servers and refuses to form the
 * cluster on a difference (minio cmd/bootstrap-peer-server.go, `ServerSystemConfig.Diff`; only a
 * few such as the root credentials are exempt). Pure.
 */
export function renderMinioEnv(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  return [
    "# Managed by KeyBuzz (components/data/minio.ts); identical on every node (MinIO refuses a MINIO_* mismatch).",
    `MINIO_VOLUMES="${minioVolumes(nodes, settings)}"`,
    `MINIO_ROOT_USER="${settings.rootUser}"`,
    `MINIO_ROOT_PASSWORD="${secretRef(MINIO_ROOT_PASSWORD_KEY)}"`,
    `MINIO_BROWSER_REDIRECT_URL="${minioConsoleUrl(nodes, settings)}"`,
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

const SCRIPTS = path.join(__dirname, "..", "..", "scripts", "minio");
const CONTAINER_ENV_FILE = "/etc/minio/config.env";

/** The node step's bash body: container functions, variables, scripts/minio/minio-node.sh. Pure. */
export function renderMinioNodeScript(
  node: MinioNode,
  image: string,
  settings: MinioSettings = DEFAULT_MINIO_SETTINGS,
  paths: MinioHostPaths = MINIO_HOST_PATHS,
): string {
  return [
    renderContainerFunctions({
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
      command: [
        "server",
        "--address",
        `${node.address}:${settings.apiPort}`,
        "--console-address",
        `${node.address}:${settings.consolePort}`,
      ],
      nofile: CONTAINER_NOFILE.minio,
    }),
    `KB_NODE_IP='${node.address}'\nKB_API_PORT='${settings.apiPort}'\nKB_DATA_DIR='${paths.dataDir}'\nKB_ENV_FILE='${paths.envFile}'`,
    fs.readFileSync(path.join(SCRIPTS, "minio-node.sh"), "utf8"),
  ].join("\n");
}

/** The verification bash body: `/minio/health/cluster` answers 200 (write quorum) on every node. Pure. */
export function renderMinioVerifyScript(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  const urls = nodes.map((node) => `http://${node.address}:${settings.apiPort}/minio/health/cluster`).join(" ");
  return `for url in ${urls}; do
  kb_wait_until 300 5 "minio verify: $url does not answer 200 (no write quorum)" curl -fsS -o /dev/null --max-time 5 "$url"
  echo "minio verify: $url answers 200"
done`;
}

/** Arguments of {@link MinioCluster}. */
export interface MinioClusterArgs {
  /** The minio group's hosts in inventory order (minio-01..03, consecutive names). */
  readonly hosts: readonly Host[];
  /** Pinned versions; uses `images.minio`. */
  readonly versions: Versions;
  /** Domain of the node host names and of `s3.<domain>` (inventory `internalDomain`). */
  readonly domain: string;
  /** `PlatformSecrets.minio.rootPassword`. */
  readonly rootPassword: pulumi.Input<string>;
  /** Verified end of the base OS per host name (`BaseOs.ready`). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
}

/**
 * MinIO distributed on the minio group (`keybuzz:data:MinioCluster`). Node steps run one after the
 * other (a restart waits for the cluster's write quorum before the next node moves); the
 * verification step then requires `/minio/health/cluster` = 200 on every node.
 */
export class MinioCluster extends pulumi.ComponentResource {
  /** The verification step. */
  public readonly ready: command.remote.Command;
  /** The S3 endpoint, `http://s3.<domain>:9000` (spec 001 design B: minio-01 through /etc/hosts). */
  public readonly s3Endpoint: string;
  /** The console of the first node. */
  public readonly consoleUrl: string;

  constructor(name: string, args: MinioClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:MinioCluster", name, {}, opts);
    if (args.hosts.length === 0) throw new Error(`MinioCluster ${name}: no hosts`);
    const nodes: MinioNode[] = clusterNodes(args.hosts.map((host) => host.spec));
    const settings: MinioSettings = { ...DEFAULT_MINIO_SETTINGS, domain: args.domain };
    const image = lockedImage(args.versions, "minio");
    const steps: command.remote.Command[] = [];
    const fingerprints: string[] = [];
    const envFile: HostFile = { path: MINIO_HOST_PATHS.envFile, content: renderMinioEnv(nodes, settings), mode: "0600" };
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const baseReady = args.ready[node.name];
      if (!baseReady) throw new Error(`MinioCluster ${name}: no base OS readiness for ${node.name}`);
      const files: HostFile[] = [envFile];
      const script = renderMinioNodeScript(node, image, settings);
      fingerprints.push(sha256(script + files[0].content));
      steps.push(
        remoteStep(
          `${node.name}-minio`,
          { host, files, script, secrets: { [MINIO_ROOT_PASSWORD_KEY]: args.rootPassword }, timeoutMinutes: 15 },
          { parent: this, dependsOn: [baseReady, ...steps.slice(-1)] },
        ),
      );
    });
    const verifyScript = renderMinioVerifyScript(nodes, settings);
    this.ready = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 10, triggers: [sha256(fingerprints.join("") + verifyScript)] },
      { parent: this, dependsOn: steps },
    );
    this.s3Endpoint = `http://s3.${args.domain}:${settings.apiPort}`;
    this.consoleUrl = minioConsoleUrl(nodes, settings);
    this.registerOutputs({ s3Endpoint: this.s3Endpoint, consoleUrl: this.consoleUrl });
  }
}
