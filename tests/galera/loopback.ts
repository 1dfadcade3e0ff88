import * as fs from "fs";
import * as mysql from "mysql2/promise";
import * as path from "path";
import { loadVersions, serversOf } from "../../config";
import {
  DEFAULT_GALERA_ACCOUNTS,
  DEFAULT_GALERA_HOST_SETTINGS,
  DEFAULT_GALERA_SERVER_SETTINGS,
  GALERA_ENV_PATH,
  GALERA_HELPER_PATH,
  GALERA_START_SCRIPT_PATH,
  GALERA_SECRET_KEYS,
  GaleraHostSettings,
  GaleraNode,
  galeraNodeFiles,
  GaleraServerSettings,
  parseGaleraSettings,
} from "../../components/data/galera";
import { fillSecrets } from "../../components/lib/remote";
import { clusterDir, loopbackInventory, stackModuleConfig, testPassword } from "../support/loopback/loopback";
import { FailoverResult, ReplaceNodeResult } from "../support/loopback/failover";
import { runBounded } from "../support/loopback/process";
import { assertLoopback, assertLoopbackText, ownedDir, ownedFile, settlesWithin, sleep, waitFor } from "../support/loopback/supervisor";

/**
 * MariaDB Galera on loopback: the my.cnf, sst-auth.cnf, galera.env and secret files that
 * components/data/galera/ renders for the stack's own inventory (maria-01..03 moved to
 * 127.0.10.170-172), run by Debian's mariadbd 10.11 + galera-4 as the `mysql` user. The nodes are
 * driven by the project's own keybuzz-galera (scripts/galera/galera-node.sh) through
 * galera-node-exec.sh, which replaces only its Docker primitives (start, stop, running, SQL,
 * --wsrep-recover) with local ones; the full-outage recovery runs scripts/galera/recover.sh itself.
 * Used by tests/galera/galera.loopback.test.ts (correctness); `failover()` and `stop()` fit
 * scripts/bench-failover.ts's targets (timings).
 */

const ROOT = path.join(__dirname, "..", "..");
/** galera-node-exec.sh: keybuzz-galera for one loopback node (`NODE_EXEC NODE COMMAND`). */
export const NODE_EXEC = path.join(__dirname, "galera-node-exec.sh");
const RECOVER = path.join(ROOT, "scripts", "galera", "recover.sh");
const TABLE = "kb_it";

/**
 * Loopback sizes (2-core test machine, three nodes on one host): small InnoDB buffer pool, redo
 * log and write-set cache instead of production's 1G / 256M / 2G. gcache still holds far more
 * than the writes a node misses while it is down in the scenarios, so its rejoin can use IST.
 */
const LOOPBACK_SIZES = { innodbBufferPoolSize: "128M", innodbLogFileSize: "48M", gcacheSize: "128M" } as const;
/** keybuzz-galera's bound to reach Synced here (production: 1800 s for a large SST), seconds. */
const SYNC_TIMEOUT_SECONDS = 180;

/** How a node that was started again caught up with the cluster (from its server log). */
export type StateTransfer = "IST" | "SST" | "none";

/** What the full-outage recovery through recover.sh found and restored. */
export interface GaleraRecoveryResult {
  /** Killed first, so the others committed more after it: recover.sh must not bootstrap from it. */
  readonly killedFirst: string;
  /** The node recover.sh bootstrapped from (its "most advanced node"). */
  readonly chosen: string;
  /** Each node's position as recover.sh read it (`uuid=… seqno=… safe_to_bootstrap=…`). */
  readonly positions: Readonly<Record<string, string>>;
  readonly acknowledgedWrites: number;
  /** Acknowledged rows missing on at least one node after the recovery. */
  readonly acknowledgedLost: number;
  /** Seconds recover.sh took, from the stopped cluster to every node verified. */
  readonly secondsToRecover: number;
  /** wsrep_cluster_size on each node afterwards. */
  readonly clusterSizes: Readonly<Record<string, number>>;
  /** How each node other than the chosen one caught up when recover.sh started it. */
  readonly stateTransfers: Readonly<Record<string, StateTransfer>>;
}

/** wsrep status of one node. */
export interface GaleraStatus {
  readonly state: string;
  readonly clusterStatus: string;
  readonly clusterSize: number;
}

