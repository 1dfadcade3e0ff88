import { renderScheduledBackupUnits } from "../schedule";
import * as path from "path";
import type { ClusterNode } from "../../../config";
import { imagePull, renderImagePull } from "../../lib/container";
import { stepBody } from "../../lib/scripts";
import { TEXTFILE_DIR } from "../../observability/exporters/render";
import { EtcdBackupSettings } from "./settings";

/**
 * etcd snapshots (Patroni's etcd on the DB nodes, Kubernetes' on the control planes) to backup-01
 * (docs/backups.md): pure renders of the snapshot and restore scripts (scripts/backup/), the
 * systemd units that schedule the snapshots and backup-01's step. tests/backup/etcd.loopback.test.ts
 * proves the scripts on a loopback etcd.
 */

/** The two etcd clusters: the name in the snapshot files, the units and the metric's `type`. */
export type EtcdClusterName = "patroni" | "kubernetes";

/** Paths on backup-01. */
export interface EtcdBackupPaths {
  /** The snapshots (`<cluster>-<UTC time>.db`), root only. */
  readonly snapshotDir: string;
  /** Per cluster, its CA and backup-01's client pair (`<dir>/<cluster>/{ca.crt,client.crt,client.key}`). */
  readonly tlsDir: string;
}

/** Production paths on backup-01. */
export const DEFAULT_ETCD_BACKUP_PATHS: EtcdBackupPaths = {
  snapshotDir: "/var/lib/keybuzz/etcd-backups",
  tlsDir: "/etc/keybuzz/etcd-backup",
};

/** A cluster's TLS files on backup-01. */
export function etcdBackupTls(cluster: EtcdClusterName, paths: EtcdBackupPaths = DEFAULT_ETCD_BACKUP_PATHS): EtcdSnapshotInput["tls"] {
  const dir = path.posix.join(paths.tlsDir, cluster);
  return { ca: path.posix.join(dir, "ca.crt"), cert: path.posix.join(dir, "client.crt"), key: path.posix.join(dir, "client.key") };
}

/** The systemd unit (service and timer) of a cluster's snapshot. */
export function etcdSnapshotUnit(cluster: EtcdClusterName): string {
  return `keybuzz-etcd-snapshot-${cluster}`;
}

/** The installed snapshot script of a cluster. */
export function etcdSnapshotScriptPath(cluster: EtcdClusterName): string {
  return `/usr/local/sbin/${etcdSnapshotUnit(cluster)}`;
}

/**
 * The etcdctl command on backup-01: a one-off container of the pinned etcd image (its Dockerfile
 * installs etcdctl in /usr/local/bin and sets no ENTRYPOINT: etcd-io/etcd v3.5.33
 * Dockerfile-release.amd64), on the host network, with the TLS directory read-only and the snapshot
 * directory at the same paths as on the host.
 */
export function productionEtcdctl(image: string, paths: EtcdBackupPaths = DEFAULT_ETCD_BACKUP_PATHS): string {
  return [
    "docker run --rm --network host",
    `-v ${paths.tlsDir}:${paths.tlsDir}:ro`,
    `-v ${paths.snapshotDir}:${paths.snapshotDir}`,
    imagePull(image).run,
    "/usr/local/bin/etcdctl",
  ].join(" ");
}

/** What the snapshot script reads. */
export interface EtcdSnapshotInput {
  /** Name in the snapshot files and the metric, e.g. `patroni`, `kubernetes`. */
  readonly cluster: string;
  /** Client URLs of the members, tried in order (`https://ip:2379`). */
  readonly endpoints: readonly string[];
  /** CA, client certificate and key (mutual TLS, the platform CA / kubeadm's etcd CA). */
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly snapshotDir: string;
  /** Snapshots kept (the newest). */
  readonly keep: number;
  /** node_exporter's textfile collector directory (optional). */
  readonly textfileDir?: string;
  /** The etcdctl command ({@link productionEtcdctl} on backup-01); default `etcdctl` (the loopback tests' Debian package). */
  readonly etcdctl?: string;
}

