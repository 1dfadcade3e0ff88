import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";
import { ACCOUNTS } from "../../security/secrets";

/**
 * Operator settings of the MinIO module, read from the optional stack config key `keybuzz:minio`.
 * Every key is optional; the defaults are production (spec 001 design section B, spec 003). The
 * domain of the node host names is not a setting: it is the inventory's `internalDomain`.
 *
 * The ports are also opened by the base OS's UFW rules (components/os/base-os.ts) and published to
 * the applications by the backend ConfigMap (components/k8s/addons.ts), both at the defaults: a
 * different port needs those changed too.
 */

const port = z.number().int().min(1).max(65535);

/** Schema of `keybuzz:minio` (all keys optional). */
export const minioSettingsSchema = z
  .strictObject({
    /** S3 API port (`--address`, and the port of every `MINIO_VOLUMES` endpoint). Default 9000. */
    apiPort: port.default(9000),
    /** Console port (`--console-address`). Default 9001 (spec 001). */
    consolePort: port.default(9001),
    /** The drive path as the server sees it inside its container. Default `/data` (spec 003). */
    dataPath: z
      .string()
      .regex(/^(\/[A-Za-z0-9._-]+)+$/, "an absolute path of letters, digits, '.', '_', '-'")
      .default("/data"),
    /** The root user (`MINIO_ROOT_USER`). Default `ACCOUNTS.minioRootUser` (`keybuzz-root`). */
    rootUser: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{2,}$/, "at least 3 characters: letters, digits, '.', '_', '-'")
      .default(ACCOUNTS.minioRootUser),
    /**
     * The application's bucket, created by the deploy together with its own user
     * (`ACCOUNTS.minioAppUser`) and a policy limited to it (issue 19: the KeyBuzz backend reads
     * this bucket and never creates it). Default `keybuzz-attachments`. An S3 bucket name: 3–63
     * lowercase letters, digits, '.', '-', starting and ending with a letter or digit.
     */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name: 3-63 lowercase letters, digits, '.', '-'")
      .default("keybuzz-attachments"),
  })
  .refine((settings) => settings.apiPort !== settings.consolePort, { message: "apiPort and consolePort must differ", path: ["apiPort"] });

/** Validated `keybuzz:minio`. */
export type MinioSettings = z.infer<typeof minioSettingsSchema>;

/**
 * Validates `keybuzz:minio` (undefined = all defaults).
 * @throws {ConfigError} naming each bad key, e.g. `keybuzz:minio.apiPort: …`.
 */
export function parseMinioSettings(raw: unknown): MinioSettings {
  const result = minioSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:minio."));
  return result.data;
}

/** Production defaults of {@link MinioSettings} (what an absent `keybuzz:minio` gives). */
export const DEFAULT_MINIO_SETTINGS: MinioSettings = parseMinioSettings(undefined);
