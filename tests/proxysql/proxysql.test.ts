import {
  DEFAULT_PROXYSQL_SETTINGS,
  galeraBackends,
  mariadbServerVersion,
  renderProxySqlCnf,
  renderProxySqlRunScript,
  renderProxySqlVerifyScript,
} from "../../components/data/proxysql";
import { secretKeysIn } from "../../components/lib/remote";
import { isSecretValue, MockRun, reveal, runProgram } from "../../scripts/lib/mock-engine";

const NODES = [
  { name: "maria-01", address: "10.0.0.170" },
  { name: "maria-02", address: "10.0.0.171" },
  { name: "maria-03", address: "10.0.0.172" },
];

/** The text of one top-level libconfig setting (`name = … )`) of a rendered proxysql.cnf. */
function block(cnf: string, section: string): string {
  const start = cnf.indexOf(`${section} =`);
  expect(start).toBeGreaterThanOrEqual(0);
  return cnf.slice(start, cnf.indexOf("\n)", start));
}

describe("renderProxySqlCnf", () => {
  const cnf = renderProxySqlCnf({ backends: galeraBackends(NODES), serverVersion: mariadbServerVersion("mariadb:10.11.14") });

  it("listens on 0.0.0.0:3306 (never the LB IP) with the admin interface on localhost only", () => {
    expect(cnf).toContain('interfaces = "0.0.0.0:3306"');
    expect(cnf).toContain('mysql_ifaces = "127.0.0.1:6032"');
    expect(cnf).not.toContain("10.0.0.20");
    expect(cnf).toContain('admin_credentials = "admin:{{secret:proxysql-admin}}"');
  });

  it("declares Galera hostgroups with one writer, readers = backup writers, and an offline group", () => {
    const galera = block(cnf, "mysql_galera_hostgroups");
    expect(galera).toMatch(/writer_hostgroup = 10\n/);
    expect(galera).toMatch(/backup_writer_hostgroup = 20\n/);
    expect(galera).toMatch(/reader_hostgroup = 30\n/);
    expect(galera).toMatch(/offline_hostgroup = 40\n/);
    expect(galera).toMatch(/max_writers = 1\n/);
    expect(galera).toMatch(/writer_is_also_reader = 2\n/);
  });

  it("lists every Galera node with an explicit, distinct weight, the first node preferred", () => {
    const servers = block(cnf, "mysql_servers")
      .split("\n")
      .filter((line) => line.includes("address"));
    expect(servers).toHaveLength(3);
    const weights = servers.map((line) => Number(/weight = (\d+)/.exec(line)?.[1]));
    expect(weights).toEqual([1000, 900, 800]);
    expect(servers[0]).toContain('address = "10.0.0.170", port = 3306, hostgroup = 10');
    expect(servers[2]).toContain('comment = "maria-03"');
  });

  it("routes SELECT … FOR UPDATE to the writer before other SELECTs go to readers", () => {
    const rules = block(cnf, "mysql_query_rules")
      .split("\n")
      .filter((line) => line.includes("rule_id"));
    expect(rules[0]).toMatch(/rule_id = 1, .*match_digest = "\^SELECT\.\*FOR UPDATE", destination_hostgroup = 10, apply = 1/);
    expect(rules[1]).toMatch(/rule_id = 2, .*match_digest = "\^SELECT", destination_hostgroup = 30, apply = 1/);
  });

  it("has the erpnext user on the writer hostgroup, the monitor user, and MariaDB's version", () => {
    expect(block(cnf, "mysql_users")).toContain('username = "erpnext", password = "{{secret:mariadb-app}}", default_hostgroup = 10');
    expect(cnf).toContain('monitor_username = "monitor"');
    expect(cnf).toContain('server_version = "10.11.14-MariaDB"');
    expect(secretKeysIn(cnf).sort()).toEqual(["mariadb-app", "mariadb-monitor", "proxysql-admin"]);
  });

  it("renders other addresses and hostgroups from settings (loopback tests)", () => {
    const settings = {
      ...DEFAULT_PROXYSQL_SETTINGS,
      listenAddress: "127.0.20.1",
      port: 16033,
      adminPort: 16032,
      hostgroups: { writer: 1, backupWriter: 2, reader: 3, offline: 4 },
    };
    const loopback = renderProxySqlCnf({
      backends: galeraBackends([{ name: "n1", address: "127.0.10.1" }], 13306),
      serverVersion: "10.11.14-MariaDB",
      settings,
    });
    expect(loopback).toContain('interfaces = "127.0.20.1:16033"');
    expect(loopback).toContain('mysql_ifaces = "127.0.0.1:16032"');
    expect(loopback).toContain('address = "127.0.10.1", port = 13306, hostgroup = 1');
  });

  it("refuses an image tag without a full version", () => {
    expect(() => mariadbServerVersion("mariadb@sha256:abc")).toThrow(/images\.mariadb/);
  });
});

