import { ConfigError } from "../../../config/errors";
import type { ClusterNode } from "../../../config/inventory";
import { CONTAINER_NOFILE, imagePull, renderContainerFunctions, renderContainerPullFunction } from "../../lib/container";
import type { HaproxyListener } from "../../lib/contract";
import { HostFile, secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { ACCOUNTS } from "../../security/secrets";
import { DEFAULT_MINIO_SETTINGS, MinioSettings } from "./settings";

/**
 * The MinIO module's pure render functions (spec 001 design section B, spec 003; DESIGN.md): one
 * erasure set over one drive per node (on the node's XFS data volume), the same `MINIO_*`
 * environment everywhere, the application's bucket and access key, the HAProxy listener of the HA
 * S3 endpoint, the step bodies (scripts/minio/).
 */

/** Placeholder key of the root password. */
export const MINIO_ROOT_PASSWORD_KEY = "minio-root-password";
/** Placeholder key of the application's secret key (`PlatformSecrets.minio.appSecretKey`). */
export const MINIO_APP_SECRET_KEY = "minio-app-secret-key";
/** The application's access key (user name): `ACCOUNTS.minioAppUser`, what the backend's connection Secret carries. */
export const MINIO_APP_USER = ACCOUNTS.minioAppUser;
/**
 * MinIO's per-node cluster probe: 200 while the node serving it is initialised and sees the write
 * quorum, else 503 (minio cmd/healthcheck-router.go and `ClusterCheckHandler` at the pinned
 * release; docs/metrics/healthcheck/README.md). The verification, the HAProxy check and the
 * endpoint check all ask it.
 */
export const MINIO_HEALTH_PATH = "/minio/health/cluster";
/** Name of the HAProxy listen section of the S3 API (and of the listener the endpoint check goes through). */
export const MINIO_LISTENER = "minio";

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

/**
 * The HA S3 endpoint, `http://<load balancer>:<apiPort>`: the internal load balancer in front of
 * the shared HAProxy, which sends each connection to a node whose cluster probe answers 200
 * (issue 19: not minio-01's address). Pure.
 */
export function minioS3Endpoint(loadBalancerIp: string, settings: Pick<MinioSettings, "apiPort"> = DEFAULT_MINIO_SETTINGS): string {
  return `http://${loadBalancerIp}:${settings.apiPort}`;
}

/**
 * The S3 listener of the shared HAProxy: TCP on {@link MinioSettings.apiPort} (requests and their
 * signatures pass untouched), the connection to the node with the fewest, each node checked over
 * HTTP on {@link MINIO_HEALTH_PATH} every 2 s (out after 2 failures, back after 2 successes), so a
 * node that restarts, lost its drive's peers or is overloaded gets no new requests. Pure.
 */
export function minioHaproxyListener(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): HaproxyListener {
  return {
    name: MINIO_LISTENER,
    port: settings.apiPort,
    lines: [
      "mode tcp",
      "option tcplog",
      "balance leastconn",
      "option httpchk",
      `http-check send meth GET uri ${MINIO_HEALTH_PATH}`,
      "http-check expect status 200",
      "default-server inter 2s fall 2 rise 2",
      ...nodes.map((node) => `server ${node.name} ${node.address}:${settings.apiPort} check`),
    ],
  };
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
  /** Mount point of the node's XFS data volume (`kb_xfs_volume`). */
  readonly volumeMount: string;
  /** The node's drive, a directory on the volume, mounted as {@link MinioSettings.dataPath}. */
  readonly dataDir: string;
  /** The environment file (root-only), mounted read-only. */
  readonly envFile: string;
  /** Root-only directory of the bucket step's files (mc's aliases, the application's secret key, its policy). */
  readonly adminDir: string;
}

/** Production host paths. */
export const MINIO_HOST_PATHS: MinioHostPaths = {
  volumeMount: "/opt/keybuzz/minio",
  dataDir: "/opt/keybuzz/minio/data",
  envFile: "/etc/keybuzz/minio/config.env",
  adminDir: "/etc/keybuzz/minio/admin",
};

const CONTAINER_ENV_FILE = "/etc/minio/config.env";

/**
 * Seconds MinIO gets to stop after SIGTERM before Docker kills it (the container's
 * `stopGraceSeconds`, components/lib/container.ts). On a signal MinIO RELEASE.2025-09-07T16-13-09Z
 * first hands its pending heal operations over for up to a minute (cmd/signals.go,
 * `shutdownHealMRFWithTimeout`), then shuts its HTTP server down within `--shutdown-timeout`
 * (30 s by default, cmd/server-main.go). Pure constant.
 */
export const MINIO_STOP_GRACE_SECONDS = 60 + 30;

/**
 * Which of a node's two steps a script is for. `node`: the rolling step (a first start, or a
 * restart for a changed environment file, one node at a time behind the write quorum); a new
 * binary is only pulled there. `binary`: the step after every node step, run on all nodes at once,
 * which restarts the containers whose image changed together: MinIO refuses peers that run another
 * binary (cmd/bootstrap-peer-server.go, "Expected MinIO binary checksum"), and upstream's upgrade
 * procedure restarts all servers simultaneously, never one at a time (docs/minio.md).
 */
export type MinioStepPhase = "node" | "binary";

/** A node's step body for `phase` ({@link MinioStepPhase}): container functions, variables, scripts/minio/minio-node.sh. Pure. */
export function renderMinioNodeScript(
  node: MinioNode,
  image: string,
  settings: MinioSettings = DEFAULT_MINIO_SETTINGS,
  paths: MinioHostPaths = MINIO_HOST_PATHS,
  phase: MinioStepPhase = "node",
): string {
  const container = {
    name: "minio",
    image,
    options: [
      "-e",
      `MINIO_CONFIG_ENV_FILE=${CONTAINER_ENV_FILE}`,
      "-v",
      `${paths.envFile}:${CONTAINER_ENV_FILE}:ro`,
      // --mount, not -v: Docker refuses a missing source instead of creating it, so a container
      // restarted at boot without its volume does not start on an empty directory of the root disk.
      "--mount",
      `type=bind,source=${paths.dataDir},target=${settings.dataPath}`,
    ],
    // The pool and the credentials come from the environment file.
    command: ["server", "--address", `${node.address}:${settings.apiPort}`, "--console-address", `${node.address}:${settings.consolePort}`],
    nofile: CONTAINER_NOFILE.minio,
    stopGraceSeconds: MINIO_STOP_GRACE_SECONDS,
  };
  return stepBody("minio", ["minio-node.sh"], {
    prefix: [renderContainerFunctions(container), renderContainerPullFunction(container)],
    variables: {
      KB_PHASE: phase,
      KB_IMAGE: imagePull(image).run,
      KB_NODE_IP: node.address,
      KB_API_PORT: settings.apiPort,
      KB_VOLUME_MOUNT: paths.volumeMount,
      KB_DATA_DIR: paths.dataDir,
      KB_ENV_FILE: paths.envFile,
    },
  });
}

/**
 * Body of a node's volume step: the Hetzner volume mounted on {@link MinioHostPaths.volumeMount}
 * by `kb_xfs_volume` (scripts/common/xfs-volume.sh: XFS, `noatime`, /etc/fstab by file-system
 * UUID), then the drive directory on it (scripts/minio/volume.sh). Pure.
 */
export function renderMinioVolumeScript(paths: MinioHostPaths = MINIO_HOST_PATHS): string {
  return stepBody("minio", ["volume.sh"], {
    variables: { KB_VOLUME_MOUNT: paths.volumeMount, KB_DATA_DIR: paths.dataDir },
    common: ["xfs-volume.sh"],
  });
}

/** Name of the IAM policy that gives the application its bucket. */
export function minioAppPolicyName(settings: Pick<MinioSettings, "bucket"> = DEFAULT_MINIO_SETTINGS): string {
  return `${settings.bucket}-readwrite`;
}

/**
 * The application's IAM policy: every S3 action on its bucket and the bucket's objects, nothing
 * else (issue 19; MinIO reads AWS IAM policy documents, `arn:aws:s3:::` resources). Pure.
 */
export function renderMinioAppPolicy(settings: Pick<MinioSettings, "bucket"> = DEFAULT_MINIO_SETTINGS): string {
  const policy = {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: ["s3:*"],
        Resource: [`arn:aws:s3:::${settings.bucket}`, `arn:aws:s3:::${settings.bucket}/*`],
      },
    ],
  };
  return JSON.stringify(policy, null, 2) + "\n";
}

