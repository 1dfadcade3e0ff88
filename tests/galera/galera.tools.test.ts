import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_GALERA_HOST_SETTINGS,
  DEFAULT_GALERA_SERVER_SETTINGS,
  renderAccountsSql,
  renderGaleraCnf,
  renderSstAuthCnf,
  renderVolumeStep,
} from "../../components/data/galera";
import { renderProxySqlNodeStep, renderProxySqlVerifyStep } from "../../components/data/proxysql";
import { fillSecrets } from "../../components/lib/remote";
import { runProgram } from "../../scripts/lib/mock-engine";
import { requireTool, run, tempDir } from "../support/tools";

/** Real MariaDB 10.11 + Galera 4 (Debian bookworm's mariadb-server, galera-4) and shellcheck. */

const NODES = [
  { name: "maria-01", address: "10.0.0.170" },
  { name: "maria-02", address: "10.0.0.171" },
  { name: "maria-03", address: "10.0.0.172" },
];
const SECRETS = {
  "mariadb-root": "RootPw123",
  "mariadb-app": "AppPw123",
  "mariadb-sst": "SstPw123",
  "mariadb-monitor": "MonPw123",
  "mariadb-exporter": "ExpPw123",
};

/** Writes my.cnf + sst-auth.cnf and an option file including both, as the image reads them. */
function writeNodeConfig(dir: string, cnf: string): string {
  fs.writeFileSync(path.join(dir, "my.cnf"), cnf);
  fs.writeFileSync(path.join(dir, "sst-auth.cnf"), fillSecrets(renderSstAuthCnf(), SECRETS));
  const top = path.join(dir, "top.cnf");
  fs.writeFileSync(top, `!include ${path.join(dir, "my.cnf")}\n!include ${path.join(dir, "sst-auth.cnf")}\n`);
  return top;
}

/**
 * MariaDB's configuration check: `mariadbd --help --verbose` reads every option file, refuses an
 * unknown variable or a Galera-incompatible setting (e.g. binlog_format), and prints the effective
 * values without starting the server or loading the Galera provider. (MariaDB 10.11 has no
 * `--validate-config`; that is a MySQL 8 option, which this mariadbd reports as unknown only after
 * a full start, cluster join included.) Run in an empty network namespace when root: nothing can
 * leave the host whatever the file says.
 */
function checkConfig(top: string): { status: number | null; stdout: string; stderr: string } {
  const mariadbd = requireTool("mariadbd");
  const datadir = tempDir("galera-datadir");
  const args = [`--defaults-file=${top}`, "--user=mysql", `--datadir=${datadir}`, "--help", "--verbose"];
  const isolated = process.getuid?.() === 0 && fs.existsSync("/usr/bin/unshare");
  const result = isolated ? run("/usr/bin/unshare", ["-n", mariadbd, ...args]) : run(mariadbd, args);
  expect(fs.readdirSync(datadir)).toEqual([]);
  fs.rmSync(datadir, { recursive: true, force: true });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `name value` lines of `--help --verbose`, by option name. */
function effective(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split("\n")
      .map((line) => /^([a-z0-9-]+)\s+(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1], match[2].trim()]),
  );
}

describe("mariadbd (Debian 10.11, galera-4) on the rendered my.cnf", () => {
  it.each(NODES)("accepts the configuration of $name and reads the intended values", (node) => {
    requireTool("libgalera_smm.so", ["/usr/lib/galera"]);
    const result = checkConfig(writeNodeConfig(tempDir(`galera-${node.name}`), renderGaleraCnf(node, NODES)));
    expect(result.stderr).not.toMatch(/\[ERROR\]/);
    expect(result.status).toBe(0);
    expect(effective(result.stdout)).toMatchObject({
      "bind-address": node.address,
      "binlog-format": "ROW",
      "innodb-autoinc-lock-mode": "2",
      "wsrep-on": "TRUE",
      "wsrep-provider": "/usr/lib/galera/libgalera_smm.so",
      "wsrep-cluster-address": "gcomm://10.0.0.170:4567,10.0.0.171:4567,10.0.0.172:4567",
      "wsrep-node-name": node.name,
      "wsrep-node-address": `${node.address}:4567`,
      "wsrep-sst-method": "mariabackup",
      "wsrep-sst-auth": "sst:SstPw123",
      "wsrep-provider-options": `gmcast.listen_addr=tcp://${node.address}:4567;ist.recv_addr=${node.address}:4568;gcache.size=2G;pc.recovery=TRUE`,
    });
  });

  it("rejects an unknown variable and a Galera-incompatible binlog format (the check is real)", () => {
    const good = renderGaleraCnf(NODES[0], NODES);
    const unknown = checkConfig(writeNodeConfig(tempDir("galera-unknown"), `${good}wsrep_gcache_size = 2G\n`));
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown variable 'wsrep_gcache_size/);
    const mixed = checkConfig(writeNodeConfig(tempDir("galera-mixed"), good.replace("binlog_format = ROW", "binlog_format = MIXED")));
    expect(mixed.status).not.toBe(0);
    expect(mixed.stderr).toMatch(/binlog_format/);
  });
});

