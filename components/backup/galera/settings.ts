import { z } from "zod";
import { onCalendar } from "../schedule";

/**
 * Settings of the Galera backups, `keybuzz:backup.galera` (optional: every key has a production
 * default; parsed with the rest of `keybuzz:backup` by `parseBackupSettings`). docs/backups.md.
 */
export const galeraBackupSchema = z.strictObject({
  /** When the daily mariadb-backup runs (systemd OnCalendar, host time = UTC); default 02:30, after pgBackRest's 01:00. */
  schedule: onCalendar.default("*-*-* 02:30:00"),
  /** Backups kept on backup-01 (the newest, by count). */
  keep: z.number().int().min(1).max(365).default(7),
  /**
   * Seconds between `wsrep_desync=ON` and the start of the copy: ProxySQL's Galera monitor moves a
   * desynced node to its offline hostgroup at its next check (`monitor_galera_healthcheck_interval`,
   * 2 s in components/data/proxysql), and its connections drain meanwhile.
   */
  drainSeconds: z.number().int().min(0).max(300).default(6),
  /** Upper bound to be Synced again after `wsrep_desync=OFF` (it applies what it queued), seconds. */
  resyncTimeoutSeconds: z.number().int().min(30).max(7200).default(900),
});

/** Validated `keybuzz:backup.galera`. */
export type GaleraBackupSettings = z.infer<typeof galeraBackupSchema>;

/** Every default. */
export const DEFAULT_GALERA_BACKUP_SETTINGS: GaleraBackupSettings = galeraBackupSchema.parse({});
