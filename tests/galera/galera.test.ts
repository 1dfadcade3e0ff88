import { spawnSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { loadVersions, parseInventory, serversOf } from "../../config";
import {
  DEFAULT_GALERA_HOST_SETTINGS,
  DEFAULT_GALERA_SERVER_SETTINGS,
  GaleraCluster,
  galeraNodeFiles,
  parseGaleraSettings,
  renderAccountsSql,
  renderEnvDefaults,
  renderGaleraCnf,
  renderGaleraEnv,
  renderSstAuthCnf,
  renderVolumeStep,
} from "../../components/data/galera";
import { secretKeysIn } from "../../components/lib/remote";
import { commonScript } from "../../components/lib/scripts";
import { isSecretValue, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";
import { declared, mockHosts } from "../support/component-mocks";

const NODES = [
  { name: "maria-01", address: "10.0.0.170" },
  { name: "maria-02", address: "10.0.0.171" },
  { name: "maria-03", address: "10.0.0.172" },
];

/** `key = value` lines of an option file, keyed by option name. */
function options(cnf: string): Record<string, string> {
  return Object.fromEntries(
    cnf
      .split("\n")
      .map((line) => /^([a-z_-]+)\s*=\s*(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1], match[2]]),
  );
}

describe("renderGaleraCnf", () => {
  it.each(NODES)("binds $name to its own private IP and lists every member", (node) => {
    const cnf = options(renderGaleraCnf(node, NODES));
    expect(cnf["bind-address"]).toBe(node.address);
    expect(cnf.wsrep_node_name).toBe(node.name);
    expect(cnf.wsrep_node_address).toBe(`${node.address}:4567`);
    expect(cnf.wsrep_cluster_address).toBe("gcomm://10.0.0.170:4567,10.0.0.171:4567,10.0.0.172:4567");
    expect(cnf.wsrep_sst_receive_address).toBe(`${node.address}:4444`);
    expect(cnf.wsrep_provider_options).toContain(`gmcast.listen_addr=tcp://${node.address}:4567`);
    expect(cnf.wsrep_provider_options).toContain(`ist.recv_addr=${node.address}:4568`);
  });

  it("carries the spec's replication and InnoDB settings, mariabackup SST and a gcache for IST", () => {
    const cnf = options(renderGaleraCnf(NODES[0], NODES));
    expect(cnf).toMatchObject({
      wsrep_on: "ON",
      wsrep_provider: "/usr/lib/galera/libgalera_smm.so",
      wsrep_cluster_name: "keybuzz-galera",
      wsrep_sst_method: "mariabackup",
      binlog_format: "ROW",
      innodb_autoinc_lock_mode: "2",
      default_storage_engine: "InnoDB",
      innodb_buffer_pool_size: "1G",
      innodb_flush_method: "O_DIRECT",
    });
    expect(cnf.wsrep_provider_options).toMatch(/gcache\.size=2G/);
    // The SST credentials live in their own root/mysql-only file, never in my.cnf.
    expect(cnf.wsrep_sst_auth).toBeUndefined();
    expect(secretKeysIn(renderGaleraCnf(NODES[0], NODES))).toEqual([]);
  });

  it("renders a loopback node from settings alone (addresses, ports, datadir, socket)", () => {
    const loopback = [1, 2, 3].map((n) => ({ name: `node${n}`, address: `127.0.10.${n}` }));
    const settings = {
      ...DEFAULT_GALERA_SERVER_SETTINGS,
      port: 13306,
      datadir: "/tmp/g/node2",
      socket: "/tmp/g/node2.sock",
      gcacheSize: "64M",
    };
    const cnf = options(renderGaleraCnf(loopback[1], loopback, settings));
    expect(cnf).toMatchObject({ "bind-address": "127.0.10.2", port: "13306", datadir: "/tmp/g/node2", socket: "/tmp/g/node2.sock" });
    expect(cnf.wsrep_cluster_address).toBe("gcomm://127.0.10.1:4567,127.0.10.2:4567,127.0.10.3:4567");
    expect(cnf.wsrep_provider_options).toContain("gcache.size=64M");
  });
});

describe("secret-bearing files", () => {
  it("puts the SST user and its password placeholder in sst-auth.cnf", () => {
    expect(renderSstAuthCnf()).toBe("[mysqld]\nwsrep_sst_auth = sst:{{secret:mariadb-sst}}\n");
  });

  it("creates database and accounts idempotently, monitor with USAGE only", () => {
    const sql = renderAccountsSql();
    expect(sql).toContain("CREATE DATABASE IF NOT EXISTS `erpnext`");
    for (const user of ["'erpnext'@'%'", "'sst'@'localhost'", "'monitor'@'%'", "'exporter'@'%'"]) {
      expect(sql).toContain(`CREATE USER IF NOT EXISTS ${user}`);
      expect(sql).toContain(`ALTER USER ${user}`);
    }
    expect(sql).toContain("GRANT ALL PRIVILEGES ON `erpnext`.* TO 'erpnext'@'%';");
    expect(sql).toMatch(/GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR.* TO 'sst'@'localhost';/);
    const monitorGrants = sql.split("\n").filter((line) => line.startsWith("GRANT") && line.includes("'monitor'"));
    expect(monitorGrants).toEqual(["GRANT USAGE ON *.* TO 'monitor'@'%';"]);
    expect(sql).toContain("GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'exporter'@'%';");
    expect(secretKeysIn(sql).sort()).toEqual(["mariadb-app", "mariadb-exporter", "mariadb-monitor", "mariadb-sst"]);
    expect(sql).not.toMatch(/DROP|CREATE USER '(?!.*IF NOT EXISTS)/);
  });

  it("writes every secret-bearing file root- or mysql-only, and only the first node gets the accounts SQL", () => {
    const input = { node: NODES[0], members: NODES, image: "mariadb:10.11.14" };
    const files = galeraNodeFiles(input, true);
    for (const file of files.filter((candidate) => secretKeysIn(candidate.content).length > 0)) expect(file.mode).toBe("0600");
    expect(files.find((file) => file.path.endsWith("sst-auth.cnf"))?.owner).toBe("999:999");
    expect(files.map((file) => file.path)).toContain("/opt/keybuzz/mariadb/secrets/accounts.sql");
    expect(galeraNodeFiles({ ...input, node: NODES[1] }, false).map((file) => file.path)).not.toContain(
      "/opt/keybuzz/mariadb/secrets/accounts.sql",
    );
  });
});

describe("renderGaleraEnv", () => {
  it("lists the other nodes as peers and lets the environment override every value", () => {
    const env = renderGaleraEnv({ node: NODES[1], members: NODES, image: "mariadb:10.11.14" });
    expect(env).toContain('GALERA_PEERS="${GALERA_PEERS:-10.0.0.170:4567 10.0.0.172:4567}"');
    expect(env).toContain('GALERA_CLUSTER_SIZE="${GALERA_CLUSTER_SIZE:-3}"');
    expect(env).toContain('GALERA_IMAGE="${GALERA_IMAGE:-mariadb:10.11.14}"');
    expect(env).toContain(`GALERA_DATADIR="\${GALERA_DATADIR:-${DEFAULT_GALERA_HOST_SETTINGS.dataDir}}"`);
  });
});

describe("renderEnvDefaults", () => {
  it("keeps a value set in the environment and falls back to the rendered one", () => {
    const env = renderEnvDefaults({ GALERA_PEERS: "10.0.0.170:4567 10.0.0.172:4567", GALERA_CLUSTER_SIZE: 3 });
    const read = (environment: Record<string, string>) =>
      spawnSync("/bin/bash", ["-c", `${env}\nprintf '%s|%s' "$GALERA_PEERS" "$GALERA_CLUSTER_SIZE"`], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: "/usr/bin:/bin", ...environment },
      });
    expect(read({}).stdout).toBe("10.0.0.170:4567 10.0.0.172:4567|3");
    expect(read({ GALERA_CLUSTER_SIZE: "5" }).stdout).toBe("10.0.0.170:4567 10.0.0.172:4567|5");
  });

  it("refuses a value the shell would expand, and a name that is not an identifier", () => {
    expect(() => renderEnvDefaults({ GALERA_IMAGE: "mariadb:$(id)" })).toThrow(/GALERA_IMAGE/);
    expect(() => renderEnvDefaults({ GALERA_DATADIR: "/opt/x}y" })).toThrow(/GALERA_DATADIR/);
    expect(() => renderEnvDefaults({ "GALERA-X": "1" })).toThrow(/not a shell identifier/);
  });
});

