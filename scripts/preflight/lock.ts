import * as fs from "fs";
import * as yaml from "js-yaml";
import { LOCK_FILE, type DigestLock } from "../../config/lock";
import type { FactResult } from "./source";

// The lock file and its reader live in config/lock.ts: the program's config pass reads it too.
export { LOCK_FILE, readLock, type DigestLock } from "../../config/lock";

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
