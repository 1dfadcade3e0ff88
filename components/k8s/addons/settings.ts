import { z } from "zod";

/**
 * The add-ons' fields of stack config key `keybuzz:k8s` (one key for the cluster and its add-ons,
 * parsed by `parseK8sSettings` in ../cluster/settings.ts; every field has the spec's default).
 */
export const addonsSettingsFields = {
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
};

/** The validated add-on settings (MTU, retention, volume sizes). */
export type AddonsSettings = z.infer<z.ZodObject<typeof addonsSettingsFields>>;
