import * as fs from "fs";
import * as path from "path";
import { lockedImage, Versions } from "../../../config";
import { secretRef, shellQuote } from "../../lib/remote";
import { CONTAINER_NOFILE, imagePull, renderLockedImagePull } from "../../lib/container";
import { ACCOUNTS } from "../../security/secrets";
import { DbNode, patroniBuildArgs } from "./render";
import {
  DEFAULT_POSTGRES_LAYOUT,
  ETCD_UID,
  PATRONI_SCOPE,
  POSTGRES_UID,
  PostgresLayout,
  PostgresSettings,
  SECRET_KEYS,
  timingOf,
} from "./settings";

/** Step scripts of the PostgreSQL tier: static shell in scripts/postgres/ behind a rendered preamble. */

const SCRIPTS = path.join(__dirname, "..", "..", "..", "scripts", "postgres");

function script(name: string): string {
  return fs.readFileSync(path.join(SCRIPTS, name), "utf8").trim();
}

/**
 * `KB_NAME='value'` lines, quoted for bash. With `shared`, one block for several scripts that each
 * use only some of the settings (shellcheck's unused-variable check is off for that block only).
 */
export function renderPreamble(variables: Readonly<Record<string, string | number>>, shared = false): string {
  const lines = Object.entries(variables).map(([key, value]) => `${key}=${shellQuote(String(value))}`);
  if (!shared) return lines.join("\n");
  return ["# shellcheck disable=SC2034 # settings shared by the Patroni step scripts", "{", ...lines.map((line) => `  ${line}`), "}"].join(
    "\n",
  );
}

/** Seconds a node step waits for its member to be healthy (a replica's first clone included). */
export const PATRONI_WAIT_SECONDS = 900;

/** Path of the etcd run script on the host. */
export function etcdRunPath(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  return path.posix.join(layout.paths.etcdConfigDir, "run.sh");
}

/** Body of the volume step: mount the XFS volume (fstab, noatime), PGDATA and WAL dirs 700. */
export function renderVolumeScript(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  const { paths } = layout;
  return `${renderPreamble({
    KB_VOLUME_MOUNT: paths.volumeMount,
    KB_DATA_DIR: paths.dataDir,
    KB_WAL_DIR: paths.walDir,
    KB_POSTGRES_UID: POSTGRES_UID,
  })}\n${script("volume.sh")}`;
}

/**
 * The etcd run script installed on the host (`run.sh start | wait-cluster SECONDS`), with its
 * settings baked in: the image, the data and config dirs, this member's and every member's endpoint.
 */
export function renderEtcdRunScript(
  node: DbNode,
  members: readonly DbNode[],
  versions: Versions,
  layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT,
): string {
  const { ports, paths } = layout;
  return `#!/usr/bin/env bash\n${renderPreamble({
    KB_ETCD_IMAGE: imagePull(lockedImage(versions, "etcd")).run,
    KB_ETCD_NOFILE: CONTAINER_NOFILE.etcd,
    KB_ETCD_UID: ETCD_UID,
    KB_ETCD_DATA_DIR: paths.etcdDataDir,
    KB_ETCD_CONFIG_DIR: paths.etcdConfigDir,
    KB_ETCD_ENDPOINT: `https://${node.address}:${ports.etcdClient}`,
    KB_ETCD_ENDPOINTS: members.map((member) => `https://${member.address}:${ports.etcdClient}`).join(","),
  })}\n${script("etcd-run.sh")}\n`;
}

/**
 * Body of the etcd step: start (or update) the member; a formed cluster's member waits for health.
 *
 * @param etcdImage `lockedImage(versions, "etcd")`: when locked, the step first pulls the digest and
 *   points the tag run.sh runs at it.
 */
export function renderEtcdStepScript(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT, etcdImage = ""): string {
  return `${renderLockedImagePull(etcdImage)}${etcdRunPath(layout)} start`;
}

/**
 * Line appended to etcd.env when the digest lock pins etcd: run.sh hashes etcd.env into the
 * container's `keybuzz.spec` label, so a new digest re-creates the member (one at a time, as any
 * change); the container's environment names the digest it runs. etcd reads only `ETCD_*` variables.
 */
export function renderEtcdLockedImageEnv(versions: Versions): string {
  const { pull, run } = imagePull(lockedImage(versions, "etcd"));
  return pull === run ? "" : `KEYBUZZ_ETCD_IMAGE=${pull}\n`;
}

/** Body of the image step: build the Patroni image unless this exact tag exists. */
export function renderImageBuildScript(versions: Versions, imageTag: string, layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  const buildArgs = Object.entries(patroniBuildArgs(versions))
    .map(([key, value]) => `--build-arg ${shellQuote(`${key}=${value}`)}`)
    .join(" ");
  const context = path.posix.join(layout.paths.configDir, "build");
  return `${renderPreamble({ KB_IMAGE_TAG: imageTag })}
