import { z } from "zod";
import { ConfigError, formatZodError } from "../../config/errors";

/**
 * Operator-tunable settings of the Kubernetes module, stack config key `keybuzz:k8s` (optional;
 * every field has the spec's default, so existing `Pulumi.<stack>.yaml` files need nothing).
 */
const settingsSchema = z
  .strictObject({
    /** Calico MTU: the Hetzner private NIC's 1450 minus the 20-byte IPIP header (DESIGN.md). */
    calicoMtu: z.number().int().min(1200).max(1480).default(1430),
    /** Prometheus retention (spec 001, Prometheus stack: `30d`). */
    prometheusRetention: z
      .string()
      .regex(/^\d+(ms|s|m|h|d|w|y)$/, "must be a Prometheus duration such as 30d")
      .default("30d"),
    /** Size of Prometheus' volume, GB (a Hetzner volume is at least 10 GB). */
    prometheusStorageGb: z.number().int().min(10).default(50),
    /** Size of Alertmanager's volume, GB. */
    alertmanagerStorageGb: z.number().int().min(10).default(10),
    /** Size of Grafana's volume, GB. */
    grafanaStorageGb: z.number().int().min(10).default(10),
    /** Upper bound of one kubeadm join, minutes. */
    joinTimeoutMinutes: z.number().int().min(5).max(120).default(30),
  })
  .default({
    calicoMtu: 1430,
    prometheusRetention: "30d",
    prometheusStorageGb: 50,
    alertmanagerStorageGb: 10,
    grafanaStorageGb: 10,
    joinTimeoutMinutes: 30,
  });

/** The validated `keybuzz:k8s` settings. */
export type K8sSettings = z.infer<typeof settingsSchema>;

/**
 * Validates raw `keybuzz:k8s` data (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:k8s.calicoMtu: …`.
 */
export function parseK8sSettings(raw: unknown): K8sSettings {
  const parsed = settingsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:k8s."));
  return parsed.data;
}
