import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { lockedImage, Versions } from "../../config";
import { Host, HostFile, remoteStep } from "../lib/remote";
import { ContainerSpec, haproxyNofile, imagePull, renderContainerFunctions, renderImagePull } from "../lib/container";

/**
 * The shared HAProxy of haproxy-01/02 (spec 001, module 3 "HAProxy"; DESIGN.md, load balancers):
 * one container per host, host network, binding `0.0.0.0` (the Hetzner LB 10.0.0.10 forwards to
 * the private IPs), one `listen` section per service. Every module that needs it (PostgreSQL,
 * Redis, RabbitMQ) hands its {@link HaproxyListener}s to the one {@link HaproxyLayer}.
 */

/** One `listen` section of the shared HAProxy on haproxy-01/02. */
export interface HaproxyListener {
  /** Section name, e.g. "postgres-write", "redis". */
  readonly name: string;
  /** Port bound on 0.0.0.0 (never the LB IP). */
  readonly port: number;
  /** Lines of the section after the bind line: mode, options, checks, `server` lines. May hold secretRef() placeholders (e.g. the Redis AUTH in a tcp-check). */
  readonly lines: readonly string[];
}

/** Directory of the configuration on the host (bind-mounted read-only into the container). */
export const HAPROXY_HOST_DIR = "/etc/keybuzz/haproxy";
/** Where the official image reads its configuration. */
export const HAPROXY_CONTAINER_DIR = "/usr/local/etc/haproxy";
/** uid/gid of the `haproxy` user of the official image (it drops root); owns the config files. */
export const HAPROXY_IMAGE_UID = 99;
/** Stats page, HTTP on loopback only (`curl http://127.0.0.1:8404/stats`). */
export const HAPROXY_STATS = { address: "127.0.0.1", port: 8404, uri: "/stats" } as const;

/** Global `maxconn` of the HAProxy process (the container's `nofile` follows it). */
export const HAPROXY_MAXCONN = 4096;

/** Options of {@link renderHaproxyConfig}; defaults are production values. */
export interface HaproxyRenderOptions {
  /** Address of the stats listener; loopback only. Default 127.0.0.1. */
  readonly statsAddress?: string;
  /** Port of the stats listener. Default 8404. */
  readonly statsPort?: number;
  /** Address every listener binds. Default `0.0.0.0` (never the LB IP, which is not on the host). */
  readonly bindAddress?: string;
  /** `maxconn` of the process. Default {@link HAPROXY_MAXCONN}. */
  readonly maxconn?: number;
}

const LISTENER_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Renders haproxy.cfg: global, TCP defaults, the stats page on loopback, then one `listen` section
 * per listener in the given order. Valid for HAProxy 2.6 (Debian bookworm) and 2.8 (the image).
 *
 * @throws Error on a duplicate listener name or port, a bad name, or a port out of range.
 */
export function renderHaproxyConfig(listeners: readonly HaproxyListener[], options: HaproxyRenderOptions = {}): string {
  const statsAddress = options.statsAddress ?? HAPROXY_STATS.address;
  const statsPort = options.statsPort ?? HAPROXY_STATS.port;
  const bindAddress = options.bindAddress ?? "0.0.0.0";
  const seenNames = new Set<string>(["stats"]);
  const seenPorts = new Set<number>([statsPort]);
  for (const listener of listeners) {
    if (!LISTENER_NAME.test(listener.name)) throw new Error(`HAProxy listener "${listener.name}": name must match ${LISTENER_NAME}`);
    if (!Number.isInteger(listener.port) || listener.port < 1 || listener.port > 65535) {
      throw new Error(`HAProxy listener "${listener.name}": port ${listener.port} is out of range`);
    }
    if (seenNames.has(listener.name)) throw new Error(`HAProxy listener "${listener.name}" is declared twice`);
    if (seenPorts.has(listener.port)) throw new Error(`HAProxy listener "${listener.name}": port ${listener.port} is already bound`);
    seenNames.add(listener.name);
    seenPorts.add(listener.port);
  }
  const sections = [
    [
      "# Rendered by KeyBuzz (components/data/haproxy.ts). Do not edit on the host.",
      "global",
      "    log stdout format raw local0 info",
      `    maxconn ${options.maxconn ?? HAPROXY_MAXCONN}`,
      "    hard-stop-after 30s",
    ],
    [
      "defaults",
      "    mode tcp",
      "    log global",
      "    option dontlognull",
      "    retries 3",
      "    timeout connect 5s",
      // Long client/server timeouts: database and broker sessions idle for minutes.
      "    timeout client 30m",
      "    timeout server 30m",
      "    timeout check 3s",
    ],
    [
      "listen stats",
      `    bind ${statsAddress}:${statsPort}`,
      "    mode http",
      "    timeout client 30s",
      "    timeout server 30s",
      "    stats enable",
      `    stats uri ${HAPROXY_STATS.uri}`,
      "    stats refresh 10s",
    ],
    ...listeners.map((listener) => [
      `listen ${listener.name}`,
      `    bind ${bindAddress}:${listener.port}`,
      ...listener.lines.map((line) => `    ${line}`),
    ]),
  ];
  return sections.map((lines) => lines.join("\n")).join("\n\n") + "\n";
}

/** A file the layer places beside haproxy.cfg (e.g. a CA certificate a check verifies against). */
export interface HaproxyExtraFile {
  /** File name inside the config directory (host {@link HAPROXY_HOST_DIR}, container {@link HAPROXY_CONTAINER_DIR}). */
  readonly name: string;
  /** Content; may be a secretRef() placeholder whose value is in `secrets`. */
  readonly content: string;
}

