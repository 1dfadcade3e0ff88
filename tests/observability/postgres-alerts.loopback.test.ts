import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loopbackInventory } from "../support/loopback/loopback";
import { deployedScrapeJobs } from "../../components/observability/monitoring/component";
import { SCRAPE_JOBS, SCRAPE_SECRET_KEYS } from "../../components/observability/monitoring";
import {
  EXPORTER_SECRET_KEYS,
  POSTGRES_EXPORTER_DIR,
  POSTGRES_EXPORTER_ROLE_FILES,
  postgresExporterContainer,
  renderPostgresExporterRolePgpass,
  renderPostgresExporterRoleScript,
  renderPostgresExporterRoleSql,
  scramSha256Verifier,
} from "../../components/observability/exporters";
import { SECRET_KEYS } from "../../components/data/postgres/settings";
import { fillSecrets } from "../../components/lib/remote";
import { parseExportersSettings } from "../../components/observability/exporters";
import { ACCOUNTS } from "../../components/security/secrets";
import { issueTestClientCert, type NodeTls } from "../support/loopback/pki";
import { alertsDir, LoopbackPrometheus } from "../support/loopback/prometheus";
import { clusterForSuite } from "../support/loopback/suite";
import { ownedDir, ownedFile, sleep, waitFor } from "../support/loopback/supervisor";
import { testPassword } from "../support/loopback/loopback";
import { PostgresLoopbackCluster } from "../postgres/loopback";

/**
 * The rendered PostgreSQL alert rules evaluated by Debian's real Prometheus, scraping Debian's
 * postgres_exporter (one per node, configured from the rendered container: TLS verify-ca, password
 * file, the pg_monitor role the rendered role step creates) and Patroni's own `/metrics` (https,
 * verified against the CA) and etcd's `/metrics` (mutual TLS: Prometheus presents a client-only
 * certificate of the CA, as `Pki.issueClient` issues one) of the loopback cluster
 * (tests/postgres/loopback.ts), through the scrape jobs monitoring renders for the loopback
 * inventory. A leader crash fires PostgresLeaderChanged; a replica down (Patroni, PostgreSQL and
 * its etcd member) fires PostgresReplicaMissing and EtcdQuorumAtRisk, which resolve once it rejoins. Prints the seconds from each crash or restart to each alert. Run isolated:
 * `unshare -n bash -c 'ip link set lo up && npx jest -c jest.integration.config.js tests/observability'`.
 */

const POSTGRES_EXPORTER = "/usr/bin/prometheus-postgres-exporter";

class AlertsOnPostgres {
  private constructor(
    readonly postgres: PostgresLoopbackCluster,
    readonly prometheus: LoopbackPrometheus,
    /** Prometheus's directory (alertsDir). */
    readonly prometheusDir: string,
    /** The exporter role's password. */
    readonly exporterPassword: string,
    /** Prometheus's client certificate of the cluster's CA (etcd's client certificate auth). */
    readonly prometheusClient: NodeTls,
  ) {}

  static async start(): Promise<AlertsOnPostgres> {
    const postgres = await PostgresLoopbackCluster.start();
    try {
      const exporterPassword = testPassword();
      createExporterRole(postgres, exporterPassword);
      for (const node of postgres.nodes) startExporter(postgres, node.name, node.address, exporterPassword);
      // monitoring's own scrape jobs for the loopback inventory.
      const jobs = deployedScrapeJobs(loopbackInventory().servers, parseExportersSettings(undefined)).filter(
        (job) => job.servers.some((server) => server.group === "postgres") && ["postgres", "patroni", "etcd"].includes(job.job),
      );
      const client = issueTestClientCert(postgres["pki"], "prometheus");
      const dir = alertsDir();
      const prometheus = new LoopbackPrometheus(postgres.supervisor, dir);
      await prometheus.start(
        jobs,
        `count(pg_up{job="${SCRAPE_JOBS.postgres}"} == 1) + count(patroni_primary{job="${SCRAPE_JOBS.patroni}"}) + count(etcd_server_has_leader{job="${SCRAPE_JOBS.etcd}"} == 1)`,
        9,
        () => postgres.supervisor.log(`${postgres.nodes[0].name}-postgres-exporter`),
        { [jobs.find((job) => job.job === "patroni")!.caConfigMapKey!]: postgres["pki"].caFile },
        { [SCRAPE_SECRET_KEYS.etcdClientCert]: client.certFile, [SCRAPE_SECRET_KEYS.etcdClientKey]: client.keyFile },
      );
      return new AlertsOnPostgres(postgres, prometheus, dir, exporterPassword, client);
    } catch (error) {
      await postgres.stop();
      throw error;
    }
  }

  firing(alertname: string) {
    return this.prometheus.firing(alertname);
  }

