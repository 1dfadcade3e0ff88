import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { hetznerName, Inventory } from "../../config";

/** Arguments of {@link PrivateNetwork}. */
export interface PrivateNetworkArgs {
  /** Stack name; Hetzner names carry it as a prefix outside prod. */
  readonly stack: string;
  /** The validated inventory: `network.ipRange` (10.0.0.0/16), `network.subnet`, `network.zone`. */
  readonly inventory: Inventory;
}

/**
 * The Hetzner private network and its cloud subnet (spec 001, "Réseau": 10.0.0.0/16). Servers and
 * load balancers attach to the subnet by id, so they wait for it to exist.
 */
export class PrivateNetwork extends pulumi.ComponentResource {
  public readonly network: hcloud.Network;
  public readonly subnet: hcloud.NetworkSubnet;
  /** Subnet id in Hetzner's `<network>-<range>` form, for `subnetId` attachments. */
  public readonly subnetId: pulumi.Output<string>;

  constructor(name: string, args: PrivateNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:infra:PrivateNetwork", name, {}, opts);
    const { network: plan } = args.inventory;
    this.network = new hcloud.Network(
      name,
      { name: hetznerName(args.stack, "keybuzz"), ipRange: plan.ipRange, labels: { stack: args.stack } },
      { parent: this },
    );
    this.subnet = new hcloud.NetworkSubnet(
      `${name}-subnet`,
      { networkId: this.network.id.apply(Number), type: "cloud", networkZone: plan.zone, ipRange: plan.subnet },
      { parent: this },
    );
    this.subnetId = this.subnet.id;
    this.registerOutputs({ network: this.network, subnet: this.subnet, subnetId: this.subnetId });
  }
}
