import { gunzipSync } from "zlib";
import { FactResult, settleFact, Source, SourceError } from "./source";

/**
 * apt pins: does each pinned `package=version` exist in the Packages index its hosts install from?
 * An index is Debian's deb822 stanzas (`Package:`, `Version:`, `Architecture:`), read as
 * `Packages.gz`, else `Packages` (Debian repository format).
 */

/** One apt repository as a host's sources.list names it. */
export interface AptRepository {
  /** Shown in the table (`Docker CE (noble)`). */
  readonly label: string;
  /**
   * Directory holding the Packages index: `<uri>/dists/<suite>/<component>/binary-amd64` for a
   * classic repository, `<uri>/<path>` for a flat one (pkgs.k8s.io's `deb … /`).
   */
  readonly indexUrl: string;
}

/** A pinned package expected in a repository. */
export interface AptPin {
  readonly repository: AptRepository;
  readonly packageName: string;
  readonly version: string;
  /** The versions.yaml key that pins it. */
  readonly key: string;
}

/** Versions listed per package name in a Packages index (amd64 and `all` stanzas). */
export function parsePackagesIndex(text: string): Map<string, Set<string>> {
  const versions = new Map<string, Set<string>>();
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, "mi").exec(stanza)?.[1].trim();
    const packageName = field("Package");
    const version = field("Version");
    const architecture = field("Architecture") ?? "amd64";
    if (!packageName || !version || !["amd64", "all"].includes(architecture)) continue;
    versions.set(packageName, (versions.get(packageName) ?? new Set()).add(version));
  }
  return versions;
}

/** Reads one repository's index (compressed first). @throws {SourceError} when neither file is served. */
async function readIndex(source: Source, indexUrl: string): Promise<Map<string, Set<string>>> {
  const base = indexUrl.replace(/\/+$/, "");
  const compressed = await source.request(`${base}/Packages.gz`);
  if (compressed.response.ok) return parsePackagesIndex(gunzipSync(compressed.body).toString("utf8"));
  const plain = await source.request(`${base}/Packages`);
  if (plain.response.ok) return parsePackagesIndex(plain.body.toString("utf8"));
  throw new SourceError(
    `no Packages index at ${base} (HTTP ${compressed.response.status} / ${plain.response.status})`,
    plain.response.status,
  );
}

/**
 * Checks every pin against its repository's index; each index is read once, repositories in parallel.
 *
 * @returns one row per pin: `ok`, `fail` naming the versions the index has, or `unreachable`.
 */
export async function checkAptPins(pins: readonly AptPin[], timeoutMs: number): Promise<FactResult[]> {
  const byIndex = new Map<string, AptPin[]>();
  for (const pin of pins) byIndex.set(pin.repository.indexUrl, [...(byIndex.get(pin.repository.indexUrl) ?? []), pin]);
  const perIndex = await Promise.all(
    [...byIndex.entries()].map(async ([indexUrl, repositoryPins]) => {
      const source = new Source(`apt ${repositoryPins[0].repository.label} ${indexUrl}`, timeoutMs);
      let index: Promise<Map<string, Set<string>>> | undefined;
      const results: FactResult[] = [];
      for (const pin of repositoryPins) {
        results.push(
          await settleFact(`${pin.key}: ${pin.packageName}=${pin.version}`, source, async () => {
            index ??= readIndex(source, indexUrl);
            const available = (await index).get(pin.packageName);
            if (available?.has(pin.version)) return { status: "ok", detail: "listed in the Packages index" };
            const listed = [...(available ?? [])].slice(-5).join(", ");
            return { status: "fail", detail: available ? `version not in the index (it lists ${listed})` : "package not in the index" };
          }),
        );
      }
      return results;
    }),
  );
  return perIndex.flat();
}
