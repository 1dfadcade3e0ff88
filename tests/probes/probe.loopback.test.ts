import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import { backendConfigData } from "../../components/k8s/addons/render";
import { PGBOUNCER_PORT, renderPgbouncerIni } from "../../components/data/pgbouncer";
import { APPLICATION_DATABASES, parsePostgresSettings } from "../../components/data/postgres";
import { PROBE_CONTAINERS, parseProbesSettings, renderProbeJobSpec } from "../../components/observability/probes";
import { ACCOUNTS } from "../../components/security/secrets";
import { loadVersions } from "../../config";
import { clusterDir, loopbackInventory, testPassword } from "../support/loopback/loopback";
import { ownedDir, ownedFile, Supervisor, waitForPort } from "../support/loopback/supervisor";
import { requireTool } from "../support/tools";
import { PostgresLoopbackCluster } from "../postgres/loopback";
import { RedisLoopbackCluster } from "../redis/loopback";
import { fakeAmqpBroker, FakeEndpoint, fakeS3 } from "./fakes";

/**
 * The probe Job's script (scripts/probes/backend-probe.sh) run on this machine, with the Job's own
 * environment (renderProbeJobSpec) and the backend's ConfigMap (backendConfigData) on the loopback
 * inventory, against: the loopback PostgreSQL cluster through HAProxy and Debian's PgBouncer (the
 * rendered pgbouncer.ini), the loopback Redis through HAProxy, Debian's MariaDB on the ProxySQL load
 * balancer's address, and stand-ins for RabbitMQ (an AMQP broker handshake) and MinIO (a
 * SigV4-checking S3 endpoint). All OK exits 0; a stopped endpoint exits 1 naming it; no secret is
 * ever in the output.
 */

const SCRIPT = path.join(__dirname, "..", "..", "scripts", "probes", "backend-probe.sh");
const inventory = loopbackInventory("prod");
const settings = parseProbesSettings(undefined);
const jobSpec = renderProbeJobSpec(inventory, loadVersions(), settings) as unknown as {
  template: { spec: { containers: { name: string; env: { name: string; value: string }[] }[] } };
};
const jobEnvironment = Object.fromEntries(jobSpec.template.spec.containers[0].env.map((entry) => [entry.name, entry.value]));
const configMap = backendConfigData(inventory);

interface ProbeRun {
  readonly status: number;
  readonly output: string;
}

