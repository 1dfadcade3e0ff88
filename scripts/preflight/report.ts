import type { FactResult, FactStatus } from "./source";

/** Counts per status and the verdict. */
export interface PreflightSummary {
  readonly total: number;
  readonly counts: Record<FactStatus, number>;
  /** 0 when every fact holds (skipped rows aside), 1 otherwise. */
  readonly exitCode: 0 | 1;
}

/** Counts the rows; a fact whose source was unreachable is unverified, so it fails the run too. */
export function summarizeFacts(facts: readonly FactResult[]): PreflightSummary {
  const counts: Record<FactStatus, number> = { ok: 0, fail: 0, unreachable: 0, skipped: 0 };
  for (const fact of facts) counts[fact.status]++;
  return { total: facts.length, counts, exitCode: counts.fail + counts.unreachable === 0 ? 0 : 1 };
}

const LABEL: Record<FactStatus, string> = { ok: "ok", fail: "FAIL", unreachable: "UNREACHABLE", skipped: "skipped" };

/** The table operators read: fact, source, result; then the summary line. */
export function formatReport(stack: string, facts: readonly FactResult[]): string {
  const summary = summarizeFacts(facts);
  const factWidth = Math.min(70, Math.max(4, ...facts.map((row) => row.fact.length)));
  const sourceWidth = Math.min(60, Math.max(6, ...facts.map((row) => row.source.length)));
  const lines = [`KeyBuzz preflight — stack ${stack}`, "", `${"fact".padEnd(factWidth)}  ${"source".padEnd(sourceWidth)}  result`];
  for (const row of facts)
    lines.push(`${row.fact.padEnd(factWidth)}  ${row.source.padEnd(sourceWidth)}  ${LABEL[row.status]}: ${row.detail}`);
  const { counts } = summary;
  lines.push(
    "",
    `${summary.exitCode === 0 ? "PASS" : "FAIL"}: ${summary.total} facts — ${counts.ok} hold, ${counts.fail} fail, ${counts.unreachable} unreachable, ${counts.skipped} skipped`,
  );
  return `${lines.join("\n")}\n`;
}
