import { ChartPin, ConfigError, Inventory, Versions } from "../../../config";
import { PGBOUNCER_PORT } from "../../data/pgbouncer/render";
import { stepBody } from "../../lib/scripts";
import { ACCOUNTS, DATABASES } from "../../security/secrets";
import { AddonsSettings } from "./settings";

/**
 * Pure render functions of the cluster add-ons (spec 001/002 module 9): the Helm values, the
 * backend ConfigMap's data and the cluster verification's body. Inventory, versions and settings
 * in, plain data or text out.
 */

/** The platform namespaces (spec 001 module 9, "Namespaces"). */
export const PLATFORM_NAMESPACES = ["keybuzz", "chatwoot", "n8n", "analytics", "ai", "vault", "monitoring"] as const;

/** Storage class the Hetzner CSI driver creates (Hetzner volumes, ReadWriteOnce). */
export const STORAGE_CLASS = "hcloud-volumes";

/** MinIO's S3 API port (spec 001, MinIO), also the HA S3 endpoint's port on the internal LB. */
const MINIO_PORT = 9000;

/** The load balancer's private IP that serves `port` (`what` names the service in the error). @throws {ConfigError} when none does. */
function loadBalancerFor(inventory: Inventory, port: number, what: string): string {
  const lb = inventory.loadBalancers.find((candidate) => candidate.services.some((service) => service.listenPort === port));
  if (!lb)
    throw new ConfigError([`keybuzz:loadBalancers: no load balancer serves port ${port} (${what}); keybuzz-backend-config needs it`]);
  return lb.privateIp;
}

/**
 * The `keybuzz-backend-config` data (spec 001 module 9, "ConfigMaps"), from the inventory: each
 * host/port is the load balancer that serves the port (PostgreSQL write 5432, Redis 6379, RabbitMQ
 * 5672 on the internal LB; MariaDB 3306 on the ProxySQL LB); MinIO is the HA S3 endpoint on the
 * internal LB, port 9000 ({@link backendEndpoints}; an IP: pods resolve through CoreDNS, not the
 * hosts' /etc/hosts, so no `s3.<domain>` name).
 *
 * @throws {ConfigError} when no load balancer serves one of the ports or targets the haproxy group.
 */
export function backendConfigData(inventory: Inventory): Record<string, string> {
  return {
    POSTGRES_HOST: loadBalancerFor(inventory, 5432, "PostgreSQL"),
    POSTGRES_PORT: "5432",
    REDIS_HOST: loadBalancerFor(inventory, 6379, "Redis"),
    REDIS_PORT: "6379",
    RABBITMQ_HOST: loadBalancerFor(inventory, 5672, "RabbitMQ"),
    RABBITMQ_PORT: "5672",
    MARIADB_HOST: loadBalancerFor(inventory, 3306, "MariaDB"),
    MARIADB_PORT: "3306",
    MINIO_ENDPOINT: `${backendEndpoints(inventory).postgres}:${MINIO_PORT}`,
  };
}

/** Where the backend connects (issue 19): private addresses of the internal load balancers. */
export interface BackendEndpoints {
  /** The internal LB that serves PgBouncer 6432 (prod 10.0.0.10, haproxy-01/02): also PostgreSQL 5432 and MinIO's HA S3 endpoint 9000. */
  readonly postgres: string;
  /** The LB that serves Redis 6379 (HAProxy to the Sentinel-elected master). */
  readonly redis: string;
  /** The LB that serves RabbitMQ 5672. */
  readonly rabbitmq: string;
}

/**
 * The backend's endpoints from the inventory: the LB serving PgBouncer's 6432 for PostgreSQL and
 * MinIO (port 9000 there is the HA S3 endpoint, HAProxy over the MinIO nodes), the LBs serving
 * 6379 and 5672 for Redis and RabbitMQ.
 *
 * @throws {ConfigError} when no load balancer serves 6432, 6379 or 5672.
 */
export function backendEndpoints(inventory: Inventory): BackendEndpoints {
  return {
    postgres: loadBalancerFor(inventory, PGBOUNCER_PORT, "PgBouncer"),
    redis: loadBalancerFor(inventory, 6379, "Redis"),
    rabbitmq: loadBalancerFor(inventory, 5672, "RabbitMQ"),
  };
}

