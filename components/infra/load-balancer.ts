import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { hetznerName, Inventory, LoadBalancerServiceSpec, LoadBalancerSpec, serversOf } from "../../config";
import { PrivateNetwork } from "./network";
import { ServerFleet } from "./fleet";

/**
 * Health check of one service: TCP on the port the backend serves, every 5 s, down after 2 misses.
 * The backends (HAProxy, ProxySQL, ingress) listen on that port once their module is deployed; until
 * then Hetzner marks the target unhealthy, which is the truth.
 */
export function serviceHealthCheck(service: LoadBalancerServiceSpec): hcloud.types.input.LoadBalancerServiceHealthCheck {
  return { protocol: "tcp", port: service.destinationPort, interval: 5, timeout: 3, retries: 2 };
}

/** Arguments of {@link LoadBalancer}. */
export interface LoadBalancerArgs {
  readonly stack: string;
  readonly inventory: Inventory;
  /** The load balancer from `keybuzz:loadBalancers`: IP, type, public or not, services, target group. */
  readonly spec: LoadBalancerSpec;
  readonly network: PrivateNetwork;
  readonly fleet: ServerFleet;
}

/**
 * One Hetzner load balancer on the private network at its fixed IP (DESIGN.md: 10.0.0.10 and
 * 10.0.0.20 internal with no public interface; 10.0.0.5/.6 public for ingress; the Kubernetes API
 * LB). One TCP service and health check per port; targets are the target group's servers by
 * private IP, declared after both the LB's and the server's network attachments.
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
      new hcloud.LoadBalancerService(
        `${name}-${service.name}`,
        {
          loadBalancerId: this.loadBalancer.id,
          protocol: "tcp",
          listenPort: service.listenPort,
          destinationPort: service.destinationPort,
          proxyprotocol: service.proxyProtocol,
          healthCheck: serviceHealthCheck(service),
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