describe("renderVolumeStep", () => {
  it("mounts the Hetzner volume with the shared kb_xfs_volume (XFS, noatime, fstab by UUID) on the datadir", () => {
    const script = renderVolumeStep();
    expect(script).toContain(commonScript("xfs-volume.sh"));
    expect(script).toContain("/dev/disk/by-id/scsi-0HC_Volume_*");
    expect(script).toContain('entry="UUID=$uuid $mount_point xfs defaults,noatime,nofail 0 2"');
    expect(script).toContain("KB_DATA_DIR='/opt/keybuzz/mariadb/data'");
    expect(script).toContain('kb_xfs_volume "$KB_DATA_DIR"');
    expect(script).toMatch(/install -d -m 0700 "\$KB_SECRET_DIR"/);
    expect(script).toContain("KB_SECRET_DIR='/opt/keybuzz/mariadb/secrets'");
  });
});

describe("keybuzz:galera settings", () => {
  it("defaults to the spec and rejects a bad size naming the key", () => {
    expect(parseGaleraSettings(undefined)).toEqual({
      innodbBufferPoolSize: "1G",
      gcacheSize: "2G",
      maxConnections: 500,
      syncTimeoutSeconds: 1800,
    });
    expect(() => parseGaleraSettings({ gcacheSize: "lots" })).toThrow(/keybuzz:galera\.gcacheSize/);
  });
});

