import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderStepScript } from "../components/remote";

/** The helpers every step script starts with, run by bash (a fake `docker` answers `logs`). */
function runStep(body: string): { status: number | null; stdout: string; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-"));
  fs.writeFileSync(path.join(dir, "docker"), '#!/usr/bin/env bash\necho "docker $*: last log lines"\n', { mode: 0o755 });
  const result = spawnSync("bash", ["-c", renderStepScript("helpers test", [], body)], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
  });
  fs.rmSync(dir, { recursive: true, force: true });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("kb_wait_until", () => {
  it("retries the command until it succeeds, in the step's own shell", () => {
    const result = runStep(`tries=0
ready() { tries=$((tries + 1)); [ "$tries" -ge 3 ]; }
kb_wait_until 10 0 "never printed" ready
echo "ready after $tries tries"`);
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe("ready after 3 tries");
    expect(result.status).toBe(0);
  });

  it("after its bound prints the message and the container's logs, and ends the step", () => {
    const result = runStep(`kb_wait_until --logs pgbouncer 1 0.2 "PgBouncer: port 6432 not listening" false
echo "not reached"`);
    expect(result.status).toBe(1);
    expect(result.stdout).not.toMatch(/not reached/);
    expect(result.stderr).toMatch(/^PgBouncer: port 6432 not listening \(waited 1 s\)$/m);
    expect(result.stderr).toMatch(/docker logs --tail 50 pgbouncer: last log lines/);
  });

  it("lets the caller add its own diagnostics before failing", () => {
    const result = runStep(`kb_wait_until 1 0.2 "no writer" false || { echo "diagnostics" >&2; exit 3; }`);
    expect(result.status).toBe(3);
    expect(result.stderr).toMatch(/no writer \(waited 1 s\)\ndiagnostics/);
    expect(result.stderr).not.toMatch(/docker/);
  });
});
