import { Client, Pool } from "pg";
import { backendConnectionValues, backendEndpoints, BackendPasswords } from "../../components/k8s/addons";
import { APPLICATION_DATABASES, renderDatabasesSql, SECRET_KEYS } from "../../components/data/postgres";
import { fillSecrets } from "../../components/lib/remote";
import { PostgresLoopbackCluster } from "../postgres/loopback";
import { loopbackInventory, testPassword } from "../support/loopback/loopback";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, waitFor } from "../support/loopback/supervisor";
import { startPgbouncer } from "./loopback";

/** A password with characters a URL reserves (none SQL or userlist.txt quote), so the URLs' encoding is exercised end to end. */
const reservedPassword = () => `${testPassword()}@:/?#%&=+`;

/**
 * The backend's PostgreSQL contract on loopback (issue 19): the PostgreSQL cluster of
 * tests/postgres/loopback.ts, the databases and owners from renderDatabasesSql (as the verification
 * step runs app.sql; pgvector is not in Debian bookworm, so renderExtensionsSql is left to the
 * image), PgBouncer from its rendered files, and the real node-postgres with the Secret's values
 * for the loopback inventory.
 */
describe("the backend's PostgreSQL URLs against the loopback cluster (HAProxy, PgBouncer, Debian daemons)", () => {
  const inventory = loopbackInventory("prod");
  const endpoints = backendEndpoints(inventory);
  let passwords: BackendPasswords = {
    postgresBackend: reservedPassword(),
    postgresProduct: reservedPassword(),
    redis: testPassword(),
    rabbitmq: testPassword(),
    minioApp: testPassword(),
  };
  let values = backendConnectionValues(endpoints, passwords);
  const secrets = (current: BackendPasswords) => ({
    [SECRET_KEYS.app]: current.postgresProduct,
    [SECRET_KEYS.backend]: current.postgresBackend,
  });
  let pgbouncer: Awaited<ReturnType<typeof startPgbouncer>> | undefined;
  const live = clusterForSuite(["patroni", "etcd", "haproxy", "pgbouncer", "psql", "openssl"], async () => {
    const cluster = await PostgresLoopbackCluster.start();
    try {
      await cluster.psqlOnLeader(fillSecrets(renderDatabasesSql(), secrets(passwords)));
      pgbouncer = await startPgbouncer(cluster, cluster.settings, endpoints.postgres, secrets(passwords));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  });

  /** One query on a fresh client of `url`. */
  const query = async <T extends object>(url: string, text: string): Promise<T[]> => {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  };
  /** HAProxy's write port (5432, TLS to the leader) on haproxy-01, with `query` (none: a client without TLS). */
  const writePortUrl = (user: string, password: string, database: string, query = "") =>
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${live().proxy.address}:${live().proxy.writePort}/${database}${query}`;
  /** The direct write port as a Node.js client reaches it: the CA file, the chain verified (docs/application.md). */
  const directUrl = (user: string, password: string, database: string) =>
    writePortUrl(user, password, database, `?sslmode=verify-ca&uselibpqcompat=true&sslrootcert=${live().caFile}`);

  it("DATABASE_URL (Prisma's) writes in keybuzz_backend as kb_backend through PgBouncer, on the leader", async () => {
    const leader = await live().waitHealthy(60_000);
    await query(values.DATABASE_URL, "CREATE TABLE IF NOT EXISTS kb_it_backend (id serial PRIMARY KEY, note text)");
    const [row] = await query<{ db: string; who: string; server: string; note: string }>(
      values.DATABASE_URL,
      "INSERT INTO kb_it_backend (note) VALUES ('first') RETURNING current_database() AS db, current_user AS who, host(inet_server_addr()) AS server, note",
    );
    expect(row).toEqual({ db: "keybuzz_backend", who: "kb_backend", server: leader.address, note: "first" });
  });

  it("PRODUCT_DATABASE_URL and the PG* set reach keybuzz as keybuzz through PgBouncer", async () => {
    const [fromUrl] = await query<{ db: string; who: string }>(
      values.PRODUCT_DATABASE_URL,
      "SELECT current_database() AS db, current_user AS who",
    );
    expect(fromUrl).toEqual({ db: "keybuzz", who: "keybuzz" });
    const client = new Client({
      host: values.PGHOST,
      port: Number(values.PGPORT),
      user: values.PGUSER,
      password: values.PGPASSWORD,
      database: values.PGDATABASE,
    });
    await client.connect();
    try {
      expect((await client.query("SELECT current_database() AS db, current_user AS who")).rows).toEqual([
        { db: "keybuzz", who: "keybuzz" },
      ]);
    } finally {
      await client.end();
    }
  });

  it("a client without TLS on the direct port gets PostgreSQL's reason, not a silent refusal", async () => {
    const plain = writePortUrl("kb_backend", passwords.postgresBackend, "keybuzz_backend");
    await expect(query(plain, "SELECT 1")).rejects.toThrow(
      /no pg_hba\.conf entry for host .* user "kb_backend", database "keybuzz_backend", no encryption/,
    );
    const [row] = await query<{ ssl: boolean }>(
      directUrl("kb_backend", passwords.postgresBackend, "keybuzz_backend"),
      "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    expect(row.ssl).toBe(true);
  });

  it("each owner reaches only its own database; PUBLIC has no CONNECT on either", async () => {
    await expect(query(directUrl("kb_backend", passwords.postgresBackend, "keybuzz"), "SELECT 1")).rejects.toThrow(
      /permission denied for database "?keybuzz"?/,
    );
    await expect(query(directUrl("keybuzz", passwords.postgresProduct, "keybuzz_backend"), "SELECT 1")).rejects.toThrow(
      /permission denied for database "?keybuzz_backend"?/,
    );
    const acls = await query<{ datname: string; owner: string; public_connect: boolean }>(
      directUrl("keybuzz", passwords.postgresProduct, "keybuzz"),
      `SELECT datname, pg_get_userbyid(datdba) AS owner, has_database_privilege('public', datname, 'CONNECT') AS public_connect
         FROM pg_database WHERE datname IN (${APPLICATION_DATABASES.map(({ database }) => `'${database}'`).join(", ")}) ORDER BY datname`,
    );
    expect(acls).toEqual([
      { datname: "keybuzz", owner: "keybuzz", public_connect: false },
      { datname: "keybuzz_backend", owner: "kb_backend", public_connect: false },
    ]);
  });

  it("re-running the SQL changes nothing; a rotated password re-applies, in PostgreSQL and PgBouncer", async () => {
    const catalog = () =>
      query<Record<string, unknown>>(
        directUrl("keybuzz", passwords.postgresProduct, "keybuzz"),
        "SELECT d.oid::text, datname, datdba::text, datacl::text, r.rolsuper, r.rolcreatedb FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE datname LIKE 'keybuzz%' ORDER BY datname",
      );
    const before = await catalog();
    await live().psqlOnLeader(fillSecrets(renderDatabasesSql(), secrets(passwords)));
    expect(await catalog()).toEqual(before);

    const rotated = { ...passwords, postgresBackend: reservedPassword() };
    await live().psqlOnLeader(fillSecrets(renderDatabasesSql(), secrets(rotated)));
    await pgbouncer!.reconfigure(secrets(rotated));
    await expect(query(values.DATABASE_URL, "SELECT 1")).rejects.toThrow(/SASL authentication failed/);
    values = backendConnectionValues(endpoints, rotated);
    expect(await query(values.DATABASE_URL, "SELECT 1 AS ok")).toEqual([{ ok: 1 }]);
    passwords = rotated;
  });

  it("after a Patroni failover, the backend's pool writes again, on the new leader", async () => {
    const pool = new Pool({ connectionString: values.DATABASE_URL, max: 5, connectionTimeoutMillis: 5000 });
    pool.on("error", () => undefined);
    const acknowledged: { at: number; server: string }[] = [];
    let writing = true;
    let lastError: unknown;
    const writer = (async () => {
      while (writing) {
        try {
          const { rows } = await pool.query<{ server: string }>(
            "INSERT INTO kb_it_backend (note) VALUES ('failover') RETURNING host(inet_server_addr()) AS server",
          );
          acknowledged.push({ at: Date.now(), server: rows[0].server });
        } catch (error) {
          lastError = error;
          await sleep(100);
        }
        await sleep(20);
      }
    })();
    try {
      const result = await live().failover();
      const fresh = live().node(result.newPrimary);
      await waitFor(
        "a pooled write on the new leader",
        async () => {
          if (acknowledged.some((write) => write.server === fresh.address)) return true;
          // waitFor reports the last error thrown: the pool's, while it cannot write.
          if (lastError) throw lastError;
          return false;
        },
        60_000,
        200,
      );
      const resumed = acknowledged.findIndex((write) => write.server === fresh.address);
      expect(resumed).toBeGreaterThan(0);
      const [lastOnOld, firstOnNew] = [acknowledged[resumed - 1].at, acknowledged[resumed].at];
      console.log(
        `backend pool through PgBouncer: ${result.oldPrimary} -> ${result.newPrimary}, ${((firstOnNew - lastOnOld) / 1000).toFixed(1)} s without a write (HAProxy path: ${result.secondsToWriteAgain.toFixed(1)} s)`,
      );
      expect(result.acknowledgedLost).toBe(0);
      expect(acknowledged.at(-1)!.server).toBe(fresh.address);
    } finally {
      writing = false;
      await writer;
      await pool.end();
    }
  });
});
