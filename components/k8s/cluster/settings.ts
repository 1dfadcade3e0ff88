import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";
import { addonsSettingsFields } from "../addons/settings";

/**
 * Operator-tunable settings of the Kubernetes modules, stack config key `keybuzz:k8s` (optional;
 * every field has the spec's default, so existing `Pulumi.<stack>.yaml` files need nothing). One
 * key for both components: the cluster's fields are here, the add-ons' in ../addons/settings.ts.
 */
export const clusterSettingsFields = {
  /** Upper bound of one kubeadm join, minutes. */
  joinTimeoutMinutes: z.number().int().min(5).max(120).default(30),
};

const k8sSettingsSchema = z.strictObject({ ...addonsSettingsFields, ...clusterSettingsFields }).prefault({});

/** The validated cluster settings (join timeout). */
export type ClusterSettings = z.infer<z.ZodObject<typeof clusterSettingsFields>>;
/** The validated `keybuzz:k8s` settings: the cluster's and the add-ons' fields. */
export type K8sSettings = z.infer<typeof k8sSettingsSchema>;

/**
 * Validates raw `keybuzz:k8s` data (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:k8s.calicoMtu: …`.
 */
export function parseK8sSettings(raw: unknown): K8sSettings {
  const parsed = k8sSettingsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:k8s."));
  return parsed.data;
}
