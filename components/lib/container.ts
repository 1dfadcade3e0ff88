import { digestReference } from "../../config/lock";
import { sha256, shellQuote } from "./remote";

/**
 * How the data modules (Redis, RabbitMQ, MinIO, HAProxy, PgBouncer) run one long-lived container on a host: pinned
 * image, host network, restart policy, bounded logs, its `nofile` limit, and a `keybuzz.spec` label holding the hash of
 * everything that defines the container, so a step recreates it only when that changes.
 */

/**
 * `nofile` limit (open files and sockets; soft = hard, `docker run --ulimit`) of each long-lived
 * container, so none runs with Docker's default soft limit of 1024. Each value is its daemon's
 * upstream recommendation; the computed ones are {@link haproxyNofile} and PgBouncer's `pgbouncerNofile`
 * (components/data/pgbouncer/render.ts: a library does not import a data module).
 */
export const CONTAINER_NOFILE = {
  /**
   * RabbitMQ 3.13 docs: at least 50K for production (production-checklist.md, "Open File Handles
   * Limit"); install-debian.md sets 64000 (systemd `LimitNOFILE` and Docker `default-ulimits`), and
   * above 65536 the runtime's `ERL_MAX_PORTS` must be raised too.
   */
  rabbitmq: 64000,
  /**
   * Redis 7.2 (redis.conf, CLIENTS): `maxclients` 10000 by default plus the 32 descriptors Redis
   * keeps for itself (`CONFIG_MIN_RESERVED_FDS`); below that Redis lowers `maxclients`. Also Sentinel.
   */
  redis: 10032,
  /** MinIO's own systemd unit (minio/minio-service, linux-systemd/minio.service): `LimitNOFILE=1048576`. */
  minio: 1048576,
  /** ProxySQL v2.6.4's systemd unit (systemd/system/proxysql.service): `LimitNOFILE=102400`. */
  proxysql: 102400,
  /** MariaDB's systemd unit (support-files/mariadb.service.in, "previously [mysqld_safe] open-files-limit"): `LimitNOFILE=32768`. */
  mariadb: 32768,
  /** etcd v3.5.21's systemd unit (contrib/systemd/etcd.service): `LimitNOFILE=40000`. */
  etcd: 40000,
  /**
   * Patroni + PostgreSQL 16: each backend opens up to `max_files_per_process` (1000 by default)
   * files besides its sockets, which leaves almost nothing of a 1024 limit; Patroni's docs list
   * `nofile` among the limits to test. 4096 per process, PostgreSQL's own cap stays the bound.
   */
  patroni: 4096,
} as const;

/**
 * HAProxy's `nofile` for a global `maxconn`: HAProxy needs two sockets per connection plus its
 * listeners, checks and per-thread pollers (HAProxy 2.8 `compute_ideal_maxsock`, and configuration.txt
 * "maxconn": ulimit-n follows maxconn); 1024 descriptors cover those extras.
 */
export function haproxyNofile(maxconn: number): number {
  return 2 * maxconn + 1024;
}

/** One container of a data module. */
export interface ContainerSpec {
  /** Container name on the host, e.g. `redis`. */
  readonly name: string;
  /**
   * Pinned image reference (config/versions.yaml), or `name:tag@sha256:…` when the digest lock pins
   * the tag ({@link lockedImage}): then the container runs the local tag, pulled by digest.
   */
  readonly image: string;
  /** `docker run` options besides the common ones (volumes, env files, `--user`). Never secret. */
  readonly options: readonly string[];
  /** Command and arguments after the image. Never secret. */
  readonly command: readonly string[];
  /** Its `nofile` limit, soft = hard ({@link CONTAINER_NOFILE}). */
  readonly nofile: number;
  /**
   * Seconds a running container gets to exit after its stop signal (SIGTERM unless the image sets
   * STOPSIGNAL) before Docker kills it (`docker stop -t`), when it is recreated; sized from the
   * daemon's own shutdown work. Unset: the old container is removed with `docker rm -f` (SIGKILL).
   * Not part of the spec label: how a container is stopped does not recreate it.
   */
  readonly stopGraceSeconds?: number;
}