/** A running loopback Galera cluster. */
export class GaleraLoopbackCluster {
  /** maria-01..03 on their loopback addresses, inventory order (maria-01 bootstraps). */
  readonly nodes: readonly GaleraNode[];
  /** Each node's render settings: production values, loopback paths and sizes. */
  readonly server: Readonly<Record<string, GaleraServerSettings>>;
  /** Each node's keybuzz-galera settings: paths in the node's test directory. */
  readonly host: Readonly<Record<string, GaleraHostSettings>>;
  private readonly secrets: Record<string, string> = {
    [GALERA_SECRET_KEYS.root]: testPassword(),
    [GALERA_SECRET_KEYS.app]: testPassword(),
    [GALERA_SECRET_KEYS.sst]: testPassword(),
    [GALERA_SECRET_KEYS.monitor]: testPassword(),
    [GALERA_SECRET_KEYS.exporter]: testPassword(),
  };
  private runs = 0;

  /** mysqld_exporter's password (its account is in the rendered accounts SQL), for tests/observability's Galera alert scenario. */
  get exporterPassword(): string {
    return this.secrets[GALERA_SECRET_KEYS.exporter];
  }

  private constructor(
    readonly dir: string,
    stack: string,
  ) {
    const inventory = loopbackInventory(stack);
    const stackSettings = parseGaleraSettings(stackModuleConfig(stack, "galera"));
    this.nodes = serversOf(inventory, "mariadb").map((spec) => ({ name: spec.name, address: spec.privateIp }));
    if (this.nodes.length !== 3) throw new Error(`galera: expected 3 mariadb nodes in the ${stack} inventory, found ${this.nodes.length}`);
    const server: Record<string, GaleraServerSettings> = {};
    const host: Record<string, GaleraHostSettings> = {};
    for (const node of this.nodes) {
      assertLoopback(node.address);
      const nodeDir = path.join(dir, node.name);
      server[node.name] = {
        ...DEFAULT_GALERA_SERVER_SETTINGS,
        maxConnections: stackSettings.maxConnections,
        ...LOOPBACK_SIZES,
        datadir: path.join(nodeDir, "data"),
        socket: path.join(nodeDir, "run", "mysqld.sock"),
      };
      host[node.name] = {
        ...DEFAULT_GALERA_HOST_SETTINGS,
        dataDir: path.join(nodeDir, "data"),
        configDir: path.join(nodeDir, "config"),
        secretDir: path.join(nodeDir, "secrets"),
        stateFile: path.join(nodeDir, "started-as"),
        syncTimeoutSeconds: SYNC_TIMEOUT_SECONDS,
      };
    }
    this.server = server;
    this.host = host;
  }

