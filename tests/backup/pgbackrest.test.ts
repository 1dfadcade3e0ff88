import { spawn } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import {
  backupHostsOf,
  parseBackupSettings,
  pgBackRestPatroniParameters,
  renderBackupRunScript,
  renderDbNodeConfig,
  renderRepoHostConfig,
  renderRepoHostStepBody,
  renderRepoHostUnits,
  PGBACKREST_SECRET_KEYS,
  productionRestoreClusterCommands,
  renderRestoreClusterScript,
} from "../../components/backup/pgbackrest";
import { TEXTFILE_DIR } from "../../components/observability/exporters/render";
import { renderPatroniConfigObject } from "../../components/data/postgres/render";
import { DEFAULT_POSTGRES_LAYOUT, parsePostgresSettings } from "../../components/data/postgres/settings";
import { ConfigError, parseInventory } from "../../config";
import { loadVersions } from "../../config/versions";
import { secretRef } from "../../components/lib/remote";
import { isSecretValue, runProgram } from "../../scripts/lib/mock-engine";
import { fakeBin, runBash } from "../support/bash-fakes";
import { rawStackConfig } from "../support/stack-config";
import { tempDir } from "../support/tools";

const settings = parseBackupSettings(undefined).postgres;
const repoHost = { name: "backup-01", address: "10.0.0.153" };
const node = { name: "db-master-01", address: "10.0.0.120" };
const members = [node, { name: "db-slave-01", address: "10.0.0.121" }, { name: "db-slave-02", address: "10.0.0.122" }];