/** mc alias of the root credentials in the bucket step. */
const MC_ROOT_ALIAS = "keybuzz";
/** mc alias of the application's own credentials, with which the step checks the bucket. */
const MC_APP_ALIAS = "app";

/**
 * Files of the bucket step, root-only: mc's aliases as `MC_HOST_<alias>` lines of a Docker env
 * file (root and application credentials, as placeholders), the application's secret key alone
 * (read by `mc admin user add` on stdin), and the policy. Both aliases point at `node`'s own S3
 * address: the load balancer's HAProxy waits for this module. Pure.
 */
export function minioBucketFiles(
  node: MinioNode,
  settings: MinioSettings = DEFAULT_MINIO_SETTINGS,
  paths: MinioHostPaths = MINIO_HOST_PATHS,
): HostFile[] {
  const address = `${node.address}:${settings.apiPort}`;
  return [
    {
      path: `${paths.adminDir}/mc.env`,
      content: [
        // mc reads an alias from MC_HOST_<alias>=http://<access key>:<secret key>@<host> (mc cmd/config.go);
        // the generated keys are alphanumeric, so they need no URL encoding.
        `MC_HOST_${MC_ROOT_ALIAS}=http://${settings.rootUser}:${secretRef(MINIO_ROOT_PASSWORD_KEY)}@${address}`,
        `MC_HOST_${MC_APP_ALIAS}=http://${MINIO_APP_USER}:${secretRef(MINIO_APP_SECRET_KEY)}@${address}`,
        "",
      ].join("\n"),
      mode: "0600",
    },
    { path: `${paths.adminDir}/app-secret-key`, content: `${secretRef(MINIO_APP_SECRET_KEY)}\n`, mode: "0600" },
    { path: `${paths.adminDir}/app-policy.json`, content: renderMinioAppPolicy(settings), mode: "0600" },
  ];
}