/** One run of the probe script for every service (async: the stand-ins answer from this process). */
function probe(environment: Readonly<Record<string, string>>): Promise<ProbeRun> {
  const services = PROBE_CONTAINERS.map((container) => container.service);
  return new Promise((resolve) => {
    execFile(
      "sh",
      [SCRIPT, ...services],
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...environment }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

/** Lines of the output, by endpoint name: "OK" or "FAIL". */
function verdicts(output: string): Record<string, string> {
  return Object.fromEntries(
    output
      .trim()
      .split("\n")
      .map((line) => /^(OK|FAIL)\s+(\S+)/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[2], match[1]]),
  );
}

const ENDPOINTS = [
  "postgres-write",
  "postgres-read",
  "pgbouncer",
  "DATABASE_URL",
  "PRODUCT_DATABASE_URL",
  "redis",
  "mariadb",
  "rabbitmq",
  "minio",
];

/** Everything the probe runs against, started once for the suite. */
class ProbeScenario {
  readonly supervisor = new Supervisor();
  readonly secrets: Record<string, string> = {};
  readonly environment: Record<string, string> = {};
  private readonly fakes: FakeEndpoint[] = [];

  private constructor(
    readonly dir: string,
    readonly postgres: PostgresLoopbackCluster,
    readonly redis: RedisLoopbackCluster,
  ) {}

  static async start(): Promise<ProbeScenario> {
    const [postgres, redis] = await Promise.all([PostgresLoopbackCluster.start("prod"), RedisLoopbackCluster.start("prod")]);
    const scenario = new ProbeScenario(clusterDir("probes"), postgres, redis);
    try {
      await scenario.boot();
    } catch (error) {
      await scenario.stop();
      throw error;
    }
    return scenario;
  }

  private async boot(): Promise<void> {
    const pg = this.postgres.proxy;
    const passwords = {
      product: testPassword(),
      backend: testPassword(),
      mariadb: testPassword(),
      rabbitmq: testPassword(),
      minio: testPassword(),
    };
    // The application's roles and databases (issue 19): keybuzz for the product, kb_backend for the backend's own.
    const admin = new Client(this.postgres.connection(pg.address, pg.writePort));
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${ACCOUNTS.postgresApp} LOGIN PASSWORD '${passwords.product}'`);
      await admin.query(`CREATE DATABASE keybuzz OWNER ${ACCOUNTS.postgresApp}`);
      await admin.query(`CREATE ROLE ${ACCOUNTS.postgresBackend} LOGIN PASSWORD '${passwords.backend}'`);
      await admin.query(`CREATE DATABASE keybuzz_backend OWNER ${ACCOUNTS.postgresBackend}`);
    } finally {
      await admin.end();
    }

    // PgBouncer on haproxy-01's address, in front of HAProxy's write port, as the PgBouncer layer renders it.
    const bouncerDir = ownedDir(path.join(this.dir, "pgbouncer"), "postgres");
    ownedFile(
      path.join(bouncerDir, "ca.crt"),
      fs.readFileSync(path.join(path.dirname(this.postgres.haproxyConfigFile), "postgres-ca.crt"), "utf8"),
      "postgres",
    );
    ownedFile(path.join(bouncerDir, "userlist.txt"), `"${ACCOUNTS.postgresApp}" "${passwords.product}"\n`, "postgres");
    const ini = renderPgbouncerIni({
      settings: parsePostgresSettings(undefined).pgbouncer,
      databases: APPLICATION_DATABASES.map(({ database }) => database),
      upstreamHost: pg.address,
      upstreamPort: pg.writePort,
      listenAddress: pg.address,
      listenPort: PGBOUNCER_PORT,
      configDir: bouncerDir,
    });
    // Debian's PgBouncer (1.18) predates max_prepared_statements (1.21, the image's 1.26 has it); psql prepares nothing.
    const debianIni = ini.replace(/^max_prepared_statements = .*\n/m, "");
    const iniFile = ownedFile(path.join(bouncerDir, "pgbouncer.ini"), debianIni, "postgres");
    this.supervisor.start({
      name: "pgbouncer",
      command: "/usr/sbin/pgbouncer",
      args: [iniFile],
      user: "postgres",
      logFile: path.join(this.dir, "pgbouncer.log"),
    });
    await waitForPort(pg.address, PGBOUNCER_PORT).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${this.supervisor.log("pgbouncer")}`);
    });

    // MariaDB on the ProxySQL load balancer's address (what MARIADB_HOST names), with the application user.
    const mariadbDir = ownedDir(path.join(this.dir, "mariadb"), "mysql");
    const dataDir = path.join(mariadbDir, "data");
    await new Promise<void>((resolve, reject) =>
      execFile(
        "mariadb-install-db",
        ["--no-defaults", `--datadir=${dataDir}`, "--user=mysql", "--auth-root-authentication-method=socket", "--skip-test-db"],
        // Its temporary files in its own directory: $TMPDIR is this run's, not the mysql user's.
        { timeout: 120_000, env: { ...process.env, TMPDIR: mariadbDir } },
        (error, _stdout, stderr) => (error ? reject(new Error(`mariadb-install-db: ${stderr}`)) : resolve()),
      ),
    );
    const initFile = ownedFile(
      path.join(mariadbDir, "init.sql"),
      `CREATE USER IF NOT EXISTS '${ACCOUNTS.mariadbApp}'@'%' IDENTIFIED BY '${passwords.mariadb}';\n`,
      "mysql",
    );
    this.supervisor.start({
      name: "mariadb",
      command: "/usr/sbin/mariadbd",
      args: [
        "--no-defaults",
        `--datadir=${dataDir}`,
        `--socket=${path.join(mariadbDir, "mysqld.sock")}`,
        `--pid-file=${path.join(mariadbDir, "mysqld.pid")}`,
        `--tmpdir=${mariadbDir}`,
        `--bind-address=${configMap.MARIADB_HOST}`,
        `--port=${configMap.MARIADB_PORT}`,
        `--init-file=${initFile}`,
      ],
      user: "mysql",
      logFile: path.join(this.dir, "mariadb.log"),
    });
    await waitForPort(configMap.MARIADB_HOST, Number(configMap.MARIADB_PORT), 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${this.supervisor.log("mariadb")}`);
    });

    // RabbitMQ's and MinIO's stand-ins where the ConfigMap points: the internal LB's 5672, the first MinIO node's 9000.
    const [minioHost, minioPort] = configMap.MINIO_ENDPOINT.split(":");
    this.fakes.push(
      await fakeAmqpBroker(configMap.RABBITMQ_HOST, Number(configMap.RABBITMQ_PORT), ACCOUNTS.rabbitmqUser, passwords.rabbitmq),
      await fakeS3(minioHost, Number(minioPort), settings.bucket, ACCOUNTS.minioAppUser),
    );

    const redisPassword = String(((await this.redis.throughProxy(["CONFIG", "GET", "requirepass"])) as string[])[1]);
    const pgUrl = (user: string, password: string, database: string, port: number, query = "") =>
      `postgresql://${user}:${password}@${pg.address}:${port}/${database}${query}`;
    // The Secret's keys (issue 19 item 1) and today's, with the loopback's addresses.
    Object.assign(this.secrets, {
      DATABASE_URL: pgUrl(ACCOUNTS.postgresBackend, passwords.backend, "keybuzz_backend", pg.writePort, "?schema=public&sslmode=require"),
      PRODUCT_DATABASE_URL: pgUrl(ACCOUNTS.postgresApp, passwords.product, "keybuzz", pg.writePort, "?sslmode=require"),
      PGPASSWORD: passwords.product,
      POSTGRES_PASSWORD: passwords.product,
      REDIS_URL: `redis://:${redisPassword}@${this.redis.proxy.address}:${this.redis.proxy.port}/0`,
      REDIS_PASSWORD: redisPassword,
      RABBITMQ_URL: `amqp://${ACCOUNTS.rabbitmqUser}:${passwords.rabbitmq}@${configMap.RABBITMQ_HOST}:${configMap.RABBITMQ_PORT}/%2F`,
      RABBITMQ_PASSWORD: passwords.rabbitmq,
      MARIADB_PASSWORD: passwords.mariadb,
      MINIO_SECRET_KEY: passwords.minio,
    });
    const secretDir = path.join(this.dir, "credentials");
    fs.mkdirSync(secretDir, { mode: 0o700 });
    for (const [key, value] of Object.entries(this.secrets)) fs.writeFileSync(path.join(secretDir, key), value, { mode: 0o600 });
    Object.assign(this.environment, configMap, jobEnvironment, this.secrets, {
      PGHOST: pg.address,
      PGPORT: String(PGBOUNCER_PORT),
      PGUSER: ACCOUNTS.postgresApp,
      PGDATABASE: "keybuzz",
      POSTGRES_USER: ACCOUNTS.postgresApp,
      RABBITMQ_USER: ACCOUNTS.rabbitmqUser,
      MARIADB_USER: ACCOUNTS.mariadbApp,
      MINIO_ENDPOINT: minioHost,
      MINIO_PORT: minioPort,
      MINIO_ACCESS_KEY: ACCOUNTS.minioAppUser,
      KB_SECRET_DIR: secretDir,
      KB_PROBE_DIR: path.dirname(SCRIPT),
    });
  }

  /** Fails the test when any credential value is in `output`. */
  expectNoSecret(output: string): void {
    for (const [key, value] of Object.entries(this.secrets)) {
      if (output.includes(value)) throw new Error(`the probe's output contains the value of ${key}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.fakes.map((fake) => fake.close()));
    await this.supervisor.stopAll();
    await Promise.all([this.postgres.stop(), this.redis.stop()]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("backend probe script on loopback backends", () => {
  let scenario: ProbeScenario | undefined;
  beforeAll(async () => {
    for (const tool of ["psql", "redis-cli", "mariadb", "mariadbd", "mariadb-install-db", "pgbouncer", "curl", "bash"]) requireTool(tool);
    scenario = await ProbeScenario.start();
  }, 420_000);
  afterAll(async () => {
    await scenario?.stop();
  }, 180_000);
  const running = () => {
    if (!scenario) throw new Error("the scenario did not start");
    return scenario;
  };

  it("every endpoint answers: one OK line each, exit 0, no secret in the output", async () => {
    const { status, output } = await probe(running().environment);
    expect({ status, verdicts: verdicts(output) }).toEqual({
      status: 0,
      verdicts: Object.fromEntries(ENDPOINTS.map((name) => [name, "OK"])),
    });
    running().expectNoSecret(output);
  });

  it("PgBouncer stopped: exit 1, FAIL names pgbouncer and only it", async () => {
    const current = running();
    await current.supervisor.stop("pgbouncer");
    try {
      const { status, output } = await probe(current.environment);
      expect(status).toBe(1);
      expect(verdicts(output)).toEqual(Object.fromEntries(ENDPOINTS.map((name) => [name, name === "pgbouncer" ? "FAIL" : "OK"])));
      expect(output).toMatch(/^FAIL pgbouncer \S+:6432: .+/m);
      current.expectNoSecret(output);
    } finally {
      current.supervisor.restart("pgbouncer");
      await waitForPort(current.postgres.proxy.address, PGBOUNCER_PORT);
    }
  });

  it("Redis' HAProxy stopped and a wrong MariaDB password: both FAIL with a reason, exit 1, no secret", async () => {
    const current = running();
    await current.redis.supervisor.stop("haproxy");
    const wrong = { ...current.environment, MARIADB_PASSWORD: `${current.secrets.MARIADB_PASSWORD}x` };
    const { status, output } = await probe(wrong);
    expect(status).toBe(1);
    expect(verdicts(output)).toEqual(
      Object.fromEntries(ENDPOINTS.map((name) => [name, ["redis", "mariadb"].includes(name) ? "FAIL" : "OK"])),
    );
    expect(output).toMatch(/^FAIL redis \S+: PING: .+/m);
    expect(output).toMatch(/^FAIL mariadb \S+: .*Access denied/m);
    current.expectNoSecret(output);
    expect(output).not.toContain(wrong.MARIADB_PASSWORD);
  });
});
