import { parseBackupSettings, pgBackRestPatroniParameters } from "../../components/backup/pgbackrest";
import * as pulumi from "@pulumi/pulumi";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { ConfigError, loadVersions, parseInventory, serversOf } from "../../config";
import {
  DbNode,
  dbNodesOf,
  DEFAULT_POSTGRES_LAYOUT,
  etcdClusterToken,
  parsePostgresSettings,
  patroniBuildArgs,
  patroniDockerfile,
  patroniImageTag,
  PostgresCluster,
  postgresEndpointsAt,
  postgresHaproxyListenersFor,
  postgresLoadBalancerIp,
  renderAppSql,
  renderDynamicConfigObject,
  renderEtcdEnv,
  renderImageBuildScript,
  renderPatroniConfig,
  renderPatroniStepScript,
  renderPgHba,
  renderVolumeScript,
  PATRONI_TIMING_MINIMUMS,
  survivableNodeStallSeconds,
  TIMING_PROFILES,
} from "../../components/data/postgres";
import { renderStepScript, secretKeysIn } from "../../components/lib/remote";
import { commonScript } from "../../components/lib/scripts";
import { isSecretValue, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";
import { declared, mockHosts } from "../support/component-mocks";
import { tempDir } from "../support/tools";

const inventory = parseInventory(rawStackConfig("prod"));
const versions = loadVersions();
const MEMBERS: DbNode[] = [
  { name: "db-master-01", address: "10.0.0.120" },
  { name: "db-slave-01", address: "10.0.0.121" },
  { name: "db-slave-02", address: "10.0.0.122" },
];
const defaults = parsePostgresSettings(undefined);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Yaml = any;
function patroniYaml(node: DbNode, settings = defaults): Yaml {
  return yaml.load(renderPatroniConfig({ node, members: MEMBERS, settings }));
}

describe("keybuzz:postgres settings", () => {
  it("defaults to etcd3, the fast profile, synchronous mode on and the spec's pool sizes", () => {
    expect(defaults).toMatchObject({ dcs: "etcd3", timingProfile: "fast", synchronousMode: true, maximumLagOnFailoverBytes: 1048576 });
    expect(defaults.pgbouncer).toEqual({ maxClientConn: 1000, defaultPoolSize: 25, reservePoolSize: 5, maxPreparedStatements: 200 });
  });

  it("rejects a bad value with an error naming the key", () => {
    expect(() => parsePostgresSettings({ timingProfile: "instant" })).toThrow(ConfigError);
    expect(() => parsePostgresSettings({ timingProfile: "instant" })).toThrow(/keybuzz:postgres\.timingProfile/);
    expect(() => parsePostgresSettings({ pgbouncer: { defaultPoolSize: -1 } })).toThrow(/keybuzz:postgres\.pgbouncer\.defaultPoolSize/);
    expect(() => parsePostgresSettings({ dcs: "zookeeper" })).toThrow(/keybuzz:postgres\.dcs/);
  });

  it.each(Object.entries(TIMING_PROFILES))("profile %s keeps loop_wait + 2 × retry_timeout ≤ ttl and documents its RTO", (_, profile) => {
    expect(profile.loopWait + 2 * profile.retryTimeout).toBeLessThanOrEqual(profile.ttl);
    expect(profile.primaryStartTimeout).toBeLessThan(300);
    // The worst case waits for a whole fresh lease (the etcd leader died with the node).
    expect(profile.rtoSeconds).toBeGreaterThan(profile.ttl);
  });

  it.each(Object.entries(TIMING_PROFILES))(
    "profile %s is not below Patroni's minimums, which Patroni ≥ 3.2 would silently raise it to",
    (_, profile) => {
      expect(profile.ttl).toBeGreaterThanOrEqual(PATRONI_TIMING_MINIMUMS.ttl);
      expect(profile.loopWait).toBeGreaterThanOrEqual(PATRONI_TIMING_MINIMUMS.loopWait);
      expect(profile.retryTimeout).toBeGreaterThanOrEqual(PATRONI_TIMING_MINIMUMS.retryTimeout);
    },
  );

  it("the node stall a profile survives is ttl − loop_wait − retry_timeout; fast and rapid ride out issue 18's 3 s", () => {
    expect(survivableNodeStallSeconds({ ...TIMING_PROFILES.fast, ttl: 21 })).toBe(11);
    expect(survivableNodeStallSeconds(TIMING_PROFILES.fast)).toBe(10);
    expect(survivableNodeStallSeconds(TIMING_PROFILES.rapid)).toBe(5);
    expect(survivableNodeStallSeconds(TIMING_PROFILES.tolerant)).toBe(25);
  });

  it("renders the selected profile into the DCS configuration", () => {
    expect(renderDynamicConfigObject(parsePostgresSettings({ timingProfile: "rapid" }))).toMatchObject({
      ttl: 20,
      loop_wait: 10,
      retry_timeout: 5,
    });
    expect(renderDynamicConfigObject(defaults)).toMatchObject({ ttl: 20, loop_wait: 5, retry_timeout: 5 });
  });
});

describe("patroni.yml per node", () => {
  it.each(MEMBERS)("$name: its own name and addresses for the REST API and PostgreSQL", (node) => {
    const config = patroniYaml(node);
    expect(config.name).toBe(node.name);
    expect(config.scope).toBe("keybuzz-postgres");
    expect(config.restapi.listen).toBe(`${node.address}:8008`);
    expect(config.restapi.connect_address).toBe(`${node.address}:8008`);
    expect(config.postgresql.listen).toBe(`${node.address}:5432`);
    expect(config.postgresql.connect_address).toBe(`${node.address}:5432`);
  });

  it("points the etcd3 DCS at every member over mutual TLS", () => {
    const config = patroniYaml(MEMBERS[1]);
    expect(config.etcd3).toEqual({
      hosts: ["10.0.0.120:2379", "10.0.0.121:2379", "10.0.0.122:2379"],
      protocol: "https",
      cacert: "/etc/keybuzz/postgres/tls/ca.crt",
      cert: "/etc/keybuzz/postgres/tls/node.crt",
      key: "/etc/keybuzz/postgres/tls/node.key",
    });
    expect(config.raft).toBeUndefined();
  });

  it("keeps Patroni's Raft as a config option (partners = the other nodes)", () => {
    const config = patroniYaml(MEMBERS[0], parsePostgresSettings({ dcs: "raft" }));
    expect(config.etcd3).toBeUndefined();
    expect(config.raft).toEqual({
      data_dir: "/var/lib/keybuzz/patroni-raft",
      self_addr: "10.0.0.120:5000",
      partner_addrs: ["10.0.0.121:5000", "10.0.0.122:5000"],
    });
  });

  it("serves the REST API and PostgreSQL with TLS, with authentication, and passwords only as placeholders", () => {
    const text = renderPatroniConfig({ node: MEMBERS[0], members: MEMBERS, settings: defaults });
    const config = yaml.load(text) as Yaml;
    expect(config.restapi).toMatchObject({
      certfile: "/etc/keybuzz/postgres/tls/node.crt",
      keyfile: "/etc/keybuzz/postgres/tls/node.key",
      cafile: "/etc/keybuzz/postgres/tls/ca.crt",
      authentication: { username: "patroni", password: "{{secret:patroni-restapi}}" },
    });
    expect(config.postgresql.parameters).toMatchObject({
      ssl: "on",
      ssl_cert_file: "/etc/keybuzz/postgres/tls/node.crt",
      ssl_key_file: "/etc/keybuzz/postgres/tls/node.key",
    });
    expect(secretKeysIn(text).sort()).toEqual(["patroni-restapi", "postgres-replication", "postgres-rewind", "postgres-superuser"]);
  });

  it("allows replication between the DB nodes and clients from 10.0.0.0/16 over TLS only", () => {
    const hba: string[] = patroniYaml(MEMBERS[0]).postgresql.pg_hba;
    expect(hba).toEqual(
      expect.arrayContaining([
        "hostssl replication replicator 10.0.0.120/32 scram-sha-256",
        "hostssl replication replicator 10.0.0.121/32 scram-sha-256",
        "hostssl replication replicator 10.0.0.122/32 scram-sha-256",
        "hostssl all all 10.0.0.0/16 scram-sha-256",
      ]),
    );
    expect(hba.filter((line) => /^host\s/.test(line))).toEqual([]);
  });

  it("takes replication sources from the layout when connections do not leave from the members' own addresses", () => {
    const hba = renderPgHba(MEMBERS, { ...DEFAULT_POSTGRES_LAYOUT, replicationSourceCidrs: ["127.0.0.1/32"] });
    expect(hba.filter((line) => line.startsWith("hostssl replication"))).toEqual([
      "hostssl replication replicator 127.0.0.1/32 scram-sha-256",
    ]);
  });

  it("bootstraps with the spec's DCS parameters, pg_rewind, data checksums, failsafe mode and a short primary_start_timeout", () => {
    const config = patroniYaml(MEMBERS[0]);
    expect(config.bootstrap.dcs).toMatchObject({
      ttl: 20,
      loop_wait: 5,
      retry_timeout: 5,
      primary_start_timeout: 30,
      maximum_lag_on_failover: 1048576,
      failsafe_mode: true,
      synchronous_mode: true,
      postgresql: {
        use_pg_rewind: true,
        use_slots: true,
        parameters: { max_connections: 200, wal_level: "replica", wal_keep_size: "1GB" },
      },
    });
    expect(config.bootstrap.initdb).toEqual(expect.arrayContaining(["data-checksums", { waldir: "/opt/keybuzz/postgres/wal" }]));
    expect(config.postgresql.data_dir).toBe("/opt/keybuzz/postgres/data");
    expect(config.postgresql.parameters.shared_buffers).toBe("256MB");
  });

  it("turns synchronous mode off and the timing profile up through settings, and routes DCS-only overrides to the DCS", () => {
    const settings = parsePostgresSettings({
      synchronousMode: false,
      timingProfile: "tolerant",
      parameters: { max_connections: 400, work_mem: "8MB" },
    });
    const dcs = renderDynamicConfigObject(settings) as Yaml;
    expect(dcs).toMatchObject({ synchronous_mode: false, ttl: 60, loop_wait: 10, retry_timeout: 25 });
    expect(dcs.postgresql.parameters.max_connections).toBe(400);
    const config = patroniYaml(MEMBERS[0], settings);
    expect(config.postgresql.parameters.work_mem).toBe("8MB");
    expect(config.postgresql.parameters.max_connections).toBeUndefined();
  });

  it("renders a loopback cluster from a layout without patching text", () => {
    const node = { name: "pg-1", address: "127.0.10.1" };
    const layout = {
      ...DEFAULT_POSTGRES_LAYOUT,
      clientCidr: "127.0.0.0/8",
      paths: { ...DEFAULT_POSTGRES_LAYOUT.paths, dataDir: "/tmp/t/data", tlsDir: "/tmp/t/tls" },
    };
    const config = yaml.load(renderPatroniConfig({ node, members: [node], settings: defaults, layout })) as Yaml;
    expect(config.postgresql.data_dir).toBe("/tmp/t/data");
    expect(config.restapi.certfile).toBe("/tmp/t/tls/node.crt");
    expect(config.postgresql.pg_hba).toContain("hostssl all all 127.0.0.0/8 scram-sha-256");
  });
});

describe("etcd member settings", () => {
  it("lists every member, uses mutual TLS for peers and clients, and leaves the cluster state to the run script", () => {
    const env = renderEtcdEnv(MEMBERS[2], MEMBERS, "prod");
    expect(env).toContain("ETCD_NAME=db-slave-02\n");
    expect(env).toContain(
      "ETCD_INITIAL_CLUSTER=db-master-01=https://10.0.0.120:2380,db-slave-01=https://10.0.0.121:2380,db-slave-02=https://10.0.0.122:2380\n",
    );
    expect(env).toContain("ETCD_LISTEN_CLIENT_URLS=https://10.0.0.122:2379\n");
    expect(env).toContain("ETCD_CLIENT_CERT_AUTH=true\n");
    expect(env).toContain("ETCD_PEER_CLIENT_CERT_AUTH=true\n");
    expect(env).toContain("ETCD_PEER_KEY_FILE=/etc/keybuzz/etcd/tls/node.key\n");
    expect(env).toContain(`ETCD_INITIAL_CLUSTER_TOKEN=${etcdClusterToken("prod")}\n`);
    expect(env).not.toContain("ETCD_INITIAL_CLUSTER_STATE");
    expect(env).not.toMatch(/"/);
  });
  // The run script's behaviour (new / existing / rejoin of an emptied member): tests/postgres/etcd-run.test.ts.
});

describe("host scripts", () => {
  it("mounts the XFS volume with the shared kb_xfs_volume (fstab, noatime), then gives PGDATA and WAL to the postgres uid, mode 700", () => {
    const script = renderVolumeScript();
    expect(script).toContain(commonScript("xfs-volume.sh"));
    expect(script).toContain('entry="UUID=$uuid $mount_point xfs defaults,noatime,nofail 0 2"');
    const mount = script.indexOf('kb_xfs_volume "$KB_VOLUME_MOUNT"\n');
    expect(mount).toBeGreaterThan(script.indexOf("kb_xfs_volume() {"));
    const dirs = script.indexOf('install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_DATA_DIR" "$KB_WAL_DIR"');
    expect(dirs).toBeGreaterThan(mount);
    expect(script).toContain("KB_POSTGRES_UID='999'");
    expect(script).toContain("KB_VOLUME_MOUNT='/opt/keybuzz/postgres'");
  });

  it.each(["accounts", "node", "finish", "verify"] as const)(
    "gives the Patroni %s step exactly the KB_* variables its scripts read, each once",
    (step) => {
      const body = renderPatroniStepScript(step, MEMBERS[1], MEMBERS, defaults, patroniImageTag(versions));
      const assigned = [...body.matchAll(/^(KB_[A-Z0-9_]+)=/gm)].map((match) => match[1]);
      const scripts = body.slice(body.indexOf("\n# Shared by the Patroni node and finish steps"));
      const named = new Set([...scripts.matchAll(/\b(KB_[A-Z0-9_]+)\b/g)].map((match) => match[1]));
      expect([...assigned].sort()).toEqual([...named].sort());
      expect(new Set(assigned).size).toBe(assigned.length);
    },
  );

  it("reads the loop wait and the replica count only where they are used", () => {
    const tag = patroniImageTag(versions);
    expect(renderPatroniStepScript("node", MEMBERS[0], MEMBERS, defaults, tag)).toContain("KB_LOOP_WAIT='5'\n");
    expect(renderPatroniStepScript("verify", MEMBERS[0], MEMBERS, defaults, tag)).toContain("KB_REPLICAS='2'\n");
    expect(renderPatroniStepScript("finish", MEMBERS[0], MEMBERS, defaults, tag)).not.toMatch(/KB_REPLICAS|KB_LOOP_WAIT/);
  });

  it("builds the Patroni image with the pinned build arguments only when its tag is absent", () => {
    const tag = patroniImageTag(versions);
    const buildStep = (present: boolean): string[] => {
      const dir = tempDir("patroni-image");
      const log = path.join(dir, "calls.log");
      fs.writeFileSync(
        path.join(dir, "docker"),
        `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >>"${log}"\n[ "$1 $2" != "image inspect" ] || [ "$FAKE_PRESENT" = yes ]\n`,
        { mode: 0o755 },
      );
      const result = spawnSync("bash", ["-c", renderStepScript("image test", [], renderImageBuildScript(versions, tag))], {
        encoding: "utf8",
        env: {
          ...process.env,
          PATH: `${dir}:${process.env.PATH}`,
          FAKE_PRESENT: present ? "yes" : "no",
          KB_STEP_LOG_DIR: path.join(dir, "logs"),
        },
      });
      expect(result.status).toBe(0);
      return fs.readFileSync(log, "utf8").trim().split("\n");
    };
    const args = patroniBuildArgs(versions);
    expect(buildStep(false)).toEqual([
      `image inspect ${tag}`,
      `build -q --build-arg POSTGRES_IMAGE=${args.POSTGRES_IMAGE} --build-arg PATRONI_VERSION=${args.PATRONI_VERSION} --build-arg PGVECTOR_VERSION=${args.PGVECTOR_VERSION} --build-arg PGBACKREST_VERSION=${args.PGBACKREST_VERSION} -t ${tag} /etc/keybuzz/postgres/build`,
    ]);
    expect(buildStep(true)).toEqual([`image inspect ${tag}`]);
    // The Dockerfile declares exactly the arguments the step passes.
    const declaredArgs = [...patroniDockerfile().matchAll(/^ARG (\w+)=/gm)].map((match) => match[1]);
    expect(declaredArgs.sort()).toEqual(Object.keys(args).sort());
  });

  it("restarts a replica at once but defers the leader, and the finish step switches over before restarting it", () => {
    const tag = patroniImageTag(versions);
    const node = renderPatroniStepScript("node", MEMBERS[0], MEMBERS, defaults, tag);
    expect(node).toMatch(
      /if \[ "\$\(patroni_state role\)" = leader \] && patroni_state others-streaming; then\n\s+docker kill -s HUP patroni/,
    );
    expect(node).toMatch(/touch "\$KB_PENDING_MARKER"[\s\S]*else\n\s+patroni_recreate/);
    expect(node.indexOf("patroni_state wait-healthy")).toBeGreaterThan(node.indexOf("patroni_recreate\n"));
    const finish = renderPatroniStepScript("finish", MEMBERS[0], MEMBERS, defaults, tag);
    const switchover = finish.indexOf("patronictl switchover");
    expect(switchover).toBeGreaterThan(0);
    expect(finish.indexOf("patroni_recreate\n", switchover)).toBeGreaterThan(switchover);
  });

  it("creates the application roles and databases idempotently and checks the vector extension in the product database", () => {
    const sql = renderAppSql();
    for (const [role, database] of [
      ["keybuzz", "keybuzz"],
      ["kb_backend", "keybuzz_backend"],
    ]) {
      expect(sql).toContain(`WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') \\gexec`);
      expect(sql).toContain(`WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${database}') \\gexec`);
      expect(sql).toContain(`REVOKE ALL ON DATABASE ${database} FROM PUBLIC;`);
    }
    expect(sql.indexOf("CREATE EXTENSION IF NOT EXISTS vector;")).toBeGreaterThan(sql.indexOf("\\connect keybuzz\n"));
    expect(secretKeysIn(sql)).toEqual(["postgres-app", "postgres-backend"]);
  });

  it("tags the Patroni image by the Dockerfile, so a host rebuilds only when it changes", () => {
    const tag = patroniImageTag(versions, "FROM a");
    expect(patroniImageTag(versions, "FROM a")).toBe(tag);
    expect(patroniImageTag(versions, "FROM b")).not.toBe(tag);
    expect(tag).toMatch(/^keybuzz\/patroni:16\.\d+-bookworm-patroni4\.\d+\.\d+-[0-9a-f]{12}$/);
  });
});

/** The cluster the last {@link buildCluster} declared. */
let built: PostgresCluster | undefined;

function buildCluster(settings = defaults): () => void {
  return () => {
    const { list: hosts, volumes, ready } = mockHosts(serversOf(inventory, "postgres"));
    const nodes: Record<string, { certPem: pulumi.Output<string>; keyPem: pulumi.Output<string> }> = {};
    for (const host of hosts) {
      nodes[host.spec.name] = { certPem: pulumi.output(`CERT-${host.spec.name}`), keyPem: pulumi.secret(`S3cretKey-${host.spec.name}`) };
    }
    const secrets = {
      superuser: pulumi.secret("S3cretSuper"),
      replication: pulumi.secret("S3cretRepl"),
      app: pulumi.secret("S3cretApp"),
      backend: pulumi.secret("S3cretBackend"),
      restApi: pulumi.secret("S3cretRest"),
    };
    const pki = { caCertPem: pulumi.output("CA-PEM"), nodes };
    built = new PostgresCluster("postgres", {
      hosts,
      versions,
      settings,
      secrets,
      after: { hosts: ready },
      pki,
      volumes,
      clientCidr: inventory.network.ipRange,
      loadBalancerIp: "10.0.0.10",
    });
  };
}

describe("PostgresCluster on the mock engine", () => {
  it("declares one volume, etcd, image and Patroni step per DB node, each starting after its base OS", async () => {
    const resources = await declared(buildCluster());
    for (const node of MEMBERS) {
      for (const suffix of ["pg-volume", "etcd", "patroni-image", "postgres-accounts", "patroni", "patroni-finish"]) {
        expect(resources.has(`${node.name}-${suffix}`)).toBe(true);
      }
      expect(resources.get(`${node.name}-pg-volume`)?.deps).toContain(`${node.name}-base`);
      expect(resources.get(`${node.name}-patroni-image`)?.deps).toContain(`${node.name}-base`);
      expect(resources.get(`${node.name}-etcd`)?.deps).toContain(`${node.name}-base`);
    }
    expect([...resources.keys()].filter((name) => name.endsWith("-postgres-verify"))).toEqual(["db-master-01-postgres-verify"]);
  });

  it("starts Patroni on db-master-01 first; each replica after the previous node is healthy; verification last", async () => {
    const resources = await declared(buildCluster());
    const deps = (name: string) => resources.get(name)?.deps ?? [];
    expect(deps("db-master-01-patroni")).toEqual(
      expect.arrayContaining([
        "db-master-01-pg-volume",
        "db-master-01-patroni-image",
        "db-master-01-etcd",
        "db-slave-01-etcd",
        "db-slave-02-etcd",
      ]),
    );
    expect(deps("db-master-01-patroni").some((dep) => dep.startsWith("db-slave-") && dep.endsWith("-patroni"))).toBe(false);
    // A rotated password of Patroni's accounts is on the leader before any member restarts.
    expect(deps("db-master-01-patroni")).toContain("db-slave-02-postgres-accounts");
    expect(deps("db-master-01-postgres-accounts")).toEqual(
      expect.arrayContaining(["db-master-01-base", "db-master-01-etcd", "db-slave-01-etcd", "db-slave-02-etcd"]),
    );
    expect(deps("db-slave-01-postgres-accounts")).toContain("db-master-01-postgres-accounts");
    expect(deps("db-slave-02-postgres-accounts")).toContain("db-slave-01-postgres-accounts");
    expect(deps("db-slave-01-patroni")).toContain("db-master-01-patroni");
    expect(deps("db-slave-02-patroni")).toContain("db-slave-01-patroni");
    expect(deps("db-master-01-patroni-finish")).toEqual(["db-slave-02-patroni"]);
    expect(deps("db-slave-01-patroni-finish")).toEqual(["db-master-01-patroni-finish"]);
    expect(deps("db-slave-02-patroni-finish")).toEqual(["db-slave-01-patroni-finish"]);
    expect(deps("db-master-01-postgres-verify")).toEqual(["db-slave-02-patroni-finish"]);
    // etcd members change one at a time (a formed cluster keeps its quorum).
    expect(deps("db-slave-01-etcd")).toContain("db-master-01-etcd");
    expect(deps("db-slave-02-etcd")).toContain("db-slave-01-etcd");
  });

  it("sends every password and key only through the secret stdin", async () => {
    const resources = await declared(buildCluster());
    const steps = [...resources.entries()].filter(([name]) => name.startsWith("db-"));
    for (const [name, { inputs }] of steps) {
      if (!("create" in inputs)) continue;
      expect([name, JSON.stringify(reveal(inputs.create))]).not.toEqual([name, expect.stringMatching(/S3cret|mock-secret-/)]);
      if (inputs.stdin !== undefined) {
        expect([name, isSecretValue(inputs.stdin)]).toEqual([name, true]);
        expect([name, inputs.logging]).toEqual([name, "none"]);
      }
    }
    const stdin = String(reveal(resources.get("db-slave-01-patroni")?.inputs.stdin))
      .trim()
      .split("\n")
      .map((line) => Buffer.from(line, "base64").toString());
    expect(stdin.join("\n")).toContain("password: 'S3cretSuper'");
    expect(stdin).toContain("S3cretKey-db-slave-01\n");
    expect(isSecretValue(resources.get("db-master-01-postgres-verify")?.inputs.stdin)).toBe(true);
  });

  it("re-runs every node's Patroni step and the finish steps when a setting changes, keeping the rolling order", async () => {
    const before = await declared(buildCluster());
    const after = await declared(buildCluster(parsePostgresSettings({ timingProfile: "standard" })));
    const changed = (name: string) => JSON.stringify(reveal(before.get(name)?.inputs)) !== JSON.stringify(reveal(after.get(name)?.inputs));
    for (const node of MEMBERS) {
      expect([node.name, changed(`${node.name}-patroni`)]).toEqual([node.name, true]);
      expect([node.name, changed(`${node.name}-patroni-finish`)]).toEqual([node.name, true]);
      expect([node.name, changed(`${node.name}-pg-volume`)]).toEqual([node.name, false]);
    }
    expect(after.get("db-slave-02-patroni")?.deps).toContain("db-slave-01-patroni");
    expect(after.get("db-master-01-patroni-finish")?.deps).toEqual(["db-slave-02-patroni"]);
  });

  it("applies the accounts' passwords on the leader only, through the local socket, from a file whose passwords come by stdin", async () => {
    const resources = await declared(buildCluster());
    const step = resources.get("db-slave-01-postgres-accounts");
    const stdin = String(reveal(step?.inputs.stdin))
      .trim()
      .split("\n")
      .map((line) => Buffer.from(line, "base64").toString());
    expect(stdin.join("\n")).toContain("ALTER ROLE postgres WITH PASSWORD 'S3cretSuper';");
    expect(stdin.join("\n")).toContain("ALTER ROLE replicator WITH PASSWORD 'S3cretRepl';");
    expect(stdin.join("\n")).toMatch(/ALTER ROLE rewind_user WITH PASSWORD '[^'{}]+';/);
    expect(isSecretValue(step?.inputs.stdin)).toBe(true);
    // The step in bash with a fake docker and a fake REST API answer: only the leader runs psql.
    for (const role of ["leader", "replica"]) {
      const dir = tempDir("accounts-step");
      const log = path.join(dir, "docker.log");
      fs.writeFileSync(path.join(dir, "docker"), `#!/usr/bin/env bash\necho "$*" >>${log}\n[ "$1" != inspect ] || echo true\n`, {
        mode: 0o755,
      });
      fs.writeFileSync(path.join(dir, "python3"), `#!/usr/bin/env bash\necho ${role}\n`, { mode: 0o755 });
      const body = renderPatroniStepScript("accounts", MEMBERS[1], MEMBERS, defaults, patroniImageTag(versions));
      const result = spawnSync("bash", ["-euo", "pipefail", "-c", body], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
      });
      expect(result.status).toBe(0);
      const calls = fs.readFileSync(log, "utf8").trim().split("\n");
      const psql = calls.filter((call) => call.startsWith("exec -u postgres patroni psql"));
      expect([role, psql]).toEqual([
        role,
        role === "leader"
          ? [
              "exec -u postgres patroni psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d postgres -f /etc/keybuzz/postgres/accounts.sql",
            ]
          : [],
      ]);
    }
  });

  it("hands HAProxy its listeners, the CA file and the CA, gated on its verification, and exposes the endpoints", async () => {
    const resources = await declared(buildCluster());
    const cluster = built as PostgresCluster;
    expect(cluster.haproxy.verified).toBe(cluster.verified);
    expect(resources.has("db-master-01-postgres-verify")).toBe(true);
    expect(cluster.haproxy.listeners).toEqual(postgresHaproxyListenersFor(MEMBERS, defaults));
    expect(cluster.haproxy.listeners.map((listener) => [listener.name, listener.port])).toEqual([
      ["postgres-write", 5432],
      ["postgres-read", 5433],
    ]);
    expect(cluster.haproxy.files).toEqual([{ name: "postgres-ca.crt", content: "{{secret:postgres-ca}}" }]);
    const resolved = (value: pulumi.Input<string> | undefined) => new Promise((resolve) => pulumi.output(value).apply(resolve));
    expect(await resolved(cluster.haproxy.secrets?.["postgres-ca"])).toBe("CA-PEM");
    expect(cluster.endpoints).toEqual({ write: "10.0.0.10:5432", read: "10.0.0.10:5433", pooled: "10.0.0.10:6432" });
    expect(await pulumi.isSecret(cluster.appConnectionString)).toBe(true);
    expect(await resolved(cluster.appConnectionString)).toBe("postgresql://keybuzz:S3cretApp@10.0.0.10:6432/keybuzz");
  });

  it("has no etcd step with the raft DCS", async () => {
    const resources = await declared(buildCluster(parsePostgresSettings({ dcs: "raft" })));
    expect([...resources.keys()].filter((name) => name.endsWith("-etcd"))).toEqual([]);
  });
});

describe("the program (prod)", () => {
  it("writes patroni.yml, the etcd settings and the Dockerfile for each DB node, and exports the endpoints", async () => {
    const run = await runProgram("prod");
    for (const node of dbNodesOf(inventory)) {
      const files = run.steps.filter((step) => step.host === node.name).flatMap((step) => step.files);
      const patroni = files.find((file) => file.path === "/etc/keybuzz/postgres/patroni.yml");
      // prod has backup-01, so every node archives its WAL through pgBackRest (components/backup/pgbackrest).
      expect(patroni?.content).toBe(
        renderPatroniConfig({
          node,
          members: dbNodesOf(inventory),
          settings: defaults,
          extraParameters: pgBackRestPatroniParameters(parseBackupSettings(undefined).postgres),
        }),
      );
      expect(files.find((file) => file.path === "/etc/keybuzz/etcd/etcd.env")?.content).toBe(
        renderEtcdEnv(node, dbNodesOf(inventory), "prod"),
      );
      expect(files.map((file) => file.path)).toContain("/etc/keybuzz/postgres/build/Dockerfile");
      for (const file of files) expect(file.content).not.toMatch(/mock-secret/);
    }
    expect(run.outputs.postgresEndpoints).toEqual(postgresEndpointsAt(postgresLoadBalancerIp(inventory)));
    expect(postgresEndpointsAt(postgresLoadBalancerIp(inventory))).toEqual({
      write: "10.0.0.10:5432",
      read: "10.0.0.10:5433",
      pooled: "10.0.0.10:6432",
    });
    const url = run.registrations.length > 0 ? run.outputs.postgresAppConnectionString : undefined;
    expect(String(reveal(url))).toMatch(/^postgresql:\/\/keybuzz:mock-secret-[^@]+@10\.0\.0\.10:6432\/keybuzz$/);
  });
});