/** Options every data container gets: host network (DESIGN.md), restart after reboots, bounded logs. */
const COMMON_OPTIONS = ["--network", "host", "--restart", "unless-stopped", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"];

/** `docker run` options of a container's limits. */
function limitOptions(spec: ContainerSpec): string[] {
  return ["--ulimit", `nofile=${spec.nofile}:${spec.nofile}`];
}

/** How a host gets an image: the reference it pulls, and the local tag it runs when pulled by digest. */
export interface ImagePull {
  /** Reference given to `docker pull`: the tag, or `name@sha256:…` when locked. */
  readonly pull: string;
  /** Reference given to `docker run`: the tag (pointed at the pulled digest when locked). */
  readonly run: string;
}

/**
 * Splits an image reference of {@link ContainerSpec.image}. `name:tag@digest` is never handed to
 * Docker: it would pull the digest and leave it untagged, ignoring the tag (docker/cli#2856).
 */
export function imagePull(image: string): ImagePull {
  const locked = /^(.+:[\w][\w.-]*)@(sha256:[0-9a-f]{64})$/.exec(image);
  if (!locked || locked[1].includes("@")) return { pull: image, run: image };
  return { pull: digestReference(locked[1], locked[2]), run: locked[1] };
}

/**
 * Bash that makes `image` present on the host: without a digest, `docker pull` of the tag unless
 * present; with one, `docker pull name@sha256:…` unless present, then `docker tag` of that digest
 * as the tag, so the tag names the locked image whatever the registry serves under it now
 * (`docker image tag` takes any reference as source and refuses a digest as target: docker/cli
 * moby client ImageTag).
 */
export function renderImagePull(image: string): string {
  const { pull, run } = imagePull(image);
  const present = `docker image inspect ${pull} >/dev/null 2>&1 || docker pull -q ${pull}`;
  return pull === run ? present : `${present} >/dev/null\ndocker tag ${pull} ${run}`;
}

/**
 * {@link renderImagePull} and a newline for a locked image, else nothing: a script that pulls its
 * tag itself (etcd, Galera, PgBouncer's version check) then finds the tag pointed at the digest.
 */
export function renderLockedImagePull(image: string): string {
  const { pull, run } = imagePull(image);
  return pull === run ? "" : `${renderImagePull(image)}\n`;
}

/**
 * Bash that defines `kb_<name>_pull` for one container: makes its image present
 * ({@link renderImagePull}) without touching the container, for a step that compares the image it
 * runs with the wanted one before it decides when to restart (MinIO's binary change). Pure.
 */
export function renderContainerPullFunction(spec: Pick<ContainerSpec, "name" | "image">): string {
  return `kb_${spec.name.replace(/-/g, "_")}_pull() {
  ${renderImagePull(spec.image).replace(/\n/g, "\n  ")}
}`;
}

/**
 * The `keybuzz.spec` label value of a container: sha256 of its image (with the locked digest, so a
 * new digest recreates the container), options, limits and command. Pure.
 */
export function containerSpecHash(spec: ContainerSpec): string {
  return sha256(JSON.stringify([spec.image, COMMON_OPTIONS, limitOptions(spec), spec.options, spec.command]));
}

/**
 * Bash that defines two functions for one container, named after it (`-` becomes `_`):
 * `kb_<name>_state` prints `missing`, `outdated` (label differs), `stopped` or `current`;
 * `kb_<name>_run` pulls the image if absent ({@link renderImagePull}), stops any old container
 * (within {@link ContainerSpec.stopGraceSeconds} when set), removes it and starts the new one.
 */
export function renderContainerFunctions(spec: ContainerSpec): string {
  const fn = spec.name.replace(/-/g, "_");
  const hash = containerSpecHash(spec);
  const stopOld =
    spec.stopGraceSeconds === undefined ? "" : `\n  docker stop -t ${spec.stopGraceSeconds} ${spec.name} >/dev/null 2>&1 || true`;
  const run = [
    "docker",
    "run",
    "-d",
    "--name",
    spec.name,
    "--label",
    `keybuzz.spec=${hash}`,
    ...COMMON_OPTIONS,
    ...limitOptions(spec),
    ...spec.options,
    imagePull(spec.image).run,
    ...spec.command,
  ]
    .map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : shellQuote(word)))
    .join(" ");
  return `kb_${fn}_state() {
  local label
  if ! label=$(docker inspect -f '{{ index .Config.Labels "keybuzz.spec" }}' ${spec.name} 2>/dev/null); then
    echo missing
  elif [ "$label" != "${hash}" ]; then
    echo outdated
  elif [ "$(docker inspect -f '{{ .State.Running }}' ${spec.name})" = "true" ]; then
    echo current
  else
    echo stopped
  fi
}
kb_${fn}_run() {
  ${renderImagePull(spec.image).replace(/\n/g, "\n  ")}${stopOld}
  docker rm -f ${spec.name} >/dev/null 2>&1 || true
  ${run}
}`;
}