  /**
   * Renders every node's files, then bootstraps the cluster with the program's step commands.
   * `fresh`: only the files, every datadir empty (a cluster a restore fills), with the credentials
   * of `fresh.sameSecretsAs` (the same stack's secrets, which the restored accounts carry).
   */
  static async start(stack = "prod", fresh?: { readonly sameSecretsAs: GaleraLoopbackCluster }): Promise<GaleraLoopbackCluster> {
    const cluster = new GaleraLoopbackCluster(clusterDir("galera"), stack);
    if (fresh) Object.assign(cluster.secrets, fresh.sameSecretsAs.secrets);
    try {
      cluster.writeFiles(stack);
      if (!fresh) await cluster.boot();
    } catch (error) {
      const logs = cluster.nodes.map((node) => `--- ${node.name}\n${cluster.log(node, 30)}`).join("\n");
      await cluster.stop();
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs}`);
    }
    return cluster;
  }

  /** The node's test directory (galera.env, defaults.cnf, data/, secrets/, its server log). */
  nodeDir(node: GaleraNode): string {
    return path.join(this.dir, node.name);
  }

  /** The files GaleraCluster lands on each node, at the loopback paths of its settings. */
  private writeFiles(stack: string): void {
    const image = loadVersions().images.mariadb;
    for (const node of this.nodes) {
      const nodeDir = this.nodeDir(node);
      const host = this.host[node.name];
      fs.mkdirSync(nodeDir, { mode: 0o711 });
      fs.mkdirSync(host.configDir, { mode: 0o755 });
      fs.mkdirSync(host.secretDir, { mode: 0o700 });
      ownedDir(host.dataDir, "mysql");
      ownedDir(path.dirname(this.server[node.name].socket), "mysql", 0o755);
      const files = galeraNodeFiles(
        { node, members: this.nodes, image, server: this.server[node.name], host },
        node === this.nodes[0],
        DEFAULT_GALERA_ACCOUNTS,
      );
      for (const file of files) {
        // keybuzz-galera and its entry point run from the repository (galera-node-exec.sh); galera.env goes to the node's directory.
        if (file.path === GALERA_HELPER_PATH || file.path === GALERA_START_SCRIPT_PATH) continue;
        const target = file.path === GALERA_ENV_PATH ? path.join(nodeDir, "galera.env") : file.path;
        if (!target.startsWith(`${nodeDir}/`)) throw new Error(`galera: ${file.path} (${stack}) is outside the node's test directory`);
        const content = fillSecrets(file.content, this.secrets);
        assertLoopbackText(target, content);
        const mode = parseInt(file.mode ?? "0644", 8);
        // The image's mysql uid (999) is Debian's mysql user here.
        if (file.owner !== undefined) ownedFile(target, content, "mysql", mode);
        else fs.writeFileSync(target, content, { mode });
      }
      // Stands in for the image's /etc/mysql/my.cnf, which reads the two mounted conf.d files.
      const defaults = `!include ${path.join(host.configDir, "my.cnf")}\n!include ${path.join(host.configDir, "sst-auth.cnf")}\n`;
      fs.writeFileSync(path.join(nodeDir, "defaults.cnf"), defaults, { mode: 0o644 });
    }
  }

  /** As the GaleraCluster steps: converge first + accounts, join one at a time, finalize, verify. */
  private async boot(): Promise<void> {
    const [first, ...joiners] = this.nodes;
    await this.helper(first, ["converge", "first"]);
    await this.helper(first, ["apply-sql", path.join(this.host[first.name].secretDir, "accounts.sql")]);
    for (const node of joiners) await this.helper(node, ["converge", "member"]);
    await this.helper(first, ["finalize"]);
    for (const node of this.nodes) await this.helper(node, ["verify"]);
    await this.query(
      first,
      `CREATE TABLE IF NOT EXISTS ${TABLE} (id BIGINT PRIMARY KEY, run INT NOT NULL, written_at DATETIME(6) NOT NULL)`,
    );
  }

  /**
   * Stops every node at once (clean stop bounded by KB_GALERA_STOP_TIMEOUT, then SIGKILL of what is
   * left) and removes the working directory: at most about 60 s.
   */
  async stop(): Promise<void> {
    const started = this.nodes.filter((node) => fs.existsSync(path.join(this.nodeDir(node), "galera.env")));
    await Promise.all(started.map((node) => this.helper(node, ["stop"], 45_000).catch(() => undefined)));
    await Promise.all(this.nodes.map((node) => this.kill(node)));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Runs keybuzz-galera COMMAND on `node` (scripts/galera/galera-node.sh through galera-node-exec.sh),
   * in its own process group, killed after `timeoutMs`; throws on a non-zero exit.
   */
  async helper(node: GaleraNode, args: readonly string[], timeoutMs = 240_000): Promise<string> {
    const result = await runBounded(NODE_EXEC, [node.name, ...args], this.env(), timeoutMs);
    if (result.code !== 0)
      throw new Error(`keybuzz-galera ${args.join(" ")} on ${node.name} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  }

  /** The environment keybuzz-galera runs in through galera-node-exec.sh. */
  env(): Record<string, string> {
    return {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      LANG: "C.UTF-8",
      KB_GALERA_LOOPBACK_DIR: this.dir,
      // keybuzz-galera polls every 5 s by default; 1 s keeps the waits short here.
      GALERA_POLL_INTERVAL: "1",
      // A clean stop of a loopback node takes seconds; SIGKILL after 30 s (production: docker stop -t 600).
      KB_GALERA_STOP_TIMEOUT: "30",
    };
  }

  /** The last lines of a node's server log. */
  log(node: GaleraNode, lastLines = 40): string {
    const file = path.join(this.nodeDir(node), "mariadbd.log");
    if (!fs.existsSync(file)) return "";
    return fs.readFileSync(file, "utf8").split("\n").slice(-lastLines).join("\n");
  }

  private logSize(node: GaleraNode): number {
    const file = path.join(this.nodeDir(node), "mariadbd.log");
    return fs.existsSync(file) ? fs.statSync(file).size : 0;
  }

  /** How `node` caught up, from its server log written since `offset`. */
  stateTransferSince(node: GaleraNode, offset: number): StateTransfer {
    const text = fs.readFileSync(path.join(this.nodeDir(node), "mariadbd.log"), "utf8").slice(offset);
    // With mariabackup the joiner's SST script runs either way; it logs which transfer the donor chose.
    if (/mariabackup SST completed on joiner|Proceeding with SST/.test(text)) return "SST";
    if (/mariabackup IST completed on joiner|WSREP: IST received/.test(text)) return "IST";
    return "none";
  }

  /** The pid of a node's server when it runs (checked against /proc: our mariadbd, not a zombie). */
  serverPid(node: GaleraNode): number | undefined {
    return serverPidOf(this.nodeDir(node));
  }

  /** SIGKILL of a node's server and its process group (the crash of the node); waits until it is gone. */
  async kill(node: GaleraNode): Promise<void> {
    const pid = this.serverPid(node);
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
    await waitFor(`${node.name}'s mariadbd to exit`, async () => this.serverPid(node) === undefined, 15_000, 50);
  }

  /** One statement as the application user (`erpnext`, as ProxySQL connects) over TCP to `node`. */
  async query<T = mysql.RowDataPacket[]>(node: GaleraNode, sql: string, values: unknown[] = [], timeoutMs = 10_000): Promise<T> {
    const connection = await this.connect(node);
    try {
      const [rows] = await connection.query({ sql, values, timeout: timeoutMs });
      return rows as T;
    } finally {
      connection.destroy();
    }
  }

  /** A connection as the application user to `node`'s client port (loopback only). */
  connect(node: GaleraNode): Promise<mysql.Connection> {
    assertLoopback(node.address);
    return mysql.createConnection({
      host: node.address,
      port: this.server[node.name].port,
      user: DEFAULT_GALERA_ACCOUNTS.appUser,
      password: this.secrets[GALERA_SECRET_KEYS.app],
      database: DEFAULT_GALERA_ACCOUNTS.appDatabase,
      connectTimeout: 2000,
    });
  }

  /** wsrep status of `node`. */
  async status(node: GaleraNode): Promise<GaleraStatus> {
    const rows = await this.query<{ Variable_name: string; Value: string }[]>(node, "SHOW GLOBAL STATUS LIKE 'wsrep_%'");
    const value = (name: string) => rows.find((row) => row.Variable_name === name)?.Value ?? "";
    return {
      state: value("wsrep_local_state_comment"),
      clusterStatus: value("wsrep_cluster_status"),
      clusterSize: Number(value("wsrep_cluster_size")),
    };
  }

  /** Waits until every node in `nodes` is Synced in a Primary component of `size` members. */
  async waitSynced(nodes: readonly GaleraNode[], size: number, timeoutMs: number): Promise<void> {
    await waitFor(
      `${nodes.map((node) => node.name).join(", ")} Synced in a Primary component of ${size}`,
      async () => {
        for (const node of nodes) {
          const status = await this.status(node);
          if (status.state !== "Synced" || status.clusterStatus !== "Primary" || status.clusterSize !== size) return false;
        }
        return true;
      },
      timeoutMs,
      250,
    );
  }

  /** Writes one row on `node`; returns its id. */
  async writeRow(node: GaleraNode, id: number): Promise<void> {
    await this.query(node, `INSERT INTO ${TABLE} (id, run, written_at) VALUES (?, 0, NOW(6))`, [id]);
  }

  /** Ids among `ids` present on `node`, read after the node applied every write-set it has received (wsrep_sync_wait). */
  async presentIds(node: GaleraNode, ids: readonly number[]): Promise<Set<number>> {
    const connection = await this.connect(node);
    try {
      await connection.query("SET SESSION wsrep_sync_wait = 1");
      const present = new Set<number>();
      for (let start = 0; start < ids.length; start += 1000) {
        const batch = ids.slice(start, start + 1000);
        const [rows] = await connection.query<mysql.RowDataPacket[]>({
          sql: `SELECT id FROM ${TABLE} WHERE id IN (?)`,
          values: [batch],
          timeout: 30_000,
        });
        for (const row of rows) present.add(Number(row.id));
      }
      return present;
    } finally {
      connection.destroy();
    }
  }

  /** Acknowledged ids missing on at least one of `nodes`. */
  async missingAnywhere(nodes: readonly GaleraNode[], ids: readonly number[]): Promise<number> {
    const missing = new Set<number>();
    for (const node of nodes) {
      const present = await this.presentIds(node, ids);
      for (const id of ids) if (!present.has(id)) missing.add(id);
    }
    return missing.size;
  }

  /**
   * Kills one node (SIGKILL) while a client writes without pause to another node, measures the
   * time until a write issued after the kill is acknowledged, starts the killed node again with
   * its unchanged files (`keybuzz-galera converge member`, as an operator or Docker's restart
   * would), waits until it is Synced, and counts acknowledged rows missing on any node.
   *
   * The killed node is maria-01, the writer ProxySQL prefers (weights 1000/900/800). Production's
   * ProxySQL then moves writes to the next node; ProxySQL is not in Debian, so the client writes
   * to that surviving node (maria-02) directly from the start. The time measured is Galera's
   * own stall: the survivors hold commits until they evict the dead member. ProxySQL's detection
   * of the dead writer adds to it in production.
   */
  async failover(): Promise<FailoverResult> {
    this.runs += 1;
    const [victim, target] = this.nodes;
    await this.waitSynced(this.nodes, this.nodes.length, 60_000);
    const writer = new GaleraWriter(() => this.connect(target), this.runs);
    const writing = writer.run();
    try {
      await waitFor("writes on the surviving node before the kill", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const killedAt = Date.now();
      await this.kill(victim);
      const firstWrite = await waitFor(
        "a write issued after the kill to be acknowledged",
        async () => writer.firstAckIssuedAfter(killedAt),
        120_000,
        20,
      );
      const survivors = this.nodes.filter((node) => node !== victim);
      await this.waitSynced(survivors, survivors.length, 60_000);
      // Let the survivors commit write-sets the returning node has to receive.
      await waitFor("writes while the node is down", async () => writer.ackedAfter(firstWrite) >= 100, 30_000, 100);
      const offset = this.logSize(victim);
      let rejoinFailure: string | undefined;
      try {
        await this.helper(victim, ["converge", "member"], 200_000);
        await this.waitSynced(this.nodes, this.nodes.length, 60_000);
      } catch (error) {
        rejoinFailure = error instanceof Error ? error.message : String(error);
      }
      const rejoined = rejoinFailure === undefined;
      await sleep(500);
      writer.stop();
      await writing;
      const lost = await this.missingAnywhere(rejoined ? this.nodes : survivors, writer.acknowledged);
      return {
        system: "galera",
        secondsToWriteAgain: (firstWrite - killedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: lost,
        oldPrimary: victim.name,
        newPrimary: target.name,
        rejoinedAsReplica: rejoined,
        rejoinFailure,
        // IST (write-sets from a peer's gcache) is expected; SST would be a full copy of the datadir.
        rejoinedBy: this.stateTransferSince(victim, offset),
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * Replaces maria-01, the bootstrap node and ProxySQL's preferred writer, as `pulumi up --replace`
   * of its server does (docs/operations.md): while a client writes to maria-02, maria-01 is killed,
   * its datadir and the files its root disk held (state file, applied-accounts copy) are wiped, and
   * its steps run again in their order: `converge first` (no data, a peer answers: it joins, here
   * by SST), `apply-sql` of the accounts, `finalize`, `verify`. Counts acknowledged rows missing on
   * any node and compares every node's row count.
   */
  async replaceNode(): Promise<ReplaceNodeResult & { readonly rowCounts: Readonly<Record<string, number>> }> {
    this.runs += 1;
    const [victim, target] = this.nodes;
    const host = this.host[victim.name];
    await this.waitSynced(this.nodes, this.nodes.length, 60_000);
    const writer = new GaleraWriter(() => this.connect(target), this.runs);
    const writing = writer.run();
    try {
      await waitFor("writes on the surviving node before the kill", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const killedAt = Date.now();
      await this.kill(victim);
      const firstWrite = await waitFor(
        "a write issued after the kill to be acknowledged",
        async () => writer.firstAckIssuedAfter(killedAt),
        120_000,
        20,
      );
      fs.rmSync(host.dataDir, { recursive: true, force: true });
      ownedDir(host.dataDir, "mysql");
      fs.rmSync(host.stateFile, { force: true });
      fs.rmSync(path.join(host.secretDir, "accounts.sql.applied"), { force: true });
      const offset = this.logSize(victim);
      const stepStarted = Date.now();
      let rejoinFailure: string | undefined;
      try {
        await this.helper(victim, ["converge", "first"], 300_000);
        await this.helper(victim, ["apply-sql", path.join(host.secretDir, "accounts.sql")]);
        await this.helper(victim, ["finalize"]);
        await this.helper(victim, ["verify"]);
        await this.waitSynced(this.nodes, this.nodes.length, 60_000);
      } catch (error) {
        rejoinFailure = error instanceof Error ? error.message : String(error);
      }
      const stepSeconds = (Date.now() - stepStarted) / 1000;
      const rejoined = rejoinFailure === undefined;
      await sleep(500);
      writer.stop();
      await writing;
      const survivors = this.nodes.filter((node) => node !== victim);
      const counted = rejoined ? this.nodes : survivors;
      const rowCounts = Object.fromEntries(
        await Promise.all(
          counted.map(async (node) => {
            const connection = await this.connect(node);
            try {
              await connection.query("SET SESSION wsrep_sync_wait = 1");
              const [rows] = await connection.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${TABLE}`);
              return [node.name, Number(rows[0].n)] as const;
            } finally {
              connection.destroy();
            }
          }),
        ),
      );
      return {
        system: "galera",
        scenario: "replace-node",
        replaced: victim.name,
        secondsToWriteAgain: (firstWrite - killedAt) / 1000,
        acknowledgedWrites: writer.acknowledged.length,
        acknowledgedLost: await this.missingAnywhere(counted, writer.acknowledged),
        rejoined,
        rejoinedBy: this.stateTransferSince(victim, offset),
        stepSeconds,
        rejoinFailure,
        rowCounts,
      };
    } finally {
      writer.stop();
      await writing;
    }
  }

  /**
   * A full outage, then scripts/galera/recover.sh: while a client writes to maria-02, maria-01 is
   * killed first (so it misses writes the others commit), then maria-02 and maria-03 together
   * (SIGKILL: no clean shutdown, every grastate.dat keeps seqno -1 and safe_to_bootstrap 0, so
   * recover.sh has to read positions with mariadbd --wsrep-recover and must not pick the first
   * node listed). recover.sh then runs with `--yes` and every node, with GALERA_NODE_EXEC pointing
   * at galera-node-exec.sh.
   */
  async fullOutageRecovery(): Promise<GaleraRecoveryResult> {
    this.runs += 1;
    const [first, target, third] = this.nodes;
    await this.waitSynced(this.nodes, this.nodes.length, 60_000);
    const writer = new GaleraWriter(() => this.connect(target), this.runs);
    const writing = writer.run();
    try {
      await waitFor("writes before the outage", async () => writer.acknowledged.length >= 50, 20_000, 100);
      const firstKilledAt = Date.now();
      await this.kill(first);
      await waitFor("writes after the first node died", async () => writer.ackedIssuedAfter(firstKilledAt) >= 100, 60_000, 100);
      await Promise.all([this.kill(target), this.kill(third)]);
    } finally {
      writer.stop();
      await writing;
    }
    const offsets = Object.fromEntries(this.nodes.map((node) => [node.name, this.logSize(node)]));
    const startedAt = Date.now();
    const result = await runBounded(
      RECOVER,
      ["--yes", ...this.nodes.map((node) => node.name)],
      { ...this.env(), GALERA_NODE_EXEC: NODE_EXEC },
      300_000,
    );
    const secondsToRecover = (Date.now() - startedAt) / 1000;
    if (result.code !== 0) throw new Error(`recover.sh exited ${result.code}:\n${result.stderr}`);
    const chosen = /most advanced node: (\S+)/.exec(result.stderr)?.[1] ?? "";
    const positions = Object.fromEntries(
      this.nodes.map((node) => [node.name, new RegExp(`recover: ${node.name}: (uuid=.*)`).exec(result.stderr)?.[1] ?? ""]),
    );
    await this.waitSynced(this.nodes, this.nodes.length, 60_000);
    const clusterSizes = Object.fromEntries(
      await Promise.all(this.nodes.map(async (node) => [node.name, (await this.status(node)).clusterSize])),
    );
    return {
      killedFirst: first.name,
      chosen,
      positions,
      acknowledgedWrites: writer.acknowledged.length,
      acknowledgedLost: await this.missingAnywhere(this.nodes, writer.acknowledged),
      secondsToRecover,
      clusterSizes,
      stateTransfers: Object.fromEntries(
        this.nodes.filter((node) => node.name !== chosen).map((node) => [node.name, this.stateTransferSince(node, offsets[node.name])]),
      ),
    };
  }
}

/** The pid of the server galera-node-exec.sh started for the node in `nodeDir` (mariadbd, or its entry point still recovering), if it runs. */
function serverPidOf(nodeDir: string): number | undefined {
  const pidFile = path.join(nodeDir, "mariadbd.pid");
  if (!fs.existsSync(pidFile)) return undefined;
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    if (/^State:\s*Z/m.test(status)) return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (cmdline.includes(`--defaults-file=${path.join(nodeDir, "defaults.cnf")}`)) return pid;
    // The entry point still recovering this node's position, before it execs mariadbd.
    const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const recovering =
      cmdline.some((arg) => arg.endsWith("galera-start.sh")) && environ.includes(`GALERA_DATADIR=${path.join(nodeDir, "data")}`);
    return recovering ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** One write: when it was issued and, if acknowledged, when. */
interface Write {
  readonly id: number;
  readonly issuedAt: number;
  ackedAt?: number;
}

/**
 * A client inserting rows one after another without pause (autocommit), reconnecting after any
 * error. A write stalled by Galera is waited for (30 s), so the stall shows in the ack times.
 */
class GaleraWriter {
  private readonly writes: Write[] = [];
  private stopped = false;

  constructor(
    private readonly connect: () => Promise<mysql.Connection>,
    private readonly runNumber: number,
  ) {}

  /** Ids of the acknowledged rows. */
  get acknowledged(): number[] {
    return this.writes.filter((write) => write.ackedAt !== undefined).map((write) => write.id);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Ack time of the first write issued after `time` that was acknowledged, if any. */
  firstAckIssuedAfter(time: number): number | undefined {
    return this.writes.find((write) => write.issuedAt > time && write.ackedAt !== undefined)?.ackedAt;
  }

  /** Acknowledged writes issued after `time`. */
  ackedIssuedAfter(time: number): number {
    return this.writes.filter((write) => write.issuedAt > time && write.ackedAt !== undefined).length;
  }

  /** Writes acknowledged after `time`. */
  ackedAfter(time: number): number {
    return this.writes.filter((write) => write.ackedAt !== undefined && write.ackedAt > time).length;
  }

  /** Writes until {@link stop}; bounded by a 10-minute safety limit. */
  async run(): Promise<void> {
    const limit = Date.now() + 600_000;
    let connection: mysql.Connection | undefined;
    let sequence = 0;
    while (!this.stopped && Date.now() < limit) {
      try {
        connection ??= await this.connect();
        sequence += 1;
        const write: Write = { id: this.runNumber * 10_000_000 + sequence, issuedAt: Date.now() };
        this.writes.push(write);
        await connection.query({
          sql: `INSERT INTO ${TABLE} (id, run, written_at) VALUES (?, ?, NOW(6))`,
          values: [write.id, this.runNumber],
          timeout: 30_000,
        });
        write.ackedAt = Date.now();
      } catch {
        connection?.destroy();
        connection = undefined;
        await sleep(50);
      }
    }
    if (connection) await settlesWithin(connection.end(), 2000);
  }
}
