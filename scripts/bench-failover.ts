import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { TIMING_PROFILES } from "../components/data/postgres/settings";
import { loadVersions } from "../config";
import { mariadbServerVersion, renderProxySqlCnf } from "../components/data/proxysql";
import { SENTINEL_PROFILES } from "../components/data/redis";
import { GaleraLoopbackCluster } from "../tests/galera/loopback";
import { PostgresLoopbackCluster } from "../tests/postgres/loopback";
import { RabbitMqLoopbackCluster } from "../tests/rabbitmq/loopback";
import { RedisLoopbackCluster } from "../tests/redis/loopback";
import { FailoverResult, ReplaceNodeResult, StallResult } from "../tests/support/loopback/failover";
import { reapLoopbackDaemons } from "../tests/support/loopback/reaper";

/**
 * `npm run bench:failover -- --runs N [--systems …] [--postgres-profile P] [--redis-profile P]`:
 * repeats each system's scenario N times on the loopback clusters (tests/<module>/*.loopback.test.ts) (same code
 * as the tests). Failover systems: median, p95 and max seconds until a write is acknowledged again
 * on the client path (HAProxy for Redis and PostgreSQL, a surviving node for Galera), HAProxy's
 * delay after the promotion, the acknowledged writes lost. Stall systems (processes frozen, then
 * resumed): the false failovers they caused and the longest write pause. Printed as tables, then
 * as JSON. Systems on the same cluster share one cluster; a system that fails ends the run, the
 * systems measured before it are still printed. On exit or a signal, every loopback daemon left is
 * killed (the reaper).
 */

/** The clusters the systems run on, started once each and stopped before the next kind starts. */
class ClusterPool {
  private current: { kind: string; cluster: { stop(): Promise<void> } } | undefined;
  /** The timing settings the clusters ran with, for the report. */
  readonly settings: Record<string, unknown> = {};

  constructor(private readonly overrides: { readonly postgres: Record<string, unknown>; readonly redis: Record<string, unknown> }) {}

  redis(): Promise<RedisLoopbackCluster> {
    return this.get("redis", async () => {
      const cluster = await RedisLoopbackCluster.start("prod", this.overrides.redis);
      this.settings.redis = {
        failoverProfile: cluster.tuning.failoverProfile,
        downAfterMilliseconds: cluster.tuning.downAfterMilliseconds,
      };
      return cluster;
    });
  }

  postgres(): Promise<PostgresLoopbackCluster> {
    return this.get("postgres", async () => {
      const cluster = await PostgresLoopbackCluster.start("prod", this.overrides.postgres);
      const profile = cluster.settings.timingProfile;
      this.settings.postgres = { timingProfile: profile, ...TIMING_PROFILES[profile], synchronousMode: cluster.settings.synchronousMode };
      return cluster;
    });
  }

  galera(): Promise<GaleraLoopbackCluster> {
    return this.get("galera", () => GaleraLoopbackCluster.start());
  }

  rabbitmq(): Promise<RabbitMqLoopbackCluster> {
    return this.get("rabbitmq", () => RabbitMqLoopbackCluster.start());
  }

  async stop(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.cluster.stop();
  }

  private async get<T extends { stop(): Promise<void> }>(kind: string, start: () => Promise<T>): Promise<T> {
    if (this.current?.kind === kind) return this.current.cluster as T;
    await this.stop();
    console.error(`bench-failover: starting the ${kind} loopback cluster`);
    const cluster = await start();
    this.current = { kind, cluster };
    return cluster;
  }
}

/**
 * One system of the benchmark: a failover (how long until writes resume), a stall (no failover may
 * follow) or a node replacement (issue 15: killed, wiped, brought back by its step; its results are
 * printed as they are, in the JSON's `runs`).
 */
type BenchSystem =
  | { readonly kind: "failover"; run(pool: ClusterPool): Promise<FailoverResult> }
  | { readonly kind: "stall"; run(pool: ClusterPool): Promise<StallResult> }
  | { readonly kind: "replace-node"; run(pool: ClusterPool): Promise<ReplaceNodeResult> };

/** Stall lengths of issue 18: the leader node or the etcd leader 3 s, the Redis master 1.5 s. */
const POSTGRES_STALL_SECONDS = 3;
const REDIS_STALL_SECONDS = 1.5;

