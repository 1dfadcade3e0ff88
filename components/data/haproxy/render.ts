import { ContainerSpec, haproxyNofile, renderContainerFunctions, renderImagePull, imagePull } from "../../lib/container";
import type { HaproxyListener } from "../../lib/contract";
import { stepBody } from "../../lib/scripts";

/**
 * Pure renders of the shared HAProxy of haproxy-01/02 (spec 001, module 3 "HAProxy"; DESIGN.md,
 * load balancers): one container per host, host network, binding `0.0.0.0` (the Hetzner LB
 * 10.0.0.10 forwards to the private IPs), one `listen` section per listener the modules behind it
 * contribute (PostgreSQL, Redis, RabbitMQ).
 */

/** Directory of the configuration on the host (bind-mounted read-only into the container). */
export const HAPROXY_HOST_DIR = "/etc/keybuzz/haproxy";
/** Where the official image reads its configuration. */
export const HAPROXY_CONTAINER_DIR = "/usr/local/etc/haproxy";
/** uid/gid of the `haproxy` user of the official image (it drops root); owns the config files. */
export const HAPROXY_IMAGE_UID = 99;
/** Stats page, HTTP on loopback only (`curl http://127.0.0.1:8404/stats`). */
export const HAPROXY_STATS = { address: "127.0.0.1", port: 8404, uri: "/stats" } as const;

/**
 * HAProxy's built-in Prometheus exporter (addons/promex, compiled into the official image: the
 * docker-library/haproxy 2.8 Dockerfile builds with `USE_PROMEX=1`): `/metrics` on every address
 * of the host, port 8405 as in promex's README; UFW opens it to the Kubernetes nodes only.
 */
export const HAPROXY_PROMETHEUS = { port: 8405, path: "/metrics" } as const;

/** Global `maxconn` of the HAProxy process (the container's `nofile` follows it). */
export const HAPROXY_MAXCONN = 4096;

/** Options of {@link renderHaproxyConfig}; defaults are production values. */
export interface HaproxyRenderOptions {
  /** Address of the stats listener; loopback only. Default 127.0.0.1. */
  readonly statsAddress?: string;
  /** Port of the stats listener. Default 8404. */
  readonly statsPort?: number;
  /** Port of the Prometheus exporter's frontend (on `bindAddress`). Default {@link HAPROXY_PROMETHEUS}.port. */
  readonly prometheusPort?: number;
  /** Address every listener binds. Default `0.0.0.0` (never the LB IP, which is not on the host). */
  readonly bindAddress?: string;
  /** `maxconn` of the process. Default {@link HAPROXY_MAXCONN}. */
  readonly maxconn?: number;
}

const LISTENER_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Renders haproxy.cfg: global, TCP defaults, the stats page on loopback, the Prometheus exporter's
 * frontend (`http-request use-service prometheus-exporter`), then one `listen` section
 * per listener in the given order. Valid for HAProxy 2.6 (Debian bookworm) and 2.8 (the image).
 *
 * @throws Error on a duplicate listener name or port, a bad name, or a port out of range.
 */
export function renderHaproxyConfig(listeners: readonly HaproxyListener[], options: HaproxyRenderOptions = {}): string {
  const statsAddress = options.statsAddress ?? HAPROXY_STATS.address;
  const statsPort = options.statsPort ?? HAPROXY_STATS.port;
  const bindAddress = options.bindAddress ?? "0.0.0.0";
  const prometheusPort = options.prometheusPort ?? HAPROXY_PROMETHEUS.port;
  const seenNames = new Set<string>(["stats", "prometheus"]);
  const seenPorts = new Set<number>([statsPort, prometheusPort]);
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
      // The header names the file as it was before the module became a folder: changing it would reload every HAProxy for a comment.
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
    [
      "frontend prometheus",
      `    bind ${bindAddress}:${prometheusPort}`,
      "    mode http",
      "    timeout client 30s",
      `    http-request use-service prometheus-exporter if { path ${HAPROXY_PROMETHEUS.path} }`,
      "    no log",
    ],
    ...listeners.map((listener) => [
      `listen ${listener.name}`,
      `    bind ${bindAddress}:${listener.port}`,
      ...listener.lines.map((line) => `    ${line}`),
    ]),
  ];
  return sections.map((lines) => lines.join("\n")).join("\n\n") + "\n";
}

/** The stats page's CSV export as a host's step reads it (HAProxy management guide, "CSV format"). */
export const HAPROXY_STATS_CSV_URL = `http://${HAPROXY_STATS.address}:${HAPROXY_STATS.port}${HAPROXY_STATS.uri};csv`;

/**
 * Renders the body of the step that (re)starts HAProxy on one host (scripts/haproxy/haproxy-step.sh):
 * validates the new config with the image's own `haproxy -c`, recreates the container when the
 * image or its options changed, reloads it (SIGHUP, master-worker: no dropped connections) when
 * only the config changed, then waits up to `verifyTimeoutSeconds` until every listener has a
 * server UP whose last health check passed (scripts/haproxy/server-check.sh). Pure.
 */
export function renderHaproxyStepScript(image: string, listeners: readonly HaproxyListener[], verifyTimeoutSeconds = 120): string {
  const container: ContainerSpec = {
    name: "haproxy",
    image,
    options: ["-v", `${HAPROXY_HOST_DIR}:${HAPROXY_CONTAINER_DIR}:ro`],
    command: [],
    nofile: haproxyNofile(HAPROXY_MAXCONN),
  };
  return stepBody("haproxy", ["server-check.sh", "haproxy-step.sh"], {
    prefix: [renderContainerFunctions(container), renderImagePull(image)],
    variables: {
      KB_HOST_DIR: HAPROXY_HOST_DIR,
      KB_CONTAINER_DIR: HAPROXY_CONTAINER_DIR,
      KB_IMAGE: imagePull(image).run,
      KB_LISTENERS: listeners.map((listener) => listener.name).join(" "),
      KB_STATS_URL: HAPROXY_STATS_CSV_URL,
      KB_VERIFY_SECONDS: verifyTimeoutSeconds,
    },
  });
}