describe("GaleraCluster on the mock engine", () => {
  const inventory = parseInventory(rawStackConfig("prod"));

  async function build() {
    return declared(() => {
      const { list: hosts, volumes, ready } = mockHosts(serversOf(inventory, "mariadb"));
      new GaleraCluster("galera", {
        hosts,
        versions: loadVersions(),
        settings: parseGaleraSettings(undefined),
        secrets: {
          root: pulumi.secret("S3cretRoot"),
          app: pulumi.secret("S3cretApp"),
          sst: pulumi.secret("S3cretSst"),
          monitor: pulumi.secret("S3cretMonitor"),
          exporter: pulumi.secret("S3cretExporter"),
        },
        after: { hosts: ready },
        volumes,
      });
    });
  }

  it("bootstraps maria-01, joins maria-02 then maria-03, restarts maria-01 last, then verifies", async () => {
    const resources = await build();
    const deps = (name: string) => resources.get(name)?.deps ?? [];
    expect(deps("galera-maria-01-volume").sort()).toEqual(["maria-01-base", "maria-01-data"]);
    expect(deps("galera-maria-01-bootstrap")).toEqual(["galera-maria-01-volume"]);
    expect(deps("galera-maria-02-join")).toEqual(expect.arrayContaining(["galera-maria-02-volume", "galera-maria-01-bootstrap"]));
    expect(deps("galera-maria-03-join")).toEqual(expect.arrayContaining(["galera-maria-03-volume", "galera-maria-02-join"]));
    expect(deps("galera-maria-03-join")).not.toContain("galera-maria-01-finalize");
    expect(deps("galera-maria-01-finalize")).toEqual(["galera-maria-03-join"]);
    // Each node is verified in turn after the finalize step; the last verification is the module's `verified`.
    expect(deps("galera-maria-01-verify")).toEqual(["galera-maria-01-finalize"]);
    expect(deps("galera-maria-02-verify")).toEqual(["galera-maria-01-verify"]);
    expect(deps("galera-maria-03-verify")).toEqual(["galera-maria-02-verify"]);
    const script = (name: string) => String(reveal(resources.get(name)?.inputs.create));
    // Only maria-01 may bootstrap, and only its first step; the joiners and the last step are members.
    expect(script("galera-maria-01-bootstrap")).toMatch(/keybuzz-galera converge first\n/);
    expect(script("galera-maria-02-join")).toMatch(/keybuzz-galera converge member\n/);
    expect(script("galera-maria-03-join")).toMatch(/keybuzz-galera converge member\n/);
    expect(script("galera-maria-01-finalize")).toMatch(/keybuzz-galera finalize\n/);
  });

  it("exposes the last verification as `verified` and every output through registerOutputs", async () => {
    const registerOutputs = jest.spyOn(
      pulumi.ComponentResource.prototype as unknown as { registerOutputs(outputs: object): void },
      "registerOutputs",
    );
    let cluster: GaleraCluster | undefined;
    const resources = await declared(() => {
      const { list: hosts, volumes, ready } = mockHosts(serversOf(inventory, "mariadb"));
      cluster = new GaleraCluster("galera", {
        hosts,
        versions: loadVersions(),
        settings: parseGaleraSettings(undefined),
        secrets: {
          root: pulumi.secret("r"),
          app: pulumi.secret("a"),
          sst: pulumi.secret("s"),
          monitor: pulumi.secret("m"),
          exporter: pulumi.secret("e"),
        },
        after: { hosts: ready },
        volumes,
      });
    });
    expect(resources.has("galera-maria-03-verify")).toBe(true);
    const verified = cluster?.verified as pulumi.CustomResource;
    expect(await new Promise((resolve) => verified.urn.apply(resolve))).toMatch(/::galera-maria-03-verify$/);
    expect(cluster?.nodes.map((node) => node.name)).toEqual(["maria-01", "maria-02", "maria-03"]);
    const own = registerOutputs.mock.calls.find(([outputs]) => "nodes" in outputs);
    expect(own?.[0]).toEqual({ nodes: cluster?.nodes, verified: cluster?.verified });
    registerOutputs.mockRestore();
  });

  it("sends every password only through the secret stdin", async () => {
    const resources = await build();
    const steps = [...resources.entries()].filter(([name]) => name.startsWith("galera-"));
    expect(steps.length).toBe(10);
    for (const [name, { inputs }] of steps) {
      expect([name, JSON.stringify(reveal(inputs.create))]).not.toEqual([name, expect.stringMatching(/S3cret/)]);
      if (inputs.stdin !== undefined) {
        expect([name, isSecretValue(inputs.stdin)]).toEqual([name, true]);
        expect(inputs.logging).toBe("none");
      }
    }
    const stdin = Buffer.from(String(reveal(resources.get("galera-maria-01-bootstrap")?.inputs.stdin)).split("\n")[0], "base64").toString();
    expect(stdin).toBe("[mysqld]\nwsrep_sst_auth = sst:S3cretSst\n");
    for (const name of ["galera-maria-01-bootstrap", "galera-maria-02-join", "galera-maria-03-join"]) {
      expect(isSecretValue(resources.get(name)?.inputs.stdin)).toBe(true);
    }
  });
});

describe("the program (prod)", () => {
  it("writes my.cnf for each maria node with its own address and the shared cluster address", async () => {
    const { steps } = await runProgram("prod");
    for (const node of NODES) {
      const files = steps.filter((step) => step.host === node.name).flatMap((step) => step.files);
      const cnf = files.find((file) => file.path === "/opt/keybuzz/mariadb/config/my.cnf");
      expect(cnf?.content).toBe(renderGaleraCnf(node, NODES));
      for (const file of files) expect(file.content).not.toMatch(/mock-secret/);
    }
  });
});
