import { renderScheduledBackupUnits } from "../schedule";
import * as path from "path";
import type { ClusterNode } from "../../../config";
import { imagePull } from "../../lib/container";
import { secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { GALERA_HELPER_PATH, MYSQL_OWNER } from "../../data/galera/render";
import { DEFAULT_GALERA_HOST_SETTINGS, GaleraHostSettings } from "../../data/galera/settings";
import { TEXTFILE_DIR } from "../../observability/exporters/render";
import { GaleraBackupSettings } from "./settings";

/**
 * Pure renders of the MariaDB Galera backups (docs/backups.md): a daily mariadb-backup on one node
 * taken out of ProxySQL's rotation with `wsrep_desync`, streamed (mbstream, gzip) over SSH to
 * backup-01, where a forced command stores it and keeps the newest `keep`; and the restore of a
 * whole cluster from it. Scripts in scripts/galera-backup/.
 */

/** Secret keys of the placeholders in the rendered files. */
export const GALERA_BACKUP_SECRET_KEYS = { privateKey: "galera-backup-ssh-key", publicKey: "galera-backup-ssh-public-key" } as const;

/** The system user on backup-01 whose only command is the receiver. */
export const GALERA_BACKUP_USER = "keybuzz-galera-backup";

/** Paths on backup-01. */
export interface GaleraReceiverPaths {
  /** The backups (`galera-<UTC time>.mbstream.gz`), also the user's home. */
  readonly backupDir: string;
  /** The receiver, the key's forced command. */
  readonly receiver: string;
  /** The authorized_keys line as the step writes it (root only); installed into the user's ~/.ssh. */
  readonly stagedAuthorizedKeys: string;
}

/** Production paths on backup-01. */
export const DEFAULT_RECEIVER_PATHS: GaleraReceiverPaths = {
  backupDir: "/var/lib/keybuzz/galera-backups",
  receiver: "/usr/local/sbin/keybuzz-galera-backup-receive",
  stagedAuthorizedKeys: "/etc/keybuzz/galera-backup/authorized_keys",
};

/** Paths on the Galera nodes. */
export interface GaleraBackupNodePaths {
  /** The backup (keybuzz-galera-backup, scripts/galera-backup/backup-run.sh). */
  readonly backupScript: string;
  /** The restore (keybuzz-galera-restore, scripts/galera-backup/restore.sh). */
  readonly restoreScript: string;
  /** The SSH private key to backup-01 (the backup node only). */
  readonly sshKey: string;
  /** backup-01's host key, learnt on the first connection. */
  readonly knownHosts: string;
  /** flock of the backup: one at a time. */
  readonly lockFile: string;
}

/** Production paths on the Galera nodes. */
export const DEFAULT_BACKUP_NODE_PATHS: GaleraBackupNodePaths = {
  backupScript: "/usr/local/sbin/keybuzz-galera-backup",
  restoreScript: "/usr/local/sbin/keybuzz-galera-restore",
  sshKey: "/etc/keybuzz/galera-backup/id_ed25519",
  knownHosts: "/etc/keybuzz/galera-backup/known_hosts",
  lockFile: "/run/keybuzz-galera-backup.lock",
};

/** The systemd unit of the backup and its timer. */
export const BACKUP_UNIT = "keybuzz-galera-backup";

/**
 * The node the backups are taken from: the last of the inventory, whom ProxySQL weighs lowest
 * (components/data/proxysql: 1000, 900, 800): it is the writer only when both others are gone,
 * and then the backup refuses to run (it needs a full cluster).
 */
export function galeraBackupNode(members: readonly ClusterNode[]): ClusterNode {
  const node = members[members.length - 1];
  if (!node) throw new Error("galera backup: no mariadb node (a wiring bug: config/ requires them)");
  return node;
}

/** How the nodes reach backup-01's receiver. */
export interface ReceiverAddress {
  /** `user@host` (the inventory name resolves through /etc/hosts). */
  readonly target: string;
  readonly port: number;
}

/** backup-01's receiver in production: {@link GALERA_BACKUP_USER} on its sshd, port 22. */
export function receiverAddress(repoHost: ClusterNode): ReceiverAddress {
  return { target: `${GALERA_BACKUP_USER}@${repoHost.name}`, port: 22 };
}

/** remote.sh's variables; the node connects from its own address, the one backup-01's `from=` admits. */
function remoteVariables(node: ClusterNode, address: ReceiverAddress, paths: GaleraBackupNodePaths): Record<string, string | number> {
  return {
    KB_SSH_KEY: paths.sshKey,
    KB_KNOWN_HOSTS: paths.knownHosts,
    KB_REMOTE: address.target,
    KB_REMOTE_PORT: address.port,
    KB_BIND_ADDRESS: node.address,
  };
}

/** The commands the backup and restore scripts run on the node; production: the Galera container. */
export interface GaleraBackupCommands {
  /** SQL on stdin as root, batch output (`keybuzz-galera`'s own default). */
  readonly sql: string;
  /** mariadb-backup streaming an mbstream of the running server to stdout. */
  readonly backup: string;
  /** keybuzz-galera (stop, running, bootstrap, converge member). */
  readonly helper: string;
  /** Prefix that runs mbstream and mariadb-backup --prepare with the datadir at the same path. */
  readonly tool: string;
  /** Owner of the server's files (`chown`). */
  readonly owner: string;
  /** The node's datadir on the host. */
  readonly dataDir: string;
}

/**
 * Production commands: `docker exec` into the node's container (the official image ships
 * mariadb-backup and mbstream: MariaDB/mariadb-docker 10.11/Dockerfile installs `mariadb-backup`),
 * root's client options from the mounted client.cnf, and a one-off container of the pinned image
 * (no network) for the restore's mbstream and prepare.
 */
export function productionBackupCommands(image: string, host: GaleraHostSettings = DEFAULT_GALERA_HOST_SETTINGS): GaleraBackupCommands {
  const client = "--defaults-extra-file=/run/keybuzz/client.cnf";
  return {
    sql: `docker exec -i ${host.container} mariadb ${client} -N -B`,
    backup: `docker exec ${host.container} mariadb-backup ${client} --backup --stream=mbstream --galera-info --target-dir=/tmp`,
    helper: GALERA_HELPER_PATH,
    tool: `docker run --rm -i --network none --entrypoint '' -v ${host.dataDir}:${host.dataDir} ${imagePull(image).run}`,
    owner: MYSQL_OWNER,
    dataDir: host.dataDir,
  };
}

/** Inputs of {@link renderBackupScript}. */
export interface BackupScriptInput {
  /** The node the script runs on. */
  readonly node: ClusterNode;
  readonly settings: GaleraBackupSettings;
  /** Members of the cluster (the backup runs only when all are in it). */
  readonly clusterSize: number;
  readonly receiver: ReceiverAddress;
  readonly commands: GaleraBackupCommands;
  readonly paths?: GaleraBackupNodePaths;
}

/** keybuzz-galera-backup, the installed backup script of the backup node (`#!/bin/bash`, variables baked in). */
export function renderBackupScript(input: BackupScriptInput): string {
  const paths = input.paths ?? DEFAULT_BACKUP_NODE_PATHS;
  return stepBody("galera-backup", ["remote.sh", "backup-run.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_LOCK_FILE: paths.lockFile,
      KB_CLUSTER_SIZE: input.clusterSize,
      KB_DRAIN_SECONDS: input.settings.drainSeconds,
      KB_RESYNC_TIMEOUT: input.settings.resyncTimeoutSeconds,
      KB_SQL_CMD: input.commands.sql,
      KB_BACKUP_CMD: input.commands.backup,
      ...remoteVariables(input.node, input.receiver, paths),
    },
  });
}