const SYSTEMS: Readonly<Record<string, BenchSystem>> = {
  redis: { kind: "failover", run: async (pool) => (await pool.redis()).failover() },
  "redis-stall": { kind: "stall", run: async (pool) => (await pool.redis()).masterStall(REDIS_STALL_SECONDS) },
  postgres: { kind: "failover", run: async (pool) => (await pool.postgres()).failover() },
  "postgres-switchover": { kind: "failover", run: async (pool) => (await pool.postgres()).switchover() },
  "postgres-node-stall": { kind: "stall", run: async (pool) => (await pool.postgres()).leaderNodeStall(POSTGRES_STALL_SECONDS) },
  "postgres-etcd-stall": { kind: "stall", run: async (pool) => (await pool.postgres()).etcdLeaderStall(POSTGRES_STALL_SECONDS) },
  // Issue 15: the synchronous standby or the leader recreated empty under a writing client rejoins
  // (tests/postgres/loopback.ts replaceNode; JSON: system "postgres", scenario "replace-node", rejoined, run.sh's output).
  "postgres-replace-replica": { kind: "failover", run: async (pool) => (await pool.postgres()).replaceNode("replica") },
  "postgres-replace-leader": { kind: "failover", run: async (pool) => (await pool.postgres()).replaceNode("leader") },
  galera: { kind: "failover", run: async (pool) => (await pool.galera()).failover() },
  "rabbitmq-replace-node": { kind: "replace-node", run: async (pool) => (await pool.rabbitmq()).replaceNode() },
  "redis-replace-node": { kind: "replace-node", run: async (pool) => (await pool.redis()).replaceNode() },
  "galera-replace-node": { kind: "replace-node", run: async (pool) => (await pool.galera()).replaceNode() },
};

/** Summary of one failover system's runs. */
export interface BenchSummary {
  /** Key of the system in the benchmark (`redis`, `postgres`, …). */
  readonly system: string;
  /** Failovers measured. */
  readonly runs: number;
  /** Seconds from the event to the first write acknowledged again: median, p95 ({@link percentile}) and max over the runs. */
  readonly medianSecondsToWriteAgain: number;
  readonly p95SecondsToWriteAgain: number;
  readonly maxSecondsToWriteAgain: number;
  /** The largest delay from the new primary's promotion to HAProxy routing to it, seconds; undefined when not measured. */
  readonly maxSecondsFromPromotionToRouted?: number;
  /** Writes acknowledged over all runs, and how many of them were missing afterwards. */
  readonly acknowledgedWrites: number;
  readonly acknowledgedLost: number;
  /** Runs whose old node rejoined, as `rejoined/runs`. */
  readonly rejoinedAsReplica: string;
  /** How the old nodes caught up, counted, e.g. `pg_rewind 2, streaming 1`; `-` when the system does not say. */
  readonly rejoinedBy: string;
  /** PostgreSQL crash: runs whose crashed node held the etcd leader, as `n/runs`; `-` for the other systems. */
  readonly crashedEtcdLeader: string;
}

/** Summary of one stall system's runs. */
export interface StallSummary {
  readonly system: string;
  readonly runs: number;
  /** Median seconds the processes were frozen, and the seconds watched after the freeze began. */
  readonly medianStalledSeconds: number;
  readonly medianWatchedSeconds: number;
  /** Runs after which another node had become primary: each is a false failover. */
  readonly falseFailovers: number;
  /** Runs during which HAProxy marked the primary down (and cut its sessions). */
  readonly proxyMarkedPrimaryDown: number;
  /** The longest write pause of a run, seconds: median and p95 over the runs. */
  readonly medianLongestWritePauseSeconds: number;
  readonly p95LongestWritePauseSeconds: number;
  readonly acknowledgedWrites: number;
  readonly acknowledgedLost: number;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * The `p`th percentile (0 < p ≤ 100) of a non-empty list by the nearest-rank method: the smallest
 * value with at least p % of the values at or below it. With 5 runs the p95 is the largest run.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0 || !(p > 0 && p <= 100))
    throw new Error(`percentile: needs values and 0 < p ≤ 100 (got ${values.length} values, p ${p})`);
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1];
}

