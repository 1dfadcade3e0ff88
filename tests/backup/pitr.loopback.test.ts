import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderRestoreClusterScript } from "../../components/backup/pgbackrest";
import { PATRONI_SCOPE } from "../../components/data/postgres/settings";
import { clusterForSuite } from "../support/loopback/suite";
import { ownedFile, sleep, waitFor } from "../support/loopback/supervisor";
import { asPostgres, PgBackRestLoopback } from "./loopback";

/**
 * Issue 17, PostgreSQL: the loopback Patroni cluster archives through the rendered pgBackRest
 * configuration to a loopback repository host; a full backup; rows written with their
 * acknowledgement order; a target time; more rows; a dropped table; a restore to the target into a
 * scratch instance. Then the RPO: every node lost at once while a client writes, the repository
 * restored to "latest". Figures are printed.
 */

const TABLE = "kb_pitr_events";
/** The PITR scenario's target and the ids acknowledged before and after it (the in-cluster restore reuses them). */
const pitr: { target?: string; before: number[]; after: number[] } = { before: [], after: [] };

/** Inserts rows one at a time on the leader (autocommit), returning the ids acknowledged. */
async function writeRows(
  backups: PgBackRestLoopback,
  table: string,
  count: number,
  intervalMs: number,
  acknowledged: { id: number; at: number }[],
  firstId: number,
): Promise<void> {
  const leader = await backups.cluster.waitHealthy(60_000);
  for (let id = firstId; id < firstId + count; id++) {
    await backups.cluster.sql(leader, `INSERT INTO ${table} (id) VALUES ($1)`, [id]);
    acknowledged.push({ id, at: Date.now() });
    await sleep(intervalMs);
  }
}

