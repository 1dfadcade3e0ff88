import * as yaml from "js-yaml";
import * as semver from "semver";
import { FactResult, settleFact, Source, SourceError } from "./source";

/**
 * Helm charts: is each pinned chart version listed in its repository's `index.yaml`
 * (Helm chart repository format: `entries.<chart>[].version`)?
 */

/** A chart pin as versions.yaml holds it. */
export interface ChartCheck {
  readonly key: string;
  /** Repository URL as pinned (`https://charts.hetzner.cloud`). */
  readonly repo: string;
  readonly chart: string;
  readonly version: string;
}

/**
 * Checks every chart; each repository's index is read once, repositories in parallel.
 *
 * @param endpoints repository URL → URL actually fetched (tests point them at loopback).
 */
export async function checkCharts(
  charts: readonly ChartCheck[],
  endpoints: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<FactResult[]> {
  const byRepo = new Map<string, ChartCheck[]>();
  for (const chart of charts) byRepo.set(chart.repo, [...(byRepo.get(chart.repo) ?? []), chart]);
  const perRepo = await Promise.all(
    [...byRepo.entries()].map(async ([repo, repoCharts]) => {
      const source = new Source(`charts ${repo}`, timeoutMs);
      const indexUrl = `${(endpoints[repo] ?? repo).replace(/\/+$/, "")}/index.yaml`;
      let index: Promise<Record<string, { version?: string }[]>> | undefined;
      const results: FactResult[] = [];
      for (const chart of repoCharts) {
        results.push(
          await settleFact(`${chart.key}: ${chart.chart}@${chart.version}`, source, async () => {
            index ??= source.get(indexUrl).then((body) => {
              const document = yaml.load(body.toString("utf8")) as { entries?: Record<string, { version?: string }[]> } | undefined;
              if (!document?.entries) throw new SourceError(`${indexUrl} is not a Helm repository index (no entries)`);
              return document.entries;
            });
            const versions = ((await index)[chart.chart] ?? []).map((entry) => String(entry.version));
            const newest = versions.filter((version) => semver.valid(version)).sort(semver.rcompare);
            if (versions.includes(chart.version)) return { status: "ok", detail: "listed in index.yaml" };
            return {
              status: "fail",
              detail:
                versions.length === 0
                  ? `chart ${chart.chart} not in index.yaml`
                  : `version not in index.yaml (newest listed: ${newest.slice(0, 3).join(", ")})`,
            };
          }),
        );
      }
      return results;
    }),
  );
  return perRepo.flat();
}