/** `a 2, b 1` for [a, b, a]; `-` for none. */
function countsOf(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts.size === 0 ? "-" : [...counts].map(([value, count]) => `${value} ${count}`).join(", ");
}

const seconds = (value: number): number => Number(value.toFixed(2));

/** Folds the runs of one failover system into its summary line. */
export function summarize(system: string, results: readonly FailoverResult[]): BenchSummary {
  const times = results.map((result) => result.secondsToWriteAgain);
  const routed = results.flatMap((result) =>
    result.secondsFromPromotionToRouted === undefined ? [] : [result.secondsFromPromotionToRouted],
  );
  const etcd = results.filter((result) => result.crashedEtcdLeader !== undefined);
  return {
    system,
    runs: results.length,
    medianSecondsToWriteAgain: seconds(median(times)),
    p95SecondsToWriteAgain: seconds(percentile(times, 95)),
    maxSecondsToWriteAgain: seconds(Math.max(...times)),
    ...(routed.length > 0 ? { maxSecondsFromPromotionToRouted: seconds(Math.max(...routed)) } : {}),
    acknowledgedWrites: results.reduce((sum, result) => sum + result.acknowledgedWrites, 0),
    acknowledgedLost: results.reduce((sum, result) => sum + result.acknowledgedLost, 0),
    rejoinedAsReplica: `${results.filter((result) => result.rejoinedAsReplica).length}/${results.length}`,
    rejoinedBy: countsOf(results.flatMap((result) => (result.rejoinedBy ? [result.rejoinedBy] : []))),
    crashedEtcdLeader: etcd.length === 0 ? "-" : `${etcd.filter((result) => result.crashedEtcdLeader).length}/${etcd.length}`,
  };
}

/** Folds the runs of one stall system into its summary line. */
export function summarizeStalls(system: string, results: readonly StallResult[]): StallSummary {
  const pauses = results.map((result) => result.longestWritePauseSeconds);
  return {
    system,
    runs: results.length,
    medianStalledSeconds: seconds(median(results.map((result) => result.stalledSeconds))),
    medianWatchedSeconds: seconds(median(results.map((result) => result.watchedSeconds))),
    falseFailovers: results.filter((result) => result.failedOver).length,
    proxyMarkedPrimaryDown: results.filter((result) => result.proxyMarkedPrimaryDown).length,
    medianLongestWritePauseSeconds: seconds(median(pauses)),
    p95LongestWritePauseSeconds: seconds(percentile(pauses, 95)),
    acknowledgedWrites: results.reduce((sum, result) => sum + result.acknowledgedWrites, 0),
    acknowledgedLost: results.reduce((sum, result) => sum + result.acknowledgedLost, 0),
  };
}

/** ProxySQL's default `mysql-monitor_galera_healthcheck_max_timeout_count` (ProxySQL 2.6.4, lib/MySQL_Thread.cpp). */
export const PROXYSQL_DEFAULT_GALERA_MAX_TIMEOUT_COUNT = 3;

/** How long ProxySQL can take to move writes off a dead Galera writer, from its configured monitor. */
export interface ProxySqlDetectionBound {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly maxTimeoutCount: number;
  /** The node's port refuses connections (a crashed mariadbd): the next check fails at once and ProxySQL reconfigures. */
  readonly refusedSeconds: number;
  /** The node is silent (powered off, cut off): only `maxTimeoutCount` consecutive timed-out checks take it out. */
  readonly silentSeconds: number;
}

/**
 * ProxySQL's detection bound from a rendered proxysql.cnf (`mysql_variables`): the first Galera
 * health check after the failure starts within `interval`; a refused connection is an error that
 * takes the node offline at once, a timeout counts only after `max_timeout_count` consecutive
 * ones (ProxySQL 2.6.4, lib/MySQL_Monitor.cpp, Galera health-check handler), the last ending
 * `timeout` after it started. Unset variables take ProxySQL's defaults. Pure.
 *
 * @throws Error when the file sets no Galera health-check interval or timeout.
 */
