import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Operator settings of the monitoring module, read from stack config `keybuzz:monitoring`: the
 * thresholds of the alert rules (docs/monitoring.md lists each rule with its meaning and first
 * response). Defaults are the values an on-call engineer acts on; every key is optional.
 */
export const monitoringSettingsSchema = z.strictObject({
  /** HostDiskSpaceLow fires below this share of free space on a filesystem, percent. */
  diskFreePercent: z.number().gt(0).lt(100).default(10),
  /** HostInodesLow fires below this share of free inodes on a filesystem, percent. */
  inodesFreePercent: z.number().gt(0).lt(100).default(10),
  /** HostMemoryPressure fires below this share of available memory (`MemAvailable`), percent. */
  memoryAvailablePercent: z.number().gt(0).lt(100).default(10),
  /** HostClockSkew fires when the kernel's NTP offset exceeds this, seconds (etcd and Galera need clocks within tens of ms). */
  clockOffsetSeconds: z.number().positive().default(0.05),
  /** PostgresReplicaLag fires when a replica replays this many seconds behind (postgres_exporter `pg_replication_lag_seconds`). */
  postgresReplicaLagSeconds: z.number().positive().default(30),
  /** PostgresConnectionsNearLimit fires above this share of `max_connections`, percent. */
  postgresConnectionsPercent: z.number().gt(0).lt(100).default(80),
  /** PgbouncerClientsWaiting fires when a pool's oldest waiting client has waited this many seconds (pgbouncer_exporter `pgbouncer_pools_client_maxwait_seconds`). */
  pgbouncerClientWaitSeconds: z.number().positive().default(5),
  /** RedisMemoryNearMax fires above this share of `maxmemory`, percent. */
  redisMemoryPercent: z.number().gt(0).lt(100).default(90),
  /** GaleraFlowControl fires when a node spends more than this fraction of the time paused by flow control (0–1). */
  galeraFlowControlPausedFraction: z.number().gt(0).lt(1).default(0.1),
  /** BackupTooOld fires when a system's newest successful backup is older than this, hours (every backup is daily: 24 h plus slack). */
  backupMaxAgeHours: z
    .number()
    .int()
    .min(1)
    .max(24 * 31)
    .default(26),
  /** CertificateExpiringSoon (warning) fires this many days before a certificate's notAfter. */
  certificateWarningDays: z.number().int().positive().default(21),
  /** CertificateExpiryCritical fires this many days before a certificate's notAfter. */
  certificateCriticalDays: z.number().int().positive().default(7),
});

/** Validated `keybuzz:monitoring` settings. */
export type MonitoringSettings = z.infer<typeof monitoringSettingsSchema>;

/**
 * Parses `keybuzz:monitoring` (undefined = every default).
 *
 * @throws {ConfigError} naming `keybuzz:monitoring.<field>` for a bad value, or when the critical
 *   certificate threshold is not below the warning one.
 */
export function parseMonitoringSettings(raw: unknown): MonitoringSettings {
  const result = monitoringSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:monitoring."));
  const settings = result.data;
  if (settings.certificateCriticalDays >= settings.certificateWarningDays) {
    throw new ConfigError([
      `keybuzz:monitoring.certificateCriticalDays: ${settings.certificateCriticalDays} must be below certificateWarningDays (${settings.certificateWarningDays})`,
    ]);
  }
  return settings;
}