/** Arguments of {@link HaproxyLayer}. */
export interface HaproxyLayerArgs {
  /** The haproxy group's hosts (haproxy-01, haproxy-02), in inventory order: changes roll in this order. */
  readonly hosts: readonly Host[];
  /** Every module's listen sections; rendered once into haproxy.cfg ({@link renderHaproxyConfig}). */
  readonly listeners: readonly HaproxyListener[];
  /** Values of the secretRef() placeholders used in listener lines and extra files, by key. */
  readonly secrets?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Files placed beside haproxy.cfg, referenced from listener lines by their container path. */
  readonly extraFiles?: readonly HaproxyExtraFile[];
  /** Pinned versions; uses `images.haproxy` (config/versions.yaml). */
  readonly versions: Versions;
  /** Verified end of the base OS per host name (`BaseOs.ready`); each host's first step waits for it. */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
  /** Extra resources every step waits for, e.g. the verification of the clusters behind the listeners. */
  readonly dependsOn?: readonly pulumi.Resource[];
  /** Seconds the verification waits for every listener to have a server UP. Default 120. */
  readonly verifyTimeoutSeconds?: number;
}

/**
 * Renders the body of the step that (re)starts HAProxy on one host: validates the new config with
 * the image's own `haproxy -c`, recreates the container when the image or its options changed,
 * reloads it (SIGHUP, master-worker: no dropped connections) when only the config changed, then
 * waits until every listener has at least one server UP according to the loopback stats CSV.
 */
export function renderHaproxyStepScript(image: string, listeners: readonly HaproxyListener[], verifyTimeoutSeconds = 120): string {
  const names = listeners.map((listener) => listener.name).join(" ");
  const container: ContainerSpec = {
    name: "haproxy",
    image,
    options: ["-v", `${HAPROXY_HOST_DIR}:${HAPROXY_CONTAINER_DIR}:ro`],
    command: [],
    nofile: haproxyNofile(HAPROXY_MAXCONN),
  };
  return `${renderContainerFunctions(container)}
${renderImagePull(image)}
# Reject a bad configuration before it reaches the running proxy.
docker run --rm --network none -v ${HAPROXY_HOST_DIR}:${HAPROXY_CONTAINER_DIR}:ro ${imagePull(image).run} haproxy -c -q -f ${HAPROXY_CONTAINER_DIR}/haproxy.cfg
if [ "$(kb_haproxy_state)" != current ]; then
  kb_haproxy_run >/dev/null
elif kb_is_changed ${HAPROXY_HOST_DIR}/haproxy.cfg; then
  docker kill -s HUP haproxy
fi
# Verification: every listener has a server UP (the stats CSV: pxname,svname,...,status is field 18).
server_up() {
  curl -fsS "http://${HAPROXY_STATS.address}:${HAPROXY_STATS.port}${HAPROXY_STATS.uri};csv" |
    awk -F, -v px="$1" '$1 == px && $2 != "FRONTEND" && $2 != "BACKEND" && $18 ~ /^UP/ { found = 1 } END { exit !found }'
}
for listener in ${names}; do
  kb_wait_until --logs haproxy ${verifyTimeoutSeconds} 2 "HAProxy: listener $listener has no server UP" server_up "$listener"
  echo "HAProxy: listener $listener has a server UP"
done`;
}

/**
 * The shared HAProxy on the haproxy group (`keybuzz:data:HaproxyLayer`): the rendered haproxy.cfg
 * (one listen section per module listener) on each host, in a pinned container on the host network.
 * Hosts change one at a time: haproxy-02's step waits for haproxy-01's verified step, so the LB
 * always has one healthy target.
 */
export class HaproxyLayer extends pulumi.ComponentResource {
  /** The verified step of each host, by host name: HAProxy runs and every listener has a server UP. */
  public readonly ready: Readonly<Record<string, command.remote.Command>>;
  /** The rendered haproxy.cfg (may hold secret placeholders, never values). */
  public readonly config: string;

  constructor(name: string, args: HaproxyLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:HaproxyLayer", name, {}, opts);
    this.config = renderHaproxyConfig(args.listeners);
    const owner = `${HAPROXY_IMAGE_UID}:${HAPROXY_IMAGE_UID}`;
    const files: HostFile[] = [
      { path: `${HAPROXY_HOST_DIR}/haproxy.cfg`, content: this.config, mode: "0640", owner },
      ...(args.extraFiles ?? []).map((file) => ({ path: `${HAPROXY_HOST_DIR}/${file.name}`, content: file.content, mode: "0640", owner })),
    ];
    const script = renderHaproxyStepScript(lockedImage(args.versions, "haproxy"), args.listeners, args.verifyTimeoutSeconds);
    const ready: Record<string, command.remote.Command> = {};
    let previous: pulumi.Resource | undefined;
    for (const host of args.hosts) {
      const hostName = host.spec.name;
      const baseReady = args.ready[hostName];
      if (!baseReady) throw new Error(`HaproxyLayer ${name}: no base OS readiness for ${hostName}`);
      const step = remoteStep(
        `${hostName}-haproxy`,
        { host, files, script, secrets: args.secrets, timeoutMinutes: 10 },
        { parent: this, dependsOn: [baseReady, ...(args.dependsOn ?? []), ...(previous ? [previous] : [])] },
      );
      ready[hostName] = step;
      previous = step;
    }
    this.ready = ready;
    this.registerOutputs({});
  }
}
