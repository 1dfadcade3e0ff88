import { parseFamiliarName } from "@swimlane/docker-reference";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { z } from "zod";
import { ConfigError, formatZodError } from "./errors";
import type { ImageDigests, ImageKey, Versions } from "./versions";

/**
 * The digest lock: `config/versions.lock.yaml`, beside versions.yaml, maps each pinned image
 * reference to the manifest digest the preflight resolved (`images: { "redis:7.2.16-alpine": sha256:… }`),
 * written by `npm run preflight -- --stack <stack> --write-lock`. The program deploys those digests;
 * the preflight fails a tag whose digest moved upstream.
 */

/**
 * Where the lock lives. `KEYBUZZ_VERSIONS_LOCK` names another file: the tests point it at a fixture,
 * so that no test writes into config/.
 */
export const LOCK_FILE = process.env.KEYBUZZ_VERSIONS_LOCK ?? path.join(__dirname, "versions.lock.yaml");

/** The fix of every lock problem. */
const REWRITE_LOCK = "re-run `npm run preflight -- --stack <stack> --write-lock` and commit the lock with versions.yaml";

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

/** `domain/repository` of a reference (`redis:7.2.16-alpine` → `docker.io/library/redis`), or undefined when it does not parse. */
function repositoryOf(reference: string): string | undefined {
  try {
    const parsed = parseFamiliarName(reference);
    return `${parsed.domain}/${parsed.repository}`;
  } catch {
    return undefined;
  }
}

/**
 * The digest of each image of versions.yaml that the lock names. An image pinned by digest in
 * versions.yaml needs none.
 *
 * @param lock as read by {@link readLock}; `{}` when there is no lock file.
 * @returns the digests, by `images.<key>`.
 * @throws {ConfigError} naming each lock entry that is no image of versions.yaml: a stale entry (the
 *   repository of `images.<key>` under another tag, left by a bump without `--write-lock`) or one that
 *   names no pinned repository at all.
 */
export function lockedDigests(versions: Versions, lock: DigestLock, file: string = LOCK_FILE): ImageDigests {
  const images = Object.entries(versions.images) as [ImageKey, string][];
  const name = path.basename(file);
  const problems: string[] = [];
  const digests: Partial<Record<ImageKey, string>> = {};
  for (const [reference, digest] of Object.entries(lock)) {
    const keys = images.filter(([, image]) => image === reference).map(([key]) => key);
    if (keys.length > 0) {
      for (const key of keys) if (!reference.includes("@")) digests[key] = digest;
      continue;
    }
    const repository = repositoryOf(reference);
    const sameRepository = images.filter(([, image]) => repository !== undefined && repositoryOf(image) === repository);
    problems.push(
      sameRepository.length > 0
        ? `${name}: images."${reference}": stale, ${sameRepository.map(([key, image]) => `images.${key} is now ${image}`).join(", ")} in versions.yaml; ${REWRITE_LOCK}`
        : `${name}: images."${reference}": names no image of versions.yaml; ${REWRITE_LOCK}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return digests;
}

/**
 * The reference that pulls exactly `digest` of `image`'s repository (`redis:7.2.16-alpine` →
 * `redis@sha256:…`): `name:tag@digest` is not used, Docker ignores its tag and leaves the pulled
 * image untagged (docker/cli#2856).
 *
 * @throws {Error} when `image` carries no tag (versions.yaml pins every image to one, or to a digest).
 */
export function digestReference(image: string, digest: string): string {
  const { tag } = parseFamiliarName(image);
  if (!tag || !image.endsWith(`:${tag}`)) throw new Error(`${image} carries no tag to pin to ${digest}`);
  return `${image.slice(0, -(tag.length + 1))}@${digest}`;
}

/**
 * The reference a module deploys `images.<key>` with: the tag of versions.yaml, or `tag@sha256:…`
 * when the lock has its digest. Only components/lib/container.ts reads that form (`imagePull`):
 * it pulls the digest and runs the tag pointed at it.
 */
export function lockedImage(versions: Versions, key: ImageKey): string {
  const digest = versions.digests?.[key];
  return digest === undefined ? versions.images[key] : `${versions.images[key]}@${digest}`;
}
