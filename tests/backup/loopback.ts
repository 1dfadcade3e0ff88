import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import {
  backupHostsOf,
  DbNodePaths,
  parseBackupSettings,
  PgBackRestSettings,
  pgBackRestPatroniParameters,
  renderBackupRunScript,
  renderDbNodeConfig,
  renderRepoHostConfig,
  RepoHostPaths,
} from "../../components/backup/pgbackrest";
import { ClusterNode } from "../../config";
import { DbNode } from "../../components/data/postgres/render";
import { PostgresLayout } from "../../components/data/postgres/settings";
import { PostgresLoopbackCluster } from "../postgres/loopback";
import { clusterDir, loopbackInventory } from "../support/loopback/loopback";
import { issueTestPki, TestPki } from "../support/loopback/pki";
import { assertLoopbackText, ownedDir, ownedFile, Supervisor, waitFor, waitForPort } from "../support/loopback/supervisor";

/**
 * pgBackRest on loopback, from the files components/backup/pgbackrest renders: the loopback Patroni
 * cluster (tests/postgres/loopback.ts) archives its WAL through the rendered archive_command to
 * the repository host's TLS server (backup-01 at its loopback address), and each DB node runs its
 * own TLS server for the backups, all with client certificates of one test CA, all as `postgres`
 * (Debian's pgbackrest, PostgreSQL and Patroni). Restores go into scratch instances.
 */

const PGBACKREST = "/usr/bin/pgbackrest";
const byAddress = (node: ClusterNode): string => node.address;

