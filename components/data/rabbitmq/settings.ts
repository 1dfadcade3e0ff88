import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";
import { ACCOUNTS } from "../../security/secrets";

/**
 * Operator settings of the RabbitMQ module, read from the optional stack config key
 * `keybuzz:rabbitmq`. Every key is optional; the defaults are production (spec 001 module 5). The
 * loopback and tool tests pass their own values to the render functions.
 *
 * The ports are also opened by the base OS's UFW rules (components/os/base-os.ts) and published to
 * the applications by the backend ConfigMap (components/k8s/addons.ts), both at the defaults: a
 * different port needs those changed too.
 */

const port = z.number().int().min(1).max(65535);
/** A name that is safe unquoted in rabbitmq.conf (sysctl-like format) and as a shell word. */
const plainName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, '.', '_', '-' only");

/** Schema of `keybuzz:rabbitmq` (all keys optional). */
export const rabbitMqSettingsSchema = z
  .strictObject({
    /** AMQP port, on the nodes and on HAProxy (`listeners.tcp.1`). Default 5672 (spec 001). */
    amqpPort: port.default(5672),
    /** Management API / UI port (`management.tcp.port`); HAProxy's health check calls it. Default 15672 (spec 001). */
    managementPort: port.default(15672),
    /** Prometheus metrics port (`prometheus.tcp.port`). Default 15692 (rabbitmq_prometheus). */
    prometheusPort: port.default(15692),
    /** `cluster_name`. Default `keybuzz`. */
    clusterName: plainName.default("keybuzz"),
    /** The default (administrator) user created on first boot. Default `ACCOUNTS.rabbitmqUser` (`keybuzz`). */
    defaultUser: plainName.default(ACCOUNTS.rabbitmqUser),
  })
  .refine((settings) => new Set([settings.amqpPort, settings.managementPort, settings.prometheusPort]).size === 3, {
    message: "amqpPort, managementPort and prometheusPort must differ",
    path: ["amqpPort"],
  });

/** Validated `keybuzz:rabbitmq`. */
export type RabbitMqSettings = z.infer<typeof rabbitMqSettingsSchema>;

/**
 * Validates `keybuzz:rabbitmq` (undefined = all defaults).
 * @throws {ConfigError} naming each bad key, e.g. `keybuzz:rabbitmq.amqpPort: …`.
 */
export function parseRabbitMqSettings(raw: unknown): RabbitMqSettings {
  const result = rabbitMqSettingsSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodError(result.error, "keybuzz:rabbitmq."));
  return result.data;
}

/** Production defaults of {@link RabbitMqSettings} (what an absent `keybuzz:rabbitmq` gives). */
export const DEFAULT_RABBITMQ_SETTINGS: RabbitMqSettings = parseRabbitMqSettings(undefined);