describe("the accounts SQL on a real MariaDB 10.11 (socket only, no network)", () => {
  let server: ChildProcess | undefined;
  let dir = "";
  const socket = () => path.join(dir, "mysqld.sock");
  const sql = (input: string) => run(requireTool("mariadb"), ["--no-defaults", `--socket=${socket()}`, "-uroot", "-N", "-B"], { input });

  beforeAll(async () => {
    const installDb = requireTool("mariadb-install-db");
    const mariadbd = requireTool("mariadbd");
    dir = tempDir("galera-sql");
    fs.chmodSync(dir, 0o777);
    const datadir = path.join(dir, "data");
    const install = run(installDb, [
      "--no-defaults",
      `--datadir=${datadir}`,
      "--user=mysql",
      "--auth-root-authentication-method=socket",
      "--skip-test-db",
    ]);
    expect(install.status).toBe(0);
    // A standalone server (wsrep off): the statements are what is checked, not replication.
    server = spawn(
      mariadbd,
      [
        "--no-defaults",
        `--datadir=${datadir}`,
        `--socket=${socket()}`,
        "--skip-networking",
        "--user=mysql",
        `--pid-file=${path.join(dir, "pid")}`,
        `--log-error=${path.join(dir, "error.log")}`,
      ],
      {
        stdio: "ignore",
      },
    );
    for (let attempt = 0; attempt < 120 && sql("SELECT 1;").status !== 0; attempt++)
      await new Promise((resolve) => setTimeout(resolve, 250));
    expect(sql("SELECT 1;").status).toBe(0);
  }, 90_000);

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server?.once("exit", resolve));
      server.kill("SIGTERM");
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("creates the database and accounts, applies twice without error, monitor gets USAGE only", () => {
    const accounts = fillSecrets(renderAccountsSql(), SECRETS);
    for (let pass = 0; pass < 2; pass++) {
      const result = sql(accounts);
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    }
    expect(sql("SHOW DATABASES LIKE 'erpnext';").stdout.trim()).toBe("erpnext");
    expect(sql("SHOW GRANTS FOR 'monitor'@'%';").stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^GRANT USAGE ON \*\.\* TO `monitor`@`%` IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'$/),
    ]);
    expect(sql("SHOW GRANTS FOR 'sst'@'localhost';").stdout).toMatch(
      /GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON \*\.\*/,
    );
    expect(sql("SHOW GRANTS FOR 'erpnext'@'%';").stdout).toContain("GRANT ALL PRIVILEGES ON `erpnext`.* TO `erpnext`@`%`");
    // mysqld_exporter: status and process list, no table, at most 3 connections.
    expect(sql("SHOW GRANTS FOR 'exporter'@'%';").stdout.trim().split("\n")).toEqual([
      expect.stringMatching(
        /^GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON \*\.\* TO `exporter`@`%` IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}' WITH MAX_USER_CONNECTIONS 3$/,
      ),
    ]);
  });
});