/**
 * Body of the bucket step (scripts/minio/bucket.sh) on `node`: waits for the write quorum, then
 * creates the bucket, the policy and the application's user with mc from the pinned image, and
 * lists the bucket with the application's own key. Pure.
 */
export function renderMinioBucketScript(
  node: MinioNode,
  image: string,
  settings: MinioSettings = DEFAULT_MINIO_SETTINGS,
  paths: MinioHostPaths = MINIO_HOST_PATHS,
): string {
  return stepBody("minio", ["bucket.sh"], {
    variables: {
      KB_IMAGE: imagePull(image).run,
      KB_MC_ENV_FILE: `${paths.adminDir}/mc.env`,
      KB_POLICY_FILE: `${paths.adminDir}/app-policy.json`,
      KB_APP_SECRET_FILE: `${paths.adminDir}/app-secret-key`,
      KB_ROOT_ALIAS: MC_ROOT_ALIAS,
      KB_APP_ALIAS: MC_APP_ALIAS,
      KB_BUCKET: settings.bucket,
      KB_POLICY: minioAppPolicyName(settings),
      KB_APP_USER: MINIO_APP_USER,
      KB_HEALTH_URL: `http://${node.address}:${settings.apiPort}${MINIO_HEALTH_PATH}`,
    },
  });
}

/**
 * The endpoint check's bash body (scripts/minio/endpoint-check.sh): the cluster probe answers 200
 * through the load balancer at `address:port`, i.e. LB → HAProxy → a MinIO node with write quorum. Pure.
 */
export function renderMinioEndpointCheckScript(address: string, port: number): string {
  return stepBody("minio", ["endpoint-check.sh"], {
    variables: { KB_LB_ADDRESS: address, KB_LB_PORT: port, KB_HEALTH_PATH: MINIO_HEALTH_PATH },
  });
}

/** The verification bash body (scripts/minio/verify.sh): `/minio/health/cluster` answers 200 (write quorum) on every node. Pure. */
export function renderMinioVerifyScript(nodes: readonly MinioNode[], settings: MinioSettings = DEFAULT_MINIO_SETTINGS): string {
  const urls = nodes.map((node) => `http://${node.address}:${settings.apiPort}${MINIO_HEALTH_PATH}`);
  return stepBody("minio", ["verify.sh"], { variables: { KB_HEALTH_URLS: urls.join(" ") } });
}
