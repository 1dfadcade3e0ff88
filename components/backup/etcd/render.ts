import { stepBody } from "../../lib/scripts";

/**
 * etcd snapshots (Patroni's etcd on the DB nodes, Kubernetes' on the control planes) to backup-01:
 * pure renders of the snapshot and restore scripts (scripts/backup/). Not wired into the program
 * yet (docs/backups.md, Status); tests/backup/etcd.loopback.test.ts proves them on a loopback etcd.
 */

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
