import { ChartPin, ConfigError, Inventory, Versions } from "../../config";

/**
 * The ingress controller, in one place so it can be swapped (upstream retired ingress-nginx in
 * March 2026; DESIGN.md pins its final release). Replacing the controller means replacing
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