export function proxySqlDetectionBound(cnf: string): ProxySqlDetectionBound {
  const variable = (name: string): number | undefined => {
    const match = new RegExp(`^\\s*${name}\\s*=\\s*(\\d+)\\s*$`, "m").exec(cnf);
    return match ? Number(match[1]) : undefined;
  };
  const intervalMs = variable("monitor_galera_healthcheck_interval");
  const timeoutMs = variable("monitor_galera_healthcheck_timeout");
  if (intervalMs === undefined || timeoutMs === undefined) throw new Error("proxysql.cnf: no monitor_galera_healthcheck_interval/_timeout");
  const maxTimeoutCount = variable("monitor_galera_healthcheck_max_timeout_count") ?? PROXYSQL_DEFAULT_GALERA_MAX_TIMEOUT_COUNT;
  return {
    intervalMs,
    timeoutMs,
    maxTimeoutCount,
    refusedSeconds: intervalMs / 1000,
    silentSeconds: (maxTimeoutCount * intervalMs + timeoutMs) / 1000,
  };
}

/** Galera behind ProxySQL: writes resume when both the survivors' stall is over and ProxySQL has moved the writer. */
export interface GaleraThroughProxySql extends ProxySqlDetectionBound {
  /** Measured Galera stall (median and p95 of the `galera` runs), seconds. */
  readonly medianGaleraStallSeconds: number;
  readonly p95GaleraStallSeconds: number;
  /** Bounds on the client-visible time through ProxySQL: max(stall, detection), for each kind of failure. */
  readonly refusedBoundSeconds: number;
  readonly silentBoundSeconds: number;
}

/** Combines the Galera runs with ProxySQL's detection bound. Pure. */
export function galeraThroughProxySql(galera: BenchSummary, bound: ProxySqlDetectionBound): GaleraThroughProxySql {
  return {
    ...bound,
    medianGaleraStallSeconds: galera.medianSecondsToWriteAgain,
    p95GaleraStallSeconds: galera.p95SecondsToWriteAgain,
    refusedBoundSeconds: seconds(Math.max(galera.p95SecondsToWriteAgain, bound.refusedSeconds)),
    silentBoundSeconds: seconds(Math.max(galera.p95SecondsToWriteAgain, bound.silentSeconds)),
  };
}

/** An aligned text table. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

/** The failover summaries as an aligned text table. */
export function formatTable(summaries: readonly BenchSummary[]): string {
  return table(
    [
      "system",
      "runs",
      "median s",
      "p95 s",
      "max s",
      "routed after promotion s",
      "acked writes",
      "acked lost",
      "rejoined",
      "caught up by",
      "etcd leader crashed",
    ],
    summaries.map((s) => [
      s.system,
      String(s.runs),
      s.medianSecondsToWriteAgain.toFixed(2),
      s.p95SecondsToWriteAgain.toFixed(2),
      s.maxSecondsToWriteAgain.toFixed(2),
      s.maxSecondsFromPromotionToRouted === undefined ? "-" : `≤ ${s.maxSecondsFromPromotionToRouted.toFixed(2)}`,
      String(s.acknowledgedWrites),
      String(s.acknowledgedLost),
      s.rejoinedAsReplica,
      s.rejoinedBy,
      s.crashedEtcdLeader,
    ]),
  );
}

/** The stall summaries as an aligned text table. */
export function formatStallTable(summaries: readonly StallSummary[]): string {
  return table(
    [
      "stall",
      "runs",
      "frozen s",
      "watched s",
      "falseFailovers",
      "proxy marked down",
      "write pause median s",
      "p95 s",
      "acked writes",
      "acked lost",
    ],
    summaries.map((s) => [
      s.system,
      String(s.runs),
      s.medianStalledSeconds.toFixed(2),
      s.medianWatchedSeconds.toFixed(2),
      String(s.falseFailovers),
      String(s.proxyMarkedPrimaryDown),
      s.medianLongestWritePauseSeconds.toFixed(2),
      s.p95LongestWritePauseSeconds.toFixed(2),
      String(s.acknowledgedWrites),
      String(s.acknowledgedLost),
    ]),
  );
}

