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
  /**
   * A label of your choice (letters, digits, `.`, `_`, `-`; e.g. `2027-10`) that renews the kubeadm
   * certificates of every control plane, one at a time, and re-reads admin.conf for the provider.
   * Unset: no renewal step. A new label renews again. kubeadm's certificates last one year
   * (kubeadm "Certificate Management"); docs/kubernetes.md "Certificate renewal".
   */
  certificateRenewal: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,40}$/, "must be a short label such as 2027-10 (letters, digits, '.', '_', '-')")
    .optional(),
};

const k8sSettingsSchema = z.strictObject({ ...addonsSettingsFields, ...clusterSettingsFields }).prefault({});

/** The validated cluster settings (join timeout, certificate renewal). */
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
