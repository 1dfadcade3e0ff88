import { parseInventory } from "../config";
import { renderPgbouncerIni, renderPgbouncerUserlist } from "../components/data/pgbouncer";
import { parsePostgresSettings } from "../components/data/postgres";
import { secretKeysIn } from "../components/remote";
import { runProgram } from "../scripts/lib/mock-engine";
import { rawStackConfig } from "./support/stack-config";

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
  const ini = renderPgbouncerIni({ settings: parsePostgresSettings(undefined) });
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

  it("reaches PostgreSQL through the local HAProxy write port", () => {
    expect(iniSection(ini, "databases")).toEqual({
      keybuzz: "host=127.0.0.1 port=5432 dbname=keybuzz",
      postgres: "host=127.0.0.1 port=5432 dbname=postgres",
    });
  });

  it("follows the settings", () => {
    const custom = renderPgbouncerIni({
      settings: parsePostgresSettings({ pgbouncer: { defaultPoolSize: 40, maxPreparedStatements: 0 } }),
    });
    expect(iniSection(custom, "pgbouncer")).toMatchObject({ default_pool_size: "40", max_prepared_statements: "0" });
  });

  it("keeps the application password out of the rendered userlist", () => {
    expect(renderPgbouncerUserlist()).toBe('"keybuzz" "{{secret:postgres-app}}"\n');
    expect(secretKeysIn(renderPgbouncerUserlist())).toEqual(["postgres-app"]);
  });
});

describe("the program (prod)", () => {
  it("writes haproxy.cfg and pgbouncer.ini on each haproxy node, PgBouncer after HAProxy", async () => {
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
    }
  });
});