/** Runs a command as `postgres`; throws with its output when it fails. */
export function asPostgres(command: string, args: readonly string[], timeoutMs = 300_000): string {
  const result = spawnSync("runuser", ["-u", "postgres", "--", command, ...args], { encoding: "utf8", timeout: timeoutMs });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** A loopback Patroni cluster with pgBackRest archiving to a loopback repository host. */
export class PgBackRestLoopback {
  readonly supervisor = new Supervisor();
  readonly settings: PgBackRestSettings;
  readonly repoHost: ClusterNode;
  readonly repoPaths: RepoHostPaths;
  readonly nodePaths: Record<string, DbNodePaths> = {};
  /** The backup wrapper as installed on backup-01 (scripts/pgbackrest/backup-run.sh). */
  readonly backupRun: string;
  readonly textfileDir: string;
  cluster!: PostgresLoopbackCluster;
  private readonly pki: TestPki;
  private scratchCount = 0;

  private constructor(readonly dir: string) {
    // archive_timeout at its minimum, so the RPO scenario needs seconds, not minutes.
    this.settings = parseBackupSettings({ postgres: { archiveTimeoutSeconds: 10, fromStandby: false, tlsPort: 8432 } }).postgres;
    const hosts = backupHostsOf(loopbackInventory("prod"));
    if (!hosts) throw new Error("integration: the prod inventory has no backup server");
    this.repoHost = hosts.repoHost;
    ownedDir(path.join(dir, "backup-01"), "postgres", 0o711);
    // pgBackRest checks DNS names only, and the loopback names do not resolve: connect by address,
    // with the address as an extra DNS name of each certificate.
    this.pki = issueTestPki(
      path.join(dir, "pki"),
      [...hosts.members, this.repoHost].map((node) => ({ ...node, dnsNames: [node.address] })),
    );
    const repoBase = path.join(dir, "backup-01");
    this.repoPaths = {
      configFile: path.join(repoBase, "pgbackrest.conf"),
      repoPath: path.join(repoBase, "repo"),
      workDir: path.join(repoBase, "work"),
      tls: this.tlsCopy(repoBase, this.repoHost.name),
    };
    this.textfileDir = ownedDir(path.join(repoBase, "textfile"), "root", 0o755);
    // As repo-host.sh leaves them: the wrapper (postgres) rewrites its own files in root's directory.
    for (const type of ["full", "diff"])
      ownedFile(path.join(this.textfileDir, `keybuzz-backup-postgres-${type}.prom`), "", "postgres", 0o644);
    this.backupRun = path.join(repoBase, "keybuzz-pgbackrest-backup");
  }

  /** Copies a node's TLS material into `base/tls`, owned by postgres. */
  private tlsCopy(base: string, name: string): DbNodePaths["tls"] {
    const dir = ownedDir(path.join(base, "tls"), "postgres");
    const copy = (file: string, source: string) => ownedFile(path.join(dir, file), fs.readFileSync(source, "utf8"), "postgres");
    return {
      ca: copy("ca.crt", this.pki.caFile),
      cert: copy("node.crt", this.pki.nodes[name].certFile),
      key: copy("node.key", this.pki.nodes[name].keyFile),
    };
  }

  /** Writes a DB node's pgBackRest files before its Patroni starts; returns the parameters Patroni gets. */
  private prepareNode(node: DbNode, layout: PostgresLayout): Record<string, string | number> {
    const workDir = ownedDir(path.join(layout.paths.volumeMount, "pgbackrest"), "postgres");
    for (const sub of ["spool", "lock", "log"]) ownedDir(path.join(workDir, sub), "postgres");
    const paths: DbNodePaths = {
      configFile: path.join(layout.paths.configDir, "pgbackrest.conf"),
      dataDir: layout.paths.dataDir,
      socketDir: layout.paths.socketDir,
      workDir,
      tls: this.tlsCopy(workDir, node.name),
    };
    this.nodePaths[node.name] = paths;
    const config = renderDbNodeConfig({
      node,
      repoHost: this.repoHost,
      settings: this.settings,
      paths,
      postgresPort: layout.ports.postgres,
      tlsHost: byAddress,
      repoPath: this.repoPaths.repoPath,
    });
    assertLoopbackText(`${node.name} pgbackrest.conf`, config);
    ownedDir(layout.paths.configDir, "postgres");
    ownedFile(paths.configFile, config, "postgres");
    return pgBackRestPatroniParameters(this.settings, paths, PGBACKREST);
  }

  /** Starts the repository host's TLS server, the cluster (archiving), each node's TLS server; creates the stanza and checks it. */
  static async start(): Promise<PgBackRestLoopback> {
    const backups = new PgBackRestLoopback(clusterDir("pgbackrest"));
    try {
      await backups.boot();
    } catch (error) {
      await backups.stop();
      throw error;
    }
    return backups;
  }

  private async boot(): Promise<void> {
    for (const dir of [
      this.repoPaths.repoPath,
      this.repoPaths.workDir,
      path.join(this.repoPaths.workDir, "lock"),
      path.join(this.repoPaths.workDir, "log"),
    ]) {
      ownedDir(dir, "postgres");
    }
    ownedFile(this.backupRun, renderBackupRunScript(this.settings, this.repoPaths, this.textfileDir), "postgres", 0o755);
    this.cluster = await PostgresLoopbackCluster.start("prod", {}, { extraParameters: (node, layout) => this.prepareNode(node, layout) });
    const repoConfig = renderRepoHostConfig({
      repoHost: this.repoHost,
      members: this.cluster.nodes.map((node) => ({
        node,
        paths: this.nodePaths[node.name],
        postgresPort: this.cluster.layouts[node.name].ports.postgres,
      })),
      settings: this.settings,
      paths: this.repoPaths,
      tlsHost: byAddress,
    });
    assertLoopbackText("backup-01 pgbackrest.conf", repoConfig);
    ownedFile(this.repoPaths.configFile, repoConfig, "postgres");
    this.startServer("backup-01", this.repoPaths.configFile);
    for (const node of this.cluster.nodes) this.startServer(node.name, this.nodePaths[node.name].configFile);
    for (const address of [this.repoHost.address, ...this.cluster.nodes.map((node) => node.address)]) {
      await waitForPort(address, this.settings.tlsPort, 30_000);
    }
    // What the verification step runs (scripts/pgbackrest/verify.sh).
    this.repo(["stanza-create"]);
    try {
      this.repo([`--archive-timeout=${this.settings.archiveTimeoutSeconds + 60}`, "check"]);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${this.logs()}`);
    }
  }

  /** The tails of every pgBackRest log of the DB nodes and of backup-01 (a failure's diagnosis). */
  logs(): string {
    const dirs = [
      ...Object.values(this.nodePaths).map((paths) => path.join(paths.workDir, "log")),
      path.join(this.repoPaths.workDir, "log"),
    ];
    return dirs
      .flatMap((dir) => (fs.existsSync(dir) ? fs.readdirSync(dir).map((file) => path.join(dir, file)) : []))
      .map((file) => `---- ${file}\n${fs.readFileSync(file, "utf8").split("\n").slice(-15).join("\n")}`)
      .join("\n");
  }

  private startServer(name: string, configFile: string): void {
    this.supervisor.start({
      name: `${name}-pgbackrest`,
      command: PGBACKREST,
      args: [`--config=${configFile}`, "server"],
      user: "postgres",
      logFile: path.join(this.dir, `${name}-pgbackrest-server.log`),
    });
  }

  /** pgbackrest on backup-01 with its rendered config. */
  repo(args: readonly string[]): string {
    return asPostgres(PGBACKREST, [`--config=${this.repoPaths.configFile}`, `--stanza=${this.settings.stanza}`, ...args]);
  }

  /** A backup through the installed wrapper, as the timer's service runs it. */
  backup(type: "full" | "diff"): void {
    asPostgres(this.backupRun, [type]);
  }

  /**
   * Restores the repository into a scratch instance on backup-01 (`--reset-pg1-host`: a local
   * PGDATA) and starts it on `address:port`, archiving off, until it has promoted. `target`
   * undefined = the latest WAL in the repository. Returns the seconds from the start of the
   * restore to the first query answered, and a client factory.
   */
  async restoreScratch(
    address: string,
    port: number,
    target?: string,
  ): Promise<{ seconds: number; query: <T>(sql: string) => Promise<T[]> }> {
    this.scratchCount += 1;
    const base = ownedDir(path.join(this.dir, `scratch-${this.scratchCount}`), "postgres");
    const dataDir = path.join(base, "data");
    const startedAt = Date.now();
    this.repo([
      "--reset-pg1-host",
      `--pg1-path=${dataDir}`,
      ...(target ? ["--type=time", `--target=${target}`, "--target-action=promote"] : ["--type=default"]),
      // The restored copy's pg_wal: a directory of its own, not the DB node's symlink target.
      "--link-map=pg_wal=" + path.join(base, "wal"),
      "restore",
    ]);
    const socketDir = ownedDir(path.join(base, "run"), "postgres");
    // The restored pg_hba.conf is the cluster's (TLS, passwords); the scratch copy trusts its own socket only.
    const hbaFile = ownedFile(path.join(base, "pg_hba.conf"), "local all all trust\n", "postgres");
    const bin = this.cluster.layouts[this.cluster.nodes[0].name].paths.binDir;
    this.supervisor.start({
      name: `scratch-${this.scratchCount}`,
      command: path.join(bin, "postgres"),
      user: "postgres",
      args: [
        "-D",
        dataDir,
        "-c",
        `listen_addresses=${address}`,
        "-c",
        `port=${port}`,
        "-c",
        `unix_socket_directories=${socketDir}`,
        "-c",
        `hba_file=${hbaFile}`,
        // A scratch copy must never push WAL into the repository.
        "-c",
        "archive_mode=off",
        "-c",
        "ssl=off",
      ],
      logFile: path.join(this.dir, `scratch-${this.scratchCount}.log`),
    });
    const query = async <T>(sql: string): Promise<T[]> => {
      const client = new Client({ host: socketDir, port, user: "postgres", database: "postgres" });
      await client.connect();
      try {
        return (await client.query(sql)).rows as T[];
      } finally {
        await client.end();
      }
    };
    await waitFor(
      "the scratch instance to finish recovery and promote",
      async () => {
        try {
          const [row] = await query<{ recovering: boolean }>("SELECT pg_is_in_recovery() AS recovering");
          return row.recovering === false;
        } catch {
          return false;
        }
      },
      300_000,
      200,
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${this.supervisor.log(`scratch-${this.scratchCount}`)}`);
    });
    return { seconds: (Date.now() - startedAt) / 1000, query };
  }

  async stop(): Promise<void> {
    await this.supervisor.stopAll();
    await this.cluster?.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
