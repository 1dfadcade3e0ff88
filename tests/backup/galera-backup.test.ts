import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_GALERA_BACKUP_SETTINGS,
  galeraBackupNode,
  productionBackupCommands,
  renderAuthorizedKeys,
  renderBackupScript,
  renderBackupUnits,
  renderReceiverScript,
} from "../../components/backup/galera";
import { parseBackupSettings } from "../../components/backup/pgbackrest";
import { isSecretValue, runProgram } from "../../scripts/lib/mock-engine";
import { fakeBin } from "../support/bash-fakes";
import { tempDir } from "../support/tools";

const members = [
  { name: "maria-01", address: "10.0.0.170" },
  { name: "maria-02", address: "10.0.0.171" },
  { name: "maria-03", address: "10.0.0.172" },
];
const receiver = { target: "keybuzz-galera-backup@backup-01", port: 22 };

describe("settings (keybuzz:backup.galera)", () => {
  it("defaults to a daily backup at 02:30, 7 kept; rejects a bad schedule or retention naming the key", () => {
    expect(parseBackupSettings(undefined).galera).toEqual(DEFAULT_GALERA_BACKUP_SETTINGS);
    expect(DEFAULT_GALERA_BACKUP_SETTINGS).toMatchObject({ schedule: "*-*-* 02:30:00", keep: 7 });
    expect(() => parseBackupSettings({ galera: { keep: 0 } })).toThrow(/keybuzz:backup\.galera\.keep/);
    expect(() => parseBackupSettings({ galera: { schedule: "daily; rm -rf /" } })).toThrow(/keybuzz:backup\.galera\.schedule/);
  });
});

describe("renders", () => {
  it("backs up from the last node (ProxySQL's lowest weight), inside the Galera container", () => {
    expect(galeraBackupNode(members).name).toBe("maria-03");
    const commands = productionBackupCommands("mariadb:10.11.18");
    expect(commands.backup).toBe(
      "docker exec mariadb mariadb-backup --defaults-extra-file=/run/keybuzz/client.cnf --backup --stream=mbstream --galera-info --target-dir=/tmp",
    );
    expect(commands.tool).toContain("docker run --rm -i --network none");
  });

  it("lets the backup key run only the receiver, only from the Galera nodes", () => {
    expect(renderAuthorizedKeys(members, undefined, "ssh-ed25519 AAAA")).toBe(
      'restrict,from="10.0.0.170,10.0.0.171,10.0.0.172",command="/usr/local/sbin/keybuzz-galera-backup-receive" ssh-ed25519 AAAA\n',
    );
  });

  it("schedules a oneshot service from a persistent timer", () => {
    const units = renderBackupUnits({ ...DEFAULT_GALERA_BACKUP_SETTINGS, schedule: "*-*-* 03:00:00" });
    expect(units["keybuzz-galera-backup.timer"]).toContain("OnCalendar=*-*-* 03:00:00\nPersistent=true");
    expect(units["keybuzz-galera-backup.service"]).toContain("Type=oneshot\nExecStart=/usr/local/sbin/keybuzz-galera-backup");
  });
});

/**
 * keybuzz-galera-backup with fakes: the SQL command answers the status from files and logs the
 * statements; mariadb-backup is a command writing a small stream; ssh is a fake that runs the
 * rendered receiver with SSH_ORIGINAL_COMMAND, as sshd's forced command does.
 */
