import { spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { loadVersions, parseInventory } from "../../config";
import * as pulumi from "@pulumi/pulumi";
import {
  pgbouncerNofile,
  PgBouncerLayer,
  renderedPgbouncerNofile,
  renderPgbouncerIni,
  renderPgbouncerStepScript,
  renderPgbouncerUserlist,
} from "../../components/data/pgbouncer";
import { APPLICATION_DATABASES, parsePostgresSettings } from "../../components/data/postgres";
import { renderStepScript, secretKeysIn } from "../../components/lib/remote";
import { runProgram } from "../../scripts/lib/mock-engine";
import { declared, mockHosts, testSpec } from "../support/component-mocks";
import { rawStackConfig } from "../support/stack-config";
import { requireTool, run, tempDir } from "../support/tools";

/** The databases the component pools. */
const DATABASES = APPLICATION_DATABASES.map(({ database }) => database);

/** `key = value` pairs of one ini section. */
function iniSection(text: string, name: string): Record<string, string> {
  const body = text.split(`[${name}]\n`)[1]?.split("\n[")[0] ?? "";
  return Object.fromEntries(
    body
      .split("\n")
      .filter((line) => line.includes("=") && !line.startsWith(";"))
      .map((line) => [line.slice(0, line.indexOf("=")).trim(), line.slice(line.indexOf("=") + 1).trim()]),
  );
}

describe("pgbouncer.ini", () => {
  const ini = renderPgbouncerIni({ settings: parsePostgresSettings(undefined).pgbouncer, databases: DATABASES });
  const main = iniSection(ini, "pgbouncer");

  it("listens on 0.0.0.0:6432 and pools transactions with the spec's sizes", () => {
    expect(main).toMatchObject({
      listen_addr: "0.0.0.0",
      listen_port: "6432",
      pool_mode: "transaction",
      max_client_conn: "1000",
      default_pool_size: "25",
      reserve_pool_size: "5",
    });
  });

  it("uses SCRAM for clients, tracks prepared statements, and verifies the DB nodes' TLS", () => {
    expect(main).toMatchObject({ auth_type: "scram-sha-256", max_prepared_statements: "200", server_tls_sslmode: "verify-ca" });
    expect(main.server_tls_ca_file).toBe("/etc/pgbouncer/ca.crt");
  });

  it("reaches PostgreSQL through the local HAProxy write port, for the product and the backend's databases", () => {
    expect(iniSection(ini, "databases")).toEqual({
      keybuzz: "host=127.0.0.1 port=5432 dbname=keybuzz",
      keybuzz_backend: "host=127.0.0.1 port=5432 dbname=keybuzz_backend",
      postgres: "host=127.0.0.1 port=5432 dbname=postgres",
    });
  });

  it("follows the settings", () => {
    const custom = renderPgbouncerIni({
      settings: parsePostgresSettings({ pgbouncer: { defaultPoolSize: 40, maxPreparedStatements: 0 } }).pgbouncer,
      databases: DATABASES,
    });
    expect(iniSection(custom, "pgbouncer")).toMatchObject({ default_pool_size: "40", max_prepared_statements: "0" });
  });

  it("lists each database owner and pgbouncer_exporter's console user, their passwords kept out of the rendered userlist", () => {
    const userlist = renderPgbouncerUserlist(APPLICATION_DATABASES);
    expect(userlist).toBe(
      '"keybuzz" "{{secret:postgres-app}}"\n"kb_backend" "{{secret:postgres-backend}}"\n"kb_pgbouncer_stats" "{{secret:pgbouncer-stats}}"\n',
    );
    expect(secretKeysIn(userlist)).toEqual(["postgres-app", "postgres-backend", "pgbouncer-stats"]);
  });

  it("lets pgbouncer_exporter's user run the console's SHOW commands only (stats_users, not admin_users)", () => {
    expect(main.stats_users).toBe("kb_pgbouncer_stats");
    expect(main.admin_users).toBeUndefined();
  });
});

describe("the PgBouncer step checks the release the image runs", () => {
  const image = "edoburu/pgbouncer:v1.26.0-p0";
  let listener: net.Server;
  let port: number;
  beforeAll(async () => {
    // Something listening on loopback, so the step's port check passes once the container "runs".
    listener = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    port = (listener.address() as net.AddressInfo).port;
  });
  afterAll(() => listener.close());

  /** Debian's real pgbouncer, and the release it reports on its first line ("PgBouncer 1.18.0"). */
  function realPgbouncer(): { binary: string; release: string } {
    const binary = requireTool("pgbouncer");
    const release = /^PgBouncer (\S+)$/m.exec(run(binary, ["--version"]).stdout)?.[1];
    if (!release) throw new Error(`${binary} --version names no release`);
    return { binary, release };
  }

  /**
   * Runs the whole step script in bash against a fake docker: `docker run --rm … --version` runs
   * Debian's real pgbouncer (standing in for the image's binary); every other call is logged.
   */
  function runStep(pinned: string, imagePresent = true): { status: number | null; stdout: string; stderr: string; calls: string[] } {
    const dir = tempDir("pgbouncer-step");
    const log = path.join(dir, "calls.log");
    fs.writeFileSync(
      path.join(dir, "docker"),
      `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"${log}"
case "$*" in
  "image inspect ${image}") [ "$FAKE_IMAGE_PRESENT" = yes ] ;;
  "run --rm --network none --entrypoint pgbouncer ${image} --version") exec "$FAKE_PGBOUNCER" --version ;;
  inspect*) exit 1 ;;
esac
`,
      { mode: 0o755 },
    );
    const script = renderStepScript("pgbouncer version test", [], renderPgbouncerStepScript(image, pinned, 2120, port));
    const result = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${dir}:${process.env.PATH}`,
        FAKE_PGBOUNCER: realPgbouncer().binary,
        FAKE_IMAGE_PRESENT: imagePresent ? "yes" : "no",
        KB_STEP_LOG_DIR: path.join(dir, "step-logs"),
      },
    });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls };
  }

  it("starts the container when the image runs the pinned release", () => {
    const { release } = realPgbouncer();
    const result = runStep(release);
    // The step's only word on stderr is where its log is (components/lib/remote.ts).
    expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(/; log \(root only\): .*step-logs\/pgbouncer-version-test\./)]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`PgBouncer: ${image} runs PgBouncer ${release}`);
    expect(result.calls.some((call) => call.startsWith("run -d --name pgbouncer "))).toBe(true);
  });

  it("stops before touching the container when the image runs another release, naming both", () => {
    const { release } = realPgbouncer();
    const result = runStep("1.25.2-not-this-one");
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${image} runs 'PgBouncer ${release}', not PgBouncer 1.25.2-not-this-one (packages.pgbouncer`);
    expect(result.calls.filter((call) => call.startsWith("run -d") || call.startsWith("rm "))).toEqual([]);
  });

  it("pulls an absent image before asking it", () => {
    const result = runStep(realPgbouncer().release, false);
    expect(result.status).toBe(0);
    expect(result.calls.indexOf(`pull -q ${image}`)).toBeLessThan(
      result.calls.indexOf(`run --rm --network none --entrypoint pgbouncer ${image} --version`),
    );
    expect(result.calls.indexOf(`pull -q ${image}`)).toBeGreaterThan(-1);
  });
});

