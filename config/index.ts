import * as pulumi from "@pulumi/pulumi";
import leven from "leven";
import { ConfigError } from "./errors";
import { documentationAdminCidrs, INVENTORY_KEYS, Inventory, parseInventory } from "./inventory";
import { LOCK_FILE, lockedDigests, readLock } from "./lock";
import { currentOfflinePlan } from "./offline-plan";
import { collectProblems, ModuleSettings, moduleInventoryProblems, parseModuleSettings, SETTINGS_KEYS } from "./settings";
import { loadVersions, Versions } from "./versions";

export * from "./errors";
export * from "./inventory";
export * from "./lock";
export * from "./settings";
export * from "./versions";

/** Everything the program reads from configuration, validated. */
export interface PlatformConfig {
  /** Stack name (`prod`, `staging`); Hetzner names carry it as a prefix outside prod. */
  readonly stack: string;
  readonly inventory: Inventory;
  readonly versions: Versions;
  /** Every module's operator settings (`keybuzz:<module>`, the keys of config/settings.ts's `MODULE_SETTINGS`). */
  readonly settings: ModuleSettings;
  /** Private half of the SSH key the remote steps log in with (`keybuzz:sshPrivateKey`, secret). */
  readonly sshPrivateKey: pulumi.Output<string>;
  /** The Hetzner API token (`hcloud:token`, secret): the provider's own, also given to the cluster's CSI driver. */
  readonly hcloudToken: pulumi.Output<string>;
  /**
   * Access and secret key of the backups' S3 repository (`keybuzz:backupS3AccessKey`,
   * `keybuzz:backupS3SecretKey`, secret), when `keybuzz:backup.postgres.s3` is set; else undefined.
   */
  readonly backupS3Credentials?: { readonly accessKey: pulumi.Output<string>; readonly secretKey: pulumi.Output<string> };
}

/** Every key of the `keybuzz:` namespace the program reads. */
export const KNOWN_KEYS: readonly string[] = [
  ...INVENTORY_KEYS,
  // The backups' S3 repository credentials (secret; read only when keybuzz:backup.postgres.s3 is set).
  "backupS3AccessKey",
  "backupS3SecretKey",
  ...SETTINGS_KEYS,
  "sshPrivateKey",
];

/** Keys an earlier version of the stack files used, and their names now. */
const RENAMED_KEYS: Readonly<Record<string, string>> = { sshPublicKeys: "sshKeys" };

/**
 * Reads the stack's `keybuzz:` config, `config/versions.yaml` and, when present, the digest lock
 * `config/versions.lock.yaml`, validates all of it (inventory, what the modules need of it,
 * versions, the lock against them, every module's settings, the key names, the secrets' presence)
 * in one pass, and returns
 * the typed result. Call it before declaring any resource.
 *
 * A documentation-range admin CIDR (the shipped placeholder) is a problem in a real `pulumi
 * preview` / `up` and a warning in the offline plan (config/offline-plan.ts tells them apart).
 *
 * @throws {ConfigError} listing every problem found, each naming its key and the fix.
 */
