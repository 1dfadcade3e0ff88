import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_GALERA_BACKUP_SETTINGS,
  GaleraBackupCommands,
  GaleraBackupNodePaths,
  renderAuthorizedKeys,
  renderBackupScript,
  renderReceiverScript,
  renderRestoreScript,
} from "../../components/backup/galera";
import { serversOf } from "../../config";
import { GaleraLoopbackCluster, NODE_EXEC } from "../galera/loopback";
import { clusterDir, loopbackInventory } from "../support/loopback/loopback";
import { ownedDir, ownedFile, sleep, Supervisor, userIds, waitForPort } from "../support/loopback/supervisor";
import { requireTool, run } from "../support/tools";

/**
 * Issue 17, Galera: the loopback Galera cluster (tests/galera/loopback.ts) is backed up by the
 * rendered keybuzz-galera-backup from its last node (desynced while it copies), streamed over SSH
 * to the rendered receiver (a forced command behind a real sshd on backup-01's loopback address),
 * three times (retention 2); then a fresh 3-node cluster is restored from the newest backup by
 * the rendered keybuzz-galera-restore (bootstrap on one node, rejoin by SST on the others), and
 * its rows are compared with the source's.
 */
const SETTINGS = { ...DEFAULT_GALERA_BACKUP_SETTINGS, keep: 2, drainSeconds: 2 };
const RECEIVER_USER = "postgres";
/** sshd runs unprivileged (as the receiver's user), so above 1023; production: 22. */
const SSH_PORT = 2222;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