/** The Galera + ProxySQL estimate as one paragraph. */
export function formatGaleraThroughProxySql(estimate: GaleraThroughProxySql): string {
  return [
    "galera through ProxySQL (ProxySQL is not in Debian: measured Galera stall + ProxySQL's configured detection):",
    `  galera stall median ${estimate.medianGaleraStallSeconds.toFixed(2)} s, p95 ${estimate.p95GaleraStallSeconds.toFixed(2)} s;`,
    `  ProxySQL Galera check every ${estimate.intervalMs} ms, timeout ${estimate.timeoutMs} ms, ${estimate.maxTimeoutCount} timeouts to act:`,
    `  writer refused (process crash) ≤ ${estimate.refusedBoundSeconds.toFixed(2)} s, writer silent (node gone) ≤ ${estimate.silentBoundSeconds.toFixed(2)} s`,
  ].join("\n");
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option("runs", { type: "number", default: 3, describe: "runs per system" })
    .option("systems", {
      type: "array",
      string: true,
      default: Object.keys(SYSTEMS),
      choices: Object.keys(SYSTEMS),
      describe: "systems to measure",
    })
    .option("postgres-profile", {
      type: "string",
      choices: Object.keys(TIMING_PROFILES),
      describe: "Patroni timing profile (default: the prod stack's)",
    })
    .option("redis-profile", {
      type: "string",
      choices: Object.keys(SENTINEL_PROFILES),
      describe: "Sentinel profile (default: the prod stack's)",
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
  const pool = new ClusterPool({
    postgres: argv.postgresProfile ? { timingProfile: argv.postgresProfile } : {},
    redis: argv.redisProfile ? { failoverProfile: argv.redisProfile } : {},
  });
  const summaries: BenchSummary[] = [];
  const stalls: StallSummary[] = [];
  const details: Record<string, (FailoverResult | StallResult | ReplaceNodeResult)[]> = {};
  const replacements: ReplaceNodeResult[] = [];
  // Systems of one cluster run back to back, so each cluster starts once.
  const order = ["redis", "postgres", "galera", "rabbitmq"];
  const systems = [...argv.systems].sort(
    (a, b) => order.findIndex((kind) => a.startsWith(kind)) - order.findIndex((kind) => b.startsWith(kind)),
  );
  try {
    for (const system of systems) {
      const results: (FailoverResult | StallResult | ReplaceNodeResult)[] = (details[system] = []);
      for (let run = 1; run <= argv.runs; run++) {
        const result = await SYSTEMS[system].run(pool);
        const figure =
          "scenario" in result
            ? `${result.secondsToWriteAgain.toFixed(2)} s, ${result.acknowledgedLost} lost, ${result.rejoined ? "rejoined" : "NOT REJOINED"}`
            : "secondsToWriteAgain" in result
              ? `${result.secondsToWriteAgain.toFixed(2)} s, ${result.acknowledgedLost} lost`
              : `${result.failedOver ? "FAILED OVER" : "no failover"}, longest write pause ${result.longestWritePauseSeconds.toFixed(2)} s`;
        console.error(`bench-failover: ${system} run ${run}/${argv.runs}: ${figure}`);
        results.push(result);
      }
      if (SYSTEMS[system].kind === "failover") summaries.push(summarize(system, results as FailoverResult[]));
      else if (SYSTEMS[system].kind === "stall") stalls.push(summarizeStalls(system, results as StallResult[]));
      else replacements.push(...(results as ReplaceNodeResult[]));
    }
  } finally {
    await pool.stop();
    const galera = summaries.find((summary) => summary.system === "galera");
    const throughProxySql = galera
      ? galeraThroughProxySql(
          galera,
          // The monitor settings production renders (they do not depend on the backends).
          proxySqlDetectionBound(renderProxySqlCnf({ backends: [], serverVersion: mariadbServerVersion(loadVersions().images.mariadb) })),
        )
      : undefined;
    if (summaries.length > 0) console.log(formatTable(summaries));
    if (stalls.length > 0) console.log(`\n${formatStallTable(stalls)}`);
    if (throughProxySql) console.log(`\n${formatGaleraThroughProxySql(throughProxySql)}`);
    if (summaries.length + stalls.length + replacements.length > 0) {
      console.log(
        JSON.stringify(
          { settings: pool.settings, summaries, stalls, replacements, galeraThroughProxySql: throughProxySql, runs: details },
          null,
          2,
        ),
      );
    }
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
