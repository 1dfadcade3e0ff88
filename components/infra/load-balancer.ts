import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { hetznerName, Inventory, LoadBalancerServiceSpec, LoadBalancerSpec, serversOf } from "../../config";
import { PrivateNetwork } from "./network";
import { ServerFleet } from "./fleet";

/** An HTTP endpoint on the targets that answers 200 while they serve (e.g. the ingress controller's `/healthz`). */
export interface HttpHealthEndpoint {
  readonly port: number;
  readonly path: string;
}

/**
 * Health check of one service, every 5 s, down after 2 misses: HTTP `GET <path>` expecting 200 on
 * `http`'s port when given (the ingress controller's health endpoint, issue 19), else TCP on the
 * port the backend serves. The backends (HAProxy, ProxySQL, ingress) listen once their module is
 * deployed; until then Hetzner marks the target unhealthy, which is the truth.
 */
export function serviceHealthCheck(
  service: LoadBalancerServiceSpec,
  http?: HttpHealthEndpoint,
): hcloud.types.input.LoadBalancerServiceHealthCheck {
  const timing = { interval: 5, timeout: 3, retries: 2 };
  if (http) return { protocol: "http", port: http.port, ...timing, http: { path: http.path, statusCodes: ["200"] } };
  return { protocol: "tcp", port: service.destinationPort, ...timing };
}

/** The public load balancers in front of the ingress controller on the workers (DESIGN.md: 10.0.0.5/.6). */
export function isIngressLoadBalancer(spec: LoadBalancerSpec): boolean {
  return spec.public && spec.targetGroup === "k8s-worker";
}

/** TLS termination on the load balancer's 443 service with a Hetzner certificate (docs/ingress.md, "Certificates"). */
export interface TlsTermination {
  /** The Hetzner (managed) certificate's id. */
  readonly certificateId: pulumi.Input<number>;
  /** The targets' plain-HTTP port the decrypted requests go to (the ingress controller's 80). */
  readonly httpPort: number;
}

/**
 * The Hetzner managed certificate of the public ingress load balancers: Hetzner obtains it from
 * Let's Encrypt for `domains` and renews it. Declared only when `keybuzz:k8s.ingressDomains` is set.
 */
export function ingressCertificate(stack: string, domains: readonly string[]): hcloud.ManagedCertificate {
  return new hcloud.ManagedCertificate("ingress-certificate", {
    name: hetznerName(stack, "keybuzz-ingress"),
    domainNames: [...domains],
    labels: { stack },
  });
}

/** Arguments of {@link LoadBalancer}. */
export interface LoadBalancerArgs {
  readonly stack: string;
  readonly inventory: Inventory;
  /** The load balancer from `keybuzz:loadBalancers`: IP, type, public or not, services, target group. */
  readonly spec: LoadBalancerSpec;
  readonly network: PrivateNetwork;
  readonly fleet: ServerFleet;
  /** The HTTP endpoint every service's health check asks instead of TCP (the ingress LBs: `INGRESS_HEALTH_CHECK`). */
  readonly httpHealthCheck?: HttpHealthEndpoint;
  /** When given, the 443 service terminates TLS with this certificate instead of passing TCP through. */
  readonly tls?: TlsTermination;
}

/** The HTTPS port a {@link TlsTermination} applies to. */
const HTTPS_PORT = 443;

/**
 * One Hetzner load balancer on the private network at its fixed IP (DESIGN.md: 10.0.0.10 and
 * 10.0.0.20 internal with no public interface; 10.0.0.5/.6 public for ingress; the Kubernetes API
 * LB). One TCP service and health check per port (HTTP checks and, with a certificate, TLS
 * termination on 443 for the ingress LBs); targets are the target group's servers by private IP,
 * declared after both the LB's and the server's network attachments.
 */
export class LoadBalancer extends pulumi.ComponentResource {
  public readonly loadBalancer: hcloud.LoadBalancer;
  public readonly attachment: hcloud.LoadBalancerNetwork;
  /** The fixed private IP the clients use. */
  public readonly privateIp: string;
  /** Public IPv4 when the public interface is on, else undefined. */
  public readonly publicIp: pulumi.Output<string | undefined>;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:infra:LoadBalancer", name, {}, opts);
    const { spec, stack } = args;
    this.privateIp = spec.privateIp;
    this.loadBalancer = new hcloud.LoadBalancer(
      name,
      {
        name: hetznerName(stack, spec.name),
        loadBalancerType: spec.type,
        location: args.inventory.location,
        algorithm: { type: "round_robin" },
        labels: { stack, targets: spec.targetGroup },
      },
      // Load balancer names are unique in a Hetzner project: a replacement deletes first.
      { parent: this, deleteBeforeReplace: true },
    );
    const loadBalancerId = this.loadBalancer.id.apply(Number);
    this.attachment = new hcloud.LoadBalancerNetwork(
      `${name}-private`,
      { loadBalancerId, subnetId: args.network.subnetId, ip: spec.privateIp, enablePublicInterface: spec.public },
      // One attachment per network, as for servers (fleet.ts): the new one first would detach it.
      { parent: this, deleteBeforeReplace: true },
    );
    for (const service of spec.services) {
      const tls = service.listenPort === HTTPS_PORT ? args.tls : undefined;
      new hcloud.LoadBalancerService(
        `${name}-${service.name}`,
        {
          loadBalancerId: this.loadBalancer.id,
          protocol: tls ? "https" : "tcp",
          listenPort: service.listenPort,
          destinationPort: tls ? tls.httpPort : service.destinationPort,
          proxyprotocol: service.proxyProtocol,
          healthCheck: serviceHealthCheck(service, args.httpHealthCheck),
          http: tls ? { certificates: [tls.certificateId] } : undefined,
        },
        { parent: this },
      );
    }
    for (const server of serversOf(args.inventory, spec.targetGroup)) {
      new hcloud.LoadBalancerTarget(
        `${name}-${server.name}`,
        { type: "server", loadBalancerId, serverId: args.fleet.hosts[server.name].server.id.apply(Number), usePrivateIp: true },
        { parent: this, dependsOn: [this.attachment, args.fleet.attachments[server.name]] },
      );
    }
    this.publicIp = spec.public ? this.loadBalancer.ipv4 : pulumi.output(undefined);
    this.registerOutputs({
      loadBalancer: this.loadBalancer,
      attachment: this.attachment,
      privateIp: this.privateIp,
      publicIp: this.publicIp,
    });
  }
}
