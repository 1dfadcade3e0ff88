import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/** Checks the PostgreSQL container of the probe Job runs one after the other (write, read, PgBouncer, the two URLs). */
export const POSTGRES_PROBE_CHECKS = 5;

/**
 * Operator settings of the backend probes, read from stack config `keybuzz:probes` (every key
 * optional): the bounds of the deploy's probe Job and the continuous probes' interval.
 */
export const probesSettingsSchema = z.strictObject({
  /** The Job's `activeDeadlineSeconds`: Kubernetes fails it (and `pulumi up` with it) after this many seconds. */
  jobDeadlineSeconds: z.number().int().min(60).max(3600).default(300),
  /** The Job's `backoffLimit`: pods retried after a failed one (a backend still converging gets a second look). */
  jobBackoffLimit: z.number().int().min(0).max(5).default(1),
  /** Bound of each single check (connect + query), seconds. */
  checkTimeoutSeconds: z.number().int().min(1).max(60).default(10),
  /** The application bucket the MinIO check signs a HEAD of (issue 19: the bucket the deploy creates). */
  bucket: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name (3–63 lowercase letters, digits, dots, hyphens)")
    .default("keybuzz-attachments"),
  /** blackbox_exporter probes every endpoint this often, seconds (the ScrapeConfigs' `scrapeInterval`). */
  probeIntervalSeconds: z.number().int().min(5).max(600).default(30),
});

/** Validated `keybuzz:probes` settings. */
export type ProbesSettings = z.infer<typeof probesSettingsSchema>;

/**
 * Parses `keybuzz:probes` (undefined = every default).
 *
 * @throws {ConfigError} naming `keybuzz:probes.<field>` for a bad value, or when the Job's deadline
 *   cannot hold the PostgreSQL container's checks at their bound (the slowest container).
 */
export function parseProbesSettings(raw: unknown): ProbesSettings {
  const result = probesSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:probes."));
  const settings = result.data;
  const slowest = POSTGRES_PROBE_CHECKS * settings.checkTimeoutSeconds;
  if (settings.jobDeadlineSeconds <= slowest) {
    throw new ConfigError([
      `keybuzz:probes.jobDeadlineSeconds: ${settings.jobDeadlineSeconds} s cannot hold ${POSTGRES_PROBE_CHECKS} checks of checkTimeoutSeconds (${settings.checkTimeoutSeconds} s); raise it above ${slowest}`,
    ]);
  }
  return settings;
}
