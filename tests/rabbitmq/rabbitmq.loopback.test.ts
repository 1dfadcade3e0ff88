import { erlangNodeName, RABBITMQ_STOP_GRACE_SECONDS } from "../../components/data/rabbitmq";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, waitFor } from "../support/loopback/supervisor";
import { ConfirmedPublisher, RabbitMqLoopbackCluster } from "./loopback";

/**
 * RabbitMQ day-2 on loopback (issue 15 items 1 and 3): three Debian rabbitmq-server nodes, each
 * brought up by its rendered node step (scripts/rabbitmq/rabbitmq-node.sh through
 * tests/rabbitmq/docker-shim.sh), a quorum queue, a client publishing with confirms. Timings are
 * printed; `npm run bench:failover -- --systems rabbitmq-replace-node` repeats the replacement.
 */
describe("RabbitMQ on loopback (rendered node steps, Debian's rabbitmq-server)", () => {
  const live = clusterForSuite(["rabbitmq-server", "epmd", "jq", "setpriv"], () => RabbitMqLoopbackCluster.start());
  const restart = [`stop -t ${RABBITMQ_STOP_GRACE_SECONDS} rabbitmq`, "rm -f rabbitmq", "run rabbitmq"];

  it("the node steps form one cluster of the three nodes, and a re-run on a converged node changes nothing", async () => {
    const everyNode = live().nodes.map(erlangNodeName).sort();
    for (const node of live().nodes) expect(await live().runningNodes(node)).toEqual(everyNode);
    const again = await live().runStep(live().nodes[1]);
    expect(again.status).toBe(0);
    expect(again.calls).toEqual([]);
  });

  it("a replaced node (killed, data wiped, step run again) is forgotten, rejoins and gets its quorum queue member back; no confirmed publish is lost", async () => {
    const result = await live().replaceNode(live().nodes[0]);
    console.log(`rabbitmq replace-node: ${JSON.stringify(result)}`);
    expect(result.rejoined).toBe(true);
    expect(result.members).toEqual(live().nodes.map(erlangNodeName).sort());
    expect(result.acknowledgedWrites).toBeGreaterThan(40);
    expect(result.acknowledgedLost).toBe(0);
    // Publishing pauses only while the quorum queue elects a new leader (the election is observed
    // through the CLI every 100 ms, so its figure is an upper bound).
    expect(result.secondsToWriteAgain).toBeLessThanOrEqual(result.leaderElectionSeconds);
  });

  it("an image bump waits while the restart would take a quorum queue below its majority, then stops the node with SIGTERM and the grace period", async () => {
    const [first, , third] = live().nodes;
    const queue = `keybuzz.gate.${Date.now()}`;
    await live().declareQuorumQueue(first, queue);
    await waitFor(`${queue} on three members`, async () => (await live().queueState(first, queue))?.members.length === 3, 30_000, 500);
    const publisher = new ConfirmedPublisher([live().url(live().nodes[1])], queue);
    publisher.start();
    live().kill(third);
    live().outdate(first);
    const before = live().calls(first).length;
    const gated = live().runStep(first);
    // queue-01 is now quorum-critical: its step waits (the gate polls every 10 s) and leaves the container alone.
    await sleep(15_000);
    expect(live().calls(first).slice(before)).toEqual([]);
    // queue-03 comes back through its own step: a stopped container is started without the gate.
    const back = await live().runStep(third);
    expect(back.status).toBe(0);
    expect(back.calls).toEqual(restart);
    const released = await gated;
    expect(released.status).toBe(0);
    expect(released.calls).toEqual(restart);
    expect(released.output).toContain("restarting");
    await publisher.stop();
    const consumed = await live().drain(live().nodes[1], queue);
    expect([...publisher.confirmed.keys()].filter((number) => !consumed.has(number))).toEqual([]);
    for (const node of live().nodes) expect(await live().runningNodes(node)).toEqual(live().nodes.map(erlangNodeName).sort());
  });
});