/** Inputs of {@link renderRestoreScript}. */
export interface RestoreScriptInput {
  /** The node the script runs on. */
  readonly node: ClusterNode;
  readonly receiver: ReceiverAddress;
  readonly commands: GaleraBackupCommands;
  readonly paths?: GaleraBackupNodePaths;
}

/** keybuzz-galera-restore, the installed restore script of every Galera node. */
export function renderRestoreScript(input: RestoreScriptInput): string {
  const paths = input.paths ?? DEFAULT_BACKUP_NODE_PATHS;
  return stepBody("galera-backup", ["remote.sh", "restore.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_GALERA_HELPER: input.commands.helper,
      KB_DATADIR: input.commands.dataDir,
      KB_TOOL_CMD: input.commands.tool,
      KB_OWNER: input.commands.owner,
      ...remoteVariables(input.node, input.receiver, paths),
    },
  });
}

/** keybuzz-galera-backup-receive, the forced command on backup-01. */
export function renderReceiverScript(
  settings: GaleraBackupSettings,
  paths: GaleraReceiverPaths = DEFAULT_RECEIVER_PATHS,
  textfileDir = TEXTFILE_DIR,
): string {
  return stepBody("galera-backup", ["receive.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: { KB_BACKUP_DIR: paths.backupDir, KB_KEEP: settings.keep, KB_TEXTFILE_DIR: textfileDir },
  });
}

