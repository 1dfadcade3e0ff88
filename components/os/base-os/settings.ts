import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Operator settings of the base OS, stack config key `keybuzz:baseOs` (optional: every field has a
 * default, today's values, so existing `Pulumi.<stack>.yaml` files need nothing).
 */

/** A fail2ban duration: seconds, or a number with fail2ban's `s`/`m`/`h`/`d`/`w` suffix (fail2ban `MyTime.str2seconds`). */
const fail2banDuration = z.string().regex(/^\d+[smhdw]?$/, "must be a fail2ban duration such as 10m or 1h");
/** A journald size: bytes, or a number with a `K`/`M`/`G`/`T`/`P`/`E` suffix (1024-based, journald.conf(5)). */
const journaldSize = z.string().regex(/^\d+[KMGTPE]?$/, "must be a journald size such as 200M");

/** Schema of `keybuzz:baseOs` (all keys optional). */
export const baseOsSettingsSchema = z.strictObject({
  /**
   * The SSH jail: a source is banned for `banTime` after `maxRetry` failures within `findTime`
   * (spec 000 installs fail2ban without values; these defaults are the project's).
   */
  fail2ban: z
    .strictObject({
      maxRetry: z.number().int().min(1).max(100).default(5),
      findTime: fail2banDuration.default("10m"),
      banTime: fail2banDuration.default("1h"),
    })
    .prefault({}),
  /** journald's disk use (spec 000 §9): at most `systemMaxUse`, and always `systemKeepFree` left free. */
  journald: z
    .strictObject({
      systemMaxUse: journaldSize.default("200M"),
      systemKeepFree: journaldSize.default("100M"),
    })
    .prefault({}),
});

/** The validated `keybuzz:baseOs` settings. */
export type BaseOsSettings = z.infer<typeof baseOsSettingsSchema>;

/**
 * Validates raw `keybuzz:baseOs` data (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:baseOs.fail2ban.banTime: …`.
 */
export function parseBaseOsSettings(raw: unknown): BaseOsSettings {
  const parsed = baseOsSettingsSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:baseOs."));
  return parsed.data;
}
