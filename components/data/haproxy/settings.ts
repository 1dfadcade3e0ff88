import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/** Settings of the shared HAProxy layer, stack config `keybuzz:haproxy` (all optional). */
export interface HaproxySettings {
  /**
   * Seconds each host's step waits for every listener to have a server UP whose last health check
   * passed (10–1800). Default 120: the clusters behind it are verified before HAProxy starts, so
   * only the first checks remain.
   */
  readonly verifyTimeoutSeconds: number;
}

const settingsSchema = z.strictObject({
  verifyTimeoutSeconds: z.number().int().min(10).max(1800).default(120),
});

/**
 * Validates the `keybuzz:haproxy` stack config (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:haproxy.verifyTimeoutSeconds`.
 */
export function parseHaproxySettings(raw: unknown): HaproxySettings {
  const parsed = settingsSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:haproxy."));
  return parsed.data;
}
