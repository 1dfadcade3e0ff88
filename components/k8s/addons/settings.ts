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
  /**
   * Domains of the Hetzner managed certificate (Let's Encrypt, issued by Hetzner) on the public
   * ingress load balancers (issue 19; docs/ingress.md, "Certificates"): when set, their 443 service
   * terminates TLS with it and forwards plain HTTP to the ingress controller's port 80. Default
   * empty: 443 passes through as TCP and the cluster terminates TLS (cert-manager, the documented
   * alternative).
   */
  ingressDomains: z
    .array(z.string().regex(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$/, "must be a DNS name such as app.keybuzz.io"))
    .refine((domains) => new Set(domains).size === domains.length, { message: "lists a domain twice" })
    .default([]),
};

/** The validated add-on settings (MTU, retention, volume sizes, the ingress certificate's domains). */
export type AddonsSettings = z.infer<z.ZodObject<typeof addonsSettingsFields>>;