/**
 * The authorized_keys line of the backup key on backup-01 (sshd(8) "AUTHORIZED_KEYS FILE
 * FORMAT"): `restrict` (no forwarding, no pty), the receiver as the forced command (the client's
 * command reaches it as SSH_ORIGINAL_COMMAND), and only from the Galera nodes' addresses.
 */
export function renderAuthorizedKeys(
  members: readonly ClusterNode[],
  paths: GaleraReceiverPaths = DEFAULT_RECEIVER_PATHS,
  publicKey = secretRef(GALERA_BACKUP_SECRET_KEYS.publicKey),
): string {
  const from = members.map((node) => node.address).join(",");
  return `restrict,from="${from}",command="${paths.receiver}" ${publicKey}\n`;
}

/** The backup's systemd units: a oneshot service (never twice at once) and its timer. */
export function renderBackupUnits(
  settings: GaleraBackupSettings,
  paths: GaleraBackupNodePaths = DEFAULT_BACKUP_NODE_PATHS,
): Record<string, string> {
  return renderScheduledBackupUnits(BACKUP_UNIT, {
    description: "KeyBuzz MariaDB Galera backup (mariadb-backup to backup-01)",
    timerDescription: "KeyBuzz MariaDB Galera backup schedule",
    execStart: paths.backupScript,
    schedule: settings.schedule,
  });
}

/** Body of backup-01's step: the user, its directory, its key, the metric file it writes. */
export function renderReceiverStepBody(paths: GaleraReceiverPaths = DEFAULT_RECEIVER_PATHS, textfileDir = TEXTFILE_DIR): string {
  return stepBody("galera-backup", ["receiver-step.sh"], {
    variables: {
      KB_USER: GALERA_BACKUP_USER,
      KB_BACKUP_DIR: paths.backupDir,
      KB_STAGED_KEYS: paths.stagedAuthorizedKeys,
      KB_TEXTFILE_DIR: textfileDir,
    },
  });
}

/** Body of a Galera node's step: the timer on the backup node (and its check of the channel to backup-01). */
export function renderNodeStepBody(
  node: ClusterNode,
  backupNode: boolean,
  receiver: ReceiverAddress,
  paths: GaleraBackupNodePaths = DEFAULT_BACKUP_NODE_PATHS,
): string {
  return stepBody("galera-backup", ["remote.sh", "node-step.sh"], {
    variables: { KB_BACKUP_NODE: backupNode ? "yes" : "no", KB_UNIT: BACKUP_UNIT, ...remoteVariables(node, receiver, paths) },
  });
}

/** Where a file of `paths` lands under /etc/systemd/system. */
export function unitPath(file: string): string {
  return path.posix.join("/etc/systemd/system", file);
}
