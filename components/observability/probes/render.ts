import type * as k8s from "@pulumi/kubernetes";
import { ConfigError, digestReference, Inventory, LoadBalancerSpec, serversOf, type ImageKey, type Versions } from "../../../config";
import { PGBOUNCER_PORT } from "../../data/pgbouncer/render";
import { POSTGRES_HAPROXY_PORTS } from "../../data/postgres/render";
import { hostScript } from "../../lib/scripts";
import { BACKEND_PROBE_JOB } from "../monitoring/render";
import type { ProbesSettings } from "./settings";

/**
 * Pure renders of the backend probes (issue 16 item 6, spec 001 "Connectivité Services Backend"):
 * the probe Job's spec, its scripts, and blackbox_exporter's modules and ScrapeConfig specs, from
 * the inventory, the pinned versions and the `keybuzz:probes` settings.
 */

/** The namespace the applications (and so the probe Job) run in, with the backend's ConfigMap and Secret. */
export const PROBE_NAMESPACE = "keybuzz";
/** The backend's ConfigMap (components/k8s/addons), consumed by name with `envFrom`. */
export const BACKEND_CONFIGMAP = "keybuzz-backend-config";
/** The backend's credentials Secret (components/k8s/addons), consumed by name with `envFrom`, and mounted for the scrubbing. */
export const BACKEND_SECRET = "keybuzz-backend-credentials";
/** Name of the probe Job and of the ConfigMap holding its scripts. */
export const PROBE_JOB_NAME = "keybuzz-backend-probe";
/** Where the scripts' ConfigMap is mounted in each container. */
export const PROBE_SCRIPT_DIR = "/opt/keybuzz/probe";
/** Where the credentials Secret is mounted (read only by the scrubbing of the output, never printed). */
export const PROBE_SECRET_DIR = "/run/keybuzz/credentials";
/** The probe's script files (scripts/probes/). */
export const PROBE_SCRIPTS = ["backend-probe.sh", "amqp-open.sh"] as const;
/** The non-root user every probe container runs as (`nobody`: the client images need no user of their own). */
export const PROBE_UID = 65534;

/** The probe's scripts by file name (the ConfigMap's data). */
export function renderProbeScripts(): Record<string, string> {
  return Object.fromEntries(PROBE_SCRIPTS.map((file) => [file, hostScript("probes", file)]));
}

/**
 * One container per backend, each in the pinned image that ships that backend's own client (psql,
 * redis-cli, mariadb, bash for AMQP, MinIO's image for its static curl with SigV4): the images the
 * platform already runs, so the probe adds no new image.
 */
export const PROBE_CONTAINERS: readonly { readonly service: string; readonly image: ImageKey; readonly shell: "sh" | "bash" }[] = [
  { service: "postgres", image: "postgres", shell: "sh" },
  { service: "redis", image: "redis", shell: "sh" },
  { service: "mariadb", image: "mariadb", shell: "sh" },
  // bash: scripts/probes/amqp-open.sh speaks AMQP through bash's /dev/tcp.
  { service: "rabbitmq", image: "rabbitmq", shell: "bash" },
  { service: "minio", image: "minio", shell: "sh" },
];

/** A Kubernetes image reference of `images.<key>`: the locked digest when the lock has one (`repo@sha256:…`), else the tag. */
export function podImage(versions: Versions, key: ImageKey): string {
  const digest = versions.digests?.[key];
  return digest === undefined ? versions.images[key] : digestReference(versions.images[key], digest);
}

/**
 * The internal load balancers the applications reach: HAProxy's (PostgreSQL, PgBouncer, Redis,
 * RabbitMQ) and ProxySQL's (MariaDB).
 *
 * @throws {ConfigError} when either group has no internal load balancer.
 */
export function probeLoadBalancers(inventory: Inventory): Readonly<Record<"haproxy" | "proxysql", LoadBalancerSpec>> {
  const of = (group: "haproxy" | "proxysql") => {
    const lb = inventory.loadBalancers.find((candidate) => candidate.targetGroup === group && !candidate.public);
    if (!lb)
      throw new ConfigError([`keybuzz:loadBalancers: no internal load balancer targets the ${group} group; the backend probes need one`]);
    return lb;
  };
  return { haproxy: of("haproxy"), proxysql: of("proxysql") };
}

