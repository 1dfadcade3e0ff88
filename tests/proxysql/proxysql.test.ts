import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { loadVersions, parseInventory, parseVersions, serversOf } from "../../config";
import {
  DEFAULT_PROXYSQL_CNF_SETTINGS,
  DEFAULT_PROXYSQL_HOST_SETTINGS,
  galeraBackends,
  mariadbServerVersion,
  parseProxySqlSettings,
  ProxySqlLayer,
  renderProxySqlCnf,
  renderProxySqlNodeStep,
  renderProxySqlVerifyStep,
} from "../../components/data/proxysql";
import { secretKeysIn } from "../../components/lib/remote";
import { isSecretValue, MockRun, reveal, runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { isConfigError } from "../../config";
import { declared, mockHosts } from "../support/component-mocks";
import { rawStackConfig } from "../support/stack-config";
import { tempDir } from "../support/tools";

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
    // The REST API serves the Prometheus metrics (the proxysql scrape job); UFW limits it to Kubernetes.
    expect(cnf).toMatch(/^ {4}restapi_enabled = true\n {4}restapi_port = 6070$/m);
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
      ...DEFAULT_PROXYSQL_CNF_SETTINGS,
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

  it("is refused by config/ first: a digest-only images.mariadb pin is a versions.yaml error", () => {
    const raw = JSON.parse(JSON.stringify(loadVersions())) as { images: Record<string, string> };
    raw.images.mariadb = `mariadb@sha256:${"a".repeat(64)}`;
    expect(() => parseVersions(raw)).toThrow(/versions\.yaml: images\.mariadb: must carry its x\.y\.z tag/);
    raw.images.mariadb = `mariadb:10.11.18@sha256:${"a".repeat(64)}`;
    expect(parseVersions(raw).images.mariadb).toBe(raw.images.mariadb);
  });
});

describe("keybuzz:proxysql settings", () => {
  it("defaults to today's values, renders an operator's value, and rejects a bad one naming the key", () => {
    expect(parseProxySqlSettings(undefined)).toEqual({
      threads: 4,
      maxConnections: 2048,
      maxConnectionsPerBackend: 100,
      maxTransactionsBehind: 100,
    });
    const settings = { ...DEFAULT_PROXYSQL_CNF_SETTINGS, ...parseProxySqlSettings({ threads: 8, maxConnectionsPerBackend: 150 }) };
    const cnf = renderProxySqlCnf({ backends: galeraBackends(NODES), serverVersion: "10.11.14-MariaDB", settings });
    expect(cnf).toContain("    threads = 8\n");
    expect(cnf).toContain("    max_connections = 2048\n");
    expect(cnf).toContain('max_connections = 150, comment = "maria-01"');
    expect(() => parseProxySqlSettings({ threads: 0 })).toThrow(/keybuzz:proxysql\.threads/);
    expect(() => parseProxySqlSettings({ thread: 4 })).toThrow(/keybuzz:proxysql/);
  });
});

/**
 * The deploy step's body in bash with a fake `docker` that keeps one container's label, running
 * state and `docker run` count in files: what the step recreates, and when it leaves it alone.
 */
describe("the ProxySQL deploy step (fake docker)", () => {
  const dir = tempDir("proxysql-step");
  const host = {
    ...DEFAULT_PROXYSQL_HOST_SETTINGS,
    configFile: path.join(dir, "config", "proxysql.cnf"),
    startedFile: path.join(dir, "config", "proxysql.cnf.started"),
    dataDir: path.join(dir, "data"),
  };
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.dirname(host.configFile), { recursive: true });
  fs.writeFileSync(
    path.join(bin, "docker"),
    `#!/bin/bash
state=${dir}/container
case "$1 $2" in
  "inspect -f")
    [ -f "$state.label" ] || exit 1
    case "$3" in *Labels*) cat "$state.label" ;; *) cat "$state.running" ;; esac ;;
  "image inspect") exit 0 ;;
  "rm -f") rm -f "$state.label" "$state.running" ;;
  "run -d")
    for arg in "$@"; do case "$arg" in keybuzz.spec=*) echo "\${arg#keybuzz.spec=}" >"$state.label" ;; esac; done
    echo true >"$state.running"
    echo run >>"${dir}/runs" ;;
  *) echo "fake docker: $*" >&2; exit 2 ;;
esac
`,
    { mode: 0o755 },
  );
  const runs = () => (fs.existsSync(path.join(dir, "runs")) ? fs.readFileSync(path.join(dir, "runs"), "utf8").split("\n").length - 1 : 0);
  const step = (image: string) => {
    const result = spawnSync("/bin/bash", ["-c", `set -euo pipefail\n${renderProxySqlNodeStep(image, host)}`], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return result.stdout;
  };

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("starts a missing container, then leaves a current one alone", () => {
    fs.writeFileSync(host.configFile, "datadir = 1\n");
    expect(step("proxysql/proxysql:2.6.6")).toContain("proxysql: (re)started (container missing");
    expect(fs.statSync(host.startedFile).mode & 0o777).toBe(0o600);
    expect(step("proxysql/proxysql:2.6.6")).toBe("");
    expect(runs()).toBe(1);
  });

  it("recreates it when proxysql.cnf differs from the one it started with (a rotated password), also on a retry", () => {
    fs.writeFileSync(host.configFile, "datadir = 2\n");
    expect(step("proxysql/proxysql:2.6.6")).toContain("configuration changed");
    expect(runs()).toBe(2);
    // A run that wrote the file but failed before the restart: the next run still restarts.
    fs.writeFileSync(host.configFile, "datadir = 3\n");
    fs.writeFileSync(host.startedFile, "stale\n");
    step("proxysql/proxysql:2.6.6");
    expect(runs()).toBe(3);
  });

  it("recreates it when it is stopped or its image changed", () => {
    fs.writeFileSync(path.join(dir, "container.running"), "false\n");
    expect(step("proxysql/proxysql:2.6.6")).toContain("container stopped");
    expect(step("proxysql/proxysql:2.6.7")).toContain("container outdated");
    expect(step("proxysql/proxysql:2.6.7")).toBe("");
    expect(runs()).toBe(5);
  });
});

