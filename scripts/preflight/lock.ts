import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { z } from "zod";
import { ConfigError, formatZodError } from "../../config/errors";
import type { FactResult } from "./source";

/**
 * The digest lock: `config/versions.lock.yaml`, beside versions.yaml, maps each pinned image
 * reference to the manifest digest the preflight resolved (`images: { "redis:7.2.5-alpine": sha256:… }`).
 * The preflight compares every tag with it, so a tag moved upstream fails the gate instead of
 * reaching a host silently; `--write-lock` records the digests after a deliberate bump.
 */

/** Where the lock lives. */
export const LOCK_FILE = path.resolve(__dirname, "..", "..", "config", "versions.lock.yaml");

const lockSchema = z.strictObject({
  images: z.record(z.string(), z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be a sha256:<64 hex> manifest digest")),
});

/** Image reference → locked digest. */
export type DigestLock = Readonly<Record<string, string>>;

/** Reads the lock; an absent file is an empty lock. @throws {ConfigError} on a malformed file. */
export function readLock(file: string = LOCK_FILE): DigestLock {
  if (!fs.existsSync(file)) return {};
  let raw: unknown;
  try {
    raw = yaml.load(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError([`${file}: cannot be read as YAML: ${(error as Error).message}`]);
  }
  const parsed = lockSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, `${path.basename(file)}: `));
  return parsed.data.images;
}

/** The image reference a fact row checked (`images.redis: redis:7.2.5-alpine for linux/amd64` → `redis:7.2.5-alpine`). */
export function imageOfFact(fact: FactResult): string | undefined {
  return /^[^:]+: (\S+) for linux\/amd64$/.exec(fact.fact)?.[1];
}

/** Each image row compared with the lock: a resolved digest other than the locked one fails. */
export function compareWithLock(facts: readonly FactResult[], lock: DigestLock): FactResult[] {
  return facts.map((fact) => {
    const image = imageOfFact(fact);
    const locked = image === undefined ? undefined : lock[image];
    if (fact.status !== "ok" || !fact.digest || locked === undefined) return fact;
    if (locked === fact.digest) return { ...fact, detail: `${fact.detail}, as locked` };
    return {
      ...fact,
      status: "fail",
      detail: `tag moved upstream: locked ${locked}, the registry now serves ${fact.digest}; review the change, then record it with --write-lock`,
    };
  });
}

/**
 * Writes the digests the image rows resolved.
 *
 * @throws {Error} when an image row did not resolve (the lock must cover every pinned image).
 */
export function writeLock(facts: readonly FactResult[], file: string = LOCK_FILE): DigestLock {
  const images: Record<string, string> = {};
  const unresolved: string[] = [];
  for (const fact of facts) {
    const image = imageOfFact(fact);
    if (image === undefined) continue;
    if (fact.status === "ok" && fact.digest) images[image] = fact.digest;
    else unresolved.push(image);
  }
  if (unresolved.length > 0) throw new Error(`lock not written: ${unresolved.join(", ")} did not resolve to a digest`);
  const header = "# Written by `npm run preflight -- --stack <stack> --write-lock`: pinned image → manifest digest it resolved to.\n";
  fs.writeFileSync(file, header + yaml.dump({ images }, { sortKeys: true, lineWidth: -1 }));
  return images;
}