describe("pgBackRest on loopback: WAL archiving, backup, point-in-time restore (Debian's pgbackrest, rendered configs)", () => {
  const live = clusterForSuite(["pgbackrest", "patroni", "etcd", "haproxy", "openssl"], () => PgBackRestLoopback.start(), 420_000);

  it("stanza-create and check pass, and a full backup through the timer's wrapper records its success metric", () => {
    live().backup("full");
    const info = live().repo(["--output=json", "info"]);
    const [stanza] = JSON.parse(info) as { status: { code: number }; backup: { type: string }[] }[];
    expect(stanza.status.code).toBe(0);
    expect(stanza.backup.map((backup) => backup.type)).toEqual(["full"]);
    const metric = fs.readFileSync(path.join(live().textfileDir, "keybuzz-backup-postgres-full.prom"), "utf8");
    expect(metric).toMatch(/keybuzz_backup_last_success_timestamp_seconds\{system="postgres",type="full"\} \d+/);
  });

  it("restores to just before a DROP TABLE: every row acknowledged before the target is there, none after it", async () => {
    const backups = live();
    const leader = await backups.cluster.waitHealthy(60_000);
    await backups.cluster.sql(leader, `CREATE TABLE ${TABLE} (id integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    const before: { id: number; at: number }[] = [];
    await writeRows(backups, TABLE, 40, 20, before, 1);
    // The target: read from the server after the last acknowledgement, before the next write begins.
    const [{ target }] = await backups.cluster.sql<{ target: string }>(leader, "SELECT clock_timestamp()::text AS target");
    await sleep(50);
    const after: { id: number; at: number }[] = [];
    await writeRows(backups, TABLE, 40, 20, after, 1001);
    await backups.cluster.sql(leader, `DROP TABLE ${TABLE}`);
    // The drop's WAL reaches the repository (check forces a WAL switch and waits for its archive).
    backups.repo(["check"]);

    const restored = await backups.restoreScratch("127.0.10.250", 55432, target);
    const ids = (await restored.query<{ id: number }>(`SELECT id FROM ${TABLE} ORDER BY id`)).map((row) => row.id);
    const missing = before.filter((row) => !ids.includes(row.id)).length;
    const extra = ids.filter((id) => after.some((row) => row.id === id)).length;
    console.log(
      `pgbackrest PITR: restore to ${target} in ${restored.seconds.toFixed(1)} s; rows acknowledged before the target: ${before.length}, missing: ${missing}; rows written after it present: ${extra}`,
    );
    expect(ids).toEqual(before.map((row) => row.id));
    expect(missing).toBe(0);
    expect(extra).toBe(0);
    Object.assign(pitr, { target, before: before.map((row) => row.id), after: after.map((row) => row.id) });
  });

  it("in-cluster restore (keybuzz-postgres-restore): Patroni bootstraps from the repository to the target, the others clone it; every node has the rows before the target, none after", async () => {
    const backups = live();
    const { cluster } = backups;
    expect(pitr.target).toBeDefined();
    // The rendered script with the loopback's commands: patronictl and python3 of Debian's Patroni; stopping and starting
    // Patroni is the harness's (its supervisor does what the production commands do to the `patroni` container).
    const script = (name: string) => {
      const layout = cluster.layouts[name];
      return ownedFile(
        path.join(backups.dir, `keybuzz-postgres-restore-${name}`),
        renderRestoreClusterScript({
          settings: backups.settings,
          scope: PATRONI_SCOPE,
          paths: layout.paths,
          owner: "postgres:postgres",
          pgbackrestConfig: backups.nodePaths[name].configFile,
          commands: {
            patronictl: "runuser -u postgres -- /usr/bin/patronictl",
            python: "python3",
            stop: "true",
            start: "true",
            startRestore: "true",
          },
        }),
        "root",
        0o755,
      );
    };
    const run = (name: string, ...args: string[]) => {
      const result = spawnSync(script(name), args, { encoding: "utf8", timeout: 120_000 });
      if (result.status !== 0) throw new Error(`keybuzz-postgres-restore ${args.join(" ")} on ${name}: ${result.stdout}\n${result.stderr}`);
      return result.stdout;
    };
    const startPatroni = (name: string, configFile: string) => {
      const { paths } = cluster.layouts[name];
      cluster.supervisor.start({
        name: `${name}-patroni`,
        command: "/usr/bin/patroni",
        args: [path.join(paths.configDir, configFile)],
        user: "postgres",
        cwd: paths.volumeMount,
        env: { HOME: paths.volumeMount },
        logFile: cluster.logFile(`${name}-patroni`),
      });
    };
    const [first, ...others] = cluster.nodes;
    // 1. every node: stop (Patroni stops PostgreSQL cleanly and gives up the leader key).
    await Promise.all(cluster.nodes.map((node) => cluster.supervisor.stop(`${node.name}-patroni`, "SIGTERM", 60_000)));
    const startedAt = Date.now();
    // 2. the bootstrap node: the DCS forgets the cluster, PGDATA aside, Patroni with the pgbackrest bootstrap method.
    run(first.name, "bootstrap", pitr.target ?? "");
    startPatroni(first.name, "patroni-restore.yml");
    await waitFor(
      `${first.name} to restore, recover to the target and lead`,
      async () => {
        try {
          const members = await cluster.members([first]);
          return members.some((member) => member.name === first.name && member.role === "leader" && member.state === "running");
        } catch {
          return false;
        }
      },
      300_000,
      500,
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${cluster.supervisor.log(`${first.name}-patroni`)}`);
    });
    const leaderSeconds = (Date.now() - startedAt) / 1000;
    // 3. each other node: PGDATA aside, Patroni clones the restored leader.
    for (const node of others) {
      run(node.name, "rejoin");
      startPatroni(node.name, "patroni.yml");
    }
    await cluster.waitHealthy(300_000);
    const clusterSeconds = (Date.now() - startedAt) / 1000;
    // 4. `pulumi up` puts patroni.yml back on the bootstrap node (the harness restarts it with its rendered file).
    await cluster.supervisor.stop(`${first.name}-patroni`, "SIGTERM", 60_000);
    startPatroni(first.name, "patroni.yml");
    const leader = await cluster.waitHealthy(300_000);
    for (const node of cluster.nodes) {
      await waitFor(
        `${node.name} to have the restored table`,
        async () => {
          try {
            await cluster.sql(node, `SELECT 1 FROM ${TABLE} LIMIT 1`);
            return true;
          } catch {
            return false;
          }
        },
        60_000,
        500,
      );
      const ids = (await cluster.sql<{ id: number }>(node, `SELECT id FROM ${TABLE} ORDER BY id`)).map((row) => row.id);
      expect([node.name, ids]).toEqual([node.name, pitr.before]);
      expect(ids.filter((id) => pitr.after.includes(id))).toEqual([]);
    }
    console.log(
      `pgbackrest in-cluster restore to ${pitr.target}: ${first.name} restored and leading in ${leaderSeconds.toFixed(1)} s, the whole cluster streaming in ${clusterSeconds.toFixed(1)} s; rows before the target on each of ${cluster.nodes.length} nodes: ${pitr.before.length}, rows after it: 0; leader now ${leader.name}`,
    );
    // The restored cluster archives again (a new timeline) for the next scenario.
    asPostgres("/usr/bin/pgbackrest", [`--config=${backups.repoPaths.configFile}`, `--stanza=${backups.settings.stanza}`, "check"]);
  });

  it("RPO: every node lost at once while a client writes; the repository restored to 'latest' loses at most archive_timeout of writes", async () => {
    const backups = live();
    const leader = await backups.cluster.waitHealthy(60_000);
    const table = "kb_rpo_events";
    await backups.cluster.sql(leader, `CREATE TABLE ${table} (id integer PRIMARY KEY)`);
    const acknowledged: { id: number; at: number }[] = [];
    // A light load (4 writes/s) for 2.5 × archive_timeout: no segment fills, archive_timeout switches them.
    await writeRows(backups, table, Math.ceil((backups.settings.archiveTimeoutSeconds * 2.5 * 1000) / 250), 250, acknowledged, 1);
    const lostAt = Date.now();
    // The whole cluster is lost (its disks with it): only the repository is left.
    await Promise.all(backups.cluster.nodes.map((node) => backups.cluster.crash(node)));

    const restored = await backups.restoreScratch("127.0.10.251", 55433);
    const ids = new Set((await restored.query<{ id: number }>(`SELECT id FROM ${table}`)).map((row) => row.id));
    const lost = acknowledged.filter((row) => !ids.has(row.id));
    const lastKept = acknowledged.filter((row) => ids.has(row.id)).pop();
    const rpoSeconds = lost.length === 0 ? 0 : (lostAt - (lastKept?.at ?? acknowledged[0].at)) / 1000;
    console.log(
      `pgbackrest RPO: ${lost.length} of ${acknowledged.length} acknowledged writes lost = ${rpoSeconds.toFixed(1)} s of writes (archive_timeout ${backups.settings.archiveTimeoutSeconds} s); restore to latest in ${restored.seconds.toFixed(1)} s`,
    );
    // Every acknowledged write older than archive_timeout (+ the asynchronous push's few seconds) is in the repository.
    expect(rpoSeconds).toBeLessThanOrEqual(backups.settings.archiveTimeoutSeconds + 5);
    // What is restored is a prefix of the acknowledged writes: no hole.
    expect(acknowledged.slice(0, ids.size).every((row) => ids.has(row.id))).toBe(true);
  });
});