/** The plain-text passwords the backend's URLs carry (values of `PlatformSecrets`, resolved). */
export interface BackendPasswords {
  /** `kb_backend`, owner of `keybuzz_backend` (`PlatformSecrets.postgres.backend`). */
  readonly postgresBackend: string;
  /** `keybuzz`, owner of the product database `keybuzz` (`PlatformSecrets.postgres.app`). */
  readonly postgresProduct: string;
  /** Redis `requirepass` (`PlatformSecrets.redis.password`). */
  readonly redis: string;
  /** RabbitMQ's application user (`PlatformSecrets.rabbitmq.password`). */
  readonly rabbitmq: string;
  /** Secret key of the MinIO access key {@link ACCOUNTS.minioAppUser} (`PlatformSecrets.minio.appSecretKey`). */
  readonly minioApp: string;
}

/** PostgreSQL's TLS port behind HAProxy (the leader); PgBouncer's port is {@link PGBOUNCER_PORT}. */
const POSTGRES_WRITE_PORT = 5432;
const REDIS_PORT = 6379;
const RABBITMQ_PORT = 5672;

/**
 * The connection values of `keybuzz-backend-credentials` (issue 19), under the names the backend
 * reads (keybuzz-backend: prisma/schema.prisma `env("DATABASE_URL")`, src/lib/productDb.ts
 * `PRODUCT_DATABASE_URL` or `PG*`, src/lib/redis.config.ts `REDIS_URL`,
 * src/modules/attachments/attachments.routes.ts `MINIO_*`), every password percent-encoded in its URL.
 *
 * - `DATABASE_URL` (Prisma, `keybuzz_backend` as `kb_backend`) and `PRODUCT_DATABASE_URL` / `PG*`
 *   (node-postgres, `keybuzz` as `keybuzz`) go through PgBouncer 6432, the one entry without TLS
 *   (private network only: UFW and the Hetzner firewall; docs/application.md). No `pgbouncer=true`:
 *   PgBouncer ≥ 1.21 with `max_prepared_statements` keeps Prisma's prepared statements in
 *   transaction mode, and Prisma's docs advise against the flag from 1.21 on.
 * - `DIRECT_DATABASE_URL`: the leader's TLS port 5432 for `prisma migrate deploy` (its advisory
 *   lock needs a session, which transaction pooling does not keep), `sslmode=require`.
 * - `MINIO_ENDPOINT` is a bare host (the backend strips `http://` and `:port`), `MINIO_PORT` 9000.
 * - `RABBITMQ_URL` names the default vhost `/` explicitly (`%2F`, RabbitMQ URI spec).
 */
export function backendConnectionValues(endpoints: BackendEndpoints, passwords: BackendPasswords): Record<string, string> {
  const encode = encodeURIComponent;
  const postgresUrl = (user: string, password: string, port: number, database: string, query = "") =>
    `postgresql://${encode(user)}:${encode(password)}@${endpoints.postgres}:${port}/${database}${query}`;
  return {
    DATABASE_URL: postgresUrl(ACCOUNTS.postgresBackend, passwords.postgresBackend, PGBOUNCER_PORT, DATABASES.backend),
    DIRECT_DATABASE_URL: postgresUrl(
      ACCOUNTS.postgresBackend,
      passwords.postgresBackend,
      POSTGRES_WRITE_PORT,
      DATABASES.backend,
      "?sslmode=require",
    ),
    PRODUCT_DATABASE_URL: postgresUrl(ACCOUNTS.postgresApp, passwords.postgresProduct, PGBOUNCER_PORT, DATABASES.product),
    PGHOST: endpoints.postgres,
    PGPORT: String(PGBOUNCER_PORT),
    PGUSER: ACCOUNTS.postgresApp,
    PGPASSWORD: passwords.postgresProduct,
    PGDATABASE: DATABASES.product,
    // The user `default` spelled out: redis-cli (7.0-7.2) sends an empty user to AUTH and is refused; ioredis takes either.
    REDIS_URL: `redis://default:${encode(passwords.redis)}@${endpoints.redis}:${REDIS_PORT}`,
    MINIO_ENDPOINT: endpoints.postgres,
    MINIO_PORT: String(MINIO_PORT),
    MINIO_ACCESS_KEY: ACCOUNTS.minioAppUser,
    MINIO_SECRET_KEY: passwords.minioApp,
    RABBITMQ_URL: `amqp://${encode(ACCOUNTS.rabbitmqUser)}:${encode(passwords.rabbitmq)}@${endpoints.rabbitmq}:${RABBITMQ_PORT}/%2F`,
  };
}

