import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { hetznerName } from "../../config";

/** Port of the Kubernetes API server, opened on control planes' public interfaces (spec 000). */
export const KUBE_API_PORT = 6443;

/** Arguments of {@link AdminFirewall}. */
export interface AdminFirewallArgs {
  readonly stack: string;
  /** Sources allowed in (`keybuzz:adminCidrs`); nothing else reaches a public interface. */
  readonly adminCidrs: readonly string[];
}

/** The inbound rules of one firewall: TCP ports opened to the admin CIDRs. Pure, for tests and review. */
export function adminRules(adminCidrs: readonly string[], ports: readonly number[]): hcloud.types.input.FirewallRule[] {
  return ports.map((port) => ({
    direction: "in",
    protocol: "tcp",
    port: String(port),
    sourceIps: [...adminCidrs],
    description: port === 22 ? "SSH from the admin CIDRs" : `port ${port} from the admin CIDRs`,
  }));
}

/**
 * Hetzner firewalls for the servers' public interfaces (the private network is not filtered by
 * them; UFW on each host does that, see the base OS). Two firewalls: every server opens SSH to
 * the admin CIDRs only; control planes also open the Kubernetes API (6443) to them, so `pulumi up`
 * can reach the cluster from an admin address.
 */
export class AdminFirewall extends pulumi.ComponentResource {
  /** For every server but the control planes: SSH only. */
  public readonly servers: hcloud.Firewall;
  /** For Kubernetes control planes: SSH and 6443. */
  public readonly controlPlanes: hcloud.Firewall;

  constructor(name: string, args: AdminFirewallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:infra:AdminFirewall", name, {}, opts);
    this.servers = new hcloud.Firewall(
      `${name}-servers`,
      { name: hetznerName(args.stack, "keybuzz-servers"), rules: adminRules(args.adminCidrs, [22]), labels: { stack: args.stack } },
      { parent: this },
    );
    this.controlPlanes = new hcloud.Firewall(
      `${name}-control-planes`,
      {
        name: hetznerName(args.stack, "keybuzz-control-planes"),
        rules: adminRules(args.adminCidrs, [22, KUBE_API_PORT]),
        labels: { stack: args.stack },
      },
      { parent: this },
    );
    this.registerOutputs({ servers: this.servers, controlPlanes: this.controlPlanes });
  }
}