  async stop(): Promise<void> {
    await this.postgres.stop();
    fs.rmSync(this.prometheusDir, { recursive: true, force: true });
  }
}

/**
 * The rendered role step (scripts/exporters/postgres-exporter-role.sh) in bash, its files filled as
 * the step fills them; `docker exec … patroni psql` runs Debian's psql here instead.
 */
function createExporterRole(postgres: PostgresLoopbackCluster, password: string): void {
  const layout = postgres.layouts[postgres.nodes[0].name];
  const secrets = {
    [EXPORTER_SECRET_KEYS.postgresExporterVerifier]: scramSha256Verifier(password, Buffer.from(testPassword()).toString("base64")),
    [EXPORTER_SECRET_KEYS.postgresSuperuser]: postgres["secrets"][SECRET_KEYS.superuser],
  };
  const { configDir, tlsDir } = layout.paths;
  ownedFile(path.join(configDir, POSTGRES_EXPORTER_ROLE_FILES.sql), fillSecrets(renderPostgresExporterRoleSql(), secrets), "root");
  ownedFile(path.join(configDir, POSTGRES_EXPORTER_ROLE_FILES.pgpass), fillSecrets(renderPostgresExporterRolePgpass(), secrets), "root");
  const script = renderPostgresExporterRoleScript({
    addresses: postgres.nodes.map((node) => node.address),
    port: layout.ports.postgres,
    configDir,
    tlsDir,
  });
  // docker exec [-e NAME=VALUE]... CONTAINER COMMAND...: the environment, then the command, here.
  const fakeDocker = 'docker() { shift; while [ "$1" = -e ]; do export "$2"; shift 2; done; shift; "$@"; }\n';
  const result = spawnSync("bash", ["-euo", "pipefail", "-c", fakeDocker + script], { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) throw new Error(`alerts: the exporter role step failed:\n${result.stdout}${result.stderr}`);
  console.log(`alerts: ${result.stdout.trim()}`);
}

/** Debian's postgres_exporter with the rendered container's environment and listen address, its files under the cluster's directory. */
function startExporter(postgres: PostgresLoopbackCluster, name: string, address: string, password: string): void {
  const spec = postgresExporterContainer("unused", { privateIp: address, postgresPort: postgres.layouts[name].ports.postgres });
  const dir = ownedDir(path.join(postgres.dir, `${name}-postgres-exporter`), "prometheus");
  ownedFile(path.join(dir, "password"), password, "prometheus", 0o400);
  ownedFile(path.join(dir, "ca.crt"), fs.readFileSync(postgres["pki"].caFile, "utf8"), "prometheus", 0o400);
  const env = Object.fromEntries(
    spec.options
      .filter((_, index) => spec.options[index - 1] === "-e")
      .map((assignment) => assignment.replaceAll(POSTGRES_EXPORTER_DIR, dir).split(/=(.*)/s, 2)),
  );
  postgres.supervisor.start({
    name: `${name}-postgres-exporter`,
    command: POSTGRES_EXPORTER,
    args: [...spec.command],
    env,
    user: "prometheus",
    logFile: postgres.logFile(`${name}-postgres-exporter`),
  });
}

describe("PostgreSQL alert rules on loopback (Debian prometheus + postgres_exporter + Patroni /metrics, rendered rules and targets)", () => {
  const live = clusterForSuite(["etcd", "patroni", "haproxy", "prometheus", "prometheus-postgres-exporter", "psql"], () =>
    AlertsOnPostgres.start(),
  );
  const POSTGRES_ALERTS = [
    "PostgresLeaderChanged",
    "PostgresNoLeader",
    "PostgresReplicaMissing",
    "PostgresExporterDown",
    "EtcdNoLeader",
    "EtcdQuorumAtRisk",
    "EtcdQuorumLost",
  ];

  it("the exporters log in as the pg_monitor role over TLS, and a healthy cluster fires no PostgreSQL alert", async () => {
    await sleep(5_000);
    const sessions = await live().postgres.sql<{ ssl: boolean; roles: string }>(
      live().postgres.nodes[0],
      `SELECT s.ssl, (SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = a.usesysid) AS roles
         FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.usename = $1`,
      [ACCOUNTS.postgresExporter],
    );
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((session) => session.ssl && session.roles === "pg_monitor")).toBe(true);
    expect(await live().prometheus.query(`count(pg_up{job="${SCRAPE_JOBS.postgres}"} == 1)`)).toBe(3);
    for (const alert of POSTGRES_ALERTS) expect(await live().firing(alert)).toEqual([]);
  }, 60_000);

  it("etcd's /metrics: Prometheus scrapes every member over mutual TLS, and a client without a certificate of the CA is refused", async () => {
    expect(await live().prometheus.query(`count(up{job="${SCRAPE_JOBS.etcd}", cluster="postgres"} == 1)`)).toBe(3);
    expect(await live().prometheus.query(`sum(etcd_server_is_leader{job="${SCRAPE_JOBS.etcd}"})`)).toBe(1);
    const node = live().postgres.nodes[0];
    const url = `https://${node.address}:${live().postgres.layouts[node.name].ports.etcdClient}/metrics`;
    const curl = (args: readonly string[]) =>
      spawnSync(
        "curl",
        ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert", live().postgres["pki"].caFile, ...args, url],
        {
          encoding: "utf8",
        },
      );
    const client = live().prometheusClient;
    expect(curl(["--cert", client.certFile, "--key", client.keyFile]).stdout).toBe("200");
    const anonymous = curl([]);
    expect(anonymous.status).not.toBe(0);
    expect(anonymous.stdout).toBe("000");
  }, 60_000);

  it("the leader node crashes: PostgresLeaderChanged fires for the promoted replica", async () => {
    const oldLeader = await live().postgres.waitHealthy(120_000);
    const watch = (async () => {
      await waitFor("the leader to be killed", async () => !live().postgres.supervisor.isRunning(`${oldLeader.name}-patroni`), 120_000, 50);
      const crashedAt = Date.now();
      return live().prometheus.secondsUntil(
        "PostgresLeaderChanged to fire",
        crashedAt,
        "PostgresLeaderChanged",
        (firing) => firing.length > 0,
        180_000,
        ["patroni_primary", "max_over_time(patroni_replica[10m])", "ALERTS"],
      );
    })();
    const result = await live().postgres.failover();
    const seconds = await watch;
    const fired = await live().firing("PostgresLeaderChanged");
    console.log(
      `alerts: PostgresLeaderChanged fired ${seconds.toFixed(1)} s after the leader's crash (Patroni failover ${result.secondsToWriteAgain.toFixed(1)} s to the first write)`,
    );
    expect(fired.map((alert) => alert.labels.node)).toEqual([result.newPrimary]);
    expect(fired[0].labels).toMatchObject({ cluster: "postgres", job: "patroni", severity: "warning" });
    expect(await live().firing("PostgresNoLeader")).toEqual([]);
  }, 400_000);

  it("a replica is down: PostgresReplicaMissing fires, and resolves once it rejoins", async () => {
    const postgres = live().postgres;
    const leader = await postgres.waitHealthy(180_000);
    const replica = postgres.nodes.find((node) => node !== leader)!;
    await postgres.crash(replica);
    const downAt = Date.now();
    const firedAfter = await live().prometheus.secondsUntil(
      "PostgresReplicaMissing to fire",
      downAt,
      "PostgresReplicaMissing",
      (firing) => firing.length > 0,
      180_000,
      ["sum by (cluster) (patroni_replica)", `count by (cluster) (up{job="${SCRAPE_JOBS.patroni}"})`, "ALERTS"],
    );
    expect((await live().firing("PostgresReplicaMissing"))[0].labels).toMatchObject({ cluster: "postgres", severity: "warning" });
    expect(await live().firing("PostgresNoLeader")).toEqual([]);
    // Its etcd member went with it: two of three left, none to spare.
    const etcdAtRiskAfter = await live().prometheus.secondsUntil(
      "EtcdQuorumAtRisk to fire",
      downAt,
      "EtcdQuorumAtRisk",
      (firing) => firing.length > 0,
      180_000,
      [`sum by (cluster) (up{job="${SCRAPE_JOBS.etcd}"})`, "ALERTS"],
    );
    expect((await live().firing("EtcdQuorumAtRisk")).map((alert) => alert.labels.cluster)).toEqual(["postgres"]);
    expect(await live().firing("EtcdQuorumLost")).toEqual([]);
    expect(await live().firing("EtcdNoLeader")).toEqual([]);
    postgres["startEtcd"](replica);
    postgres["startPatroni"](replica);
    const backAt = Date.now();
    await postgres.waitHealthy(180_000);
    const resolvedAfter = await live().prometheus.secondsUntil(
      "PostgresReplicaMissing to resolve",
      backAt,
      "PostgresReplicaMissing",
      (firing) => firing.length === 0,
      120_000,
    );
    const etcdResolvedAfter = await live().prometheus.secondsUntil(
      "EtcdQuorumAtRisk to resolve",
      backAt,
      "EtcdQuorumAtRisk",
      (firing) => firing.length === 0,
      120_000,
    );
    console.log(
      `alerts: PostgresReplicaMissing fired ${firedAfter.toFixed(1)} s after the replica's crash (rule: for 1m), resolved ${resolvedAfter.toFixed(1)} s after its restart`,
    );
    console.log(
      `alerts: EtcdQuorumAtRisk fired ${etcdAtRiskAfter.toFixed(1)} s after the member's crash (rule: for 1m), resolved ${etcdResolvedAfter.toFixed(1)} s after its restart`,
    );
  }, 500_000);
});