describe("ProxySQL step scripts", () => {
  it("runs the container with --initial on the host network through the shared container lifecycle", () => {
    const script = renderProxySqlNodeStep("proxysql/proxysql:2.6.4");
    expect(script).toContain("kb_proxysql_state() {");
    expect(script).toContain('if [ "$state" != current ] || [ "$started" != "$config" ]; then');
    expect(script).toContain("--network host");
    expect(script).toContain("--initial");
  });

  it("checks one ONLINE writer, then a write and a read as the app user", () => {
    const script = renderProxySqlVerifyStep({ clientImage: "mariadb:10.11.14", hostName: "proxysql-01", appDatabase: "erpnext" });
    expect(script).toContain("KB_WRITER_HOSTGROUP='10'");
    expect(script).toContain("FROM runtime_mysql_servers WHERE hostgroup_id=$KB_WRITER_HOSTGROUP AND status='ONLINE';");
    expect(script).toContain("REPLACE INTO keybuzz_healthcheck");
    expect(script).toContain("KB_HOST_NAME='proxysql-01'");
    expect(script).toContain("SELECT token FROM keybuzz_healthcheck WHERE probe='$KB_HOST_NAME';");
  });
});

describe("ProxySqlLayer on the mock engine", () => {
  it("waits for each node's base OS and Galera, rolls one node at a time, and exposes the last verification", async () => {
    const inventory = parseInventory(rawStackConfig("prod"));
    const registerOutputs = jest.spyOn(
      pulumi.ComponentResource.prototype as unknown as { registerOutputs(outputs: object): void },
      "registerOutputs",
    );
    let layer: ProxySqlLayer | undefined;
    const resources = await declared(() => {
      const { list: hosts, ready } = mockHosts(serversOf(inventory, "proxysql"));
      const galeraVerified = new hcloud.Server("galera-verified", { serverType: "cx23", image: "ubuntu-24.04" });
      layer = new ProxySqlLayer("proxysql", {
        hosts,
        versions: loadVersions(),
        settings: parseProxySqlSettings(undefined),
        secrets: { admin: pulumi.secret("a"), app: pulumi.secret("b"), monitor: pulumi.secret("c") },
        after: { hosts: ready, all: [galeraVerified] },
        galeraNodes: NODES,
      });
    });
    const deps = (name: string) => resources.get(name)?.deps ?? [];
    expect(deps("proxysql-proxysql-01").sort()).toEqual(["galera-verified", "proxysql-01-base"]);
    expect(deps("proxysql-proxysql-01-verify")).toEqual(["proxysql-proxysql-01"]);
    expect(deps("proxysql-proxysql-02")).toEqual(expect.arrayContaining(["proxysql-02-base", "proxysql-proxysql-01-verify"]));
    const verified = layer?.verified as pulumi.CustomResource;
    expect(await new Promise((resolve) => verified.urn.apply(resolve))).toMatch(/::proxysql-proxysql-02-verify$/);
    const own = registerOutputs.mock.calls.find(([outputs]) => "verified" in outputs && outputs.verified === layer?.verified);
    expect(own?.[0]).toEqual({ verified: layer?.verified });
    registerOutputs.mockRestore();
  });
});

describe("the config pass (prod)", () => {
  it("refuses a bad keybuzz:proxysql, no proxysql server and a maria node without a volume before any resource, naming each key", async () => {
    const raw = rawStackConfig("prod") as { servers: { name: string; subrole?: string; volumeSizeGb?: number }[] };
    const servers = raw.servers
      .filter((server) => server.subrole !== "proxysql")
      .map((server) => (server.name === "maria-02" ? { ...server, volumeSizeGb: undefined } : server));
    const { error, registrations } = await runFailingProgram("prod", {
      "keybuzz:servers": JSON.stringify(servers),
      "keybuzz:proxysql": JSON.stringify({ threads: 300 }),
    });
    expect(isConfigError(error)).toBe(true);
    const problems = isConfigError(error) ? error.problems : [];
    expect(problems).toContainEqual("keybuzz:servers: no server has the proxysql role; add at least one");
    expect(problems).toContainEqual(
      expect.stringMatching(/^keybuzz:servers\[\d+\]\.volumeSizeGb: mariadb nodes keep their data on an XFS volume/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^keybuzz:proxysql\.threads: /));
    expect(registrations).toHaveLength(0);
  }, 120_000);
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
    expect(registrations.find((registration) => registration.name === "proxysql-proxysql-01")?.dependsOn).toEqual(
      expect.arrayContaining(["proxysql-01-base-os-verify", "galera-maria-03-verify"]),
    );
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