function backupHarness(options: { state?: string; size?: number; backupFails?: boolean } = {}) {
  const dir = tempDir("galera-backup");
  const backups = path.join(dir, "backups");
  fs.mkdirSync(backups);
  // As backup-01's step leaves it: the receiver's own metric file in root's textfile directory.
  fs.writeFileSync(path.join(dir, "keybuzz-backup-galera.prom"), "");
  const receiverScript = path.join(dir, "receive");
  const settings = { ...DEFAULT_GALERA_BACKUP_SETTINGS, keep: 2, drainSeconds: 0, resyncTimeoutSeconds: 30 };
  fs.writeFileSync(
    receiverScript,
    renderReceiverScript(settings, { backupDir: backups, receiver: receiverScript, stagedAuthorizedKeys: "" }, dir),
    {
      mode: 0o755,
    },
  );
  const sql = path.join(dir, "sql");
  fs.writeFileSync(
    sql,
    [
      "#!/bin/bash",
      `statement=$(cat); echo "$statement" >>"${dir}/statements"`,
      `case "$statement" in *wsrep_local_state_comment*) echo "wsrep_local_state_comment ${options.state ?? "Synced"}" ;; *wsrep_cluster_size*) echo "wsrep_cluster_size ${options.size ?? 3}" ;; esac`,
    ].join("\n"),
    { mode: 0o755 },
  );
  // As sshd's forced command: the words after the target reach the receiver as SSH_ORIGINAL_COMMAND.
  const bin = fakeBin({
    ssh: `while [ "$1" != "${receiver.target}" ]; do shift; done; shift\nSSH_ORIGINAL_COMMAND="$*" exec "${receiverScript}"`,
  });
  const script = path.join(dir, "keybuzz-galera-backup");
  fs.writeFileSync(
    script,
    renderBackupScript({
      node: members[2],
      settings,
      clusterSize: 3,
      receiver,
      commands: {
        sql,
        backup: options.backupFails ? "echo partial; exit 3" : "printf 'an mbstream'",
        helper: "",
        tool: "",
        owner: "",
        dataDir: "",
      },
      paths: { backupScript: script, restoreScript: "", sshKey: "", knownHosts: "", lockFile: path.join(dir, "lock") },
    }),
    { mode: 0o755 },
  );
  const runBackup = () =>
    spawnSync(script, [], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` } });
  const statements = () => (fs.existsSync(path.join(dir, "statements")) ? fs.readFileSync(path.join(dir, "statements"), "utf8") : "");
  const stored = () => fs.readdirSync(backups).sort();
  return { dir, runBackup, statements, stored, receiverScript, backups };
}

describe("keybuzz-galera-backup (scripts/galera-backup/backup-run.sh) with fakes", () => {
  it("desyncs, streams, commits, resyncs; the receiver keeps the newest 2 and writes the metric", () => {
    const harness = backupHarness();
    for (let run = 0; run < 3; run += 1) {
      const result = harness.runBackup();
      expect([result.status, result.stderr]).toEqual([0, ""]);
      spawnSync("sleep", ["1.1"]);
    }
    const statements = harness.statements();
    expect(statements.indexOf("SET GLOBAL wsrep_desync=ON;")).toBeLessThan(statements.indexOf("SET GLOBAL wsrep_desync=OFF;"));
    expect(harness.stored()).toHaveLength(2);
    for (const file of harness.stored()) expect(file).toMatch(/^galera-\d{8}T\d{6}Z\.mbstream\.gz$/);
    const content = spawnSync("gunzip", ["-c", path.join(harness.backups, harness.stored()[1])], { encoding: "utf8" }).stdout;
    expect(content).toBe("an mbstream");
    expect(fs.readFileSync(path.join(harness.dir, "keybuzz-backup-galera.prom"), "utf8")).toMatch(
      /^keybuzz_backup_last_success_timestamp_seconds\{system="galera",type="full"\} \d{10}$/m,
    );
  });

  it("takes no backup, and never desyncs, from a degraded cluster", () => {
    const harness = backupHarness({ size: 2 });
    const result = harness.runBackup();
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/cluster of 2 \(want Synced in 3\)/);
    expect(harness.statements()).not.toContain("wsrep_desync");
  });

  it("resyncs the node when the copy fails, and stores nothing (the next run removes the partial stream)", () => {
    const harness = backupHarness({ backupFails: true });
    expect(harness.runBackup().status).not.toBe(0);
    expect(harness.statements()).toContain("SET GLOBAL wsrep_desync=OFF;");
    expect(harness.stored().filter((file) => file.endsWith(".mbstream.gz"))).toEqual([]);
    const next = spawnSync(harness.receiverScript, [], {
      encoding: "utf8",
      input: "",
      env: { ...process.env, SSH_ORIGINAL_COMMAND: "receive galera-20991231T000000Z" },
    });
    expect(next.status).toBe(0);
    expect(harness.stored()).toEqual([".galera-20991231T000000Z.partial"]);
  });
});

describe("the receiver (scripts/galera-backup/receive.sh)", () => {
  const call = (receiverScript: string, command: string, input = "") =>
    spawnSync(receiverScript, [], { encoding: "utf8", input, env: { ...process.env, SSH_ORIGINAL_COMMAND: command } });

  it("refuses names that are not its own and commands it does not know", () => {
    const { receiverScript } = backupHarness();
    expect(call(receiverScript, "receive ../../etc/passwd").status).toBe(2);
    expect(call(receiverScript, "send galera-x").status).toBe(2);
    expect(call(receiverScript, "bash -i").status).toBe(2);
  });

  it("drops a truncated stream at commit instead of storing it", () => {
    const { receiverScript, backups } = backupHarness();
    const gzip = spawnSync("gzip", ["-c"], { input: "x".repeat(100_000) }).stdout as Buffer;
    expect(call(receiverScript, "receive galera-20261201T010000Z", gzip.subarray(0, gzip.length - 10).toString("latin1")).status).toBe(0);
    const commit = call(receiverScript, "commit galera-20261201T010000Z 5");
    expect(commit.status).toBe(2);
    expect(commit.stderr).toMatch(/truncated or corrupt/);
    expect(fs.readdirSync(backups)).toEqual([]);
  });
});

describe("the program", () => {
  it("prod: the receiver on backup-01, the restore on every Galera node, the timer and the key on maria-03 only", async () => {
    const run = await runProgram("prod");
    const byName = new Map(run.registrations.map((registration) => [registration.name, registration]));
    expect(byName.get("backup-01-galera-backup")?.dependsOn).toEqual(expect.arrayContaining(["galera-maria-03-verify"]));
    const filesOf = (step: string) => run.steps.filter((planned) => planned.step === step).flatMap((planned) => planned.files);
    expect(filesOf("backup-01-galera-backup").map((file) => file.path)).toEqual(
      expect.arrayContaining(["/usr/local/sbin/keybuzz-galera-backup-receive", "/etc/keybuzz/galera-backup/authorized_keys"]),
    );
    for (const name of ["maria-01", "maria-02", "maria-03"]) {
      expect(byName.get(`${name}-galera-backup`)?.dependsOn).toEqual(expect.arrayContaining(["backup-01-galera-backup"]));
      const paths = filesOf(`${name}-galera-backup`).map((file) => file.path);
      expect(paths).toContain("/usr/local/sbin/keybuzz-galera-restore");
      expect(paths.includes("/etc/systemd/system/keybuzz-galera-backup.timer")).toBe(name === "maria-03");
      expect(paths.includes("/etc/keybuzz/galera-backup/id_ed25519")).toBe(name === "maria-03");
    }
    // The backup alerts watch both systems (issue 17 item 6).
    const rules = run.registrations.find((registration) => registration.type === "kubernetes:monitoring.coreos.com/v1:PrometheusRule");
    const backupGroup = (rules?.inputs.spec as { groups: { name: string; rules: { alert: string; expr: string }[] }[] }).groups.find(
      (group) => group.name === "keybuzz-backups",
    );
    expect(backupGroup?.rules.map((rule) => rule.alert)).toEqual(["BackupTooOld", "BackupNeverSucceeded", "PostgresWalArchivingFailing"]);
    expect(backupGroup?.rules[0].expr).toContain('system=~"postgres|galera"');
    // The private key reaches maria-03 only through the step's secret stdin.
    expect(isSecretValue(byName.get("maria-03-galera-backup")?.inputs.stdin)).toBe(true);
    for (const file of filesOf("maria-03-galera-backup")) expect(file.content).not.toMatch(/mock-secret|PRIVATE KEY/);
  });

  it("staging (no backup server): no Galera backup", async () => {
    const run = await runProgram("staging");
    expect(run.registrations.filter((registration) => registration.name.includes("galera-backup"))).toEqual([]);
    const rules = run.registrations.find((registration) => registration.type === "kubernetes:monitoring.coreos.com/v1:PrometheusRule");
    expect(JSON.stringify(rules?.inputs.spec)).not.toContain("keybuzz-backups");
  });
});
