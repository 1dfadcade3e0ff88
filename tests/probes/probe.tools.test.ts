import * as fs from "fs";
import * as path from "path";
import { runBash } from "../support/bash-fakes";
import { tempDir } from "../support/tools";

/**
 * The probe script's own logic in real sh, with fake clients on PATH: the credentials' values are
 * scrubbed from every reason it prints (here a client that echoes them back), and psql gets the
 * application URL without the Prisma-only parameters it would refuse.
 */

const SCRIPT = path.join(__dirname, "..", "..", "scripts", "probes", "backend-probe.sh");
const PASSWORD = "s3cretValueOfThirtyTwoCharacters";

function secretDir(values: Readonly<Record<string, string>>): string {
  const dir = tempDir("probe-secret");
  for (const [key, value] of Object.entries(values)) fs.writeFileSync(path.join(dir, key), value);
  return dir;
}

const postgresEnvironment = (dir: string) => ({
  KB_SECRET_DIR: dir,
  KB_PG_WRITE_PORT: "5432",
  KB_PG_READ_PORT: "5433",
  KB_PGBOUNCER_PORT: "6432",
  PGHOST: "10.0.0.10",
  PGUSER: "keybuzz",
  PGPASSWORD: PASSWORD,
  PGDATABASE: "keybuzz",
  DATABASE_URL: `postgresql://kb_backend:${PASSWORD}@10.0.0.10:6432/keybuzz_backend?pgbouncer=true&schema=public&sslmode=require&connection_limit=5`,
  PRODUCT_DATABASE_URL: `postgresql://keybuzz:${PASSWORD}@10.0.0.10:5432/keybuzz`,
});

describe("backend-probe.sh (sh, fake clients)", () => {
  it("a client error that repeats a credential reaches the output as ***, the exit is 1", () => {
    const dir = secretDir({ PGPASSWORD: PASSWORD, DATABASE_URL: postgresEnvironment("").DATABASE_URL });
    const result = runBash(
      `sh ${SCRIPT} postgres`,
      { psql: `echo "psql: error: connection failed: password ${PASSWORD} rejected" >&2; exit 2` },
      postgresEnvironment(dir),
    );
    expect(result.status).toBe(1);
    expect(result.stdout).not.toContain(PASSWORD);
    expect(result.stdout).toMatch(/^FAIL postgres-write 10\.0\.0\.10:5432: psql: error: connection failed: password \*\*\* rejected$/m);
    expect(result.stdout.trim().split("\n")).toHaveLength(5);
  });

  it("psql gets DATABASE_URL without Prisma's parameters, keeping sslmode; success exits 0", () => {
    const dir = secretDir({ PGPASSWORD: PASSWORD });
    const log = path.join(dir, "psql-args");
    const result = runBash(`sh ${SCRIPT} postgres`, { psql: `printf '%s\\n' "$*" >> ${log}; echo 42` }, postgresEnvironment(dir));
    expect(result.stdout).toMatch(/^OK {3}DATABASE_URL 10\.0\.0\.10:6432: write accepted$/m);
    expect(result.status).toBe(0);
    expect(fs.readFileSync(log, "utf8")).toContain(
      `-d postgresql://kb_backend:${PASSWORD}@10.0.0.10:6432/keybuzz_backend?sslmode=require -c`,
    );
  });

  it("a missing variable is a FAIL naming it, not a crash of the other checks", () => {
    const result = runBash(`sh ${SCRIPT} redis minio`, {}, { REDIS_URL: "", MINIO_ENDPOINT: "" });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain("FAIL redis -: REDIS_URL is not set");
    expect(result.stdout).toContain("FAIL minio -: MINIO_ENDPOINT is not set");
  });
});