export function loadPlatformConfig(): PlatformConfig {
  const config = new pulumi.Config("keybuzz");
  const problems: string[] = [...unknownKeyProblems(Object.keys(pulumi.runtime.allConfig()))];
  const rawOf = (keys: readonly string[]) => Object.fromEntries(keys.map((key) => [key, structuredValue(config.get(key))]));

  const rawInventory = rawOf(INVENTORY_KEYS);
  const inventory = collectProblems(() => parseInventory(rawInventory), problems);
  if (inventory) problems.push(...moduleInventoryProblems(inventory));
  const pins = collectProblems(() => loadVersions(), problems);
  const planLock = currentOfflinePlan()?.lockFile;
  const lockFile = planLock === undefined ? LOCK_FILE : planLock;
  const lock = lockFile === null ? {} : collectProblems(() => readLock(lockFile), problems);
  const digests = pins && lock ? collectProblems(() => lockedDigests(pins, lock, lockFile ?? LOCK_FILE), problems) : undefined;
  // Without a lock (or an empty one) the versions are exactly versions.yaml's: the steps deploy the tags.
  const versions = pins && digests && Object.keys(digests).length > 0 ? { ...pins, digests } : pins;
  const modules = parseModuleSettings(rawOf(SETTINGS_KEYS));
  problems.push(...modules.problems);

  const adminCidrs = Array.isArray(rawInventory.adminCidrs)
    ? rawInventory.adminCidrs.filter((cidr): cidr is string => typeof cidr === "string")
    : [];
  const offlinePlan = currentOfflinePlan();
  for (const { key, cidr } of documentationAdminCidrs(adminCidrs)) {
    if (offlinePlan) {
      offlinePlan.warnings.push(
        `${key}: ${cidr} is the shipped placeholder (a documentation range, RFC 5737); the offline plan accepts it, a real pulumi preview/up refuses it until you put your own egress address`,
      );
    } else {
      problems.push(
        `${key}: ${cidr} is a documentation address (RFC 5737), the placeholder of the shipped stack files; put your own egress address (the public IPv4 you run pulumi from, as x.y.z.w/32). install-01 is created by this stack, so it cannot be the admin address of its own first deploy`,
      );
    }
  }

  const sshPrivateKey = config.getSecret("sshPrivateKey");
  if (sshPrivateKey === undefined) {
    problems.push('keybuzz:sshPrivateKey: not set; pulumi config set --secret keybuzz:sshPrivateKey -- "$(cat ~/.ssh/id_ed25519)"');
  }
  const backupS3Credentials = modules.settings?.backup.postgres.s3 ? readBackupS3Credentials(config, problems) : undefined;
  const hcloudToken = new pulumi.Config("hcloud").getSecret("token");
  if (hcloudToken === undefined) problems.push("hcloud:token: not set; pulumi config set --secret hcloud:token <hetzner-api-token>");

  if (problems.length > 0 || !inventory || !versions || !modules.settings || !sshPrivateKey || !hcloudToken) {
    throw new ConfigError(problems);
  }
  return { stack: pulumi.getStack(), inventory, versions, settings: modules.settings, sshPrivateKey, hcloudToken, backupS3Credentials };
}

/** The two secret keys of the backups' S3 repository; a problem per missing one. */
function readBackupS3Credentials(config: pulumi.Config, problems: string[]): PlatformConfig["backupS3Credentials"] {
  const accessKey = config.getSecret("backupS3AccessKey");
  const secretKey = config.getSecret("backupS3SecretKey");
  for (const [key, value] of [
    ["backupS3AccessKey", accessKey],
    ["backupS3SecretKey", secretKey],
  ] as const) {
    if (value === undefined) {
      problems.push(
        `keybuzz:${key}: not set, and keybuzz:backup.postgres.s3 asks for an S3 repository; pulumi config set --secret keybuzz:${key} <value>`,
      );
    }
  }
  return accessKey && secretKey ? { accessKey, secretKey } : undefined;
}

/**
 * One problem per `keybuzz:` key that the program does not read (a misspelling such as
 * `keybuzz:sever`), naming the nearest known key when one is close (Levenshtein distance, `leven`).
 *
 * @param configKeys every config key of the stack (`keybuzz:servers`, `hcloud:token`, …); other
 *   namespaces are ignored.
 */
export function unknownKeyProblems(configKeys: readonly string[]): string[] {
  const prefix = "keybuzz:";
  return configKeys
    .filter((key) => key.startsWith(prefix) && !KNOWN_KEYS.includes(key.slice(prefix.length)))
    .map((key) => {
      const name = key.slice(prefix.length);
      const renamed = RENAMED_KEYS[name];
      if (renamed) return `${key}: renamed; use keybuzz:${renamed}`;
      const [nearest] = KNOWN_KEYS.map((known) => ({ known, distance: leven(name.toLowerCase(), known.toLowerCase()) })).sort(
        (a, b) => a.distance - b.distance,
      );
      const close = nearest.distance <= Math.max(2, Math.floor(name.length / 3));
      return close
        ? `${key}: not a KeyBuzz setting; did you mean keybuzz:${nearest.known}?`
        : `${key}: not a KeyBuzz setting; the settings are ${KNOWN_KEYS.map((known) => prefix + known).join(", ")}`;
    });
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
