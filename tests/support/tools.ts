import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** Absolute path of a real tool, or a failure that says how to get it (never a silent skip). */
export function requireTool(name: string, searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]): string {
  const found = searchPath.map((dir) => path.join(dir, name)).find((candidate) => fs.existsSync(candidate));
  if (!found)
    throw new Error(`${name} is not installed: run scripts/install-test-tools.sh (Debian packages in tests/support/packages.txt)`);
  return found;
}

/** Runs a tool and returns its result; stdout/stderr as text. `timeout` in ms, default 60 s. */
export function run(
  tool: string,
  args: readonly string[],
  options: { input?: string; cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {},
): SpawnSyncReturns<string> {
  return spawnSync(tool, args, { encoding: "utf8", timeout: 60_000, ...options });
}

/**
 * A throwaway self-signed certificate (P-256, real openssl) and its key, for tests that need a CA
 * file or a certificate to read. @throws Error when openssl fails.
 */
export function selfSignedCertificate(options: { certFile: string; keyFile: string; commonName: string; days: number }): void {
  const result = run(requireTool("openssl"), [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    options.keyFile,
    "-out",
    options.certFile,
    "-subj",
    `/CN=${options.commonName}`,
    "-days",
    String(options.days),
  ]);
  if (result.status !== 0) throw new Error(`openssl req -x509 failed: ${result.stderr}`);
}

/** A fresh temporary directory, removed by the caller's afterAll if it wants. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `keybuzz-${prefix}-`));
}

/** Debian's newest installed PostgreSQL bin dir (the Patroni image pins its own major, versions.yaml). */
export function debianPostgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const majors = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((entry) => fs.existsSync(path.join(root, entry, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) throw new Error("PostgreSQL is not installed (run scripts/install-test-tools.sh)");
  return path.join(root, majors[0], "bin");
}
