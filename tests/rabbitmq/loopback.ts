import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as amqp from "amqplib";
import { clusterNodes, loadVersions, lockedImage, serversOf } from "../../config";
import {
  DEFAULT_RABBITMQ_SETTINGS,
  ERLANG_COOKIE_KEY,
  erlangNodeName,
  RABBITMQ_MONITOR_PASSWORD_KEY,
  RABBITMQ_PASSWORD_KEY,
  RabbitMqHostPaths,
  RabbitMqNode,
  rabbitMqNodeFiles,
  renderRabbitMqNodeScript,
} from "../../components/data/rabbitmq";
import { fillSecrets, renderStepScript } from "../../components/lib/remote";
import { longestPause, type ReplaceNodeResult } from "../support/loopback/failover";
import { clusterDir, loopbackInventory, testPassword } from "../support/loopback/loopback";
import { assertLoopback, assertLoopbackText, sleep, Supervisor, waitFor } from "../support/loopback/supervisor";

/**
 * RabbitMQ on loopback: the stack's rabbitmq group (queue-01..03, moved to 127.0.10.126-128 by the
 * loopback inventory), each node brought up by its own rendered node step (components/data/rabbitmq/
 * render.ts, scripts/rabbitmq/rabbitmq-node.sh) run by bash with tests/rabbitmq/docker-shim.sh as
 * `docker`: the "container" is Debian's rabbitmq-server as uid 999, with the step's own files.
 * Shared by tests/rabbitmq/rabbitmq.loopback.test.ts and scripts/bench-failover.ts.
 *
 * What differs from the servers, and why:
 * - One epmd serves the three nodes (one machine), so each node's name part differs
 *   (`rabbit-queue-01@queue-01`, {@link RabbitMqNode.erlangName}) and so does its distribution
 *   port (25672 + index); each node's host name resolves to its address through an Erlang
 *   resolver file (ERL_INETRC) instead of /etc/hosts.
 * - Debian's broker is 3.10.8 (bookworm), the pin is 3.13.x: 3.10 does not know
 *   `default_queue_type` (3.13.3+), so that one line is left out here; the tests declare their
 *   queue with `x-queue-type: quorum` themselves.
 */

const SHIM = path.join(__dirname, "docker-shim.sh");
const EPMD = "/usr/bin/epmd";
/** The Erlang distribution port of the first node (RabbitMQ's default, AMQP port + 20000). */
const FIRST_DIST_PORT = 25672;

/** What one node step run printed, and the container calls it made (docker-shim.sh's log). */
export interface StepRun {
  readonly status: number | null;
  readonly output: string;
  readonly calls: readonly string[];
}

/**
 * What the node-replacement scenario measured (issue 15: `npm run bench:failover`'s JSON carries
 * system, scenario, secondsToWriteAgain, acknowledgedLost and rejoined).
 */
export interface RabbitMqReplaceNodeResult extends ReplaceNodeResult {
  readonly system: "rabbitmq";
  /** Seconds from the kill until another node leads the quorum queue (polled every 100 ms). */
  readonly leaderElectionSeconds: number;
  /** The queue's members afterwards. */
  readonly members: readonly string[];
}

/** A quorum queue's leader and members (`rabbitmqctl list_queues name type leader members`). */
export interface QuorumQueueState {
  readonly leader: string;
  readonly members: readonly string[];
}

/**
 * Publishes numbered persistent messages to a queue with publisher confirms, one at a time, and
 * records when each was confirmed; on a lost connection it connects to the next node that answers.
 */
export class ConfirmedPublisher {
  /** Message numbers the broker confirmed, and when (ms epoch). */
  readonly confirmed = new Map<number, number>();
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly urls: readonly string[],
    private readonly queue: string,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops publishing; resolves once the last publish is confirmed or failed. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let next = 1;
    let target = 0;
    while (!this.stopped) {
      let connection: amqp.ChannelModel | undefined;
      try {
        connection = await amqp.connect(this.urls[target % this.urls.length]);
        connection.on("error", () => undefined);
        const channel = await connection.createConfirmChannel();
        channel.on("error", () => undefined);
        while (!this.stopped) {
          const number = next;
          await new Promise<void>((resolve, reject) =>
            channel.sendToQueue(this.queue, Buffer.from(String(number)), { persistent: true, messageId: String(number) }, (error) =>
              error ? reject(error) : resolve(),
            ),
          );
          this.confirmed.set(number, Date.now());
          next += 1;
        }
        await connection.close();
      } catch {
        // A nack, or the node went away: the same number is published again (a duplicate is fine,
        // a loss is not), through the next node.
        await connection?.close().catch(() => undefined);
        target += 1;
        await sleep(100);
      }
    }
  }
}