/**
 * Values of the tigera-operator chart: the Installation with Calico IPIP always, VXLAN never
 * (operator encapsulation `IPIP`), BGP, the MTU, node addresses autodetected in the private
 * network's CIDR, one pool over the pod CIDR given to kubeadm.
 */
export function calicoValues(inventory: Inventory, settings: AddonsSettings): Record<string, unknown> {
  return {
    installation: {
      enabled: true,
      cni: { type: "Calico" },
      calicoNetwork: {
        bgp: "Enabled",
        mtu: settings.calicoMtu,
        nodeAddressAutodetectionV4: { cidrs: [inventory.network.ipRange] },
        ipPools: [
          {
            name: "default-ipv4-ippool",
            cidr: inventory.kubernetes.podCidr,
            encapsulation: "IPIP",
            natOutgoing: "Enabled",
            nodeSelector: "all()",
            blockSize: 26,
          },
        ],
      },
    },
  };
}

/**
 * Values of kube-prometheus-stack: CRDs left to their own release, retention, Prometheus /
 * Alertmanager / Grafana on Hetzner volumes (Grafana's Deployment recreated, never rolled, on its
 * ReadWriteOnce volume), Grafana's admin from an existing Secret, every
 * ServiceMonitor/PodMonitor/PrometheusRule/ScrapeConfig of the cluster selected, the chart's own
 * etcd scrape off (`kubeEtcd.enabled`, chart 77.14.0 values.yaml: it gates the kube-etcd Service,
 * ServiceMonitor, the etcd rules and dashboard).
 */
export function kubePrometheusStackValues(settings: AddonsSettings, grafanaSecret: string): Record<string, unknown> {
  const claim = (sizeGb: number) => ({
    spec: { storageClassName: STORAGE_CLASS, accessModes: ["ReadWriteOnce"], resources: { requests: { storage: `${sizeGb}Gi` } } },
  });
  return {
    crds: { enabled: false },
    prometheus: {
      prometheusSpec: {
        retention: settings.prometheusRetention,
        storageSpec: { volumeClaimTemplate: claim(settings.prometheusStorageGb) },
        serviceMonitorSelectorNilUsesHelmValues: false,
        podMonitorSelectorNilUsesHelmValues: false,
        ruleSelectorNilUsesHelmValues: false,
        // The platform's ScrapeConfig objects (components/observability/monitoring) are selected too.
        scrapeConfigSelectorNilUsesHelmValues: false,
      },
    },
    // kubeadm's etcd is scraped by the platform's own ScrapeConfig (components/observability/monitoring,
    // job `etcd` with the inventory labels, like Patroni's etcd) and alerted on by its rules; the
    // chart's kube-etcd Service/ServiceMonitor, rules and dashboard would scrape and alert twice.
    kubeEtcd: { enabled: false },
    alertmanager: { alertmanagerSpec: { storage: { volumeClaimTemplate: claim(settings.alertmanagerStorageGb) } } },
    grafana: {
      admin: { existingSecret: grafanaSecret, userKey: "admin-user", passwordKey: "admin-password" },
      persistence: { enabled: true, storageClassName: STORAGE_CLASS, size: `${settings.grafanaStorageGb}Gi` },
      // Its volume is ReadWriteOnce: the chart's default RollingUpdate (grafana chart 10.0.0, the
      // stack's dependency) would start the new Pod before the old one lets the volume go, and hang.
      deploymentStrategy: { type: "Recreate" },
    },
  };
}

/** The cluster verification: every inventory node Ready and CoreDNS available. */
export function renderVerifyScript(nodeNames: readonly string[]): string {
  return stepBody("k8s", ["verify.sh"], { variables: { KB_NODES: nodeNames.join(" ") } });
}

