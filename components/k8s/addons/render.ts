import { ChartPin, ConfigError, Inventory, serversOf, Versions } from "../../../config";
import { stepBody } from "../../lib/scripts";
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

/** MinIO's S3 API port (spec 001, MinIO). */
const MINIO_PORT = 9000;

/**
 * The `keybuzz-backend-config` data (spec 001 module 9, "ConfigMaps"), from the inventory: each
 * host/port is the load balancer that serves the port (PostgreSQL write 5432, Redis 6379, RabbitMQ
 * 5672 on the internal LB; MariaDB 3306 on the ProxySQL LB); MinIO is the first MinIO node by
 * private IP (pods resolve through CoreDNS, not the hosts' /etc/hosts, so no `s3.<domain>` name).
 *
 * @throws {ConfigError} when no load balancer serves one of the ports.
 */
export function backendConfigData(inventory: Inventory): Record<string, string> {
  const lbFor = (port: number, what: string) => {
    const lb = inventory.loadBalancers.find((candidate) => candidate.services.some((service) => service.listenPort === port));
    if (!lb)
      throw new ConfigError([`keybuzz:loadBalancers: no load balancer serves port ${port} (${what}); keybuzz-backend-config needs it`]);
    return lb.privateIp;
  };
  const minio = serversOf(inventory, "minio")[0];
  if (!minio) throw new ConfigError(["keybuzz:servers: no MinIO node; keybuzz-backend-config needs MINIO_ENDPOINT"]);
  return {
    POSTGRES_HOST: lbFor(5432, "PostgreSQL"),
    POSTGRES_PORT: "5432",
    REDIS_HOST: lbFor(6379, "Redis"),
    REDIS_PORT: "6379",
    RABBITMQ_HOST: lbFor(5672, "RabbitMQ"),
    RABBITMQ_PORT: "5672",
    MARIADB_HOST: lbFor(3306, "MariaDB"),
    MARIADB_PORT: "3306",
    MINIO_ENDPOINT: `${minio.privateIp}:${MINIO_PORT}`,
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
 * ServiceMonitor/PodMonitor/PrometheusRule/ScrapeConfig of the cluster selected.
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