/**
 * The internal load balancer's PostgreSQL ports, by what HAProxy serves behind them (its write and
 * read listeners, PgBouncer): the ports the probe Job passes to psql with PGHOST.
 *
 * @throws {ConfigError} when the load balancer forwards none of one of those ports.
 */
export function postgresProbePorts(inventory: Inventory): { readonly write: number; readonly read: number; readonly pgbouncer: number } {
  const lb = probeLoadBalancers(inventory).haproxy;
  const listenPortFor = (destination: number, what: string) => {
    const service = lb.services.find((candidate) => candidate.destinationPort === destination);
    if (!service)
      throw new ConfigError([`keybuzz:loadBalancers: ${lb.name} forwards no port to ${destination} (${what}); the backend probe needs it`]);
    return service.listenPort;
  };
  return {
    write: listenPortFor(POSTGRES_HAPROXY_PORTS.write, "PostgreSQL write"),
    read: listenPortFor(POSTGRES_HAPROXY_PORTS.read, "PostgreSQL read"),
    pgbouncer: listenPortFor(PGBOUNCER_PORT, "PgBouncer"),
  };
}

/**
 * The probe Job's spec (`batch/v1` JobSpec): one container per backend ({@link PROBE_CONTAINERS}),
 * all with the backend's ConfigMap and Secret as environment (`envFrom`, the Secret last so its
 * keys win), the scripts from their ConfigMap, the Secret also as files for the output's
 * scrubbing; non-root, read-only root filesystem, no capabilities; `restartPolicy: Never`, bounded
 * by `activeDeadlineSeconds` and `backoffLimit`. Pure.
 */
export function renderProbeJobSpec(inventory: Inventory, versions: Versions, settings: ProbesSettings): k8s.types.input.batch.v1.JobSpec {
  const ports = postgresProbePorts(inventory);
  const environment = {
    KB_PG_WRITE_PORT: ports.write,
    KB_PG_READ_PORT: ports.read,
    KB_PGBOUNCER_PORT: ports.pgbouncer,
    KB_MINIO_BUCKET: settings.bucket,
    KB_CHECK_TIMEOUT: settings.checkTimeoutSeconds,
    KB_SECRET_DIR: PROBE_SECRET_DIR,
    KB_PROBE_DIR: PROBE_SCRIPT_DIR,
    // psql, mariadb and redis-cli look for dotfiles under HOME; nobody's is not writable.
    HOME: "/tmp",
  };
  return {
    backoffLimit: settings.jobBackoffLimit,
    activeDeadlineSeconds: settings.jobDeadlineSeconds,
    template: {
      metadata: { labels: { "app.kubernetes.io/name": PROBE_JOB_NAME } },
      spec: {
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: PROBE_UID, runAsGroup: PROBE_UID, fsGroup: PROBE_UID },
        volumes: [
          { name: "scripts", configMap: { name: PROBE_JOB_NAME, defaultMode: 0o555 } },
          { name: "credentials", secret: { secretName: BACKEND_SECRET, defaultMode: 0o440 } },
          { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "16Mi" } },
        ],
        containers: PROBE_CONTAINERS.map((container) => ({
          name: container.service,
          image: podImage(versions, container.image),
          command: [container.shell, `${PROBE_SCRIPT_DIR}/backend-probe.sh`, container.service],
          envFrom: [{ configMapRef: { name: BACKEND_CONFIGMAP } }, { secretRef: { name: BACKEND_SECRET } }],
          env: Object.entries(environment).map(([name, value]) => ({ name, value: String(value) })),
          volumeMounts: [
            { name: "scripts", mountPath: PROBE_SCRIPT_DIR, readOnly: true },
            { name: "credentials", mountPath: PROBE_SECRET_DIR, readOnly: true },
            { name: "tmp", mountPath: "/tmp" },
          ],
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
          resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
        })),
      },
    },
  };
}

// ---- Continuous probes (blackbox_exporter) ----

/** blackbox_exporter's Service in `monitoring` (the release's `fullnameOverride`) and port (chart default 9115). */
export const BLACKBOX_SERVICE = { name: "blackbox-exporter", port: 9115 } as const;

