import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { APPLICATION_DATABASES } from "../../components/data/postgres";
import { parsePostgresSettings } from "../../components/data/postgres/settings";
import { PGBOUNCER_SECRET_KEYS, renderPgbouncerIni, renderPgbouncerUserlist } from "../../components/data/pgbouncer";
import { fillSecrets } from "../../components/lib/remote";
import { EXPORTER_SECRET_KEYS, pgbouncerExporterFiles } from "../../components/observability/exporters";
import { ACCOUNTS } from "../../components/security/secrets";
import { requireTool, run, selfSignedCertificate, tempDir } from "../support/tools";

/**
 * Debian's real PgBouncer with the rendered pgbouncer.ini and userlist.txt (moved to 127.0.0.1 and a
 * temporary directory): pgbouncer_exporter's user, logging in with the rendered pgpass as the
 * exporter does, reads the console's SHOW commands and nothing more (`stats_users`).
 */

/** A free TCP port on 127.0.0.1 (asked of the kernel). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe("PgBouncer's console for pgbouncer_exporter (real pgbouncer and psql)", () => {
  const dir = tempDir("pgbouncer-console");
  const passwords = {
    [APPLICATION_DATABASES[0].secretKey]: "app-password-for-test",
    [PGBOUNCER_SECRET_KEYS.statsPassword]: "stats-password-for-test",
  };
  let pgbouncer: ChildProcess | undefined;
  let port = 0;
  let log = "";

  beforeAll(async () => {
    const binary = requireTool("pgbouncer");
    requireTool("psql");
    port = await freePort();
    const ids = run("id", ["-u", "postgres"]);
    const uid = Number(ids.stdout.trim());
    fs.chmodSync(dir, 0o755);
    selfSignedCertificate({ certFile: path.join(dir, "ca.crt"), keyFile: path.join(dir, "ca.key"), commonName: "test CA", days: 1 });
    const rendered = renderPgbouncerIni({
      settings: parsePostgresSettings(undefined).pgbouncer,
      databases: APPLICATION_DATABASES.map(({ database }) => database),
      configDir: dir,
      listenAddress: "127.0.0.1",
      listenPort: port,
    });
    // Debian's PgBouncer (1.18) predates max_prepared_statements (1.21) and refuses to start on it.
    const ini = rendered.replace(/^max_prepared_statements = .*\n/m, "");
    fs.writeFileSync(path.join(dir, "pgbouncer.ini"), ini);
    fs.writeFileSync(path.join(dir, "userlist.txt"), fillSecrets(renderPgbouncerUserlist(APPLICATION_DATABASES.slice(0, 1)), passwords), {
      mode: 0o600,
    });
    for (const file of ["pgbouncer.ini", "userlist.txt", "ca.crt", "ca.key"]) fs.chownSync(path.join(dir, file), uid, uid);
    const pgpass = pgbouncerExporterFiles()[0];
    fs.writeFileSync(
      path.join(dir, "pgpass"),
      fillSecrets(pgpass.content, { [EXPORTER_SECRET_KEYS.pgbouncerStats]: passwords[PGBOUNCER_SECRET_KEYS.statsPassword] }),
      {
        mode: 0o600,
      },
    );
    pgbouncer = spawn(binary, [path.join(dir, "pgbouncer.ini")], { uid, gid: uid, stdio: ["ignore", "pipe", "pipe"] });
    pgbouncer.stdout?.on("data", (chunk) => (log += chunk));
    pgbouncer.stderr?.on("data", (chunk) => (log += chunk));
    const deadline = Date.now() + 15_000;
    while (
      !(await new Promise<boolean>((resolve) =>
        net
          .connect(port, "127.0.0.1")
          .on("connect", function (this: net.Socket) {
            this.destroy();
            resolve(true);
          })
          .on("error", () => resolve(false)),
      ))
    ) {
      if (Date.now() > deadline || pgbouncer.exitCode !== null) throw new Error(`pgbouncer did not listen on ${port}:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 30_000);

  afterAll(() => {
    pgbouncer?.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const onConsole = (command: string, passfile = path.join(dir, "pgpass")) =>
    run(
      requireTool("psql"),
      [
        "-X",
        "-At",
        `host=127.0.0.1 port=${port} dbname=pgbouncer user=${ACCOUNTS.pgbouncerStats} sslmode=disable connect_timeout=5`,
        "-c",
        command,
      ],
      { env: { PATH: process.env.PATH ?? "", PGPASSFILE: passfile } },
    );

  it("the stats user logs in with the exporter's pgpass and reads SHOW POOLS, STATS, CONFIG", () => {
    for (const command of ["SHOW POOLS", "SHOW STATS", "SHOW CONFIG", "SHOW VERSION"]) {
      const result = onConsole(command);
      expect({ command, status: result.status, stderr: result.stderr }).toEqual({ command, status: 0, stderr: "" });
    }
  });

  it("the stats user cannot run an admin command, and no login without the password", () => {
    const pause = onConsole("PAUSE");
    expect(pause.status).not.toBe(0);
    expect(pause.stderr).toMatch(/admin access needed|not allowed/);
    const empty = path.join(dir, "empty-pgpass");
    fs.writeFileSync(empty, "", { mode: 0o600 });
    expect(onConsole("SHOW POOLS", empty).status).not.toBe(0);
  });
});
