import { mariadbServerVersion, renderProxySqlCnf } from "../../components/data/proxysql";
import { loadVersions } from "../../config";
import {
  formatStallTable,
  formatTable,
  galeraThroughProxySql,
  median,
  percentile,
  proxySqlDetectionBound,
  summarize,
  summarizeStalls,
} from "../../scripts/bench-failover";
import { FailoverResult, longestPause, StallResult } from "../support/loopback/failover";

/** The benchmark's arithmetic and tables, on results shaped like the loopback scenarios' (no daemon started). */
describe("bench-failover summaries", () => {
  const result = (
    seconds: number,
    lost: number,
    rejoined: boolean,
    rejoinedBy?: string,
    extra: Partial<FailoverResult> = {},
  ): FailoverResult => ({
    system: "postgres",
    secondsToWriteAgain: seconds,
    acknowledgedWrites: 1000,
    acknowledgedLost: lost,
    oldPrimary: "db-master-01",
    newPrimary: "db-slave-01",
    rejoinedAsReplica: rejoined,
    rejoinedBy,
    ...extra,
  });
  const stall = (failedOver: boolean, pause: number, extra: Partial<StallResult> = {}): StallResult => ({
    system: "postgres-node-stall",
    frozen: "db-master-01: patroni, postgres, etcd",
    stalledSeconds: 3.01,
    watchedSeconds: 30.2,
    primaryBefore: "db-master-01",
    primaryAfter: failedOver ? "db-slave-01" : "db-master-01",
    failedOver,
    proxyMarkedPrimaryDown: false,
    longestWritePauseSeconds: pause,
    acknowledgedWrites: 500,
    acknowledgedLost: 0,
    ...extra,
  });

  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([9, 1, 5])).toBe(5);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it("takes the nearest-rank percentile: the largest of 5 runs for p95, the 19th of 20", () => {
    expect(percentile([3, 9, 1, 7, 5], 95)).toBe(9);
    const twenty = Array.from({ length: 20 }, (_, index) => 20 - index);
    expect(percentile(twenty, 95)).toBe(19);
    expect(percentile(twenty, 50)).toBe(10);
    expect(() => percentile([], 95)).toThrow(/needs values/);
    expect(() => percentile([1], 0)).toThrow(/0 < p/);
  });

  it("sums writes and losses, takes median, p95 and max, counts rejoins, how they happened and crashed etcd leaders", () => {
    const summary = summarize("postgres", [
      result(21.004, 0, true, "pg_rewind", { crashedEtcdLeader: true, secondsFromPromotionToRouted: 0.4 }),
      result(18.5, 2, false, undefined, { crashedEtcdLeader: false }),
      result(19.25, 0, true, "pg_rewind", { crashedEtcdLeader: false, secondsFromPromotionToRouted: 0.61 }),
    ]);
    expect(summary).toEqual({
      system: "postgres",
      runs: 3,
      medianSecondsToWriteAgain: 19.25,
      p95SecondsToWriteAgain: 21,
      maxSecondsToWriteAgain: 21,
      maxSecondsFromPromotionToRouted: 0.61,
      acknowledgedWrites: 3000,
      acknowledgedLost: 2,
      rejoinedAsReplica: "2/3",
      rejoinedBy: "pg_rewind 2",
      crashedEtcdLeader: "1/3",
    });
    expect(summarize("redis", [result(3, 0, true)])).not.toHaveProperty("maxSecondsFromPromotionToRouted");
    expect(summarize("redis", [result(3, 0, true)]).crashedEtcdLeader).toBe("-");
  });

  it("counts every stall run that ended with another primary as a false failover", () => {
    const summary = summarizeStalls("postgres-node-stall", [
      stall(false, 3.2),
      stall(true, 9.5),
      stall(false, 3.1, { proxyMarkedPrimaryDown: true }),
      stall(false, 3.4),
    ]);
    expect(summary).toEqual({
      system: "postgres-node-stall",
      runs: 4,
      medianStalledSeconds: 3.01,
      medianWatchedSeconds: 30.2,
      falseFailovers: 1,
      proxyMarkedPrimaryDown: 1,
      medianLongestWritePauseSeconds: 3.3,
      p95LongestWritePauseSeconds: 9.5,
      acknowledgedWrites: 2000,
      acknowledgedLost: 0,
    });
  });

  it("measures the longest pause between acknowledgements, counting the edges of the window", () => {
    expect(longestPause([1100, 1200, 4300, 4400], 1000, 5000)).toBe(3100);
    // Nothing acknowledged in the window: the whole window is one pause; times outside it are ignored.
    expect(longestPause([500, 6000], 1000, 5000)).toBe(4000);
    expect(longestPause([4900, 1050], 1000, 5000)).toBe(3850);
  });

  it("prints one aligned row per system under the header", () => {
    const table = formatTable([
      summarize("redis", [result(6.9, 0, true, undefined, { secondsFromPromotionToRouted: 0.5 })]),
      summarize("postgres-switchover", [result(4.5, 0, true, "streaming")]),
    ]);
    const lines = table.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^system\s+runs\s+median s\s+p95 s\s+max s\s+routed after promotion s\s+acked writes\s+acked lost\s+rejoined\s+caught up by\s+etcd leader crashed$/,
    );
    expect(lines[2]).toMatch(/^redis\s+1\s+6\.90\s+6\.90\s+6\.90\s+≤ 0\.50\s+1000\s+0\s+1\/1\s+-\s+-$/);
    expect(lines[3]).toMatch(/^postgres-switchover\s+1\s+4\.50\s+4\.50\s+4\.50\s+-\s+1000\s+0\s+1\/1\s+streaming 1\s+-$/);
    // Columns line up: "runs" starts at the same offset on every line.
    const column = lines[0].indexOf("runs");
    expect(lines.slice(2).map((line) => line.slice(column, column + 1))).toEqual(["1", "1"]);
  });

  it("prints the stall table with a falseFailovers column", () => {
    const lines = formatStallTable([summarizeStalls("redis-stall", [stall(false, 1.5, { system: "redis-stall" })])]).split("\n");
    expect(lines[0]).toMatch(/^stall\s+runs\s+frozen s\s+watched s\s+falseFailovers\s+proxy marked down\s+write pause median s\s+p95 s/);
    expect(lines[2]).toMatch(/^redis-stall\s+1\s+3\.01\s+30\.20\s+0\s+0\s+1\.50\s+1\.50\s+500\s+0$/);
  });
});

