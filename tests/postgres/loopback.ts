import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { Client, ClientConfig } from "pg";
import { loadVersions, serversOf } from "../../config";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import {
  DbNode,
  dbNodesOf,
  APP_DATABASE,
  etcdRunPath,
  patroniImageTag,
  patroniStateHelper,
  postgresHaproxyListenersFor,
  renderAccountsSql,
  renderDatabasesSql,
  renderEtcdEnv,
  renderEtcdRunScript,
  renderPatroniConfig,
  renderPatroniStepScript,
} from "../../components/data/postgres/render";
import {
  ETCD_UID,
  parsePostgresSettings,
  PostgresLayout,
  PostgresSettings,
  SECRET_KEYS,
  timingOf,
} from "../../components/data/postgres/settings";
import { fillSecrets } from "../../components/lib/remote";
import { ACCOUNTS } from "../../components/security/secrets";
import { FailoverResult, longestPause, StallResult } from "../support/loopback/failover";
import { haproxyUpServers } from "../support/loopback/haproxy";
import { clusterDir, loopbackInventory, loopbackPostgresLayout, stackModuleConfig, testPassword } from "../support/loopback/loopback";
import { issueTestPki, TestPki } from "../support/loopback/pki";
import {
  assertLoopback,
  assertLoopbackText,
  ownedDir,
  ownedFile,
  settlesWithin,
  sleep,
  Supervisor,
  userIds,
  waitFor,
  waitForPort,
} from "../support/loopback/supervisor";

/**
 * PostgreSQL HA on loopback: 3 etcd members, 3 Patroni/PostgreSQL nodes and HAProxy, from the
 * files components/data/postgres and components/data/haproxy render for the stack's own inventory
 * (moved to 127.0.10.0/24), with mutual TLS, run by Debian's etcd, Patroni and PostgreSQL as the
 * `etcd` and `postgres` users and HAProxy as `haproxy`. Shared by tests/postgres/postgres.loopback.test.ts
 * (correctness) and scripts/bench-failover.ts (timings).
 *
 * The property checked on failover — no commit acknowledged to a client is lost — rests on
 * Patroni's `synchronous_mode`, the module's default.
 */

const ETCD = "/usr/bin/etcd";
const PATRONI = "/usr/bin/patroni";
const HAPROXY = "/usr/sbin/haproxy";
const PSQL = "/usr/bin/psql";
/** The table the writer fills: one row per write, keyed by run and sequence number. */
const WRITES_TABLE = "kb_it_writes";

/** A member as Patroni's REST API `/cluster` lists it. */
interface PatroniMember {
  readonly name: string;
  /** `leader`, `replica` or `sync_standby`. */
  readonly role: string;
  readonly state: string;
  readonly timeline?: number;
}

/** A row of `pg_stat_replication` on the leader. */
interface ReplicationRow {
  readonly application_name: string;
  readonly state: string;
  readonly sync_state: string;
}

