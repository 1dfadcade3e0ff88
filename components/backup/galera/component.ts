import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { clusterNodes, lockedImage } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, secretRef } from "../../lib/remote";
import { GaleraHostSettings } from "../../data/galera/settings";
import {
  DEFAULT_BACKUP_NODE_PATHS,
  DEFAULT_RECEIVER_PATHS,
  GALERA_BACKUP_SECRET_KEYS,
  galeraBackupNode,
  productionBackupCommands,
  receiverAddress,
  renderAuthorizedKeys,
  renderBackupScript,
  renderBackupUnits,
  renderNodeStepBody,
  renderReceiverScript,
  renderReceiverStepBody,
  renderRestoreScript,
  unitPath,
} from "./render";
import { GaleraBackupSettings } from "./settings";

/** Arguments of {@link GaleraBackup}: `hosts` are the Galera nodes (inventory order) then backup-01; no secrets come in (the SSH key is generated here). */
export interface GaleraBackupArgs extends ModuleArgs<GaleraBackupSettings, Record<string, never>> {
  /**
   * The Galera module's host settings (`galeraHostSettings(settings.galera)`): its container name
   * and datadir, which the backup and restore reach. Module-specific: they belong to the Galera module.
   */
  readonly galeraHost: GaleraHostSettings;
}

/**
 * MariaDB Galera backups (`keybuzz:backup:GaleraBackup`; docs/backups.md): an ED25519 key
 * generated for the channel; backup-01 gets a user whose only command is the receiver (forced
 * command, from the Galera nodes only); every Galera node gets keybuzz-galera-restore; the backup
 * node (the last, {@link galeraBackupNode}) also gets the key, keybuzz-galera-backup and its daily
 * timer, and checks that the receiver answers: that check is `verified`.
 */
export class GaleraBackup extends pulumi.ComponentResource implements ModuleOutputs {
  public readonly verified: command.remote.Command;

  constructor(name: string, args: GaleraBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:backup:GaleraBackup", name, {}, opts);
    const repoHostEntry = args.hosts.find((host) => host.spec.group === "backup");
    const galeraHosts = args.hosts.filter((host) => host.spec.group === "mariadb");
    if (!repoHostEntry || galeraHosts.length === 0)
      throw new Error(`GaleraBackup ${name}: needs the backup host and the Galera nodes (a wiring bug)`);
    const [repoHost] = clusterNodes([repoHostEntry.spec]);
    const members = clusterNodes(galeraHosts.map((host) => host.spec));
    const backupNode = galeraBackupNode(members);
    const receiver = receiverAddress(repoHost);
    const commands = productionBackupCommands(lockedImage(args.versions, "mariadb"), args.galeraHost);
    const key = new tls.PrivateKey(`${name}-ssh`, { algorithm: "ED25519" }, { parent: this });

    const receiverStep = remoteStep(
      `${repoHost.name}-galera-backup`,
      {
        host: repoHostEntry,
        files: [
          { path: DEFAULT_RECEIVER_PATHS.receiver, content: renderReceiverScript(args.settings), mode: "0755" },
          { path: DEFAULT_RECEIVER_PATHS.stagedAuthorizedKeys, content: renderAuthorizedKeys(members), mode: "0600" },
        ],
        script: renderReceiverStepBody(),
        secrets: { [GALERA_BACKUP_SECRET_KEYS.publicKey]: key.publicKeyOpenssh },
        timeoutMinutes: 5,
      },
      { parent: this, dependsOn: waitsFor(args.after, repoHost.name) },
    );

    const steps = galeraHosts.map((host, index) => {
      const node = members[index];
      const isBackupNode = node.name === backupNode.name;
      const files: HostFile[] = [
        { path: DEFAULT_BACKUP_NODE_PATHS.restoreScript, content: renderRestoreScript({ node, receiver, commands }), mode: "0755" },
      ];
      if (isBackupNode) {
        files.push(
          { path: DEFAULT_BACKUP_NODE_PATHS.sshKey, content: secretRef(GALERA_BACKUP_SECRET_KEYS.privateKey), mode: "0600" },
          {
            path: DEFAULT_BACKUP_NODE_PATHS.backupScript,
            content: renderBackupScript({ node, settings: args.settings, clusterSize: members.length, receiver, commands }),
            mode: "0755",
          },
          ...Object.entries(renderBackupUnits(args.settings)).map(([file, content]) => ({ path: unitPath(file), content })),
        );
      }
      return remoteStep(
        `${node.name}-galera-backup`,
        {
          host,
          files,
          script: renderNodeStepBody(node, isBackupNode, receiver),
          secrets: isBackupNode ? { [GALERA_BACKUP_SECRET_KEYS.privateKey]: key.privateKeyOpenssh } : {},
          timeoutMinutes: 5,
        },
        { parent: this, dependsOn: waitsFor(args.after, node.name, receiverStep) },
      );
    });
    this.verified = steps[members.indexOf(backupNode)];
    this.registerOutputs({ verified: this.verified });
  }
}