if docker image inspect "$KB_IMAGE_TAG" >/dev/null 2>&1; then
  echo "patroni image: $KB_IMAGE_TAG present"
else
  docker build -q ${buildArgs} -t "$KB_IMAGE_TAG" ${context}
  echo "patroni image: built $KB_IMAGE_TAG"
fi`;
}

function patroniPreamble(
  node: DbNode,
  members: readonly DbNode[],
  settings: PostgresSettings,
  imageTag: string,
  layout: PostgresLayout,
): string {
  const { ports, paths } = layout;
  return renderPreamble(
    {
      KB_NODE: node.name,
      KB_ADDRESS: node.address,
      KB_REST_PORT: ports.restApi,
      KB_POSTGRES_PORT: ports.postgres,
      KB_SCOPE: PATRONI_SCOPE,
      KB_DCS: settings.dcs,
      KB_IMAGE_TAG: imageTag,
      KB_PATRONI_NOFILE: CONTAINER_NOFILE.patroni,
      KB_CONFIG_DIR: paths.configDir,
      KB_TLS_DIR: paths.tlsDir,
      KB_VOLUME_MOUNT: paths.volumeMount,
      KB_RAFT_DIR: paths.raftDir,
      KB_POSTGRES_UID: POSTGRES_UID,
      KB_ETCD_RUN: etcdRunPath(layout),
      KB_LOOP_WAIT: timingOf(settings).loopWait,
      KB_WAIT_SECONDS: PATRONI_WAIT_SECONDS,
      KB_REPLICAS: members.length - 1,
      KB_PENDING_MARKER: path.posix.join(paths.configDir, "restart-pending"),
    },
    true,
  );
}

/** The Patroni steps and the script in scripts/postgres/ each one ends with. */
const PATRONI_STEP_SCRIPTS = {
  /** A node's Patroni step: bootstrap or rolling change. */
  node: "patroni-node.sh",
  /** A node's finish step: the deferred leader restart after a switchover. */
  finish: "patroni-finish.sh",
  /** The verification step (run on the bootstrap node). */
  verify: "verify.sh",
} as const;

/** One of {@link PATRONI_STEP_SCRIPTS}. */
export type PatroniStep = keyof typeof PATRONI_STEP_SCRIPTS;

/** Body of a Patroni step on `node`: the KB_* preamble, patroni-lib.sh, then the step's own script. */
export function renderPatroniStepScript(
  step: PatroniStep,
  node: DbNode,
  members: readonly DbNode[],
  settings: PostgresSettings,
  imageTag: string,
  layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT,
): string {
  return [patroniPreamble(node, members, settings, imageTag, layout), script("patroni-lib.sh"), script(PATRONI_STEP_SCRIPTS[step])].join(
    "\n",
  );
}

/** The REST API state helper the steps call (host python3). */
export function patroniStateHelper(): string {
  return fs.readFileSync(path.join(SCRIPTS, "patroni_state.py"), "utf8");
}

/** Name of the application database (and of its owner role, {@link ACCOUNTS.postgresApp}). */
export const APP_DATABASE = "keybuzz";

/**
 * SQL run on the leader by the verification step: the application role (password from the
 * secret placeholder) and database, created only when missing, then the vector extension in it.
 */
export function renderAppSql(): string {
  const role = ACCOUNTS.postgresApp;
  return `-- Rendered by KeyBuzz: idempotent application role and database.
SELECT format('CREATE ROLE %I LOGIN', '${role}') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') \\gexec
ALTER ROLE ${role} WITH LOGIN PASSWORD '${secretRef(SECRET_KEYS.app)}';
SELECT format('CREATE DATABASE %I OWNER %I', '${APP_DATABASE}', '${role}') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${APP_DATABASE}') \\gexec
\\connect ${APP_DATABASE}
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector AS vector_works;
`;
}

/** pgpass of the verification step: the superuser, every host. */
export function renderVerifyPgpass(): string {
  return `*:*:*:${ACCOUNTS.postgresSuperuser}:${secretRef(SECRET_KEYS.superuser)}\n`;
}