/**
 * PID of the postmaster running in `dataDir`: the first line of its postmaster.pid, checked against
 * /proc (a live `postgres` process on this data dir, not a zombie nor a reused pid).
 */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    if (/^State:\s*Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"))) return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return path.basename(cmdline[0]) === "postgres" && cmdline.some((arg) => arg.includes(dataDir)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The postmaster `pid` and its children (backends, walsenders, background workers), from the
 * parent pids in /proc. Signalling a process group is not enough: every postmaster child calls
 * setsid() at start (PostgreSQL `InitPostmasterChild`), so each backend is a group of its own.
 */
function postgresProcesses(pid: number): number[] {
  const children = fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
        // The command name in parentheses may hold spaces: the parent pid is the 2nd field after it.
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [pid, ...children];
}

/** SIGKILLs the postmaster of `dataDir` and its session (Patroni starts it with setsid). */
function killPostmaster(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** The `docker` the etcd run script gets on loopback: Debian's etcd under the suite's supervisor. */
const ETCD_DOCKER_SHIM = path.join(__dirname, "etcd-docker-shim.sh");

/**
 * What a node replacement measured (`npm run bench:failover`, scenario `replace-node`): a DB node
 * killed and emptied (etcd data, PGDATA, WAL) while a client writes through HAProxy, then its etcd
 * start logic run again (the rendered run.sh) and Patroni started on the empty data directory. A
 * {@link FailoverResult} too (`oldPrimary`/`newPrimary`: the leader before and after, `rejoinedAsReplica`
 * = `rejoined`), so the benchmark summarises it as its other scenarios.
 */
export interface PostgresReplaceNodeResult extends FailoverResult {
  readonly system: "postgres";
  readonly scenario: "replace-node";
  /** The node replaced, and whether it led the cluster when it was killed. */
  readonly replaced: string;
  readonly wasLeader: boolean;
  /** Seconds from the kill to the first write acknowledged after it (by a new leader, when the leader was killed). */
  readonly secondsToWriteAgain: number;
  /** The longest time without an acknowledged write, from the kill until the node streamed again, seconds. */
  readonly longestWritePauseSeconds: number;
  /** Seconds from the start of the etcd run script to the node streaming from the leader. */
  readonly secondsToRejoin: number;
  /** 3 started, healthy etcd members and Patroni's 1 leader + 2 streaming replicas, the replaced node among them. */
  readonly rejoined: boolean;
  /** What run.sh printed (its rejoin through a healthy peer). */
  readonly etcdScriptOutput: string;
}

/**
 * Every interval longer than `thresholdMs` in [from, to] without an acknowledgement (as
 * {@link longestPause} counts them: the window's edges included), ms, in order. Pure.
 */
export function pausesOver(times: readonly number[], from: number, to: number, thresholdMs: number): number[] {
  const points = [from, ...times.filter((time) => time >= from && time <= to).sort((a, b) => a - b), to];
  return points.slice(1).flatMap((time, index) => (time - points[index] > thresholdMs ? [time - points[index]] : []));
}

/** What a password rotation under a writing client measured ({@link PostgresLoopbackCluster.rotatePasswords}). */
export interface RotationResult {
  readonly leaderBefore: string;
  readonly leaderAfter: string;
  /** Every leader seen, in order, without repeats: the planned switchover adds one. */
  readonly leadersSeen: readonly string[];
  /** The longest time without an acknowledged write during the rotation, and every pause over 1 s, seconds. */
  readonly longestWritePauseSeconds: number;
  readonly writePausesOverOneSecond: readonly number[];
  /** The longest pause of the leader's finish step (the planned switchover and its restart), seconds. */
  readonly handOverPauseSeconds: number;
  /** Each replica's node step (stop, start with the new patroni.yml, streaming again): the longest write pause in it. */
  readonly replicaRestarts: readonly {
    readonly node: string;
    readonly wasSyncStandby: boolean;
    readonly longestWritePauseSeconds: number;
  }[];
  readonly acknowledgedWrites: number;
  readonly acknowledgedLost: number;
  /** Whether a new session of the application role `keybuzz` is accepted with the old, and with the new password. */
  readonly appOldPasswordAccepted: boolean;
  readonly appNewPasswordAccepted: boolean;
  /** What the accounts steps printed. */
  readonly accountsOutput: string;
}

/** Options of {@link PostgresLoopbackCluster.start}. */
export interface PostgresLoopbackOptions {
  /**
   * Another module's node parameters (`PatroniRenderInput.extraParameters`), asked per node before
   * its Patroni starts; the callback may prepare what they name (tests/backup: pgBackRest's files).
   */
  readonly extraParameters?: (node: DbNode, layout: PostgresLayout) => Readonly<Record<string, string | number | boolean>>;
}

/** A running loopback PostgreSQL cluster. */
export class PostgresLoopbackCluster {
  readonly supervisor = new Supervisor();
  readonly nodes: readonly DbNode[];
  readonly settings: PostgresSettings;
  readonly layouts: Readonly<Record<string, PostgresLayout>>;
  /** Where HAProxy listens (haproxy-01's address; write 5432, read 5433) and its stats page. */
  readonly proxy: { readonly address: string; readonly writePort: number; readonly readPort: number; readonly statsPort: number };
  /** The haproxy.cfg HAProxy runs (no secret in it: the CA is public). */
  readonly haproxyConfigFile: string;
  private readonly pki: TestPki;
  private readonly secrets: Record<string, string> = {
    [SECRET_KEYS.superuser]: testPassword(),
    [SECRET_KEYS.replication]: testPassword(),
    [SECRET_KEYS.restApi]: testPassword(),
    [SECRET_KEYS.rewind]: testPassword(),
  };
  private runs = 0;

  private constructor(
    readonly dir: string,
    readonly stack: string,
    overrides: Readonly<Record<string, unknown>>,
    private readonly options: PostgresLoopbackOptions = {},
  ) {
    const inventory = loopbackInventory(stack);
    // The stack's own settings (timing profile, parameters, synchronous mode), with the caller's
    // overrides on top (the benchmark measures another timing profile that way).
    this.settings = parsePostgresSettings({ ...((stackModuleConfig(stack, "postgres") as object | undefined) ?? {}), ...overrides });
    this.nodes = dbNodesOf(inventory);
    const layouts: Record<string, PostgresLayout> = {};
    for (const node of this.nodes)
      layouts[node.name] = loopbackPostgresLayout(path.join(dir, node.name), path.join(dir, `${node.name}-etcd`));
    this.layouts = layouts;
    const haproxyHost = serversOf(inventory, "haproxy")[0];
    this.proxy = { address: haproxyHost.privateIp, writePort: 5432, readPort: 5433, statsPort: 8404 };
    this.haproxyConfigFile = path.join(dir, "haproxy", "haproxy.cfg");
    for (const address of [...this.nodes.map((node) => node.address), this.proxy.address]) assertLoopback(address);
    this.pki = issueTestPki(path.join(dir, "pki"), this.nodes);
  }

  /**
   * Issues the TLS material, renders the configs, starts etcd, the bootstrap node, the replicas,
   * then HAProxy. `overrides` are `keybuzz:postgres` keys laid over the stack's (e.g. `timingProfile`).
   */
  static async start(
    stack = "prod",
    overrides: Readonly<Record<string, unknown>> = {},
    options: PostgresLoopbackOptions = {},
  ): Promise<PostgresLoopbackCluster> {
    const cluster = new PostgresLoopbackCluster(clusterDir("postgres"), stack, overrides, options);
    try {
      await cluster.boot();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private async boot(): Promise<void> {
    for (const node of this.nodes) {
      this.writeEtcdFiles(node);
      this.writePatroniFiles(node);
      this.startEtcd(node);
    }
    await waitFor(
      "every etcd member to be healthy",
      async () => (await Promise.all(this.nodes.map((node) => this.etcdHealthy(node)))).every(Boolean),
      60_000,
      500,
    );

    // As scripts/postgres/patroni-node.sh: the bootstrap node first and alone, then the others clone it.
    const [bootstrap, ...others] = this.nodes;
    this.startPatroni(bootstrap);
    await waitFor(
      `${bootstrap.name} to bootstrap as leader`,
      async () => (await this.members()).find((member) => member.role === "leader")?.name === bootstrap.name,
      120_000,
      500,
    ).catch((error: unknown) => {
      // Why Patroni never answered (a missing Python module, a bad setting) is in its own log.
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${this.supervisor.log(`${bootstrap.name}-patroni`)}`);
    });
    for (const node of others) this.startPatroni(node);

    ownedDir(path.dirname(this.haproxyConfigFile), "haproxy");
    const caFile = ownedFile(
      path.join(path.dirname(this.haproxyConfigFile), "postgres-ca.crt"),
      fs.readFileSync(this.pki.caFile, "utf8"),
      "haproxy",
      0o644,
    );
    const listeners = postgresHaproxyListenersFor(this.nodes, this.settings, {
      layout: this.layouts[bootstrap.name],
      caFile,
      writePort: this.proxy.writePort,
      readPort: this.proxy.readPort,
    });
    const config = renderHaproxyConfig(listeners, {
      bindAddress: this.proxy.address,
      statsAddress: this.proxy.address,
      statsPort: this.proxy.statsPort,
    });
    assertLoopbackText(this.haproxyConfigFile, config);
    ownedFile(this.haproxyConfigFile, config, "haproxy");
    this.supervisor.start({
      name: "haproxy",
      command: HAPROXY,
      args: ["-db", "-f", this.haproxyConfigFile],
      user: "haproxy",
      logFile: path.join(this.dir, "haproxy.log"),
    });
    await waitForPort(this.proxy.address, this.proxy.writePort, 30_000);

    const leader = await this.waitHealthy(180_000);
    await this.sql(leader, `CREATE TABLE IF NOT EXISTS ${WRITES_TABLE} (run text NOT NULL, seq integer NOT NULL, PRIMARY KEY (run, seq))`);
  }

  private writeEtcdFiles(node: DbNode): void {
    const { paths } = this.layouts[node.name];
    ownedDir(path.dirname(paths.etcdConfigDir), "etcd");
    ownedDir(paths.etcdConfigDir, "etcd");
    const tlsDir = ownedDir(path.join(paths.etcdConfigDir, "tls"), "etcd");
    ownedFile(path.join(tlsDir, "ca.crt"), fs.readFileSync(this.pki.caFile, "utf8"), "etcd");
    ownedFile(path.join(tlsDir, "node.crt"), fs.readFileSync(this.pki.nodes[node.name].certFile, "utf8"), "etcd");
    ownedFile(path.join(tlsDir, "node.key"), fs.readFileSync(this.pki.nodes[node.name].keyFile, "utf8"), "etcd");
    const etcdEnv = renderEtcdEnv(node, this.nodes, this.stack, this.layouts[node.name]);
    assertLoopbackText(`${node.name} etcd.env`, etcdEnv);
    ownedFile(path.join(paths.etcdConfigDir, "etcd.env"), etcdEnv, "etcd");
  }

  private writePatroniFiles(node: DbNode): void {
    const layout = this.layouts[node.name];
    const { paths } = layout;
    ownedDir(paths.volumeMount, "postgres");
    ownedDir(paths.configDir, "postgres");
    ownedDir(paths.socketDir, "postgres");
    ownedDir(paths.tlsDir, "postgres");
    ownedFile(path.join(paths.tlsDir, "ca.crt"), fs.readFileSync(this.pki.caFile, "utf8"), "postgres");
    ownedFile(path.join(paths.tlsDir, "node.crt"), fs.readFileSync(this.pki.nodes[node.name].certFile, "utf8"), "postgres");
    ownedFile(path.join(paths.tlsDir, "node.key"), fs.readFileSync(this.pki.nodes[node.name].keyFile, "utf8"), "postgres");
    const extraParameters = this.options.extraParameters?.(node, layout);
    const patroniYml = fillSecrets(
      renderPatroniConfig({ node, members: this.nodes, settings: this.settings, layout, extraParameters }),
      this.secrets,
    );
    assertLoopbackText(`${node.name} patroni.yml`, patroniYml);
    ownedFile(path.join(paths.configDir, "patroni.yml"), patroniYml, "postgres");
  }

  /**
   * etcd with the rendered env file; initial-cluster-state `state` (the run script's choice, through
   * the shim), else as scripts/postgres/etcd-run.sh decides it for a member that has data or a cluster not formed yet.
   */
  private startEtcd(node: DbNode, state?: string): void {
    const { paths } = this.layouts[node.name];
    const env: Record<string, string> = {};
    for (const line of fs.readFileSync(path.join(paths.etcdConfigDir, "etcd.env"), "utf8").split("\n")) {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (match) env[match[1]] = match[2];
    }
    env.ETCD_INITIAL_CLUSTER_STATE = state ?? (fs.existsSync(path.join(paths.etcdDataDir, "member")) ? "existing" : "new");
    this.supervisor.start({
      name: `${node.name}-etcd`,
      command: ETCD,
      args: [],
      user: "etcd",
      env,
      cwd: path.dirname(paths.etcdConfigDir),
      logFile: this.logFile(`${node.name}-etcd`),
    });
  }

  private startPatroni(node: DbNode): void {
    const { paths } = this.layouts[node.name];
    this.supervisor.start({
      name: `${node.name}-patroni`,
      command: PATRONI,
      args: [path.join(paths.configDir, "patroni.yml")],
      user: "postgres",
      cwd: paths.volumeMount,
      env: { HOME: paths.volumeMount },
      logFile: this.logFile(`${node.name}-patroni`),
    });
  }

  /** The log file of a daemon of the cluster, e.g. `db-master-01-patroni`. */
  logFile(daemon: string): string {
    return path.join(this.dir, `${daemon}.log`);
  }

  /**
   * Stops HAProxy, then every Patroni at once (each stops its PostgreSQL while etcd still answers),
   * then every etcd member; kills any postmaster left and removes the directory. At most about 60 s.
   */
  async stop(): Promise<void> {
    await this.supervisor.stop("haproxy");
    await Promise.all(this.nodes.map((node) => this.supervisor.stop(`${node.name}-patroni`)));
    await Promise.all(this.nodes.map((node) => this.supervisor.stop(`${node.name}-etcd`)));
    await this.supervisor.stopAll();
    for (const node of this.nodes) killPostmaster(this.layouts[node.name].paths.dataDir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** GET or POST on a node's Patroni REST API (TLS verified against the CA; client certificate presented), bounded by `timeoutMs` of inactivity. */
  rest(node: DbNode, method: "GET" | "POST", urlPath: string, body?: unknown, timeoutMs = 3000): Promise<{ status: number; body: string }> {
    const auth = `${ACCOUNTS.patroniRestApi}:${this.secrets[SECRET_KEYS.restApi]}`;
    const headers: Record<string, string> = body === undefined ? {} : { authorization: `Basic ${Buffer.from(auth).toString("base64")}` };
    return this.https(node.address, this.layouts[node.name].ports.restApi, method, urlPath, node, body, headers, timeoutMs);
  }

  private https(
    address: string,
    port: number,
    method: string,
    urlPath: string,
    node: DbNode,
    body?: unknown,
    headers: Readonly<Record<string, string>> = {},
    timeoutMs = 3000,
  ): Promise<{ status: number; body: string }> {
    assertLoopback(address);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = https.request(
        {
          host: address,
          port,
          method,
          path: urlPath,
          agent: false,
          timeout: timeoutMs,
          ca: fs.readFileSync(this.pki.caFile),
          cert: fs.readFileSync(this.pki.nodes[node.name].certFile),
          key: fs.readFileSync(this.pki.nodes[node.name].keyFile),
          headers: payload === undefined ? headers : { "content-type": "application/json", ...headers },
        },
        (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => (text += chunk));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
          // A request destroyed by its timeout after the headers came reports it here, not on the request.
          response.on("error", reject);
          response.on("close", () => reject(new Error(`${address}:${port}${urlPath}: the response ended early`)));
        },
      );
      request.on("timeout", () => request.destroy(new Error(`${address}:${port}${urlPath}: timeout`)));
      request.on("error", reject);
      request.end(payload);
    });
  }

  /** Whether a node's etcd member answers healthy on its client URL (mutual TLS). */
  async etcdHealthy(node: DbNode): Promise<boolean> {
    try {
      const reply = await this.https(node.address, this.layouts[node.name].ports.etcdClient, "GET", "/health", node);
      return reply.status === 200 && (JSON.parse(reply.body) as { health: string }).health === "true";
    } catch {
      return false;
    }
  }

  /**
   * The node whose etcd member leads the etcd cluster, asked of the first member that answers
   * (`/v3/maintenance/status`: its own `header.member_id` and the `leader` it knows).
   */
  async etcdLeader(askable: readonly DbNode[] = this.nodes): Promise<DbNode> {
    const statuses: { node: DbNode; member: string; leader: string }[] = [];
    for (const node of askable) {
      try {
        const reply = await this.https(node.address, this.layouts[node.name].ports.etcdClient, "POST", "/v3/maintenance/status", node, {});
        const status = JSON.parse(reply.body) as { header: { member_id: string }; leader: string };
        statuses.push({ node, member: status.header.member_id, leader: status.leader });
      } catch {
        // a stopped or frozen member: ask the next
      }
    }
    const leader = statuses.find((status) => status.member === status.leader)?.node;
    if (!leader) throw new Error("postgres: no etcd member says it leads");
    return leader;
  }

  /** Cluster members as Patroni sees them, asked of the first node that answers among `askable`. */
  async members(askable: readonly DbNode[] = this.nodes): Promise<PatroniMember[]> {
    let lastError: unknown;
    for (const node of askable) {
      try {
        const reply = await this.rest(node, "GET", "/cluster");
        if (reply.status === 200) return (JSON.parse(reply.body) as { members: PatroniMember[] }).members;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError instanceof Error ? lastError : new Error("postgres: no Patroni REST API answered");
  }

  /** The DB node named `name`; throws for an unknown name. */
  node(name: string): DbNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (!node) throw new Error(`postgres: no node ${name}`);
    return node;
  }

  /** The CA file the nodes' certificates chain to: clients of the TLS ports verify against it. */
  get caFile(): string {
    return this.pki.caFile;
  }

  /**
   * Runs `sql` with psql on the leader as the superuser over TLS (verify-ca), as
   * scripts/postgres/verify.sh runs app.sql, so psql's meta-commands (`\gexec`, `\connect`) work.
   *
   * @throws Error with psql's stderr when it fails.
   */
  async psqlOnLeader(sql: string): Promise<void> {
    const leader = await this.waitHealthy(60_000);
    const target = `host=${leader.address} port=${this.layouts[leader.name].ports.postgres} user=${ACCOUNTS.postgresSuperuser} dbname=postgres sslmode=verify-ca sslrootcert=${this.pki.caFile}`;
    const result = spawnSync(PSQL, ["-X", "-q", "-v", "ON_ERROR_STOP=1", target, "-f", "-"], {
      input: sql,
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, PGPASSWORD: this.secrets[SECRET_KEYS.superuser] },
    });
    if (result.status !== 0) throw new Error(`psql on ${leader.name} failed (${result.status}): ${result.stderr}`);
  }

  /** Connection settings to `address:port` as the superuser over TLS, verifying the CA (libpq's verify-ca). */
  connection(address: string, port: number): ClientConfig {
    assertLoopback(address);
    return {
      host: address,
      port,
      user: ACCOUNTS.postgresSuperuser,
      password: this.secrets[SECRET_KEYS.superuser],
      database: "postgres",
      ssl: { ca: fs.readFileSync(this.pki.caFile, "utf8"), checkServerIdentity: () => undefined },
      connectionTimeoutMillis: 2000,
      query_timeout: 5000,
    };
  }

  /** One statement on a node, directly (not through HAProxy). */
  async sql<T extends object = Record<string, unknown>>(node: DbNode, text: string, values: unknown[] = []): Promise<T[]> {
    const client = new Client(this.connection(node.address, this.layouts[node.name].ports.postgres));
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  /** One statement through HAProxy's write (5432) or read (5433) port. */
  async throughProxy<T extends object = Record<string, unknown>>(port: "write" | "read", text: string): Promise<T[]> {
    const client = new Client(this.connection(this.proxy.address, port === "write" ? this.proxy.writePort : this.proxy.readPort));
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  }

  /** The leader's `pg_stat_replication`. */
  replication(leader: DbNode): Promise<ReplicationRow[]> {
    return this.sql<ReplicationRow>(
      leader,
      "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY application_name",
    );
  }

  /** Servers HAProxy's stats page shows UP in its write or read proxy. */
  upServers(proxy: "postgres-write" | "postgres-read"): Promise<string[]> {
    return haproxyUpServers(this.proxy.address, this.proxy.statsPort, proxy);
  }

  /**
   * Waits until the cluster is whole: one leader, every other member a running replica streaming
   * from it (one of them the synchronous standby), HAProxy's write port on the leader only and its
   * read port on the replicas only. Returns the leader.
   */
  async waitHealthy(timeoutMs: number, askable: readonly DbNode[] = this.nodes): Promise<DbNode> {
    return waitFor(
      "1 leader + 2 streaming replicas (one synchronous) behind HAProxy",
      async () => {
        const members = await this.members(askable);
        const leaders = members.filter((member) => member.role === "leader" && member.state === "running");
        if (leaders.length !== 1 || members.length !== this.nodes.length) return false;
        // Patroni names its synchronous standby in the DCS only once PostgreSQL reports it in sync.
        if (!members.some((member) => member.role === "sync_standby" && member.state === "running")) return false;
        const leader = this.node(leaders[0].name);
        const replicas = members
          .filter((member) => member.name !== leader.name)
          .map((member) => member.name)
          .sort();
        const streams = await this.replication(leader);
        if (streams.filter((row) => row.state === "streaming").length !== replicas.length) return false;
        if (!streams.some((row) => row.sync_state === "sync")) return false;
        if ((await this.upServers("postgres-write")).join() !== leader.name) return false;
        if ((await this.upServers("postgres-read")).join() !== replicas.join()) return false;
        return leader;
      },
      timeoutMs,
      500,
    );
  }

  /** Whether Patroni's log of `node` since byte `offset` shows a pg_rewind run. */
  private rewoundSince(node: DbNode, offset: number): boolean {
    const log = fs
      .readFileSync(this.logFile(`${node.name}-patroni`))
      .subarray(offset)
      .toString("utf8");
    // Patroni logs "running pg_rewind from <dsn>" before each rewind (patroni/postgresql/rewind.py).
    return log.includes("running pg_rewind from");
  }

  private logSize(node: DbNode): number {
    const file = this.logFile(`${node.name}-patroni`);
    return fs.existsSync(file) ? fs.statSync(file).size : 0;
  }

  /** The node crashes: SIGKILL of its Patroni, its PostgreSQL (detached by Patroni) and its etcd member. */
  async crash(node: DbNode): Promise<void> {
    const dataDir = this.layouts[node.name].paths.dataDir;
    const pid = postmasterPid(dataDir);
    const daemons = Promise.all([this.supervisor.kill(`${node.name}-patroni`), this.supervisor.kill(`${node.name}-etcd`)]);
    killPostmaster(dataDir);
    await daemons;
    await waitFor(
      `${node.name}'s postmaster to be gone`,
      async () => pid === undefined || postmasterPid(dataDir) === undefined,
      10_000,
      100,
    );
  }

  /**
   * Failover: while a client writes through HAProxy 5432 without pause, the leader node crashes
   * (Patroni, PostgreSQL and etcd SIGKILLed). Measures the time until a write is acknowledged by the
   * new leader, starts the node again with its unchanged files, waits until it streams from the new
   * leader, and counts the acknowledged writes the new leader does not have.
   */
  async failover(): Promise<FailoverResult> {
    const old = await this.waitHealthy(120_000);
    const crashedEtcdLeader = (await this.etcdLeader()) === old;
    const result = await this.measure("postgres", old, async () => {
      await this.crash(old);
      const survivors = this.nodes.filter((node) => node !== old);
      const fresh = await waitFor(
        "a new leader among the surviving nodes",
        async () => {
          const leader = (await this.members(survivors)).find((member) => member.role === "leader" && member.state === "running");
          return leader && leader.name !== old.name ? this.node(leader.name) : undefined;
        },
        180_000,
        500,
      );
      return {
        fresh,
        survivors,
        restart: () => {
          this.startEtcd(old);
          this.startPatroni(old);
        },
      };
    });
    return { ...result, crashedEtcdLeader };
  }

  /**
   * Runs the node's rendered etcd run script (`run.sh COMMAND…`, components/data/postgres
   * `renderEtcdRunScript`) as the etcd and Patroni steps run it, with tests/postgres/etcd-docker-shim.sh
   * as its `docker`: etcdctl is Debian's, and the member's container is this supervisor's etcd,
   * started and stopped here when the shim asks. The one change to the rendered text: the etcd uid
   * is the Debian user's, not the image's 2379. Returns what the script printed.
   *
   * @throws Error with the script's output when it fails.
   */
  async runEtcdScript(node: DbNode, ...command: string[]): Promise<string> {
    const layout = this.layouts[node.name];
    const imageUid = `KB_ETCD_UID='${ETCD_UID}'\n`;
    const rendered = renderEtcdRunScript(node, this.nodes, loadVersions(), layout);
    if (!rendered.includes(imageUid)) throw new Error(`postgres: the etcd run script no longer sets ${imageUid.trim()}`);
    const script = rendered.replace(imageUid, `KB_ETCD_UID='${userIds("etcd").uid}'\n`);
    assertLoopbackText(`${node.name} run.sh`, script);
    const runPath = etcdRunPath(layout);
    fs.writeFileSync(runPath, script, { mode: 0o755 });
    const shimDir = path.join(this.dir, `${node.name}-etcd`, "shim");
    const bin = path.join(shimDir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "docker"), `#!/usr/bin/env bash\nexec bash ${ETCD_DOCKER_SHIM} "$@"\n`, { mode: 0o755 });
    fs.rmSync(path.join(shimDir, "log"), { force: true });
    fs.symlinkSync(this.logFile(`${node.name}-etcd`), path.join(shimDir, "log"));
    const child = spawn("bash", [runPath, ...command], {
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, LANG: "C.UTF-8", KB_SHIM_DIR: shimDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const request = path.join(shimDir, "request");
    const running = path.join(shimDir, "running");
    let code: number | null | undefined;
    while (code === undefined) {
      if (fs.existsSync(request)) {
        const [verb, state] = fs.readFileSync(request, "utf8").trim().split(" ");
        await this.supervisor.stop(`${node.name}-etcd`);
        fs.rmSync(running, { force: true });
        if (verb === "start") {
          this.startEtcd(node, state);
          fs.writeFileSync(running, "");
        }
        fs.rmSync(request);
      }
      if (await settlesWithin(exited, 100)) code = await exited;
    }
    if (code !== 0) throw new Error(`postgres: ${node.name} run.sh ${command.join(" ")} failed (${code}):\n${output}`);
    return output;
  }

  /**
   * The node's server recreated empty: its etcd data and marker, PGDATA and the WAL directory are
   * gone; the volume step recreates the two PostgreSQL directories empty (mode 700).
   */
  private wipe(node: DbNode): void {
    const { paths } = this.layouts[node.name];
    fs.rmSync(paths.etcdDataDir, { recursive: true, force: true });
    fs.rmSync(path.join(paths.etcdConfigDir, "cluster-formed"), { force: true });
    for (const dir of [paths.dataDir, paths.walDir]) {
      fs.rmSync(dir, { recursive: true, force: true });
      ownedDir(dir, "postgres");
    }
  }

  /** Whether every DB node's etcd member is listed as started and answers healthy. */
  async etcdWhole(): Promise<boolean> {
    const [first] = this.nodes;
    const reply = await this.https(first.address, this.layouts[first.name].ports.etcdClient, "POST", "/v3/cluster/member/list", first, {});
    const members = (JSON.parse(reply.body) as { members?: { name?: string }[] }).members ?? [];
    const names = members.map((member) => member.name ?? "").sort();
    if (
      names.join() !==
      this.nodes
        .map((node) => node.name)
        .sort()
        .join()
    )
      return false;
    return (await Promise.all(this.nodes.map((node) => this.etcdHealthy(node)))).every(Boolean);
  }

  /**
   * Node replacement (issue 15 item 1): while a client writes through HAProxy, `which` node (the
   * leader, or the synchronous standby) crashes and loses its disks (etcd data, PGDATA, WAL). When
   * it was the leader, a survivor takes over first. Then, as `pulumi up` on the recreated server:
   * the etcd step (`run.sh start`: the stale member removed through a healthy peer, added again,
   * started `existing`), the Patroni step's `run.sh wait-cluster` and `run.sh start`, and Patroni on
   * the empty data directory, which clones the leader. Waits until the cluster is whole again.
   */
  async replaceNode(which: "leader" | "replica"): Promise<PostgresReplaceNodeResult> {
    const leader = await this.waitHealthy(120_000);
    const standby = (await this.members()).find((member) => member.role === "sync_standby");
    const target = which === "leader" ? leader : this.node(standby?.name ?? "");
    this.runs += 1;
    const writer = new PgWriter(() => this.connection(this.proxy.address, this.proxy.writePort), `${Date.now()}-${this.runs}`);
    const writing = writer.run();
    try {
      await waitFor("writes through HAProxy before the replacement", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const killedAt = Date.now();
      await this.crash(target);
      this.wipe(target);
      const survivors = this.nodes.filter((node) => node !== target);
      const serving = await waitFor(
        "a leader among the surviving nodes",
        async () => {
          const current = (await this.members(survivors)).find((member) => member.role === "leader" && member.state === "running");
          return current && current.name !== target.name ? this.node(current.name) : undefined;
        },
        180_000,
        500,
      );
      const firstWrite = await waitFor(
        `a write acknowledged by ${serving.name} after the kill`,
        async () => writer.firstAckAfter(killedAt, serving.address),
        180_000,
        50,
      );
      const rejoinStartedAt = Date.now();
      let etcdScriptOutput = await this.runEtcdScript(target, "start");
      // The Patroni step: the whole etcd cluster healthy, the marker, the member as the step keeps it.
      etcdScriptOutput += await this.runEtcdScript(target, "wait-cluster", "300");
      etcdScriptOutput += await this.runEtcdScript(target, "start");
      this.startPatroni(target);
      let rejoined = true;
      try {
        const after = await this.waitHealthy(300_000);
        const streams = await this.replication(after);
        rejoined = streams.some((row) => row.application_name === target.name && row.state === "streaming") && (await this.etcdWhole());
      } catch {
        rejoined = false;
      }
      const rejoinedAt = Date.now();
      await sleep(500);
      writer.stop();
      await writing;
      const now = await this.waitHealthy(60_000);
      const present = new Set(
        (await this.sql<{ seq: number }>(now, `SELECT seq FROM ${WRITES_TABLE} WHERE run = $1`, [writer.runId])).map((row) => row.seq),
      );
      return {
        system: "postgres",
        scenario: "replace-node",
        replaced: target.name,
        wasLeader: target === leader,
        oldPrimary: leader.name,
        newPrimary: now.name,
        rejoinedAsReplica: rejoined,
        secondsToWriteAgain: (firstWrite - killedAt) / 1000,
        longestWritePauseSeconds:
          longestPause(
            writer.acknowledged.map((write) => write.at),
            killedAt,
            rejoinedAt,
          ) / 1000,
        secondsToRejoin: (rejoinedAt - rejoinStartedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: writer.acknowledged.filter((write) => !present.has(write.seq)).length,
        rejoined,
        etcdScriptOutput,
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * Runs the rendered accounts step body (components/data/postgres `renderPatroniStepScript("accounts")`,
   * with patroni-lib.sh and the REST API helper patroni_state.py unchanged) on `node`, its
   * accounts.sql filled with `secrets`; its `docker` runs `docker exec -u USER patroni CMD` as
   * USER here (psql on the node's socket) and says the container runs. Returns what it printed.
   *
   * @throws Error with the step's output when it fails.
   */
  private runAccountsStep(node: DbNode, secrets: Readonly<Record<string, string>>): string {
    const layout = this.layouts[node.name];
    const { paths } = layout;
    ownedFile(path.join(paths.configDir, "accounts.sql"), fillSecrets(renderAccountsSql(), secrets), "postgres");
    fs.writeFileSync(path.join(paths.configDir, "patroni_state.py"), patroniStateHelper(), { mode: 0o755 });
    const bin = path.join(this.dir, `${node.name}-accounts-bin`);
    fs.mkdirSync(bin, { recursive: true });
    const docker = [
      "#!/usr/bin/env bash",
      'case "$1" in',
      "  inspect) echo true ;;",
      '  exec) [ "$2" = -u ] || exit 2; user=$3; shift 4; exec runuser -u "$user" -- "$@" ;;',
      "  *) exit 2 ;;",
      "esac",
      "",
    ].join("\n");
    fs.writeFileSync(path.join(bin, "docker"), docker, { mode: 0o755 });
    const body = renderPatroniStepScript("accounts", node, this.nodes, this.settings, patroniImageTag(loadVersions()), layout);
    assertLoopbackText(`${node.name} accounts step`, body);
    const result = spawnSync("bash", ["-euo", "pipefail", "-c", body], {
      encoding: "utf8",
      timeout: 60_000,
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, LANG: "C.UTF-8" },
    });
    const output = `${result.stdout}${result.stderr}`;
    if (result.status !== 0) throw new Error(`postgres: ${node.name} accounts step failed (${result.status}):\n${output}`);
    return output;
  }

  /**
   * Password rotation (issue 15 item 2) while a client writes through HAProxy, in the steps'
   * order (components/data/postgres/component.ts): new passwords for the superuser, replication
   * and rewind roles and for the application role `keybuzz`; the accounts steps node by node (the
   * leader's applies accounts.sql); the node steps with the new patroni.yml (a replica restarted
   * and streaming before the next node, the leader reloaded and deferred); the leader's finish
   * step (switchover, restart); the verification (the application roles, as app.sql sets them,
   * with the new superuser password). The writer, a superuser client, reconnects with the new
   * password once the accounts step applied it. Leaders are polled every 250 ms.
   */
  async rotatePasswords(): Promise<RotationResult> {
    const leader = await this.waitHealthy(120_000);
    const app = (password: string): ClientConfig => ({
      ...this.connection(leader.address, this.layouts[leader.name].ports.postgres),
      user: ACCOUNTS.postgresApp,
      password,
      database: APP_DATABASE,
    });
    const oldApp = testPassword();
    await this.psqlOnLeader(fillSecrets(renderDatabasesSql(), { ...this.secretsForApp(oldApp) }));
    this.runs += 1;
    const writer = new PgWriter(() => this.connection(this.proxy.address, this.proxy.writePort), `${Date.now()}-${this.runs}`);
    const writing = writer.run();
    const leaders: string[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        await Promise.all([
          this.members()
            .then((members) =>
              members
                .filter((member) => member.role === "leader")
                .forEach((member) => leaders[leaders.length - 1] === member.name || leaders.push(member.name)),
            )
            .catch(() => undefined),
          sleep(250),
        ]);
      }
    })();
    try {
      await waitFor("writes through HAProxy before the rotation", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const startedAt = Date.now();
      const rotated = {
        ...this.secrets,
        [SECRET_KEYS.superuser]: testPassword(),
        [SECRET_KEYS.replication]: testPassword(),
        [SECRET_KEYS.rewind]: testPassword(),
      };
      const accountsOutput = this.nodes.map((node) => this.runAccountsStep(node, rotated)).join("");
      Object.assign(this.secrets, rotated);
      let pending: DbNode | undefined;
      const restarts: { node: string; wasSyncStandby: boolean; from: number; to: number }[] = [];
      for (const node of this.nodes) {
        this.writePatroniFiles(node);
        const role = (await this.members()).find((member) => member.name === node.name)?.role;
        if (role === "leader") {
          this.supervisor.signal(`${node.name}-patroni`, "SIGHUP");
          pending = node;
        } else {
          const from = Date.now();
          await this.supervisor.stop(`${node.name}-patroni`);
          this.startPatroni(node);
          await this.waitHealthy(180_000);
          restarts.push({ node: node.name, wasSyncStandby: role === "sync_standby", from, to: Date.now() });
        }
      }
      const handOverFrom = Date.now();
      if (pending) {
        // patronictl switchover --leader picks a healthy candidate; with synchronous_mode only the synchronous standby qualifies.
        const candidate = (await this.members()).find((member) => member.role === "sync_standby");
        // Patroni answers a switchover once it is done (seconds): a longer bound than a GET's.
        const reply = await this.rest(pending, "POST", "/switchover", { leader: pending.name, candidate: candidate?.name }, 30_000);
        if (reply.status !== 200) throw new Error(`postgres: switchover refused (${reply.status}): ${reply.body}`);
        await waitFor(
          `${pending.name} to hand over`,
          async () => (await this.members()).find((member) => member.role === "leader" && member.name !== pending?.name),
          60_000,
          250,
        );
        await this.supervisor.stop(`${pending.name}-patroni`);
        this.startPatroni(pending);
      }
      const after = await this.waitHealthy(180_000);
      const handOverTo = Date.now();
      const newApp = testPassword();
      await this.psqlOnLeader(fillSecrets(renderDatabasesSql(), this.secretsForApp(newApp)));
      const endedAt = Date.now();
      await sleep(500);
      writer.stop();
      await writing;
      const appAccepts = async (password: string): Promise<boolean> => {
        const client = new Client({ ...app(password), host: after.address, port: this.layouts[after.name].ports.postgres });
        try {
          await client.connect();
          return true;
        } catch {
          return false;
        } finally {
          await settlesWithin(client.end(), 2_000);
        }
      };
      const present = new Set(
        (await this.sql<{ seq: number }>(after, `SELECT seq FROM ${WRITES_TABLE} WHERE run = $1`, [writer.runId])).map((row) => row.seq),
      );
      const times = writer.acknowledged.map((write) => write.at);
      return {
        leaderBefore: leader.name,
        leaderAfter: after.name,
        leadersSeen: leaders,
        longestWritePauseSeconds: longestPause(times, startedAt, endedAt) / 1000,
        writePausesOverOneSecond: pausesOver(times, startedAt, endedAt, 1000).map((pause) => pause / 1000),
        handOverPauseSeconds: longestPause(times, handOverFrom, handOverTo) / 1000,
        replicaRestarts: restarts.map(({ node, wasSyncStandby, from, to }) => ({
          node,
          wasSyncStandby,
          longestWritePauseSeconds: longestPause(times, from, to) / 1000,
        })),
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: writer.acknowledged.filter((write) => !present.has(write.seq)).length,
        appOldPasswordAccepted: await appAccepts(oldApp),
        appNewPasswordAccepted: await appAccepts(newApp),
        accountsOutput,
      };
    } finally {
      polling = false;
      await poll;
      writer.stop();
      await writing;
    }
  }

  /** The placeholders of renderDatabasesSql: the application role's password, the backend's (fresh). */
  private secretsForApp(appPassword: string): Record<string, string> {
    return { [SECRET_KEYS.app]: appPassword, [SECRET_KEYS.backend]: testPassword() };
  }

  /**
   * Switchover (planned): asks the leader's REST API to hand over to the synchronous standby while
   * the client writes; measures the time until the new leader acknowledges a write and checks that
   * the old leader streams from it and nothing acknowledged was lost.
   */
  async switchover(): Promise<FailoverResult> {
    const old = await this.waitHealthy(120_000);
    const standby = (await this.members()).find((member) => member.role === "sync_standby");
    if (!standby) throw new Error("postgres: no synchronous standby to switch over to");
    const candidate = this.node(standby.name);
    return this.measure("postgres-switchover", old, async () => {
      const reply = await this.rest(old, "POST", "/switchover", { leader: old.name, candidate: candidate.name });
      if (reply.status !== 200) throw new Error(`postgres: switchover refused (${reply.status}): ${reply.body}`);
      return { fresh: candidate, survivors: this.nodes };
    });
  }

  /**
   * Polls, every 100 ms until stopped, each candidate's `GET /primary` (200 once Patroni runs it as
   * the leader: what HAProxy's check asks) and HAProxy's stats, noting when each first answered 200
   * and when HAProxy first showed it UP on the write port. The returned function stops polling and
   * resolves to the seconds from a node's promotion to HAProxy routing to it (undefined if unseen).
   */
  private watchPromotion(candidates: readonly DbNode[]): () => Promise<(name: string) => number | undefined> {
    const promotedAt = new Map<string, number>();
    const routedAt = new Map<string, number>();
    let stopped = false;
    const polling = (async () => {
      while (!stopped) {
        const polls = candidates.map(async (node) => {
          if (promotedAt.has(node.name)) return;
          const reply = await this.rest(node, "GET", "/primary").catch(() => undefined);
          if (reply?.status === 200) promotedAt.set(node.name, Date.now());
        });
        polls.push(
          this.upServers("postgres-write")
            .then((up) => up.forEach((name) => routedAt.has(name) || routedAt.set(name, Date.now())))
            .catch(() => undefined),
        );
        await Promise.all([...polls, sleep(100)]);
      }
    })();
    return async () => {
      stopped = true;
      await polling;
      return (name) => {
        const promoted = promotedAt.get(name);
        const routed = routedAt.get(name);
        return promoted === undefined || routed === undefined ? undefined : Math.max(0, routed - promoted) / 1000;
      };
    };
  }

  /**
   * A replica's Patroni freezes (SIGSTOP) while its PostgreSQL keeps serving: with a client session
   * open on it through HAProxy's read port, measures the seconds from the freeze to HAProxy closing
   * that session — its `/replica` checks time out, HAProxy marks the server down and
   * `on-marked-down shutdown-sessions` cuts its sessions, which PostgreSQL alone would keep. Then
   * resumes Patroni (SIGCONT) and waits until the cluster is whole.
   */
  async frozenReplicaSessionCut(): Promise<{ replica: string; secondsFromFreezeToCut: number }> {
    await this.waitHealthy(120_000);
    const client = new Client(this.connection(this.proxy.address, this.proxy.readPort));
    client.on("error", () => undefined);
    const closed = new Promise<number>((resolve) => client.once("end", () => resolve(Date.now())));
    await client.connect();
    try {
      const [row] = (await client.query<{ server: string }>("SELECT host(inet_server_addr()) AS server")).rows;
      const replica = this.nodes.find((node) => node.address === row.server);
      if (!replica) throw new Error(`postgres: HAProxy's read port sent the session to ${row.server}, no DB node`);
      const frozenAt = Date.now();
      let cutAt: number;
      try {
        this.supervisor.signal(`${replica.name}-patroni`, "SIGSTOP");
        if (!(await settlesWithin(closed, 10_000))) throw new Error(`postgres: HAProxy kept the session to ${replica.name} open`);
        cutAt = await closed;
      } finally {
        this.supervisor.signal(`${replica.name}-patroni`, "SIGCONT");
      }
      await this.waitHealthy(120_000);
      return { replica: replica.name, secondsFromFreezeToCut: (cutAt - frozenAt) / 1000 };
    } finally {
      await settlesWithin(client.end(), 5_000);
    }
  }

  /**
   * The leader node freezes for `seconds`: SIGSTOP of its Patroni, of its PostgreSQL (the
   * postmaster and every child of it) and of its etcd member, then SIGCONT, while the client
   * writes through HAProxy. No failover may follow.
   */
  async leaderNodeStall(seconds = 3): Promise<StallResult> {
    const leader = await this.waitHealthy(120_000);
    const postmaster = postmasterPid(this.layouts[leader.name].paths.dataDir);
    if (postmaster === undefined) throw new Error(`postgres: no postmaster on ${leader.name}`);
    const daemons = [`${leader.name}-patroni`, `${leader.name}-etcd`];
    let frozen: number[] = [];
    return this.watchStall("postgres-node-stall", leader, `${leader.name}: patroni, postgres, etcd`, seconds, (signal) => {
      // The processes frozen are the ones thawed; every target gets the signal even if one fails.
      if (signal === "SIGSTOP") frozen = postgresProcesses(postmaster);
      const failures: unknown[] = [];
      for (const send of [
        ...daemons.map((daemon) => () => this.supervisor.signal(daemon, signal)),
        ...frozen.map((pid) => () => process.kill(pid, signal)),
      ]) {
        try {
          send();
        } catch (error) {
          failures.push(error);
        }
      }
      if (failures.length > 0) throw failures[0];
    });
  }

  /** The etcd leader's member freezes for `seconds` (SIGSTOP, then SIGCONT) while the client writes. No failover may follow. */
  async etcdLeaderStall(seconds = 3): Promise<StallResult> {
    const leader = await this.waitHealthy(120_000);
    const etcdLeader = await this.etcdLeader();
    return this.watchStall("postgres-etcd-stall", leader, `${etcdLeader.name}: etcd (the etcd leader)`, seconds, (signal) =>
      this.supervisor.signal(`${etcdLeader.name}-etcd`, signal),
    );
  }

  /**
   * The common frame of the stall scenarios: a writer through HAProxy, `freeze(SIGSTOP)`, `seconds`
   * later `freeze(SIGCONT)`, then a watch until any failover the stall caused would have shown —
   * the lease ends at most `ttl` after the stall began, the replicas race within `loop_wait`, and a
   * promotion takes a few seconds — with the leader, as any member sees it, and HAProxy's write
   * port polled every 250 ms.
   */
  private async watchStall(
    system: string,
    leader: DbNode,
    frozen: string,
    seconds: number,
    freeze: (signal: "SIGSTOP" | "SIGCONT") => void,
  ): Promise<StallResult> {
    this.runs += 1;
    const timing = timingOf(this.settings);
    const watchMs = (timing.ttl + timing.loopWait + 5) * 1000;
    const writer = new PgWriter(() => this.connection(this.proxy.address, this.proxy.writePort), `${Date.now()}-${this.runs}`);
    const writing = writer.run();
    try {
      await waitFor("writes through HAProxy before the stall", async () => writer.acknowledged.length >= 50, 20_000, 100);
      // A frozen REST API answers nothing for the whole stall: ask the other members first.
      const askable = [...this.nodes.filter((node) => node !== leader), leader];
      const leadersSeen = new Set<string>();
      let proxyMarkedPrimaryDown = false;
      const startedAt = Date.now();
      let watching = true;
      const polling = (async () => {
        while (watching) {
          await Promise.all([
            this.members(askable)
              .then((members) => members.filter((member) => member.role === "leader").forEach((member) => leadersSeen.add(member.name)))
              .catch(() => undefined),
            this.upServers("postgres-write")
              .then((up) => (proxyMarkedPrimaryDown ||= !up.includes(leader.name)))
              .catch(() => undefined),
            sleep(250),
          ]);
        }
      })();
      let thawedAt = startedAt;
      let endedAt = startedAt;
      try {
        try {
          freeze("SIGSTOP");
          await sleep(seconds * 1000);
        } finally {
          freeze("SIGCONT");
          thawedAt = Date.now();
        }
        await sleep(Math.max(0, startedAt + watchMs - Date.now()));
        endedAt = Date.now();
      } finally {
        watching = false;
        await polling;
      }
      const after = await this.waitHealthy(120_000);
      writer.stop();
      await writing;
      const present = new Set(
        (await this.sql<{ seq: number }>(after, `SELECT seq FROM ${WRITES_TABLE} WHERE run = $1`, [writer.runId])).map((row) => row.seq),
      );
      return {
        system,
        frozen,
        stalledSeconds: (thawedAt - startedAt) / 1000,
        watchedSeconds: (endedAt - startedAt) / 1000,
        primaryBefore: leader.name,
        primaryAfter: after.name,
        failedOver: after !== leader || [...leadersSeen].some((name) => name !== leader.name),
        proxyMarkedPrimaryDown,
        longestWritePauseSeconds:
          longestPause(
            writer.acknowledged.map((write) => write.at),
            startedAt,
            endedAt,
          ) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: writer.acknowledged.filter((write) => !present.has(write.seq)).length,
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * The common frame of failover and switchover: a writer through HAProxy, the `event` (which
   * returns the node expected to lead afterwards), the time to the first write that node
   * acknowledges, the old leader's rejoin, and the acknowledged writes missing on the new leader.
   */
  private async measure(
    system: string,
    old: DbNode,
    event: () => Promise<{ fresh: DbNode; survivors: readonly DbNode[]; restart?: () => void }>,
  ): Promise<FailoverResult> {
    this.runs += 1;
    const writer = new PgWriter(() => this.connection(this.proxy.address, this.proxy.writePort), `${Date.now()}-${this.runs}`);
    const writing = writer.run();
    try {
      await waitFor("writes through HAProxy before the event", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const logOffset = this.logSize(old);
      const startedAt = Date.now();
      const stopWatchingPromotion = this.watchPromotion(this.nodes.filter((node) => node !== old));
      let promotionToRouted: (name: string) => number | undefined;
      let fresh: DbNode, survivors: readonly DbNode[], restart: (() => void) | undefined, firstWrite: number;
      try {
        ({ fresh, survivors, restart } = await event());
        const leader = fresh;
        firstWrite = await waitFor(
          `a write acknowledged by ${leader.name} through HAProxy`,
          async () => writer.firstAckAfter(startedAt, leader.address),
          180_000,
          50,
        );
      } finally {
        promotionToRouted = await stopWatchingPromotion();
      }
      restart?.();
      let rejoinFailure: string | undefined;
      try {
        const leader = await this.waitHealthy(180_000, survivors);
        const streaming = (await this.replication(fresh)).some((row) => row.application_name === old.name && row.state === "streaming");
        if (leader !== fresh) rejoinFailure = `${leader.name} leads, not ${fresh.name}`;
        else if (!streaming) rejoinFailure = `${old.name} does not stream from ${fresh.name}`;
      } catch (error) {
        rejoinFailure = error instanceof Error ? error.message : String(error);
      }
      const rejoined = rejoinFailure === undefined;
      await sleep(500);
      writer.stop();
      await writing;
      const present = new Set(
        (await this.sql<{ seq: number }>(fresh, `SELECT seq FROM ${WRITES_TABLE} WHERE run = $1`, [writer.runId])).map((row) => row.seq),
      );
      return {
        system,
        secondsToWriteAgain: (firstWrite - startedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: writer.acknowledged.filter((write) => !present.has(write.seq)).length,
        oldPrimary: old.name,
        newPrimary: fresh.name,
        rejoinedAsReplica: rejoined,
        rejoinFailure,
        rejoinedBy: this.rewoundSince(old, logOffset) ? "pg_rewind" : "streaming",
        secondsFromPromotionToRouted: promotionToRouted(fresh.name),
      };
    } finally {
      writer.stop();
      await writing;
    }
  }
}

/** One acknowledged write: its sequence number, when, and which server committed it. */
interface AcknowledgedWrite {
  readonly seq: number;
  readonly at: number;
  readonly server: string;
}

/**
 * A client inserting `(run, n)` through HAProxy without pause, one autocommit INSERT at a time,
 * opening a new connection after any error. A write counts as acknowledged only when its COMMIT
 * returned; `inet_server_addr()` tells which node committed it.
 */
class PgWriter {
  readonly acknowledged: AcknowledgedWrite[] = [];
  private stopped = false;

  constructor(
    private readonly connection: () => ClientConfig,
    readonly runId: string,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /** Time (ms epoch) of the first write acknowledged after `time` by the server at `address`. */
  firstAckAfter(time: number, address: string): number | undefined {
    return this.acknowledged.find((write) => write.at > time && write.server === address)?.at;
  }

  /** Writes until {@link stop}; bounded by a 10-minute safety limit. */
  async run(): Promise<void> {
    const limit = Date.now() + 600_000;
    let client: Client | undefined;
    let sequence = 0;
    while (!this.stopped && Date.now() < limit) {
      try {
        if (!client) {
          client = new Client(this.connection());
          // A connection cut by HAProxy or a dying server emits 'error'; the query then rejects.
          client.on("error", () => undefined);
          await client.connect();
        }
        sequence += 1;
        const result = await client.query<{ server: string }>(
          `INSERT INTO ${WRITES_TABLE} (run, seq) VALUES ($1, $2) RETURNING host(inet_server_addr()) AS server`,
          [this.runId, sequence],
        );
        this.acknowledged.push({ seq: sequence, at: Date.now(), server: result.rows[0].server });
      } catch {
        const broken = client;
        client = undefined;
        void broken?.end().catch(() => undefined);
        await sleep(50);
      }
    }
    if (client) await settlesWithin(client.end(), 5_000);
  }
}
