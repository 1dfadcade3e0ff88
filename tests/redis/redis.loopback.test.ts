import { DEFAULT_REDIS_DAEMON_SETTINGS } from "../../components/data/redis";
import { requireTool, run } from "../support/tools";
import { FailoverResult, StallResult } from "../support/loopback/failover";
import { clusterForSuite } from "../support/loopback/suite";
import { waitFor } from "../support/loopback/supervisor";
import { RedisLoopbackCluster } from "./loopback";

/**
 * Redis issue-7 suite: 3 redis-server + 3 redis-sentinel + HAProxy from the rendered files, on
 * 127.0.10.x, run by Debian's daemons. Timings are printed, not asserted (npm run bench:failover).
 */
describe("Redis + Sentinel + HAProxy on loopback (rendered configs, Debian daemons)", () => {
  const live = clusterForSuite(["redis-server", "redis-sentinel", "haproxy"], () => RedisLoopbackCluster.start());

  it("haproxy -c accepts the rendered haproxy.cfg HAProxy runs", () => {
    const check = run(requireTool("haproxy"), ["-c", "-q", "-f", live().haproxyConfigFile]);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  it("the docker shim the steps run with here passes shellcheck", () => {
    const result = run(requireTool("shellcheck"), ["--shell=bash", `${__dirname}/docker-shim.sh`]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  it("replication is up: the bootstrap node is master of two linked replicas", async () => {
    const [bootstrap, ...replicas] = live().nodes;
    const info = await live().replication(bootstrap);
    expect(info.role).toBe("master");
    expect(info.connected_slaves).toBe("2");
    for (const replica of replicas) {
      const state = await live().replication(replica);
      expect(state).toMatchObject({ role: "slave", master_host: bootstrap.address, master_link_status: "up" });
    }
  });

  it("the three Sentinels agree on the master and have quorum", async () => {
    expect((await live().agreedMaster()).name).toBe(live().nodes[0].name);
    for (const node of live().nodes) {
      expect(String(await live().sentinel(node, ["SENTINEL", "CKQUORUM", DEFAULT_REDIS_DAEMON_SETTINGS.masterName]))).toMatch(/^OK/);
    }
  });

  it("writes through HAProxy reach the master only", async () => {
    const master = await live().agreedMaster();
    expect(await live().upServers()).toEqual([master.name]);
    for (let attempt = 0; attempt < 10; attempt++) {
      // A fresh connection each time: every one of them must land on the master.
      expect(await live().throughProxy(["CONFIG", "GET", "bind"])).toEqual(["bind", master.address]);
    }
    expect(await live().throughProxy(["SET", "kb:it:through-proxy", "1"])).toBe("OK");
    expect(await live().redis(master, ["GET", "kb:it:through-proxy"])).toBe("1");
    // The replicas refuse writes: a write that reached one would fail, not be acknowledged.
    await expect(live().redis(live().nodes[1], ["SET", "kb:it:direct", "1"])).rejects.toThrow(/READONLY/);
  });

  it("the master freezes for 1.5 s (redis-server SIGSTOPped): writes pause, no failover, nothing acknowledged lost", async () => {
    const result: StallResult = await live().masterStall(1.5);
    console.log(`redis stall: ${JSON.stringify(result)}`);
    // The freeze was real: no write was acknowledged while the master was stopped.
    expect(result.longestWritePauseSeconds).toBeGreaterThanOrEqual(1.2);
    expect(result.failedOver).toBe(false);
    expect(result.primaryAfter).toBe(result.primaryBefore);
    expect(result.acknowledgedLost).toBe(0);
  }, 120_000);

  it("switchover: a client's connection through HAProxy to the demoted master is cut within 1 s; HAProxy then routes to the new master only", async () => {
    const result = await live().demotedSessionCut();
    console.log(`redis demoted session: ${JSON.stringify(result)}`);
    expect(result.newMaster).not.toBe(result.oldMaster);
    expect(result.secondsFromDemotionToCut).toBeLessThanOrEqual(1);
    // inter 500 ms + fastinter 250 ms after the demotion, HAProxy has marked the old master down.
    await waitFor(
      "HAProxy to route to the new master only",
      async () => (await live().upServers()).join() === result.newMaster,
      2_000,
      100,
    );
  }, 120_000);

  it("failover: the master node is killed; writes resume through HAProxy, no acknowledged write is lost, the old master rejoins as a replica", async () => {
    const result: FailoverResult = await live().failover();
    console.log(`redis failover: ${JSON.stringify(result)}`);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
    expect(result.acknowledgedWrites).toBeGreaterThan(50);
    expect(result.acknowledgedLost).toBe(0);
    expect(result.rejoinedAsReplica).toBe(true);
    // HAProxy routes to the promoted replica within 1 s of it reporting role:master (downinter + fastinter).
    expect(result.secondsFromPromotionToRouted).toBeLessThanOrEqual(1);
    const oldNode = live().nodes.find((node) => node.name === result.oldPrimary);
    const info = await live().replication(oldNode!);
    expect(info.role).toBe("slave");
    expect(await live().upServers()).toEqual([result.newPrimary]);
    expect((await live().agreedMaster()).name).toBe(result.newPrimary);
  }, 300_000);

  it("password rotation under a writing client (node steps, master roll, HAProxy reload, finish): one planned switchover, no longer pause, nothing lost, then only the new passwords work", async () => {
    const result = await live().rotatePasswords();
    console.log(`redis rotation: ${JSON.stringify(result)}`);
    // Exactly the planned switchover: one change of master, to another node.
    expect(result.mastersSeen).toHaveLength(2);
    expect(result.acknowledgedWrites).toBeGreaterThan(50);
    expect(result.acknowledgedLost).toBe(0);
    // No pause outside the planned hand-over is longer than it.
    expect(result.longestWritePauseSeconds).toBeLessThanOrEqual(result.handOverPauseSeconds);
    for (const accepted of Object.values(result.oldPasswordAccepted)) expect(accepted).toBe(false);
    for (const accepted of Object.values(result.newPasswordAccepted)) expect(accepted).toBe(true);
    expect(result.oldPasswordInLiveFiles).toBe(false);
    expect((await live().agreedMaster()).name).toBe(result.mastersSeen[1]);
  }, 600_000);

  it("node replacement: the master is killed, its files wiped, its steps run again: it waits for the failover and comes back as a replica, nothing lost", async () => {
    const result = await live().replaceNode();
    console.log(`redis replace-node: ${JSON.stringify(result)}`);
    expect(result.rejoinFailure).toBeUndefined();
    expect(result.rejoined).toBe(true);
    expect(result.servedAsMaster).toBe(false);
    expect(result.newMaster).not.toBe(result.replaced);
    expect(result.acknowledgedWrites).toBeGreaterThan(50);
    expect(result.acknowledgedLost).toBe(0);
    // Writes pause for the Sentinel failover only (the crash figures of docs/redis.md, fast profile: 3.4 s at p95).
    expect(result.secondsToWriteAgain).toBeLessThanOrEqual(6);
    const replaced = live().nodes.find((node) => node.name === result.replaced);
    expect(await live().replication(replaced!)).toMatchObject({ role: "slave", master_link_status: "up" });
    expect(await live().upServers()).toEqual([result.newMaster]);
    // The replaced node's old Sentinel is forgotten: every Sentinel knows exactly the two others (SENTINEL RESET by the step).
    for (const node of live().nodes) {
      const peers = (await live().sentinel(node, ["SENTINEL", "SENTINELS", DEFAULT_REDIS_DAEMON_SETTINGS.masterName])) as unknown[];
      expect(peers).toHaveLength(2);
    }
  }, 600_000);
});
