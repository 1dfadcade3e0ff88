import { sha256, shellQuote } from "../remote";

/**
 * How the data modules (Redis, RabbitMQ, MinIO, HAProxy, PgBouncer) run one long-lived container on a host: pinned
 * image, host network, restart policy, bounded logs, and a `keybuzz.spec` label holding the hash of
 * everything that defines the container, so a step recreates it only when that changes.
 */

/** One container of a data module. */
export interface ContainerSpec {
  /** Container name on the host, e.g. `redis`. */
  readonly name: string;
  /** Pinned image reference (config/versions.yaml). */
  readonly image: string;
  /** `docker run` options besides the common ones (volumes, env files, `--user`). Never secret. */
  readonly options: readonly string[];
  /** Command and arguments after the image. Never secret. */
  readonly command: readonly string[];
}

/** Options every data container gets: host network (DESIGN.md), restart after reboots, bounded logs. */
const COMMON_OPTIONS = ["--network", "host", "--restart", "unless-stopped", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"];

/** The `keybuzz.spec` label value of a container: sha256 of its image, options and command. Pure. */
export function containerSpecHash(spec: ContainerSpec): string {
  return sha256(JSON.stringify([spec.image, COMMON_OPTIONS, spec.options, spec.command]));
}

/**
 * Bash that defines two functions for one container, named after it (`-` becomes `_`):
 * `kb_<name>_state` prints `missing`, `outdated` (label differs), `stopped` or `current`;
 * `kb_<name>_run` pulls the image if absent, removes any old container and starts the new one.
 */
export function renderContainerFunctions(spec: ContainerSpec): string {
  const fn = spec.name.replace(/-/g, "_");
  const hash = containerSpecHash(spec);
  const run = [
    "docker",
    "run",
    "-d",
    "--name",
    spec.name,
    "--label",
    `keybuzz.spec=${hash}`,
    ...COMMON_OPTIONS,
    ...spec.options,
    spec.image,
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
  docker image inspect ${spec.image} >/dev/null 2>&1 || docker pull -q ${spec.image}
  docker rm -f ${spec.name} >/dev/null 2>&1 || true
  ${run}
}`;
}
