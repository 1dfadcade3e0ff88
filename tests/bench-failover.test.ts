import { formatTable, median, summarize } from "../scripts/bench-failover";
import { FailoverResult } from "./integration/support/failover";

/** The benchmark's arithmetic and table, on results shaped like the loopback scenarios' (no daemon started). */
describe("bench-failover summaries", () => {
  const result = (seconds: number, lost: number, rejoined: boolean, rejoinedBy?: string): FailoverResult => ({
    system: "postgres",
    secondsToWriteAgain: seconds,
    acknowledgedWrites: 1000,
    acknowledgedLost: lost,
    oldPrimary: "db-master-01",
    newPrimary: "db-slave-01",
    rejoinedAsReplica: rejoined,
    rejoinedBy,
  });

  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([9, 1, 5])).toBe(5);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it("sums writes and losses, takes median and max, counts rejoins and how they happened", () => {
    const summary = summarize("postgres", [
      result(21.004, 0, true, "pg_rewind"),
      result(18.5, 2, false),
      result(19.25, 0, true, "pg_rewind"),
    ]);
    expect(summary).toEqual({
      system: "postgres",
      runs: 3,
      medianSecondsToWriteAgain: 19.25,
      maxSecondsToWriteAgain: 21,
      acknowledgedWrites: 3000,
      acknowledgedLost: 2,
      rejoinedAsReplica: "2/3",
      rejoinedBy: "pg_rewind 2",
    });
  });

  it("prints one aligned row per system under the header", () => {
    const table = formatTable([
      summarize("redis", [result(6.9, 0, true)]),
      summarize("postgres-switchover", [result(4.5, 0, true, "streaming")]),
    ]);
    const lines = table.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^system\s+runs\s+median s\s+max s\s+acked writes\s+acked lost\s+rejoined\s+caught up by$/);
    expect(lines[2]).toMatch(/^redis\s+1\s+6\.90\s+6\.90\s+1000\s+0\s+1\/1\s+-$/);
    expect(lines[3]).toMatch(/^postgres-switchover\s+1\s+4\.50\s+4\.50\s+1000\s+0\s+1\/1\s+streaming 1$/);
    // Columns line up: "runs" starts at the same offset on every line.
    const column = lines[0].indexOf("runs");
    expect(lines.slice(2).map((line) => line.slice(column, column + 1))).toEqual(["1", "1"]);
  });
});
