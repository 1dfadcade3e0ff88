import * as pulumi from "@pulumi/pulumi";
import { INVENTORY_KEYS, Inventory, parseInventory } from "./inventory";
import { loadVersions, Versions } from "./versions";

export * from "./errors";
export * from "./inventory";
export * from "./versions";

/** Everything the program reads from configuration, validated. */
export interface PlatformConfig {
  /** Stack name (`prod`, `staging`); Hetzner names carry it as a prefix outside prod. */
  readonly stack: string;
  readonly inventory: Inventory;
  readonly versions: Versions;
  /** Private half of the SSH key the remote steps log in with (`keybuzz:sshPrivateKey`, secret). */
  readonly sshPrivateKey: pulumi.Output<string>;
}

/**
 * Reads the stack's `keybuzz:` config and `config/versions.yaml`, validates both, and returns the
 * typed result. Call it before declaring any resource.
 *
 * @throws {ConfigError} naming each bad key and its fix.
 * @throws {pulumi.RunError} (from Pulumi) when the secret `keybuzz:sshPrivateKey` is not set.
 */
export function loadPlatformConfig(): PlatformConfig {
  const config = new pulumi.Config("keybuzz");
  const raw = Object.fromEntries(INVENTORY_KEYS.map((key) => [key, structuredValue(config.get(key))]));
  const inventory = parseInventory(raw);
  const versions = loadVersions();
  return { stack: pulumi.getStack(), inventory, versions, sshPrivateKey: config.requireSecret("sshPrivateKey") };
}

/** A config value as Pulumi stores it: objects, lists and booleans as JSON text, strings as is. */
function structuredValue(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Name of a Hetzner resource: inventory name, prefixed with the stack outside prod (DESIGN.md). */
export function hetznerName(stack: string, name: string): string {
  return stack === "prod" ? name : `${stack}-${name}`;
}
