import { requireTool, run } from "../support/tools";
import { FailoverResult, StallResult } from "../support/loopback/failover";
import { clusterForSuite } from "../support/loopback/suite";
import { PostgresLoopbackCluster } from "./loopback";

/**
 * PostgreSQL issue-7 suite: 3 etcd + 3 Patroni/PostgreSQL + HAProxy from the rendered files, with
 * mutual TLS, on 127.0.10.x, run by Debian's daemons. Timings are printed, not asserted (npm run
 * bench:failover).
 */
describe("etcd + Patroni/PostgreSQL + HAProxy on loopback (rendered configs, TLS, Debian daemons)", () => {
  const live = clusterForSuite(["etcd", "patroni", "haproxy", "openssl"], () => PostgresLoopbackCluster.start());

  it("haproxy -c accepts the rendered haproxy.cfg HAProxy runs", () => {
    const check = run(requireTool("haproxy"), ["-c", "-q", "-f", live().haproxyConfigFile]);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  it("etcd: the three members are healthy over mutual TLS", async () => {
    for (const node of live().nodes) expect(await live().etcdHealthy(node)).toBe(true);
  });

  it("1 leader (the bootstrap node) + 2 streaming replicas, one of them synchronous", async () => {
    const leader = await live().waitHealthy(60_000);
    expect(leader.name).toBe(live().nodes[0].name);
    const members = await live().members();
    expect(members.map((member) => member.role).sort()).toEqual(["leader", "replica", "sync_standby"]);
    const streams = await live().replication(leader);
    expect(streams.map((row) => row.state)).toEqual(["streaming", "streaming"]);
    expect(streams.map((row) => row.sync_state).sort()).toEqual(["async", "sync"]);
  });

  it("HAProxy 5432 reaches the leader, 5433 the replicas, over TLS", async () => {
    const leader = await live().waitHealthy(60_000);
    for (let attempt = 0; attempt < 6; attempt++) {
      const [write] = await live().throughProxy<{ server: string; replica: boolean; ssl: boolean }>(
        "write",
        "SELECT host(inet_server_addr()) AS server, pg_is_in_recovery() AS replica, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
      );
      expect(write).toEqual({ server: leader.address, replica: false, ssl: true });
      const [read] = await live().throughProxy<{ server: string; replica: boolean }>(
        "read",
        "SELECT host(inet_server_addr()) AS server, pg_is_in_recovery() AS replica",
      );
      expect(read.replica).toBe(true);
      expect(read.server).not.toBe(leader.address);
    }
  });

  it("the leader node freezes for 3 s (Patroni, PostgreSQL, etcd SIGSTOPped): writes pause, no failover, nothing acknowledged lost", async () => {
    const result: StallResult = await live().leaderNodeStall(3);
    console.log(`postgres node stall: ${JSON.stringify(result)}`);
    // The freeze was real: no write was acknowledged while the leader was stopped.
    expect(result.longestWritePauseSeconds).toBeGreaterThanOrEqual(2.5);
    expect(result.failedOver).toBe(false);
    expect(result.primaryAfter).toBe(result.primaryBefore);
    expect(result.acknowledgedLost).toBe(0);
  }, 180_000);

  it("the etcd leader freezes for 3 s: etcd elects another leader, Patroni does not fail over", async () => {
    const etcdLeaderBefore = await live().etcdLeader();
    const result: StallResult = await live().etcdLeaderStall(3);
    console.log(`postgres etcd stall: ${JSON.stringify(result)}`);
    expect((await live().etcdLeader()).name).not.toBe(etcdLeaderBefore.name);
    expect(result.failedOver).toBe(false);
    expect(result.primaryAfter).toBe(result.primaryBefore);
    expect(result.acknowledgedLost).toBe(0);
  }, 180_000);

  it("a replica's Patroni freezes, its PostgreSQL serves on: HAProxy cuts the session on 5433 (shutdown-sessions) within 2.5 s", async () => {
    const result = await live().frozenReplicaSessionCut();
    console.log(`postgres frozen replica: ${JSON.stringify(result)}`);
    // inter 500 ms + two checks timing out after 500 ms + fastinter 250 ms ≈ 1.75 s.
    expect(result.secondsFromFreezeToCut).toBeLessThanOrEqual(2.5);
  }, 240_000);

  it("failover: the leader node crashes; writes resume through 5432, no acknowledged commit is lost, the old leader rejoins as a replica", async () => {
    const result: FailoverResult = await live().failover();
    console.log(`postgres failover: ${JSON.stringify(result)}`);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
    expect(result.acknowledgedWrites).toBeGreaterThan(50);
    expect(result.acknowledgedLost).toBe(0);
    expect(result.rejoinedAsReplica).toBe(true);
    const members = await live().members();
    expect(members.find((member) => member.name === result.oldPrimary)?.role).toMatch(/^(replica|sync_standby)$/);
  }, 600_000);

  it("switchover: planned handover to the synchronous standby; writes resume, nothing acknowledged is lost, the old leader streams from the new one", async () => {
    const result: FailoverResult = await live().switchover();
    console.log(`postgres switchover: ${JSON.stringify(result)}`);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
    // HAProxy routes to the new leader within 1 s of Patroni answering 200 on /primary (downinter + fastinter).
    expect(result.secondsFromPromotionToRouted).toBeLessThanOrEqual(1);
    expect(result.acknowledgedLost).toBe(0);
    expect(result.rejoinedAsReplica).toBe(true);
    expect((await live().waitHealthy(60_000)).name).toBe(result.newPrimary);
  }, 600_000);
});