/** The installed snapshot script (`#!/bin/bash`, variables baked in). */
export function renderEtcdSnapshotScript(input: EtcdSnapshotInput): string {
  return stepBody("backup", ["etcd-snapshot.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_CLUSTER: input.cluster,
      KB_ENDPOINTS: input.endpoints.join(","),
      KB_CA: input.tls.ca,
      KB_CERT: input.tls.cert,
      KB_KEY: input.tls.key,
      KB_SNAPSHOT_DIR: input.snapshotDir,
      KB_KEEP: input.keep,
      KB_TEXTFILE_DIR: input.textfileDir ?? "",
      KB_ETCDCTL: input.etcdctl ?? "etcdctl",
    },
  });
}

/** What the restore script reads, per member. */
export interface EtcdRestoreInput {
  readonly name: string;
  /** `name=https://ip:2380,…` of every member. */
  readonly initialCluster: string;
  readonly peerUrl: string;
  /** A new cluster token: the restored cluster is a new cluster. */
  readonly token: string;
  readonly dataDir: string;
}

/** The restore script of one member (`keybuzz-etcd-restore SNAPSHOT`). */
export function renderEtcdRestoreScript(input: EtcdRestoreInput): string {
  return stepBody("backup", ["etcd-restore.sh"], {
    prefix: ["#!/bin/bash", "set -euo pipefail"],
    variables: {
      KB_NAME: input.name,
      KB_INITIAL_CLUSTER: input.initialCluster,
      KB_PEER_URL: input.peerUrl,
      KB_TOKEN: input.token,
      KB_DATA_DIR: input.dataDir,
    },
  });
}

/** The snapshot's systemd units of a cluster: a oneshot service (never twice at once) and its timer. */
export function renderEtcdSnapshotUnits(cluster: EtcdClusterName, settings: EtcdBackupSettings): Record<string, string> {
  return renderScheduledBackupUnits(etcdSnapshotUnit(cluster), {
    description: `KeyBuzz etcd snapshot of the ${cluster} cluster to backup-01`,
    timerDescription: `KeyBuzz etcd snapshot schedule (${cluster})`,
    execStart: etcdSnapshotScriptPath(cluster),
    schedule: settings.schedule,
  });
}

/** A cluster as backup-01's snapshot sees it. */
export interface EtcdBackupCluster {
  readonly name: EtcdClusterName;
  /** Its members (client URLs `https://<address>:<clientPort>`, in inventory order). */
  readonly members: readonly ClusterNode[];
  readonly clientPort: number;
}

/** The installed snapshot script of one cluster on backup-01. */
export function renderClusterSnapshotScript(
  cluster: EtcdBackupCluster,
  settings: EtcdBackupSettings,
  image: string,
  paths: EtcdBackupPaths = DEFAULT_ETCD_BACKUP_PATHS,
): string {
  return renderEtcdSnapshotScript({
    cluster: cluster.name,
    endpoints: cluster.members.map((node) => `https://${node.address}:${cluster.clientPort}`),
    tls: etcdBackupTls(cluster.name, paths),
    snapshotDir: paths.snapshotDir,
    keep: settings.keep,
    textfileDir: TEXTFILE_DIR,
    etcdctl: productionEtcdctl(image, paths),
  });
}

/**
 * Body of backup-01's step (scripts/backup/etcd-backup-step.sh): the directories, the pinned etcd
 * image, the timers, and one snapshot of each cluster now: the module's verification (it also
 * records the first success metric, so BackupTooOld watches each cluster from the deploy on).
 */
export function renderEtcdBackupStepBody(
  clusters: readonly EtcdClusterName[],
  image: string,
  paths: EtcdBackupPaths = DEFAULT_ETCD_BACKUP_PATHS,
): string {
  return stepBody("backup", ["etcd-backup-step.sh"], {
    prefix: [renderImagePull(image)],
    variables: {
      KB_SNAPSHOT_DIR: paths.snapshotDir,
      KB_TLS_DIR: paths.tlsDir,
      KB_TEXTFILE_DIR: TEXTFILE_DIR,
      KB_UNITS: clusters.map(etcdSnapshotUnit).join(" "),
    },
  });
}

/**
 * The PEM certificates of a text, in order (the k8s etcd client step prints backup-01's
 * certificate, then kubeadm's etcd CA). Empty text (the mock engine's stdout) gives none.
 */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((match) => `${match[0]}\n`);
}
