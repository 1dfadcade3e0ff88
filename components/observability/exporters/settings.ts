import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Operator settings of the exporters module, read from stack config `keybuzz:exporters` (every key
 * optional): the exporters' ports and where the hourly certificate scan looks.
 */
export const exportersSettingsSchema = z.strictObject({
  /** node_exporter's port on each server's private address (node_exporter's default, 9100). */
  nodeExporterPort: z.number().int().min(1024).max(65535).default(9100),
  /** redis_exporter's port in front of Redis on each redis node (redis_exporter's default, 9121). */
  redisExporterPort: z.number().int().min(1024).max(65535).default(9121),
  /** The second redis_exporter's port, in front of the node's Sentinel (next to 9121). */
  sentinelExporterPort: z.number().int().min(1024).max(65535).default(9122),
  /** mysqld_exporter's port on each MariaDB node (mysqld_exporter's default, 9104). */
  mysqldExporterPort: z.number().int().min(1024).max(65535).default(9104),
  /**
   * Directories scanned for `*.crt` / `*.pem` certificates (CertificateExpiringSoon): the platform
   * PKI's files under /etc/keybuzz (etcd, Patroni, HAProxy) and kubeadm's /etc/kubernetes/pki.
   */
  certificateDirs: z
    .array(z.string().regex(/^\/[A-Za-z0-9._/-]+$/, "must be an absolute path of letters, digits, . _ - /"))
    .min(1)
    .default(["/etc/keybuzz", "/etc/kubernetes/pki"]),
});

/** Validated `keybuzz:exporters` settings. */
export type ExportersSettings = z.infer<typeof exportersSettingsSchema>;

/**
 * Parses `keybuzz:exporters` (undefined = every default).
 *
 * @throws {ConfigError} naming `keybuzz:exporters.<field>` for a bad value.
 */
export function parseExportersSettings(raw: unknown): ExportersSettings {
  const result = exportersSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:exporters."));
  return result.data;
}