describe("PgBouncer's open-files limit", () => {
  it("is twice max_client_conn plus the largest pools of every database and user, counted from the rendered files", () => {
    const pools = parsePostgresSettings(undefined).pgbouncer;
    expect(pgbouncerNofile(pools, 2, 1)).toBe(2 * (1000 + 30 * 2));
    expect(pgbouncerNofile(pools, 3, 2)).toBe(2 * (1000 + 30 * 3 * 2));
    const ini = renderPgbouncerIni({ settings: pools, databases: DATABASES });
    expect(renderedPgbouncerNofile(pools, ini, renderPgbouncerUserlist(APPLICATION_DATABASES))).toBe(2360);
  });
});

describe("PgBouncerLayer on the mock engine", () => {
  let layer: PgBouncerLayer | undefined;
  const build = () => {
    const { list, ready } = mockHosts([testSpec("haproxy-01", "10.0.0.11", "haproxy"), testSpec("haproxy-02", "10.0.0.12", "haproxy")]);
    layer = new PgBouncerLayer("pgbouncer", {
      hosts: list,
      versions: loadVersions(),
      settings: parsePostgresSettings(undefined).pgbouncer,
      secrets: { app: pulumi.secret("S3cretApp"), backend: pulumi.secret("S3cretBackend"), stats: pulumi.secret("S3cretStats") },
      after: { hosts: ready },
      caCertPem: pulumi.output("CA-PEM"),
    });
  };

  it("rolls host by host after each host's own predecessor; verified is the last host's step", async () => {
    const resources = await declared(build);
    expect(resources.get("haproxy-01-pgbouncer")?.deps).toEqual(["haproxy-01-base"]);
    expect(resources.get("haproxy-02-pgbouncer")?.deps.sort()).toEqual(["haproxy-01-pgbouncer", "haproxy-02-base"]);
    const verifiedName = await new Promise((resolve) => (layer as PgBouncerLayer).verified.urn.apply(resolve));
    expect(String(verifiedName)).toMatch(/::haproxy-02-pgbouncer$/);
    expect(resources.get("haproxy-02-pgbouncer")?.inputs.create).not.toMatch(/S3cretApp|S3cretBackend/);
  });
});

describe("the program (prod)", () => {
  it("writes haproxy.cfg and pgbouncer.ini on each haproxy node, PgBouncer after HAProxy, checking the pinned PgBouncer", async () => {
    const { steps } = await runProgram("prod");
    const inventory = parseInventory(rawStackConfig("prod"));
    for (const server of inventory.servers.filter((candidate) => candidate.group === "haproxy")) {
      const mine = steps.filter((step) => step.host === server.name);
      const names = mine.map((step) => step.step);
      expect(names.indexOf(`${server.name}-pgbouncer`)).toBeGreaterThan(names.indexOf(`${server.name}-haproxy`));
      const paths = mine.flatMap((step) => step.files.map((file) => file.path));
      expect(paths).toEqual(
        expect.arrayContaining([
          "/etc/keybuzz/haproxy/haproxy.cfg",
          "/etc/keybuzz/pgbouncer/pgbouncer.ini",
          "/etc/keybuzz/pgbouncer/userlist.txt",
        ]),
      );
      for (const file of mine.flatMap((step) => step.files)) expect(file.content).not.toMatch(/mock-secret/);
      const pgbouncer = mine.find((step) => step.step === `${server.name}-pgbouncer`);
      expect(pgbouncer?.script).toContain(`KB_PGBOUNCER_VERSION='${loadVersions().packages.pgbouncer}'`);
    }
  });
});