/** MinIO's liveness endpoint (MinIO's cmd/healthcheck-router.go: `/minio/health/live`, no authentication). */
export const MINIO_LIVENESS_PATH = "/minio/health/live";

/** One continuously probed endpoint: its `endpoint` label, the blackbox module and the target it probes. */
export interface ProbeTarget {
  readonly endpoint: string;
  readonly module: "tcp_connect" | "http_2xx";
  readonly target: string;
}

/**
 * The endpoints the applications reach, from the inventory: every service of the internal load
 * balancers of HAProxy (PostgreSQL write/read, PgBouncer, Redis, RabbitMQ) and ProxySQL
 * (MariaDB) by TCP connect on the load balancer's address, and each MinIO node's liveness over
 * HTTP (no backend port terminates TLS on connect: PostgreSQL negotiates it inside its protocol,
 * the others are plain TCP on the private network, so no module needs the platform CA). Pure.
 *
 * @throws {ConfigError} when there is no internal load balancer of HAProxy or ProxySQL.
 */
export function probeTargets(inventory: Inventory, minioPort: number): ProbeTarget[] {
  const tcp = Object.values(probeLoadBalancers(inventory)).flatMap((lb) => {
    return lb.services.map((service): ProbeTarget => ({
      endpoint: service.name,
      module: "tcp_connect",
      target: `${lb.privateIp}:${service.listenPort}`,
    }));
  });
  const minio = serversOf(inventory, "minio").map((server): ProbeTarget => ({
    endpoint: `minio-${server.name}`,
    module: "http_2xx",
    target: `http://${server.privateIp}:${minioPort}${MINIO_LIVENESS_PATH}`,
  }));
  return [...tcp, ...minio];
}

/**
 * Values of the prometheus-blackbox-exporter chart (11.17.2, values.yaml `fullnameOverride`,
 * `config.modules`): the two modules the targets use, each bounded by the check timeout
 * (blackbox_exporter's CONFIGURATION.md: `prober`, `timeout`, `tcp`/`http` with `preferred_ip_protocol`).
 */
export function blackboxValues(settings: ProbesSettings): Record<string, unknown> {
  const timeout = `${settings.checkTimeoutSeconds}s`;
  return {
    fullnameOverride: BLACKBOX_SERVICE.name,
    config: {
      modules: {
        tcp_connect: { prober: "tcp", timeout, tcp: { preferred_ip_protocol: "ip4" } },
        http_2xx: { prober: "http", timeout, http: { preferred_ip_protocol: "ip4", valid_status_codes: [200] } },
      },
    },
    resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
  };
}

/**
 * The ScrapeConfig specs of the continuous probes (prometheus-operator v0.85.0 ScrapeConfigSpec:
 * `jobName`, `metricsPath`, `params`, `scrapeInterval`, `scrapeTimeout`, `staticConfigs`,
 * `relabelings`), one per blackbox module: Prometheus asks blackbox_exporter's `/probe` with the
 * target as `target` parameter (the blackbox_exporter README's relabelling), each target labelled
 * with its `endpoint`. The job is {@link BACKEND_PROBE_JOB}, which BackendEndpointDown selects. Pure.
 */
export function renderProbeScrapeConfigSpecs(
  targets: readonly ProbeTarget[],
  settings: ProbesSettings,
  namespace: string,
): Record<string, unknown>[] {
  const modules = [...new Set(targets.map((target) => target.module))];
  return modules.map((module) => ({
    jobName: BACKEND_PROBE_JOB,
    metricsPath: "/probe",
    params: { module: [module] },
    scrapeInterval: `${settings.probeIntervalSeconds}s`,
    // The probe's own bound plus a second for the exporter to answer.
    scrapeTimeout: `${Math.min(settings.checkTimeoutSeconds + 1, settings.probeIntervalSeconds)}s`,
    staticConfigs: targets
      .filter((target) => target.module === module)
      .map((target) => ({ targets: [target.target], labels: { endpoint: target.endpoint } })),
    relabelings: [
      { sourceLabels: ["__address__"], targetLabel: "__param_target" },
      { sourceLabels: ["__param_target"], targetLabel: "instance" },
      { targetLabel: "__address__", replacement: `${BLACKBOX_SERVICE.name}.${namespace}.svc:${BLACKBOX_SERVICE.port}` },
    ],
  }));
}