describe("Galera through ProxySQL", () => {
  it("reads the detection bound from the proxysql.cnf production renders: refused at the next check, silent after 3 timeouts", () => {
    const cnf = renderProxySqlCnf({ backends: [], serverVersion: mariadbServerVersion(loadVersions().images.mariadb) });
    expect(proxySqlDetectionBound(cnf)).toEqual({
      intervalMs: 2000,
      timeoutMs: 800,
      maxTimeoutCount: 3,
      refusedSeconds: 2,
      silentSeconds: 6.8,
    });
  });

  it("takes an explicit max_timeout_count, and refuses a file without the Galera checks", () => {
    const cnf =
      "mysql_variables =\n{\n    monitor_galera_healthcheck_interval = 1000\n    monitor_galera_healthcheck_timeout = 500\n    monitor_galera_healthcheck_max_timeout_count = 2\n}\n";
    expect(proxySqlDetectionBound(cnf)).toMatchObject({ refusedSeconds: 1, silentSeconds: 2.5 });
    expect(() => proxySqlDetectionBound("mysql_variables = {}")).toThrow(/monitor_galera_healthcheck/);
  });

  it("bounds the client-visible time by the slower of the Galera stall and ProxySQL's detection", () => {
    const galera = summarize("galera", [
      {
        ...{
          system: "galera",
          acknowledgedWrites: 10,
          acknowledgedLost: 0,
          oldPrimary: "maria-01",
          newPrimary: "maria-02",
          rejoinedAsReplica: true,
        },
        secondsToWriteAgain: 5.4,
      },
      {
        ...{
          system: "galera",
          acknowledgedWrites: 10,
          acknowledgedLost: 0,
          oldPrimary: "maria-01",
          newPrimary: "maria-02",
          rejoinedAsReplica: true,
        },
        secondsToWriteAgain: 6.1,
      },
    ]);
    const estimate = galeraThroughProxySql(galera, {
      intervalMs: 2000,
      timeoutMs: 800,
      maxTimeoutCount: 3,
      refusedSeconds: 2,
      silentSeconds: 6.8,
    });
    expect(estimate).toMatchObject({
      medianGaleraStallSeconds: 5.75,
      p95GaleraStallSeconds: 6.1,
      refusedBoundSeconds: 6.1,
      silentBoundSeconds: 6.8,
    });
  });
});