/** `key=value` lines of one `[section]` of a pgbackrest.conf. */
function sectionOf(conf: string, name: string): Record<string, string> {
  const body = conf.split(`[${name}]\n`)[1]?.split("\n[")[0] ?? "";
  return Object.fromEntries(
    body
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

describe("keybuzz:backup settings", () => {
  it("defaults to a weekly full, a daily differential, 4 fulls and 7 differentials kept, a 60 s archive_timeout", () => {
    expect(settings).toMatchObject({
      stanza: "keybuzz",
      fullSchedule: "Sun *-*-* 01:00:00",
      diffSchedule: "Mon..Sat *-*-* 01:00:00",
      retentionFull: 4,
      retentionDiff: 7,
      archiveTimeoutSeconds: 60,
    });
    expect(settings.s3).toBeUndefined();
  });

  it("names the bad key", () => {
    expect(() => parseBackupSettings({ postgres: { retentionFull: 0 } })).toThrow(/keybuzz:backup\.postgres\.retentionFull/);
    expect(() => parseBackupSettings({ postgres: { fullSchedule: "Sun; rm -rf /" } })).toThrow(/keybuzz:backup\.postgres\.fullSchedule/);
    expect(() => parseBackupSettings({ postgres: { retentoinFull: 3 } })).toThrow(ConfigError);
  });
});

describe("the repository host", () => {
  it("is the prod inventory's backup-01, with the three DB nodes", () => {
    const hosts = backupHostsOf(parseInventory(rawStackConfig("prod")));
    expect(hosts?.repoHost).toEqual(repoHost);
    expect(hosts?.members.map((member) => member.name)).toEqual(members.map((member) => member.name));
  });

  it("is absent in staging (no backup server: no backups), and two backup servers are a config error", () => {
    expect(backupHostsOf(parseInventory(rawStackConfig("staging")))).toBeUndefined();
    const prod = parseInventory(rawStackConfig("prod"));
    const twice = {
      ...prod,
      servers: [...prod.servers, { ...prod.servers.find((server) => server.group === "backup")!, name: "backup-02" }],
    };
    expect(() => backupHostsOf(twice)).toThrow(/backup group .* found 2 servers \(backup-01, backup-02\)/);
  });
});

describe("pgbackrest.conf", () => {
  it("on a DB node: WAL pushed asynchronously to backup-01 over TLS; its own TLS server accepts backup-01 only", () => {
    const conf = renderDbNodeConfig({ node, repoHost, settings });
    const global = sectionOf(conf, "global");
    expect(global).toMatchObject({
      // A name: pgBackRest checks the certificate's DNS names, not its IP addresses.
      "repo1-host": "backup-01",
      "repo1-host-type": "tls",
      "repo1-host-port": "8432",
      "repo1-path": "/var/lib/pgbackrest",
      "repo1-host-cert-file": "/etc/keybuzz/postgres/tls/node.crt",
      "archive-async": "y",
      "spool-path": "/opt/keybuzz/postgres/pgbackrest/spool",
      "tls-server-address": "10.0.0.120",
      "tls-server-auth": "backup-01=keybuzz",
    });
    expect(sectionOf(conf, "keybuzz")).toEqual({
      "pg1-path": "/opt/keybuzz/postgres/data",
      "pg1-port": "5432",
      "pg1-socket-path": "/opt/keybuzz/postgres/pgbackrest",
    });
    expect(conf).not.toContain("repo2");
  });

  it("on backup-01: retention by count, the TLS server for the DB nodes, one pgN-host per DB node", () => {
    const conf = renderRepoHostConfig({ repoHost, members: members.map((member) => ({ node: member })), settings });
    expect(sectionOf(conf, "global")).toMatchObject({
      "repo1-path": "/var/lib/pgbackrest",
      "repo1-retention-full-type": "count",
      "repo1-retention-full": "4",
      "repo1-retention-diff": "7",
      "backup-standby": "y",
    });
    expect(conf).toContain(
      "\ntls-server-auth=db-master-01=keybuzz\ntls-server-auth=db-slave-01=keybuzz\ntls-server-auth=db-slave-02=keybuzz\n",
    );
    const stanza = sectionOf(conf, "keybuzz");
    expect(members.map((_, index) => stanza[`pg${index + 1}-host`])).toEqual(members.map((member) => member.name));
    expect(stanza["pg3-host-type"]).toBe("tls");
  });

  it("with S3: an encrypted repo2 on both sides, its credentials and cipher key only as secret placeholders", () => {
    const withS3 = parseBackupSettings({
      postgres: { s3: { endpoint: "fsn1.your-objectstorage.com", bucket: "keybuzz-backups", region: "fsn1" } },
    }).postgres;
    for (const conf of [
      renderDbNodeConfig({ node, repoHost, settings: withS3 }),
      renderRepoHostConfig({ repoHost, members: [{ node }], settings: withS3 }),
    ]) {
      expect(sectionOf(conf, "global")).toMatchObject({
        "repo2-type": "s3",
        "repo2-s3-bucket": "keybuzz-backups",
        "repo2-cipher-type": "aes-256-cbc",
        "repo2-s3-key": secretRef(PGBACKREST_SECRET_KEYS.s3Key),
        "repo2-s3-key-secret": secretRef(PGBACKREST_SECRET_KEYS.s3KeySecret),
        "repo2-cipher-pass": secretRef(PGBACKREST_SECRET_KEYS.cipherPass),
      });
    }
  });
});

describe("WAL archiving in Patroni", () => {
  it("merges archive_mode, the async archive-push, archive_timeout and the second socket directory into every node's parameters", () => {
    const extraParameters = pgBackRestPatroniParameters(settings);
    const config = renderPatroniConfigObject({ node, members, settings: parsePostgresSettings({}), extraParameters }) as {
      postgresql: { parameters: Record<string, unknown> };
    };
    expect(config.postgresql.parameters).toMatchObject({
      archive_mode: "on",
      archive_command: "pgbackrest --config=/etc/keybuzz/postgres/pgbackrest.conf --stanza=keybuzz archive-push %p",
      archive_timeout: 60,
      unix_socket_directories: "/var/run/postgresql,/opt/keybuzz/postgres/pgbackrest",
    });
  });

  it("leaves patroni.yml as it was without the hook", () => {
    const config = renderPatroniConfigObject({ node, members, settings: parsePostgresSettings({}) }) as {
      postgresql: { parameters: Record<string, unknown> };
    };
    expect(config.postgresql.parameters.archive_mode).toBeUndefined();
    expect(config.postgresql.parameters.unix_socket_directories).toBe("/var/run/postgresql");
  });
});

describe("backup-01's timers", () => {
  it("start the full and the differential backup on their schedules, persistent across downtime", () => {
    const units = renderRepoHostUnits(settings);
    expect(units.files["keybuzz-pgbackrest-full.timer"]).toContain("OnCalendar=Sun *-*-* 01:00:00\nPersistent=true");
    expect(units.files["keybuzz-pgbackrest-diff.timer"]).toContain("OnCalendar=Mon..Sat *-*-* 01:00:00");
    expect(units.files["keybuzz-pgbackrest-diff.service"]).toContain("ExecStart=/usr/local/sbin/keybuzz-pgbackrest-backup diff");
    expect(units.enable).toEqual(["keybuzz-pgbackrest-server.service", "keybuzz-pgbackrest-full.timer", "keybuzz-pgbackrest-diff.timer"]);
  });
});

describe("the backup wrapper (scripts/pgbackrest/backup-run.sh)", () => {
  it("writes its metric where the exporters module's node_exporter reads textfiles, and the repository step prepares the files", () => {
    expect(renderBackupRunScript(settings)).toContain(`KB_TEXTFILE_DIR='${TEXTFILE_DIR}'`);
    const body = renderRepoHostStepBody(repoHost, settings, loadVersions());
    expect(body).toContain(`KB_TEXTFILE_DIR='${TEXTFILE_DIR}'`);
    expect(body).toContain('chown postgres:postgres "$metric"');
  });

  function installWrapper(): { dir: string; script: string } {
    const dir = tempDir("pgbackrest-run");
    fs.mkdirSync(path.join(dir, "textfile"));
    // As repo-host.sh leaves them: empty files the wrapper (postgres) may rewrite in root's directory.
    for (const type of ["full", "diff"]) fs.writeFileSync(path.join(dir, "textfile", `keybuzz-backup-postgres-${type}.prom`), "");
    const script = path.join(dir, "keybuzz-pgbackrest-backup");
    const paths = { configFile: path.join(dir, "pgbackrest.conf"), repoPath: dir, workDir: dir, tls: { ca: "", cert: "", key: "" } };
    fs.writeFileSync(script, renderBackupRunScript(settings, paths, path.join(dir, "textfile")), { mode: 0o755 });
    return { dir, script };
  }

  it("runs pgbackrest backup of the type asked and records the success time for node_exporter", () => {
    const { dir, script } = installWrapper();
    const result = runBash(`"${script}" full`, { pgbackrest: `echo "$*" >>"${dir}/calls"` });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "calls"), "utf8")).toBe(`--config=${dir}/pgbackrest.conf --stanza=keybuzz --type=full backup\n`);
    const metric = fs.readFileSync(path.join(dir, "textfile", "keybuzz-backup-postgres-full.prom"), "utf8");
    expect(metric).toMatch(/^keybuzz_backup_last_success_timestamp_seconds\{system="postgres",type="full"\} \d{10}$/m);
  });

  it("records nothing when the backup fails, and refuses an unknown type", () => {
    const { dir, script } = installWrapper();
    expect(runBash(`"${script}" diff`, { pgbackrest: "exit 50" }).status).toBe(50);
    expect(fs.readFileSync(path.join(dir, "textfile", "keybuzz-backup-postgres-diff.prom"), "utf8")).toBe("");
    expect(runBash(`"${script}" weekly`, { pgbackrest: "exit 0" }).status).toBe(2);
  });

  it("never lets two backups overlap: a differential started during a full waits for it", async () => {
    const { dir, script } = installWrapper();
    const bin = fakeBin({
      pgbackrest: `echo "start $* $(date +%s%N)" >>"${dir}/calls"; sleep 1; echo "end $* $(date +%s%N)" >>"${dir}/calls"`,
    });
    const run = (type: string) =>
      new Promise<number>((resolve) => {
        const child = spawn(script, [type], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` }, stdio: "ignore" });
        child.on("exit", (code) => resolve(code ?? -1));
      });
    const full = run("full");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await Promise.all([full, run("diff")])).toEqual([0, 0]);
    const events = fs
      .readFileSync(path.join(dir, "calls"), "utf8")
      .trim()
      .split("\n")
      .map((line) => line.split(" ")[0]);
    expect(events).toEqual(["start", "end", "start", "end"]);
  });
});

describe("the in-cluster restore (scripts/pgbackrest/restore-cluster.sh)", () => {
  /** The rendered script with fakes: patronictl logs its arguments and stdin, the start commands log their call. */
  function restoreHarness() {
    const dir = tempDir("restore-cluster");
    const configDir = path.join(dir, "config");
    fs.mkdirSync(configDir);
    fs.writeFileSync(path.join(configDir, "patroni.yml"), "scope: keybuzz-postgres\nbootstrap:\n  dcs: {ttl: 30}\n");
    const dataDir = path.join(dir, "data");
    const walDir = path.join(dir, "wal");
    for (const sub of [dataDir, walDir]) fs.mkdirSync(sub);
    fs.writeFileSync(path.join(dataDir, "PG_VERSION"), "16\n");
    const calls = path.join(dir, "calls");
    const log = (what: string) => `echo ${what} >>${calls}`;
    const owner = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
    const script = renderRestoreClusterScript({
      settings,
      scope: "keybuzz-postgres",
      paths: { configDir, dataDir, walDir },
      owner,
      pgbackrestConfig: "/etc/keybuzz/postgres/pgbackrest.conf",
      commands: { patronictl: "patronictl", python: "python3", stop: log("stop"), start: log("start"), startRestore: log("start-restore") },
    });
    const fakes = { patronictl: `echo "patronictl $*" >>${calls}\ncat >>${calls}` };
    return {
      dir,
      configDir,
      dataDir,
      walDir,
      calls,
      run: (...args: string[]) => runBash(`set -- ${args.map((arg) => `'${arg}'`).join(" ")}\n${script}`, fakes),
    };
  }

  it("bootstrap: the DCS forgets the cluster, PGDATA and the WAL directory go aside, Patroni starts with the pgbackrest method to the target", () => {
    const harness = restoreHarness();
    const result = harness.run("bootstrap", "2026-12-01 12:00:00+00");
    expect([result.status, result.stderr]).toEqual([0, ""]);
    expect(fs.readFileSync(harness.calls, "utf8")).toBe(
      `patronictl -c ${harness.configDir}/patroni.yml remove keybuzz-postgres\nkeybuzz-postgres\nYes I am aware\nstart-restore\n`,
    );
    expect(fs.readdirSync(harness.dataDir)).toEqual([]);
    expect(fs.readdirSync(harness.walDir)).toEqual([]);
    const aside = fs.readdirSync(harness.dir).filter((entry) => entry.includes(".before-restore."));
    expect(aside.map((entry) => entry.split(".before-restore.")[0]).sort()).toEqual(["data", "wal"]);
    const restore = yaml.load(fs.readFileSync(path.join(harness.configDir, "patroni-restore.yml"), "utf8")) as {
      bootstrap: { method: string; dcs: unknown; pgbackrest: Record<string, unknown> };
    };
    expect(restore.bootstrap).toEqual({
      dcs: { ttl: 30 },
      method: "pgbackrest",
      pgbackrest: {
        command:
          "pgbackrest --config=/etc/keybuzz/postgres/pgbackrest.conf --stanza=keybuzz --link-all --type=time --target='2026-12-01 12:00:00+00' --target-action=promote restore",
        keep_existing_recovery_conf: true,
        no_params: true,
      },
    });
    expect(fs.statSync(path.join(harness.configDir, "patroni-restore.yml")).mode & 0o777).toBe(0o600);
  });

  it("latest replays the whole archive; rejoin only empties the node and starts it; an unknown command is refused", () => {
    const latest = restoreHarness();
    expect(latest.run("bootstrap", "latest").status).toBe(0);
    const latestRestore = yaml.load(fs.readFileSync(path.join(latest.configDir, "patroni-restore.yml"), "utf8")) as {
      bootstrap: { pgbackrest: { command: string } };
    };
    expect(latestRestore.bootstrap.pgbackrest.command).toMatch(/--link-all --type=default restore$/);
    const rejoin = restoreHarness();
    expect(rejoin.run("rejoin").status).toBe(0);
    expect(fs.readFileSync(rejoin.calls, "utf8")).toBe("start\n");
    expect(fs.readdirSync(rejoin.dataDir)).toEqual([]);
    expect(restoreHarness().run("destroy").status).toBe(2);
  });

  it("in production drives the Patroni container: patronictl reads the answers on stdin, the restore container has the node step's options", () => {
    const commands = productionRestoreClusterCommands("keybuzz/patroni:abc", DEFAULT_POSTGRES_LAYOUT.paths, 999, 4096);
    expect(commands.patronictl).toBe(
      "docker run --rm -i --network host --user 999:999 -v /etc/keybuzz/postgres:/etc/keybuzz/postgres:ro --entrypoint patronictl keybuzz/patroni:abc",
    );
    expect(commands.startRestore).toContain("--ulimit nofile=4096:4096 -v /opt/keybuzz/postgres:/opt/keybuzz/postgres");
    expect(commands.startRestore).toMatch(/keybuzz\/patroni:abc \/etc\/keybuzz\/postgres\/patroni-restore\.yml >\/dev\/null$/);
  });
});

describe("the program", () => {
  it("prod: pgBackRest on backup-01 and every DB node after the PostgreSQL verification, then stanza-create + check on backup-01", async () => {
    const run = await runProgram("prod");
    const byName = new Map(run.registrations.map((registration) => [registration.name, registration]));
    for (const name of ["db-master-01", "db-slave-01", "db-slave-02"]) {
      const step = byName.get(`${name}-pgbackrest`);
      expect([name, step?.dependsOn]).toEqual([name, expect.arrayContaining(["db-master-01-postgres-verify", "backup-01-pgbackrest"])]);
      const files = run.steps.filter((planned) => planned.step === `${name}-pgbackrest`).flatMap((planned) => planned.files);
      expect(files.find((file) => file.path === "/etc/keybuzz/postgres/pgbackrest.conf")?.content).toContain(`tls-server-address=`);
      // keybuzz-postgres-restore on every DB node, with the node's own layout.
      expect(files.find((file) => file.path === "/usr/local/sbin/keybuzz-postgres-restore")?.content).toContain(
        "KB_WAL_DIR='/opt/keybuzz/postgres/wal'",
      );
    }
    expect(byName.get("backup-01-pgbackrest-verify")?.dependsOn).toEqual(
      expect.arrayContaining(["backup-01-pgbackrest", "db-master-01-pgbackrest", "db-slave-01-pgbackrest", "db-slave-02-pgbackrest"]),
    );
    const repoFiles = run.steps.filter((planned) => planned.step === "backup-01-pgbackrest").flatMap((planned) => planned.files);
    expect(repoFiles.map((file) => file.path)).toEqual(
      expect.arrayContaining([
        "/etc/pgbackrest/pgbackrest.conf",
        "/etc/pgbackrest/tls/node.key",
        "/etc/systemd/system/keybuzz-pgbackrest-full.timer",
      ]),
    );
    // backup-01's key reaches the host only through the step's secret stdin.
    expect(isSecretValue(byName.get("backup-01-pgbackrest")?.inputs.stdin)).toBe(true);
    for (const file of repoFiles) expect(file.content).not.toMatch(/mock-secret|PRIVATE KEY/);
  });

  it("staging (no backup server): no backup step, and Patroni archives nothing", async () => {
    const run = await runProgram("staging");
    expect(run.registrations.filter((registration) => registration.name.includes("pgbackrest"))).toEqual([]);
    const patroni = run.steps.flatMap((planned) => planned.files).find((file) => file.path === "/etc/keybuzz/postgres/patroni.yml");
    expect(patroni?.content).not.toContain("archive_command");
  });
});
