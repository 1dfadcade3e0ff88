import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";
import { etcdBackupSchema } from "../etcd/settings";
import { galeraBackupSchema } from "../galera/settings";
import { onCalendar } from "../schedule";

/**
 * Operator settings of the backup module, read from stack config `keybuzz:backup` (optional: every
 * key has a production default). DESIGN.md, "Backups"; docs/backups.md.
 */

/** The optional second repository: S3 (MinIO or Hetzner Object Storage), always encrypted. */
const s3RepositorySchema = z.strictObject({
  /** S3 endpoint host (pgBackRest `repo2-s3-endpoint`), e.g. `fsn1.your-objectstorage.com`. */
  endpoint: z.string().regex(/^[A-Za-z0-9.-]+(:[0-9]+)?$/, "a host name, optionally with :port"),
  /** Bucket (`repo2-s3-bucket`); it must exist. */
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name"),
  /** Region (`repo2-s3-region`); MinIO accepts any, Hetzner wants the location, e.g. `fsn1`. */
  region: z.string().min(1).default("us-east-1"),
  /** Path inside the bucket (`repo2-path`). */
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9._/-]*$/, "an absolute path")
    .default("/pgbackrest"),
  /** `path` for MinIO, `host` (virtual-hosted) for most providers (`repo2-s3-uri-style`). */
  uriStyle: z.enum(["path", "host"]).default("path"),
  /** Full backups kept in the S3 repository (`repo2-retention-full`, by count). */
  retentionFull: z.number().int().min(1).max(520).default(4),
});

/** PostgreSQL (pgBackRest) settings. */
const postgresBackupSchema = z.strictObject({
  /** The pgBackRest stanza (one per PostgreSQL cluster). */
  stanza: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,62}$/, "lower-case letters, digits, '-'")
    .default("keybuzz"),
  /** When the full backup runs (systemd OnCalendar); default weekly, Sunday 01:00 (host time, UTC). */
  fullSchedule: onCalendar.default("Sun *-*-* 01:00:00"),
  /** When the differential backup runs; default daily except Sunday, 01:00. */
  diffSchedule: onCalendar.default("Mon..Sat *-*-* 01:00:00"),
  /** Full backups kept (`repo1-retention-full`, type count); their WAL is kept with them. */
  retentionFull: z.number().int().min(1).max(520).default(4),
  /** Differential backups kept (`repo1-retention-diff`). */
  retentionDiff: z.number().int().min(1).max(3650).default(7),
  /**
   * PostgreSQL `archive_timeout`, seconds: a WAL segment is switched and archived at least this
   * often, so it bounds the data lost with the leader's node (the RPO) under a light write load.
   */
  archiveTimeoutSeconds: z.number().int().min(10).max(3600).default(60),
  /** Copy the data files from a replica, not the leader (pgBackRest `backup-standby`). */
  fromStandby: z.boolean().default(true),
  /** Parallel processes of a backup and of the asynchronous archive push (`process-max`). */
  processMax: z.number().int().min(1).max(16).default(2),
  /** Port of pgBackRest's TLS server on backup-01 and on every DB node (`tls-server-port`, pgBackRest's default 8432). */
  tlsPort: z.number().int().min(1024).max(65535).default(8432),
  /** The second, encrypted repository on S3; credentials are secrets (`keybuzz:backupS3AccessKey`, `keybuzz:backupS3SecretKey`). */
  s3: s3RepositorySchema.optional(),
});

/** Schema of `keybuzz:backup`. */
export const backupSettingsSchema = z.strictObject({
  postgres: postgresBackupSchema.default(postgresBackupSchema.parse({})),
  /** MariaDB Galera (mariadb-backup from one node to backup-01): components/backup/galera. */
  galera: galeraBackupSchema.default(galeraBackupSchema.parse({})),
  /** etcd snapshots of Patroni's and Kubernetes' etcd to backup-01: components/backup/etcd. */
  etcd: etcdBackupSchema.default(etcdBackupSchema.parse({})),
});

/** Validated `keybuzz:backup`. */
export type BackupSettings = z.infer<typeof backupSettingsSchema>;
/** Validated `keybuzz:backup.postgres`. */
export type PgBackRestSettings = BackupSettings["postgres"];

/**
 * Validates `keybuzz:backup` (undefined = all defaults).
 * @throws {ConfigError} naming each bad key, e.g. `keybuzz:backup.postgres.retentionFull: …`.
 */
export function parseBackupSettings(raw: unknown): BackupSettings {
  const result = backupSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:backup."));
  return result.data;
}