// ---- The ingress controller ----
/**
 * The ingress controller, in this one section so it can be swapped (upstream retired ingress-nginx
 * in March 2026; DESIGN.md pins its final release). Replacing the controller means replacing
 * {@link ingressController}: its chart pin and values, keeping the contract the public load
 * balancers rely on — a DaemonSet on the workers on the host network, listening on 80/443 of each
 * worker's private IP, no cloud LoadBalancer Service, PROXY protocol as the load balancers send it.
 */

/** What ClusterAddons needs to install an ingress controller. */
export interface IngressControllerChoice {
  /** Helm release name, also the namespace. */
  readonly name: string;
  readonly chart: ChartPin;
  /** Whether the controller expects the PROXY protocol (must equal the load balancers' setting). */
  readonly proxyProtocol: boolean;
  /** Helm values. */
  readonly values: Record<string, unknown>;
}

/** Ports the public load balancers forward to the controller (spec 001: ingress 80/443). */
export const INGRESS_PORTS = [80, 443] as const;

/**
 * The controller's health endpoint, which the public load balancers check over HTTP (issue 19):
 * `GET /healthz` on port 10254 answers 200 while the controller runs and its nginx is up. Port
 * and path are the defaults of the pinned controller and chart, which {@link ingressController}
 * keeps: controller v1.15.1 `--healthz-port` 10254, `--healthz-host` empty (every address, so the
 * node's private IP with `hostNetwork`; pkg/flags/flags.go), chart 4.15.1 `controller.healthCheckPath`
 * `/healthz` and its liveness/readiness probes on 10254 (values.yaml).
 */
export const INGRESS_HEALTH_CHECK = { port: 10254, path: "/healthz" } as const;

/**
 * PROXY protocol of the public ingress load balancers (those targeting `k8s-worker` on 80/443).
 * Both ends must agree, so every such service must carry the same setting.
 *
 * @throws {ConfigError} when the ingress services disagree, or none exists.
 */
export function ingressProxyProtocol(inventory: Inventory): boolean {
  const services = inventory.loadBalancers
    .filter((lb) => lb.targetGroup === "k8s-worker")
    .flatMap((lb) => lb.services.filter((service) => (INGRESS_PORTS as readonly number[]).includes(service.destinationPort)));
  if (services.length === 0) {
    throw new ConfigError([
      "keybuzz:loadBalancers: no load balancer forwards 80/443 to the k8s-worker group; the ingress controller needs one",
    ]);
  }
  const settings = new Set(services.map((service) => service.proxyProtocol));
  if (settings.size > 1) {
    throw new ConfigError([
      "keybuzz:loadBalancers[].services[].proxyProtocol: the ingress services (80/443 → k8s-worker) disagree; set it the same on all of them",
    ]);
  }
  return [...settings][0];
}

/**
 * ingress-nginx (final upstream release, pinned in versions.yaml `charts.ingressNginx`) as the
 * spec wants it (spec 001 module 9, design section E): DaemonSet, `hostNetwork: true`,
 * `dnsPolicy: ClusterFirstWithHostNet`, no Service of type LoadBalancer, workers only (control
 * planes excluded by affinity, not only by their taint), PROXY protocol as the load balancers.
 */
export function ingressController(inventory: Inventory, versions: Versions): IngressControllerChoice {
  const proxyProtocol = ingressProxyProtocol(inventory);
  return {
    name: "ingress-nginx",
    chart: versions.charts.ingressNginx,
    proxyProtocol,
    values: {
      controller: {
        kind: "DaemonSet",
        hostNetwork: true,
        dnsPolicy: "ClusterFirstWithHostNet",
        // With hostNetwork the pods own 80/443 of the node; no hostPort mapping, no Service to expose them.
        hostPort: { enabled: false },
        service: { enabled: false },
        publishService: { enabled: false },
        reportNodeInternalIp: true,
        ingressClassResource: { name: "nginx", default: true },
        config: { "use-proxy-protocol": String(proxyProtocol) },
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: "node-role.kubernetes.io/control-plane", operator: "DoesNotExist" }] }],
            },
          },
        },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        metrics: { enabled: true, serviceMonitor: { enabled: true } },
      },
    },
  };
}
