import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { GaleraLoopbackCluster } from "../tests/integration/scenarios/galera";
import { PostgresLoopbackCluster } from "../tests/integration/scenarios/postgres";
import { RedisLoopbackCluster } from "../tests/integration/scenarios/redis";
import { FailoverResult } from "../tests/integration/support/failover";
import { reapLoopbackDaemons } from "../tests/integration/support/reaper";

/**
 * `npm run bench:failover -- --runs N [--systems …]`: repeats each system's failover scenario N
 * times on the loopback clusters of tests/integration (same code as the tests) and prints, per
 * system, the median and max seconds until a write is acknowledged again on the client path
 * (HAProxy for Redis and PostgreSQL, a surviving node for Galera) and the acknowledged writes
 * lost — as a table, then as JSON. A system that fails ends the run; the systems measured before
 * it are still printed. On exit or a signal, every loopback daemon left is killed (the reaper).
 */

/** One system's cluster, as the benchmark drives it. */
interface BenchTarget {
  failover(): Promise<FailoverResult>;
  stop(): Promise<void>;
}

const SYSTEMS: Readonly<Record<string, () => Promise<BenchTarget>>> = {
  redis: () => RedisLoopbackCluster.start(),
  postgres: () => PostgresLoopbackCluster.start(),
  "postgres-switchover": async () => {
    const cluster = await PostgresLoopbackCluster.start();
    return { failover: () => cluster.switchover(), stop: () => cluster.stop() };
  },
  galera: () => GaleraLoopbackCluster.start(),
};

/** Summary of one system's runs. */
export interface BenchSummary {
  /** Key of the system in the benchmark (`redis`, `postgres`, …). */
  readonly system: string;
  /** Failovers measured. */
  readonly runs: number;
  /** Seconds from the event to the first write acknowledged again: median and max over the runs. */
  readonly medianSecondsToWriteAgain: number;
  readonly maxSecondsToWriteAgain: number;
  /** Writes acknowledged over all runs, and how many of them were missing afterwards. */
  readonly acknowledgedWrites: number;
  readonly acknowledgedLost: number;
  /** Runs whose old node rejoined, as `rejoined/runs`. */
  readonly rejoinedAsReplica: string;
  /** How the old nodes caught up, counted, e.g. `pg_rewind 2, streaming 1`; `-` when the system does not say. */
  readonly rejoinedBy: string;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** `a 2, b 1` for [a, b, a]; `-` for none. */
function countsOf(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts.size === 0 ? "-" : [...counts].map(([value, count]) => `${value} ${count}`).join(", ");
}

/** Folds the runs of one system into its summary line. */
export function summarize(system: string, results: readonly FailoverResult[]): BenchSummary {
  const times = results.map((result) => result.secondsToWriteAgain);
  return {
    system,
    runs: results.length,
    medianSecondsToWriteAgain: Number(median(times).toFixed(2)),
    maxSecondsToWriteAgain: Number(Math.max(...times).toFixed(2)),
    acknowledgedWrites: results.reduce((sum, result) => sum + result.acknowledgedWrites, 0),
    acknowledgedLost: results.reduce((sum, result) => sum + result.acknowledgedLost, 0),
    rejoinedAsReplica: `${results.filter((result) => result.rejoinedAsReplica).length}/${results.length}`,
    rejoinedBy: countsOf(results.flatMap((result) => (result.rejoinedBy ? [result.rejoinedBy] : []))),
  };
}

/** The summaries as an aligned text table. */
export function formatTable(summaries: readonly BenchSummary[]): string {
  const header = ["system", "runs", "median s", "max s", "acked writes", "acked lost", "rejoined", "caught up by"];
  const rows = summaries.map((s) => [
    s.system,
    String(s.runs),
    s.medianSecondsToWriteAgain.toFixed(2),
    s.maxSecondsToWriteAgain.toFixed(2),
    String(s.acknowledgedWrites),
    String(s.acknowledgedLost),
    s.rejoinedAsReplica,
    s.rejoinedBy,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option("runs", { type: "number", default: 3, describe: "failovers per system" })
    .option("systems", {
      type: "array",
      string: true,
      default: Object.keys(SYSTEMS),
      choices: Object.keys(SYSTEMS),
      describe: "systems to measure",
    })
    .check((args) => (Number.isInteger(args.runs) && args.runs >= 1 && args.runs <= 50 ? true : "--runs must be an integer from 1 to 50"))
    .strict()
    .parse();
  // No daemon outlives the benchmark, however it ends (a cluster still starting included).
  process.once("exit", () => reapLoopbackDaemons());
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.once(signal, () => {
      console.error(`bench-failover: ${signal}, stopping every loopback daemon`);
      process.exit(code);
    });
  }
  const summaries: BenchSummary[] = [];
  const details: Record<string, FailoverResult[]> = {};
  try {
    for (const system of argv.systems) {
      console.error(`bench-failover: starting the ${system} loopback cluster`);
      const target = await SYSTEMS[system]();
      try {
        const results: FailoverResult[] = [];
        for (let run = 1; run <= argv.runs; run++) {
          const result = await target.failover();
          console.error(
            `bench-failover: ${system} run ${run}/${argv.runs}: ${result.secondsToWriteAgain.toFixed(2)} s, ${result.acknowledgedLost} lost`,
          );
          results.push(result);
        }
        details[system] = results;
        summaries.push(summarize(system, results));
      } finally {
        await target.stop();
      }
    }
  } finally {
    if (summaries.length > 0) {
      console.log(formatTable(summaries));
      console.log(JSON.stringify({ summaries, runs: details }, null, 2));
    }
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
