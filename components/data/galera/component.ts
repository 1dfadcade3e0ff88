import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { clusterNodes, lockedImage } from "../../../config";
import type { PlatformSecrets } from "../../security/secrets";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { remoteStep, sha256 } from "../../lib/remote";
import {
  FINALIZE_STEP,
  GALERA_SECRET_KEYS,
  GaleraNode,
  galeraNodeFiles,
  renderConvergeStep,
  renderVolumeStep,
  VERIFY_STEP,
} from "./render";
import { galeraHostSettings, GaleraSettings, galeraServerSettings } from "./settings";

/** Galera's slice of the platform's credentials (`PlatformSecrets.mariadb`): root, app (`erpnext`), SST, ProxySQL monitor, mysqld_exporter. */
export type GaleraSecrets = PlatformSecrets["mariadb"];

/** Arguments of {@link GaleraCluster}: the module contract, plus the nodes' data volumes. */
export interface GaleraClusterArgs extends ModuleArgs<GaleraSettings, GaleraSecrets> {
  /**
   * XFS data volume of each node, by inventory name (`ServerFleet.volumes`; config/ requires one on
   * every mariadb node). Its id re-runs the node's volume step when the volume is replaced.
   */
  readonly volumes: Readonly<Record<string, hcloud.Volume>>;
}

/**
 * The Galera cluster (`keybuzz:data:GaleraCluster`) on the mariadb group. Order of steps: every
 * node mounts its volume; the first node (inventory order) converges with role `first` — it
 * bootstraps a new cluster only when it has no data and no peer answers — and applies the
 * accounts; the other nodes join one at a time, each waiting until Synced; then the first node,
 * if it still runs as the bootstrap node, is restarted as an ordinary member; finally each node is
 * verified in turn (Synced, Primary, `wsrep_cluster_size` = node count). A configuration change
 * re-runs the same chain: a rolling restart, one node at a time.
 */
export class GaleraCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** Nodes and addresses, inventory order (ProxySQL's backends, the first its preferred writer). */
  public readonly nodes: readonly GaleraNode[];
  /** The last node's verification, after every node's: the cluster is complete and healthy (ProxySQL waits for it). */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: GaleraClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:GaleraCluster", name, {}, opts);
    const server = galeraServerSettings(args.settings);
    const host = galeraHostSettings(args.settings);
    const members: GaleraNode[] = clusterNodes(args.hosts.map((node) => node.spec));
    const hostOf = Object.fromEntries(args.hosts.map((node) => [node.spec.name, node]));
    const secrets = {
      [GALERA_SECRET_KEYS.root]: args.secrets.root,
      [GALERA_SECRET_KEYS.app]: args.secrets.app,
      [GALERA_SECRET_KEYS.sst]: args.secrets.sst,
      [GALERA_SECRET_KEYS.monitor]: args.secrets.monitor,
      [GALERA_SECRET_KEYS.exporter]: args.secrets.exporter,
    };
    const timeoutMinutes = Math.ceil(host.syncTimeoutSeconds / 60) + 15;

    const mounts = Object.fromEntries(
      members.map((node) => [
        node.name,
        remoteStep(
          `${name}-${node.name}-volume`,
          { host: hostOf[node.name], script: renderVolumeStep(host), timeoutMinutes: 10, triggers: [args.volumes[node.name].id] },
          { parent: this, dependsOn: waitsFor(args.after, node.name) },
        ),
      ]),
    );

    const [first, ...joiners] = members;
    const image = lockedImage(args.versions, "mariadb");
    const filesOf = (node: GaleraNode, withAccounts: boolean) => galeraNodeFiles({ node, members, image, server, host }, withAccounts);
    let previous: pulumi.Resource = remoteStep(
      `${name}-${first.name}-bootstrap`,
      { host: hostOf[first.name], files: filesOf(first, true), script: renderConvergeStep(image, "first", host), secrets, timeoutMinutes },
      { parent: this, dependsOn: [mounts[first.name]] },
    );
    for (const node of joiners) {
      previous = remoteStep(
        `${name}-${node.name}-join`,
        {
          host: hostOf[node.name],
          files: filesOf(node, false),
          script: renderConvergeStep(image, "member", host),
          secrets,
          timeoutMinutes,
        },
        { parent: this, dependsOn: [mounts[node.name], previous] },
      );
    }
    previous = remoteStep(
      `${name}-${first.name}-finalize`,
      { host: hostOf[first.name], script: FINALIZE_STEP, timeoutMinutes },
      { parent: this, dependsOn: [previous] },
    );
    // Re-verify whenever anything rendered for the cluster changes.
    const fingerprint = sha256(JSON.stringify(members.map((node) => filesOf(node, node === first).map((file) => file.content))));
    for (const node of members) {
      previous = remoteStep(
        `${name}-${node.name}-verify`,
        { host: hostOf[node.name], script: VERIFY_STEP, timeoutMinutes: 5, triggers: [fingerprint] },
        { parent: this, dependsOn: [previous] },
      );
    }
    this.nodes = members;
    this.verified = previous;
    this.registerOutputs({ nodes: this.nodes, verified: this.verified });
  }
}
