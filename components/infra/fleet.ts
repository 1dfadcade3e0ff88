import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { hetznerName, Inventory, ServerGroup, ServerSpec, Versions } from "../../config";
import { Host } from "../lib/remote";
import { AdminFirewall } from "./firewall";
import { PrivateNetwork } from "./network";

/** Hetzner allows at most 10 servers in one spread placement group. */
export const PLACEMENT_GROUP_LIMIT = 10;

/**
 * Splits a group's servers into spread placement groups of at most {@link PLACEMENT_GROUP_LIMIT},
 * named `<group>` then `<group>-2`, … Pure.
 */
export function placementChunks(group: ServerGroup, servers: readonly ServerSpec[]): { name: string; servers: ServerSpec[] }[] {
  const chunks: { name: string; servers: ServerSpec[] }[] = [];
  for (let start = 0; start < servers.length; start += PLACEMENT_GROUP_LIMIT) {
    const index = start / PLACEMENT_GROUP_LIMIT;
    chunks.push({ name: index === 0 ? group : `${group}-${index + 1}`, servers: servers.slice(start, start + PLACEMENT_GROUP_LIMIT) });
  }
  return chunks;
}

/** Arguments of {@link ServerFleet}. */
export interface ServerFleetArgs {
  readonly stack: string;
  readonly inventory: Inventory;
  /** `os.image` gives the Hetzner image (ubuntu-24.04). */
  readonly versions: Versions;
  readonly network: PrivateNetwork;
  readonly firewall: AdminFirewall;
  /** Private half of the SSH key (secret) the remote steps log in with. */
  readonly sshPrivateKey: pulumi.Input<string>;
}

/**
 * Every server of the inventory: SSH keys (uploaded, or existing ones looked up by name), one spread placement group per cluster group (so no two
 * nodes of a quorum share a physical host), the servers with their firewall, the private network
 * attachment at the inventory's fixed IP (`subnetId`, so it waits for the subnet), and the XFS data
 * volumes of PostgreSQL, MariaDB and MinIO nodes (`protect` + `deleteProtection` when
 * `keybuzz:protectData` is true, as in prod).
 */
export class ServerFleet extends pulumi.ComponentResource {
  /** By inventory name: what the remote steps need to reach each server. */
  public readonly hosts: Readonly<Record<string, Host>>;
  /** By inventory name: the private network attachment (load balancer targets wait for it). */
  public readonly attachments: Readonly<Record<string, hcloud.ServerNetwork>>;
  /** By inventory name, PostgreSQL, MariaDB and MinIO nodes only: the XFS data volume. */
  public readonly volumes: Readonly<Record<string, hcloud.Volume>>;
  /** Public IPv4 by inventory name. */
  public readonly publicIps: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ServerFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:infra:ServerFleet", name, {}, opts);
    const { inventory, stack } = args;
    const labels = { stack };

    // Hetzner refuses a second key with the same fingerprint in one project (uniqueness_error), so a
    // key another stack already uploaded is looked up by name instead of created again.
    const sshKeyIds = inventory.sshKeys.map((entry, index) =>
      "existing" in entry
        ? hcloud.getSshKeyOutput({ name: entry.existing }, { parent: this }).apply((key) => String(key.id))
        : new hcloud.SshKey(
            `${name}-ssh-key-${index + 1}`,
            { name: hetznerName(stack, `keybuzz-operator-${index + 1}`), publicKey: entry.publicKey, labels },
            { parent: this },
          ).id,
    );

    const placementGroupOf = new Map<string, hcloud.PlacementGroup>();
    const groups = [...new Set(inventory.servers.map((server) => server.group))];
    for (const group of groups) {
      for (const chunk of placementChunks(
        group,
        inventory.servers.filter((server) => server.group === group),
      )) {
        const placementGroup = new hcloud.PlacementGroup(
          `${name}-spread-${chunk.name}`,
          { name: hetznerName(stack, `keybuzz-${chunk.name}`), type: "spread", labels: { ...labels, group } },
          { parent: this },
        );
        chunk.servers.forEach((server) => placementGroupOf.set(server.name, placementGroup));
      }
    }

    const hosts: Record<string, Host> = {};
    const attachments: Record<string, hcloud.ServerNetwork> = {};
    const volumes: Record<string, hcloud.Volume> = {};
    for (const spec of inventory.servers) {
      const firewall = spec.group === "k8s-master" ? args.firewall.controlPlanes : args.firewall.servers;
      const server = new hcloud.Server(
        spec.name,
        {
          name: hetznerName(stack, spec.name),
          serverType: spec.serverType,
          image: args.versions.os.image,
          location: inventory.location,
          sshKeys: sshKeyIds,
          placementGroupId: placementGroupOf.get(spec.name)?.id.apply(Number),
          firewallIds: [firewall.id.apply(Number)],
          publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
          labels: { ...labels, role: spec.role, subrole: spec.subrole, group: spec.group },
        },
        // Hetzner refuses a second server of the same name, so a replacement deletes first.
        { parent: this, ignoreChanges: ["sshKeys", "image"], deleteBeforeReplace: true },
      );
      attachments[spec.name] = new hcloud.ServerNetwork(
        `${spec.name}-private`,
        { serverId: server.id.apply(Number), subnetId: args.network.subnetId, ip: spec.privateIp },
        // A server has one attachment per network: creating the new one first is a no-op the provider
        // takes as success ("already attached"), and deleting the old one then detaches the server.
        { parent: this, deleteBeforeReplace: true },
      );
      if (spec.volumeSizeGb !== undefined) {
        volumes[spec.name] = new hcloud.Volume(
          `${spec.name}-data`,
          {
            name: hetznerName(stack, `${spec.name}-data`),
            size: spec.volumeSizeGb,
            format: "xfs",
            serverId: server.id.apply(Number),
            automount: false,
            deleteProtection: inventory.protectData,
            labels: { ...labels, group: spec.group },
          },
          { parent: this, protect: inventory.protectData },
        );
      }
      hosts[spec.name] = {
        spec,
        server,
        connection: {
          host: server.ipv4Address,
          user: "root",
          privateKey: args.sshPrivateKey,
          // A fresh server takes a minute or two to accept SSH: keep dialing for ~10 minutes.
          dialErrorLimit: 40,
          perDialTimeout: 15,
        },
      };
    }
    this.hosts = hosts;
    this.attachments = attachments;
    this.volumes = volumes;
    this.publicIps = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([hostName, host]) => [hostName, host.server.ipv4Address])));
    this.registerOutputs({ hosts: this.hosts, attachments: this.attachments, volumes: this.volumes, publicIps: this.publicIps });
  }
}