/** A running loopback RabbitMQ cluster. */
export class RabbitMqLoopbackCluster {
  readonly supervisor = new Supervisor();
  readonly nodes: readonly RabbitMqNode[];
  readonly settings = DEFAULT_RABBITMQ_SETTINGS;
  /** The administrator's password (the default user, `keybuzz`). */
  readonly password = testPassword();
  private readonly cookie = testPassword();
  private readonly monitorPassword = testPassword();
  private readonly image = lockedImage(loadVersions(), "rabbitmq");
  private readonly inetrc: string;
  /** Steps and CLI calls still running: {@link stop} ends them (a gated step waits up to 10 min). */
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly dir: string) {
    const servers = serversOf(loopbackInventory("prod"), "rabbitmq");
    this.nodes = clusterNodes(servers).map((node) => ({ ...node, erlangName: `rabbit-${node.name}@${node.name}` }));
    for (const node of this.nodes) assertLoopback(node.address);
    this.inetrc = path.join(dir, "inetrc");
  }

  /** Brings the three nodes up one at a time through their node steps, as the first deployment does. */
  static async start(): Promise<RabbitMqLoopbackCluster> {
    const cluster = new RabbitMqLoopbackCluster(clusterDir("rabbitmq"));
    try {
      await cluster.boot();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private async boot(): Promise<void> {
    const hosts = this.nodes.map((node) => `{host, {${node.address.split(".").join(",")}}, ["${node.name}"]}.`);
    fs.writeFileSync(this.inetrc, [...hosts, "{lookup, [file, native]}.", ""].join("\n"), { mode: 0o644 });
    this.supervisor.start({
      name: "epmd",
      command: EPMD,
      args: ["-address", ["127.0.0.1", ...this.nodes.map((node) => node.address)].join(",")],
      logFile: path.join(this.dir, "epmd.log"),
      // The reaper finds the cluster's processes by their directory in the command line or environment.
      env: { KB_LOOPBACK_CLUSTER: this.dir },
    });
    await waitFor("epmd", async () => (await this.erl(["epmd", "-names"])).status === 0, 10_000);
    for (const node of this.nodes) {
      const run = await this.runStep(node);
      if (run.status !== 0) throw new Error(`rabbitmq loopback: the node step of ${node.name} failed:\n${run.output}`);
    }
  }

  /** Host paths of one node, under the cluster directory. */
  paths(node: RabbitMqNode): RabbitMqHostPaths {
    const root = path.join(this.dir, node.name);
    return { dataDir: path.join(root, "data"), configDir: path.join(root, "config"), managedDir: path.join(root, "managed") };
  }

  private shimDir(node: RabbitMqNode): string {
    return path.join(this.dir, node.name, "docker");
  }

  /** The files the node step writes, secrets filled in (the step gets them as the provider sends them). */
  private files(node: RabbitMqNode) {
    const secrets = {
      [RABBITMQ_PASSWORD_KEY]: this.password,
      [ERLANG_COOKIE_KEY]: this.cookie,
      [RABBITMQ_MONITOR_PASSWORD_KEY]: this.monitorPassword,
    };
    return rabbitMqNodeFiles(node, this.nodes, this.settings, this.paths(node)).map((file) => {
      let content = fillSecrets(file.content, secrets);
      // RabbitMQ 3.10 rejects this 3.13.3 key (see the class comment).
      if (file.path.endsWith("/rabbitmq.conf")) content = content.replace(/^default_queue_type = .*\n/m, "");
      assertLoopbackText(file.path, content);
      return { ...file, content };
    });
  }

  /** The environment of a node's step and CLI: the shim as `docker`, the node's address and distribution port. */
  private env(node: RabbitMqNode): NodeJS.ProcessEnv {
    const bin = path.join(this.dir, node.name, "bin");
    if (!fs.existsSync(path.join(bin, "docker"))) {
      fs.mkdirSync(bin, { recursive: true, mode: 0o755 });
      fs.symlinkSync(SHIM, path.join(bin, "docker"));
    }
    return {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      KB_SHIM_DIR: this.shimDir(node),
      KB_SHIM_ADDRESS: node.address,
      KB_SHIM_DIST_PORT: String(FIRST_DIST_PORT + this.nodes.indexOf(node)),
      ERL_INETRC: this.inetrc,
      ERL_EPMD_ADDRESS: ["127.0.0.1", ...this.nodes.map((other) => other.address)].join(","),
      // The step's log and pending markers stay in the cluster directory.
      KB_STEP_LOG_DIR: path.join(this.dir, node.name, "step-logs"),
      KB_LOOPBACK_CLUSTER: this.dir,
    };
  }

  private exec(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; output: string }> {
    return new Promise((resolve) => {
      const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
      this.children.add(child);
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.on("close", (status) => {
        this.children.delete(child);
        resolve({ status, output });
      });
    });
  }

  private erl(args: readonly string[]): Promise<{ status: number | null; output: string }> {
    return this.exec(args[0], args.slice(1), { ...process.env, ERL_INETRC: this.inetrc });
  }

  /** The container calls docker-shim.sh logged on a node's host so far. */
  calls(node: RabbitMqNode): string[] {
    const file = path.join(this.shimDir(node), "calls");
    return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n") : [];
  }

  /** Runs a node's rendered node step (the files, then scripts/rabbitmq/rabbitmq-node.sh) on its loopback host. */
  async runStep(node: RabbitMqNode): Promise<StepRun> {
    const before = this.calls(node).length;
    const body = renderRabbitMqNodeScript(node, this.nodes, this.image, this.settings, this.paths(node));
    const script = renderStepScript(`${node.name}-rabbitmq on ${node.name}`, this.files(node), body, { timeoutMinutes: 15 });
    const run = await this.exec("bash", ["-c", script], this.env(node));
    return { ...run, calls: this.calls(node).slice(before) };
  }

  /** Runs a CLI command (`rabbitmqctl`, `rabbitmq-diagnostics`, `rabbitmq-queues`) in a node's "container". */
  cli(node: RabbitMqNode, args: readonly string[]): Promise<{ status: number | null; output: string }> {
    return this.exec(SHIM, ["exec", "rabbitmq", ...args], this.env(node));
  }

  /** Erlang node names running in the cluster as `node` sees it. */
  async runningNodes(node: RabbitMqNode): Promise<string[]> {
    const result = await this.cli(node, ["rabbitmq-diagnostics", "-q", "cluster_status", "--formatter", "json"]);
    if (result.status !== 0) return [];
    return (JSON.parse(result.output) as { running_nodes: string[] }).running_nodes.sort();
  }

  /** A quorum queue's leader and members as `node` sees them; undefined when it cannot answer. */
  async queueState(node: RabbitMqNode, queue: string): Promise<QuorumQueueState | undefined> {
    const result = await this.cli(node, ["rabbitmqctl", "-q", "list_queues", "name", "leader", "members", "--formatter", "json"]);
    if (result.status !== 0) return undefined;
    const found = (JSON.parse(result.output) as { name: string; leader: string; members: string[] }[]).find(
      (entry) => entry.name === queue,
    );
    return found && { leader: found.leader, members: [...found.members].sort() };
  }

  /** The AMQP URL of a node (the administrator's account). */
  url(node: RabbitMqNode): string {
    return `amqp://${this.settings.defaultUser}:${this.password}@${node.address}:${this.settings.amqpPort}`;
  }

  /** Declares a durable quorum queue through `node` (whose node then leads it). */
  async declareQuorumQueue(node: RabbitMqNode, queue: string): Promise<void> {
    const connection = await amqp.connect(this.url(node));
    try {
      const channel = await connection.createChannel();
      await channel.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    } finally {
      await connection.close();
    }
  }

  /** Consumes everything in `queue` through `node` (no acknowledgements) and returns the distinct message numbers. */
  async drain(node: RabbitMqNode, queue: string): Promise<Set<number>> {
    const connection = await amqp.connect(this.url(node));
    const seen = new Set<number>();
    try {
      const channel = await connection.createChannel();
      const { messageCount } = await channel.checkQueue(queue);
      let received = 0;
      await new Promise<void>((resolve, reject) => {
        if (messageCount === 0) resolve();
        channel
          .consume(
            queue,
            (message) => {
              if (!message) return;
              seen.add(Number(message.content.toString()));
              received += 1;
              if (received >= messageCount) resolve();
            },
            { noAck: true },
          )
          .catch(reject);
      });
    } finally {
      await connection.close();
    }
    return seen;
  }

  /** SIGKILLs a node's broker, as a server that dies does (its "container" is then stopped). */
  kill(node: RabbitMqNode): void {
    const pidFile = path.join(this.shimDir(node), "pid");
    if (!fs.existsSync(pidFile)) return;
    try {
      process.kill(-Number(fs.readFileSync(pidFile, "utf8")), "SIGKILL");
    } catch {
      // already gone
    }
  }

  /** The server recreated empty: its data, config, password files and container are gone (the shim's call log stays). */
  wipe(node: RabbitMqNode): void {
    const paths = this.paths(node);
    for (const dir of [paths.dataDir, paths.configDir, paths.managedDir]) fs.rmSync(dir, { recursive: true, force: true });
    for (const file of ["label", "pid", "env", "data", "config"]) fs.rmSync(path.join(this.shimDir(node), file), { force: true });
  }

  /** Makes a node's container outdated (an older spec label), as an image bump does. */
  outdate(node: RabbitMqNode): void {
    fs.writeFileSync(path.join(this.shimDir(node), "label"), "an-older-spec\n");
  }

  /**
   * Node replacement under a publishing client (issue 15 item 1): a client publishes with
   * confirms to a quorum queue led by `victim` through another node; `victim` is SIGKILLed, its
   * host wiped, and its node step run again. Then the client stops, the queue is drained and
   * every confirmed message must be there.
   */
  async replaceNode(victim: RabbitMqNode = this.nodes[0]): Promise<RabbitMqReplaceNodeResult> {
    const queue = `keybuzz.replace.${Date.now()}`;
    const others = this.nodes.filter((node) => node !== victim);
    await this.declareQuorumQueue(victim, queue);
    await waitFor(
      `${queue} led by ${victim.name}`,
      async () => (await this.queueState(others[0], queue))?.leader === erlangNodeName(victim),
      30_000,
      200,
    );
    const publisher = new ConfirmedPublisher(
      others.map((node) => this.url(node)),
      queue,
    );
    publisher.start();
    await waitFor("the first confirmed publishes", async () => publisher.confirmed.size >= 20, 30_000, 100);
    const killedAt = Date.now();
    this.kill(victim);
    let electedAt = Number.NaN;
    await waitFor(
      `a new leader of ${queue}`,
      async () => {
        const state = await this.queueState(others[0], queue);
        if (!state || state.leader === erlangNodeName(victim) || !state.members.includes(state.leader)) return false;
        electedAt = Date.now();
        return true;
      },
      60_000,
      100,
    );
    this.wipe(victim);
    const stepStart = Date.now();
    const step = await this.runStep(victim);
    const stepSeconds = (Date.now() - stepStart) / 1000;
    if (step.status !== 0) throw new Error(`rabbitmq loopback: the replaced node's step failed:\n${step.output}`);
    // Writes go on for a moment with the node back.
    const confirmedBefore = publisher.confirmed.size;
    await waitFor("publishes confirmed after the rejoin", async () => publisher.confirmed.size >= confirmedBefore + 20, 30_000, 100);
    await publisher.stop();
    const running = await this.runningNodes(others[0]);
    const state = await this.queueState(others[0], queue);
    const consumed = await this.drain(others[0], queue);
    const times = [...publisher.confirmed.values()];
    const lost = [...publisher.confirmed.keys()].filter((number) => !consumed.has(number)).length;
    const everyNode = this.nodes.map(erlangNodeName).sort();
    return {
      system: "rabbitmq",
      scenario: "replace-node",
      replaced: victim.name,
      secondsToWriteAgain: longestPause(times, killedAt, Math.max(...times)) / 1000,
      leaderElectionSeconds: (electedAt - killedAt) / 1000,
      acknowledgedWrites: publisher.confirmed.size,
      acknowledgedLost: lost,
      rejoined: JSON.stringify(running) === JSON.stringify(everyNode) && JSON.stringify(state?.members) === JSON.stringify(everyNode),
      stepSeconds,
      members: state?.members ?? [],
    };
  }

  /** Stops every node (SIGKILL: nothing is kept) and epmd, and removes the directory. */
  async stop(): Promise<void> {
    for (const child of this.children) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const node of this.nodes) this.kill(node);
    await this.supervisor.stopAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
