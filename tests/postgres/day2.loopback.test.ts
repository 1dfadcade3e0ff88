import { TIMING_PROFILES, timingOf } from "../../components/data/postgres/settings";
import { clusterForSuite } from "../support/loopback/suite";
import { PostgresLoopbackCluster, PostgresReplaceNodeResult } from "./loopback";

/**
 * PostgreSQL day-2 on loopback (issue 15), while a client writes through HAProxy: a DB node
 * replaced by an empty one rejoins etcd and Patroni through the rendered etcd run script, with no
 * manual etcdctl; the passwords rotate in the steps' order with no unplanned failover. Same
 * cluster as postgres.loopback.test.ts (rendered files, mutual TLS, Debian's etcd, Patroni and
 * PostgreSQL), a cluster of its own.
 */
describe("PostgreSQL day-2 on loopback: node replacement and password rotation (rendered scripts, Debian daemons)", () => {
  const live = clusterForSuite(["etcd", "etcdctl", "patroni", "haproxy", "openssl"], () => PostgresLoopbackCluster.start());

  /**
   * The longest write pause a replacement may cost: the profile's crash RTO, the failover's worst
   * case (`TIMING_PROFILES[…].rtoSeconds`; docs/postgres.md, "Failover timing": `ttl` + ~4 s when
   * the etcd leader died with the node).
   */
  const failoverBoundSeconds = (): number => TIMING_PROFILES[live().settings.timingProfile].rtoSeconds;

  const expectRejoined = (result: PostgresReplaceNodeResult): void => {
    expect(result.rejoined).toBe(true);
    expect(result.acknowledgedWrites).toBeGreaterThan(50);
    expect(result.acknowledgedLost).toBe(0);
    expect(result.longestWritePauseSeconds).toBeLessThanOrEqual(failoverBoundSeconds());
    // The run script replaced the stale member through a healthy peer and joined as `existing`.
    expect(result.etcdScriptOutput).toMatch(new RegExp(`stale etcd member \\w+ \\(${result.replaced}\\) at https://\\S+ removed`));
    expect(result.etcdScriptOutput).toContain(`etcd: ${result.replaced} added again through https://`);
    expect(result.etcdScriptOutput).toContain("initial-cluster-state=existing");
  };

  it("the synchronous standby is replaced by an empty node: it rejoins etcd and streams again, nothing acknowledged lost", async () => {
    const result = await live().replaceNode("replica");
    console.log(`postgres replace-node (replica): ${JSON.stringify({ ...result, etcdScriptOutput: undefined })}`);
    expect(result.wasLeader).toBe(false);
    expectRejoined(result);
  }, 600_000);

  it("the leader is replaced by an empty node: a survivor takes over, the rebuilt node rejoins as a replica, nothing acknowledged lost", async () => {
    const result = await live().replaceNode("leader");
    console.log(`postgres replace-node (leader): ${JSON.stringify({ ...result, etcdScriptOutput: undefined })}`);
    expect(result.wasLeader).toBe(true);
    expectRejoined(result);
    const members = await live().members();
    expect(members.find((member) => member.name === result.replaced)?.role).toMatch(/^(replica|sync_standby)$/);
    expect(members.filter((member) => member.state === "streaming" || member.state === "running")).toHaveLength(3);
  }, 600_000);

  it("rotating the Patroni accounts' and the application's passwords costs one planned switchover, nothing else", async () => {
    const result = await live().rotatePasswords();
    console.log(`postgres password rotation: ${JSON.stringify({ ...result, accountsOutput: undefined })}`);
    // The leader's accounts step applied the new passwords; the others left it to the leader.
    expect(result.accountsOutput).toContain(`applied on the leader ${result.leaderBefore}`);
    expect(result.accountsOutput.match(/is not the leader/g)).toHaveLength(2);
    // One planned hand-over, from the old leader to another node; no other leader at any time.
    expect(result.leadersSeen).toEqual([result.leaderBefore, result.leaderAfter]);
    expect(result.leaderAfter).not.toBe(result.leaderBefore);
    expect(result.acknowledgedLost).toBe(0);
    // The client's longest pause is the planned hand-over, no longer than a failover may last.
    expect(result.longestWritePauseSeconds).toBe(result.handOverPauseSeconds);
    expect(result.handOverPauseSeconds).toBeLessThanOrEqual(failoverBoundSeconds());
    // Restarting the asynchronous replica costs the writer nothing; restarting the synchronous
    // standby stalls commits until the leader names the other replica synchronous (its next loop).
    const { loopWait } = timingOf(live().settings);
    expect(result.replicaRestarts.map((restart) => restart.wasSyncStandby).sort()).toEqual([false, true]);
    for (const restart of result.replicaRestarts) {
      expect(restart.longestWritePauseSeconds).toBeLessThanOrEqual(restart.wasSyncStandby ? loopWait + 2 : 1);
    }
    expect(result.writePausesOverOneSecond.length).toBeLessThanOrEqual(2);
    expect(result.appOldPasswordAccepted).toBe(false);
    expect(result.appNewPasswordAccepted).toBe(true);
  }, 600_000);
});