function runScript(script: string, args: readonly string[], env: Record<string, string>, timeoutMs = 300_000): Promise<Run> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn("/bin/bash", [script, ...args], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

describe("Galera backup and full-cluster restore on loopback (mariadb-backup, sshd, rendered scripts)", () => {
  const supervisor = new Supervisor();
  let source: GaleraLoopbackCluster | undefined;
  let restored: GaleraLoopbackCluster | undefined;
  let dir = "";
  afterAll(async () => {
    await source?.stop();
    await restored?.stop();
    await supervisor.stopAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);

  it("backs up from a desynced node, keeps the newest, restores a fresh cluster with the same rows", async () => {
    for (const tool of ["mariadbd", "mariabackup", "mbstream", "sshd", "ssh", "ssh-keygen", "gzip"]) requireTool(tool);
    requireTool("libgalera_smm.so", ["/usr/lib/galera"]);
    dir = clusterDir("galera-backup");
    const backupHost = serversOf(loopbackInventory("prod"), "backup")[0];
    const receiverAddress = backupHost.privateIp;

    // backup-01: the rendered receiver as the forced command of the rendered authorized_keys line,
    // behind an sshd running as the receiver's user (it can log in only that user).
    const receiverDir = ownedDir(path.join(dir, "backup-01"), RECEIVER_USER);
    const backupDir = ownedDir(path.join(receiverDir, "galera"), RECEIVER_USER);
    const textfileDir = ownedDir(path.join(dir, "textfile"), "root", 0o755);
    const metricFile = ownedFile(path.join(textfileDir, "keybuzz-backup-galera.prom"), "", RECEIVER_USER, 0o644);
    const receiverPaths = { backupDir, receiver: path.join(receiverDir, "receive"), stagedAuthorizedKeys: "" };
    ownedFile(receiverPaths.receiver, renderReceiverScript(SETTINGS, receiverPaths, textfileDir), RECEIVER_USER, 0o755);
    const clientDir = ownedDir(path.join(dir, "maria"), "root");
    const key = path.join(clientDir, "id_ed25519");
    expect(run(requireTool("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", key]).status).toBe(0);
    const hostKey = path.join(receiverDir, "host_key");
    expect(run(requireTool("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]).status).toBe(0);
    const owner = userIds(RECEIVER_USER);
    fs.chownSync(hostKey, owner.uid, owner.gid);
    const source0 = await GaleraLoopbackCluster.start();
    source = source0;
    const authorized = renderAuthorizedKeys(source0.nodes, receiverPaths, fs.readFileSync(`${key}.pub`, "utf8").trim());
    ownedFile(path.join(receiverDir, "authorized_keys"), authorized, RECEIVER_USER, 0o600);
    const sshdConfig = ownedFile(
      path.join(receiverDir, "sshd_config"),
      [
        `ListenAddress ${receiverAddress}:${SSH_PORT}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${path.join(receiverDir, "authorized_keys")}`,
        `PidFile ${path.join(receiverDir, "sshd.pid")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "UsePAM no",
        "",
      ].join("\n"),
      RECEIVER_USER,
      0o644,
    );
    supervisor.start({
      name: "sshd",
      command: requireTool("sshd"),
      args: ["-D", "-e", "-f", sshdConfig],
      user: RECEIVER_USER,
      logFile: path.join(dir, "sshd.log"),
    });
    if (!(await waitForPort(receiverAddress, SSH_PORT, 10_000))) throw new Error(`sshd does not listen:\n${supervisor.log("sshd")}`);

    // The backup node (the last, as galeraBackupNode picks): the rendered script with the loopback node's commands.
    const receiver = { target: `${RECEIVER_USER}@${receiverAddress}`, port: SSH_PORT };
    const nodePaths: GaleraBackupNodePaths = {
      backupScript: path.join(clientDir, "keybuzz-galera-backup"),
      restoreScript: path.join(clientDir, "keybuzz-galera-restore"),
      sshKey: key,
      knownHosts: path.join(clientDir, "known_hosts"),
      lockFile: path.join(clientDir, "backup.lock"),
    };
    // Stands in for the container's my.cnf plus the extra client.cnf (root's password) that production passes.
    const backupDefaults = (cluster: GaleraLoopbackCluster, index: number) => {
      const nodeDir = cluster.nodeDir(cluster.nodes[index]);
      const file = path.join(nodeDir, "backup.cnf");
      fs.writeFileSync(file, `!include ${nodeDir}/defaults.cnf\n!include ${nodeDir}/secrets/client.cnf\n`, { mode: 0o600 });
      return file;
    };
    const commandsOf = (cluster: GaleraLoopbackCluster, index: number): GaleraBackupCommands => {
      const node = cluster.nodes[index];
      const nodeDir = cluster.nodeDir(node);
      return {
        sql: `'${NODE_EXEC}' ${node.name} _sql`,
        backup: `mariabackup --defaults-file='${backupDefaults(cluster, index)}' --socket='${cluster.server[node.name].socket}' --backup --stream=mbstream --galera-info --target-dir='${nodeDir}'`,
        helper: `'${NODE_EXEC}' ${node.name}`,
        tool: "",
        owner: "mysql:mysql",
        dataDir: cluster.host[node.name].dataDir,
      };
    };
    const last = source0.nodes.length - 1;
    fs.writeFileSync(
      nodePaths.backupScript,
      renderBackupScript({
        node: source0.nodes[last],
        settings: SETTINGS,
        clusterSize: 3,
        receiver,
        commands: commandsOf(source0, last),
        paths: nodePaths,
      }),
      { mode: 0o755 },
    );

    // Rows before the backup, and a writer on the first node during it.
    const [first, , backupNode] = source0.nodes;
    for (let id = 1; id <= 200; id += 1) await source0.writeRow(first, id);
    let writing = true;
    const acknowledged: number[] = [];
    const writer = (async () => {
      for (let id = 1001; writing; id += 1) {
        try {
          await source0.writeRow(first, id);
          acknowledged.push(id);
        } catch {
          // not acknowledged: not counted
        }
        await sleep(20);
      }
    })();
    const states = new Set<string>();
    const observer = (async () => {
      while (writing) {
        states.add(
          await source0.status(backupNode).then(
            (status) => status.state,
            () => "unreachable",
          ),
        );
        await sleep(200);
      }
    })();
    const runs: Run[] = [];
    try {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const result = await runScript(nodePaths.backupScript, [], source0.env());
        if (result.code !== 0) throw new Error(`keybuzz-galera-backup exited ${result.code}: ${result.stderr}\n${supervisor.log("sshd")}`);
        runs.push(result);
        await sleep(1100);
      }
    } finally {
      writing = false;
      await Promise.all([writer, observer]);
    }
    console.log(`galera backup: ${runs.map((result) => result.seconds.toFixed(1)).join(" s, ")} s (drain ${SETTINGS.drainSeconds} s each)`);
    // Taken out of rotation while it copied, Synced again afterwards.
    expect(states).toContain("Donor/Desynced");
    expect(await source0.status(backupNode)).toMatchObject({ state: "Synced", clusterSize: 3 });
    const stored = fs.readdirSync(backupDir).filter((file) => file.endsWith(".mbstream.gz"));
    expect(stored).toHaveLength(SETTINGS.keep);
    expect(fs.readFileSync(metricFile, "utf8")).toMatch(
      /^keybuzz_backup_last_success_timestamp_seconds\{system="galera",type="full"\} \d{10}$/m,
    );
    // Every row of the source when the last backup ended is a candidate; the 200 written before any backup must all come back.
    const sourceIds = [...(await source0.presentIds(first, [...Array.from({ length: 200 }, (_, index) => index + 1), ...acknowledged]))];
    await source0.stop();
    source = undefined;

    // A fresh cluster (empty datadirs, same stack secrets) restored from the newest backup.
    const fresh = await GaleraLoopbackCluster.start("prod", { sameSecretsAs: source0 });
    restored = fresh;
    const restoreScript = (index: number) => {
      const file = path.join(clientDir, `restore-${index}`);
      fs.writeFileSync(
        file,
        renderRestoreScript({ node: fresh.nodes[index], receiver, commands: commandsOf(fresh, index), paths: nodePaths }),
        { mode: 0o755 },
      );
      return file;
    };
    const started = Date.now();
    const bootstrap = await runScript(restoreScript(0), ["bootstrap", "latest", "--yes"], fresh.env());
    if (bootstrap.code !== 0)
      throw new Error(`restore bootstrap exited ${bootstrap.code}: ${bootstrap.stderr}\n${fresh.log(fresh.nodes[0])}`);
    for (const index of [1, 2]) {
      const rejoin = await runScript(restoreScript(index), ["rejoin", "--yes"], fresh.env());
      if (rejoin.code !== 0) throw new Error(`restore rejoin exited ${rejoin.code}: ${rejoin.stderr}\n${fresh.log(fresh.nodes[index])}`);
    }
    await fresh.helper(fresh.nodes[0], ["finalize"]);
    for (const node of fresh.nodes) await fresh.helper(node, ["verify"]);
    const restoreSeconds = (Date.now() - started) / 1000;
    console.log(
      `galera restore: ${stored.at(-1)} into a fresh 3-node cluster in ${restoreSeconds.toFixed(1)} s (${bootstrap.stdout.trim()})`,
    );

    const restoredIds = await fresh.presentIds(fresh.nodes[0], sourceIds);
    for (let id = 1; id <= 200; id += 1) expect(restoredIds.has(id)).toBe(true);
    // Identical on the three restored nodes, and nothing that the source did not have.
    expect(await fresh.missingAnywhere(fresh.nodes, [...restoredIds])).toBe(0);
    // A consistent copy: the one writer's rows committed in id order, so the restored ones are a prefix of them.
    const writerRestored = acknowledged.filter((id) => restoredIds.has(id));
    expect(writerRestored).toEqual(acknowledged.slice(0, writerRestored.length));
    const [{ count }] = await fresh.query<{ count: number }[]>(fresh.nodes[1], "SELECT COUNT(*) AS count FROM kb_it");
    expect(Number(count)).toBe(restoredIds.size);
    console.log(
      `galera restore: ${restoredIds.size} rows restored of ${sourceIds.length} in the source at the end (200 of 200 written before the backups)`,
    );
  }, 900_000);
});
