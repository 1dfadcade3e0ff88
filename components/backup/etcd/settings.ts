import { z } from "zod";
import { onCalendar } from "../schedule";

/**
 * Settings of the etcd snapshots, `keybuzz:backup.etcd` (optional: every key has a production
 * default; parsed with the rest of `keybuzz:backup` by `parseBackupSettings`). docs/backups.md.
 */
export const etcdBackupSchema = z.strictObject({
  /**
   * When both clusters' snapshots run (systemd OnCalendar, host time = UTC); default every 6 hours at
   * :20 (00:20, 06:20, …), clear of pgBackRest's 01:00 and the Galera backup's 02:30. A snapshot is
   * small (the whole keyspace) and takes seconds.
   */
  schedule: onCalendar.default("*-*-* 00/6:20:00"),
  /** Snapshots kept on backup-01 per cluster (the newest, by count); default 28 = 7 days at the default schedule. */
  keep: z.number().int().min(1).max(1000).default(28),
  /**
   * Validity of backup-01's client certificate of kubeadm's etcd CA, days; default 365, kubeadm's
   * own certificates' validity (constants.CertificateValidityPeriod). It is issued again with each
   * `keybuzz:k8s.certificateRenewal`.
   */
  kubernetesClientCertDays: z.number().int().min(30).max(3650).default(365),
});

/** Validated `keybuzz:backup.etcd`. */
export type EtcdBackupSettings = z.infer<typeof etcdBackupSchema>;

/** Every default. */
export const DEFAULT_ETCD_BACKUP_SETTINGS: EtcdBackupSettings = etcdBackupSchema.parse({});