describe("ProxySQL step scripts", () => {
  it("recreates the container only when image or configuration changed, with --initial", () => {
    const script = renderProxySqlRunScript("proxysql/proxysql:2.6.4");
    expect(script).toContain('if [ "$current" != "$spec" ] || [ "$running" != true ]; then');
    expect(script).toContain("--network host");
    expect(script).toContain("--initial");
  });

  it("checks one ONLINE writer, then a write and a read as the app user", () => {
    const script = renderProxySqlVerifyScript({ clientImage: "mariadb:10.11.14", hostName: "proxysql-01", appDatabase: "erpnext" });
    expect(script).toContain("FROM runtime_mysql_servers WHERE hostgroup_id=10 AND status='ONLINE';");
    expect(script).toContain("REPLACE INTO keybuzz_healthcheck");
    expect(script).toContain("SELECT token FROM keybuzz_healthcheck WHERE probe='proxysql-01';");
  });
});

describe("the program (prod)", () => {
  let program: MockRun;
  beforeAll(async () => {
    program = await runProgram("prod");
  });

  it("deploys ProxySQL on both nodes with one identical proxysql.cnf, one node at a time, after Galera", () => {
    const { steps, registrations } = program;
    const order = steps.map((step) => step.step);
    const cnfs = ["proxysql-01", "proxysql-02"].map((host) => {
      const step = steps.find((candidate) => candidate.step === `proxysql-${host}`);
      expect(step?.host).toBe(host);
      return step?.files.find((file) => file.path === "/opt/keybuzz/proxysql/config/proxysql.cnf")?.content;
    });
    expect(cnfs[0]).toBeDefined();
    expect(cnfs[1]).toBe(cnfs[0]);
    expect(cnfs[0]).not.toMatch(/mock-secret/);
    expect(order.indexOf("galera-maria-03-verify")).toBeLessThan(order.indexOf("proxysql-proxysql-01"));
    expect(order.indexOf("proxysql-proxysql-01-verify")).toBeLessThan(order.indexOf("proxysql-proxysql-02"));
    for (const name of ["proxysql-proxysql-01", "proxysql-proxysql-02"]) {
      const command = registrations.find((registration) => registration.name === name);
      expect(isSecretValue(command?.inputs.stdin)).toBe(true);
      expect(String(reveal(command?.inputs.create))).not.toMatch(/mock-secret/);
      expect(String(reveal(command?.inputs.stdin))).not.toBe("");
    }
  });

  it("health-checks ProxySQL on both nodes behind the load balancer 10.0.0.20:3306", () => {
    const { registrations } = program;
    const attachment = registrations.find(
      (registration) =>
        registration.type === "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork" && registration.inputs.ip === "10.0.0.20",
    );
    expect(attachment?.inputs.enablePublicInterface).toBe(false);
    const service = registrations.find((registration) => registration.name === "lb-mariadb-mariadb");
    expect(service?.inputs).toMatchObject({ listenPort: 3306, destinationPort: 3306, healthCheck: { protocol: "tcp", port: 3306 } });
    const targets = registrations.filter(
      (registration) =>
        registration.type === "hcloud:index/loadBalancerTarget:LoadBalancerTarget" && registration.name.startsWith("lb-mariadb-"),
    );
    expect(targets.map((target) => target.name).sort()).toEqual(["lb-mariadb-proxysql-01", "lb-mariadb-proxysql-02"]);
    for (const target of targets) expect(target.inputs.usePrivateIp).toBe(true);
  });
});