describe("shellcheck", () => {
  it("passes the recovery script, keybuzz-galera and the Galera and ProxySQL step scripts", () => {
    const shellcheck = requireTool("shellcheck");
    const scripts = [
      ...["galera-node.sh", "galera-start.sh", "recover.sh", "volume.sh"].map((name) => path.join("galera", name)),
      path.join("..", "tests", "galera", "volume-step.sh"),
      ...["proxysql-node.sh", "verify.sh"].map((name) => path.join("proxysql", name)),
    ].map((name) => path.join(__dirname, "..", "..", "scripts", name));
    const result = run(shellcheck, ["--shell=bash", ...scripts]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  it.each(["prod", "staging"])("passes every rendered Galera and ProxySQL step script (%s)", async (stack) => {
    const shellcheck = requireTool("shellcheck");
    const { steps } = await runProgram(stack);
    const dir = tempDir(`galera-steps-${stack}`);
    const mine = steps.filter((step) => step.step.startsWith("galera-") || step.step.startsWith("proxysql-"));
    expect(mine.length).toBeGreaterThanOrEqual(stack === "prod" ? 14 : 12);
    const files = mine.map((step) => {
      const file = path.join(dir, `${step.step}.sh`);
      fs.writeFileSync(file, step.script);
      return file;
    });
    const standalone = path.join(dir, "proxysql-bodies.sh");
    fs.writeFileSync(
      standalone,
      `#!/usr/bin/env bash\nset -euo pipefail\n${renderProxySqlNodeStep("proxysql/proxysql:2.6.4")}\n${renderProxySqlVerifyStep({ clientImage: "mariadb:10.11.14", hostName: "proxysql-01", appDatabase: "erpnext" })}\n`,
    );
    // The shared step preamble (components/lib/remote.ts) trips info-level notes; warnings and errors fail.
    const result = run(shellcheck, ["--shell=bash", "--severity=warning", ...files, standalone]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });
});

/**
 * The volume step's body in a private mount namespace (tests/galera/volume-step.sh): the test's own
 * /dev/disk/by-id link and /etc/fstab, fakes for the block-device tools, real bash, awk and grep.
 */
describe("the Galera volume step (kb_xfs_volume, private mount namespace)", () => {
  const root = tempDir("galera-volume");
  const data = path.join(root, "mnt", "data");
  const host = {
    ...DEFAULT_GALERA_HOST_SETTINGS,
    dataDir: data,
    configDir: path.join(root, "mnt", "config"),
    secretDir: path.join(root, "mnt", "secrets"),
  };
  const body = path.join(root, "body.sh");
  const fstab = path.join(root, "etc", "fstab");
  const calls = () => (fs.existsSync(path.join(root, "calls")) ? fs.readFileSync(path.join(root, "calls"), "utf8") : "");
  const step = () => run("/bin/bash", [path.join(__dirname, "volume-step.sh"), body, root]);

  beforeAll(() => {
    requireTool("unshare");
    for (const dir of ["dev/disk/by-id", "etc", "state"]) fs.mkdirSync(path.join(root, dir), { recursive: true });
    fs.writeFileSync(path.join(root, "dev", "sdb"), "");
    fs.symlinkSync("../../sdb", path.join(root, "dev", "disk", "by-id", "scsi-0HC_Volume_123"));
    fs.writeFileSync(body, renderVolumeStep(host));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it("formats a blank volume, replaces the old by-id fstab entry with one by UUID, keeps the other lines, mounts", () => {
    fs.writeFileSync(path.join(root, "state", "fstype"), "");
    fs.writeFileSync(fstab, `UUID=1111 / ext4 defaults 0 1\n/dev/disk/by-id/scsi-0HC_Volume_123 ${data} xfs defaults,noatime,nofail 0 2\n`);
    const result = step();
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`data volume: /dev/sdb (xfs) on ${data}\n`);
    expect(fs.readFileSync(fstab, "utf8")).toBe(
      `UUID=1111 / ext4 defaults 0 1\nUUID=6f1e2d3c-0000-4000-8000-00000000abcd ${data} xfs defaults,noatime,nofail 0 2\n`,
    );
    expect(calls()).toContain("mkfs.xfs -q /dev/sdb\n");
    expect(calls()).toContain(`mount ${data}\n`);
    expect(fs.statSync(host.secretDir).mode & 0o777).toBe(0o700);
  });

  it("changes nothing on a re-run", () => {
    const before = calls();
    const result = step();
    expect(result.status).toBe(0);
    const again = calls().slice(before.length);
    expect(again).not.toMatch(/mkfs|daemon-reload|^mount /m);
  });

  it("refuses a volume that holds another file system, naming it", () => {
    fs.writeFileSync(path.join(root, "state", "fstype"), "ext4\n");
    fs.writeFileSync(fstab, "UUID=1111 / ext4 defaults 0 1\n");
    const result = step();
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("diagnosis: data volume: /dev/sdb holds a ext4 file system, expected xfs; refusing to touch it");
  });
});

describe("settings used by the loopback tests", () => {
  it("accepts a loopback node's my.cnf (127.0.10.x, temp datadir and socket)", () => {
    const dir = tempDir("galera-loopback");
    const loopback = [1, 2, 3].map((n) => ({ name: `node${n}`, address: `127.0.10.${n}` }));
    const settings = {
      ...DEFAULT_GALERA_SERVER_SETTINGS,
      datadir: path.join(dir, "data"),
      socket: path.join(dir, "node.sock"),
      gcacheSize: "64M",
      innodbBufferPoolSize: "128M",
    };
    const result = checkConfig(writeNodeConfig(dir, renderGaleraCnf(loopback[0], loopback, settings)));
    expect(result.stderr).not.toMatch(/\[ERROR\]/);
    expect(result.status).toBe(0);
    expect(effective(result.stdout)["wsrep-cluster-address"]).toBe("gcomm://127.0.10.1:4567,127.0.10.2:4567,127.0.10.3:4567");
  });
});
