import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as hcloud from "@pulumi/hcloud";
import {
  HostFile,
  plannedSteps,
  remoteStep,
  renderStepScript,
  secretRef,
  shellQuote,
  STEP_LOGS_KEPT,
  StepBound,
} from "../../components/lib/remote";
import { declared, testSpec } from "../support/component-mocks";

/**
 * Whole rendered step scripts run by bash, as the provider runs them (`bash -c SCRIPT`, secret files
 * on stdin), with the log directory moved to a temp dir and a fake `docker` that answers `logs`
 * with a line that must never reach the provider.
 */
const TITLE = "helpers-test on test-host";
const CONTAINER_LOG_LINE = "CONTAINER LOG: connection string has password=Pl4nted";
const roots: string[] = [];
afterAll(() => roots.forEach((root) => fs.rmSync(root, { recursive: true, force: true })));

interface StepRun {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  logDir: string;
  /** The step's log files in the log dir, oldest first. */
  logs: () => string[];
}

function runStep(body: string, options: { files?: HostFile[]; stdin?: string; bound?: StepBound; logDir?: string } = {}): StepRun {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-"));
  roots.push(root);
  const bin = path.join(root, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "docker"), `#!/usr/bin/env bash\necho "${CONTAINER_LOG_LINE} (docker $*)"\n`, { mode: 0o755 });
  const logDir = options.logDir ?? path.join(root, "logs");
  const started = Date.now();
  const result = spawnSync("bash", ["-c", renderStepScript(TITLE, options.files ?? [], body, options.bound)], {
    encoding: "utf8",
    timeout: 20_000,
    input: options.stdin ?? "",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, KB_STEP_LOG_DIR: logDir, ROOT: root },
  });
  const logs = () => (fs.existsSync(logDir) ? fs.readdirSync(logDir).sort() : []);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, seconds: (Date.now() - started) / 1000, logDir, logs };
}

/** The log path the runner printed, checked to exist. */
function printedLog(run: StepRun): string {
  const match = /log \(root only\): (\S+)$/m.exec(run.stderr);
  expect(match).not.toBeNull();
  const file = (match as RegExpExecArray)[1];
  expect(path.dirname(file)).toBe(run.logDir);
  expect(fs.existsSync(file)).toBe(true);
  return file;
}

function lineOf(script: string, text: string): number {
  return script.split("\n").indexOf(text) + 1;
}

describe("the bound of a step on its host", () => {
  it("stops a hung step at its bound and says which step, on which host, after how long", () => {
    const run = runStep("echo waiting\nsleep 60\necho never", { bound: { timeoutMinutes: 1 / 60 } });
    expect(run.seconds).toBeLessThan(10);
    expect(run.status).toBe(124);
    expect(run.stderr).toMatch(/^keybuzz step helpers-test on test-host: stopped at its bound of 1 s \(the step's timeoutMinutes\)/m);
    expect(run.stderr).toMatch(/^was running: sleep 60$/m);
    expect(fs.readFileSync(printedLog(run), "utf8")).toMatch(/^waiting$/m);
    expect(run.stdout).toBe("");
  });

  it("kills a step that ignores SIGTERM once the grace after the bound is over", () => {
    const run = runStep("trap '' TERM\nsleep 60", { bound: { timeoutMinutes: 1 / 60, killAfterSeconds: 1 } });
    expect(run.seconds).toBeLessThan(10);
    expect(run.status).toBe(137);
    expect(run.stderr).toMatch(/stopped at its bound of 1 s .*TERM, then KILL after 1 s/);
  });

  it("a failure before the bound is not reported as the bound", () => {
    const run = runStep("timeout 0.1 sleep 5", { bound: { timeoutMinutes: 1 } });
    expect(run.status).toBe(124);
    expect(run.stderr).toMatch(/failed with exit status 124/);
    expect(run.stderr).not.toMatch(/stopped at its bound/);
  });

  it("remoteStep bounds the host script by the step's timeoutMinutes", async () => {
    const resources = await declared(() => {
      const spec = testSpec("test-host", "10.0.0.50", "admin");
      const server = new hcloud.Server(spec.name, { serverType: spec.serverType, image: "ubuntu-24.04" });
      remoteStep("bounded", { host: { spec, server, connection: { host: "203.0.113.1" } }, script: "true", timeoutMinutes: 7 }, {});
    });
    const script = plannedSteps.find((step) => step.step === "bounded")?.script ?? "";
    expect(resources.get("bounded")?.inputs.create).toBe(`bash -c ${shellQuote(script)}`);
    expect(script).toContain("\nkb_step_bound=420\n");
    expect(script).toContain("\nkb_step_title='bounded on test-host'\n");
  });

  it("rejects a bound that is not positive", () => {
    expect(() => renderStepScript(TITLE, [], "true", { timeoutMinutes: 0 })).toThrow(/positive/);
  });
});

describe("the log and the short diagnosis of a step", () => {
  const secretFile: HostFile = { path: "/placeholder", content: `password = ${secretRef("pw")}\n`, mode: "0600" };
  const filesIn = (root: string): HostFile[] => [{ ...secretFile, path: path.join(root, "secret.conf") }];

  it("a failed step prints a short diagnosis without secrets or container logs, and keeps everything in a root-only log", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-files-"));
    roots.push(root);
    const secret = "S3cretValue-9f2c";
    const run = runStep(
      `echo "step progress: config written"
cat ${root}/secret.conf
echo "a tool complains: $(cat ${root}/secret.conf)" >&2
kb_wait_until --logs pgbouncer 1 0.2 "PgBouncer: port 6432 not listening" false`,
      { files: filesIn(root), stdin: `${Buffer.from(`password = ${secret}\n`).toString("base64")}\n` },
    );
    expect(run.status).toBe(1);
    const output = run.stdout + run.stderr;
    expect(output).not.toContain(secret);
    expect(output).not.toContain("CONTAINER LOG");
    expect(output).not.toContain("step progress");
    expect(run.stdout).toBe("");
    const lines = run.stderr.trim().split("\n");
    expect(lines.length).toBeLessThanOrEqual(6);
    expect(lines).toEqual([
      expect.stringMatching(/^keybuzz step helpers-test on test-host: bounded to 20 min on the host; log \(root only\): /),
      "keybuzz step helpers-test on test-host: failed with exit status 1",
      "PgBouncer: port 6432 not listening (waited 1 s; the last 50 lines of container pgbouncer are in the log)",
      expect.stringMatching(/^failed at line \d+: kb_wait_until --logs pgbouncer 1 0.2 "PgBouncer: port 6432 not listening" false$/),
      expect.stringMatching(/^full log \(root only\): /),
    ]);

    const log = printedLog(run);
    expect(fs.statSync(log).mode & 0o777).toBe(0o600);
    expect(fs.statSync(run.logDir).mode & 0o777).toBe(0o700);
    const text = fs.readFileSync(log, "utf8");
    expect(text).toMatch(/^step progress: config written$/m);
    expect(text).toContain(`password = ${secret}`);
    expect(text).toContain(`${CONTAINER_LOG_LINE} (docker logs --tail 50 pgbouncer)`);
    expect(text).toContain("keybuzz step helpers-test on test-host: failed with exit status 1");
    expect(run.logs()).toEqual([path.basename(log)]);
  });

  it("names the failing command and its line, also inside a function", () => {
    const body = `echo start\ncheck_port() {\n  docker port-check 6432\n  false\n}\ncheck_port\necho never`;
    const run = runStep(body);
    expect(run.status).toBe(1);
    const script = renderStepScript(TITLE, [], body);
    expect(run.stderr).toContain(`failed at line ${lineOf(script, "  false")}: false\n`);
  });

  it("names an explicit exit, and keeps what the step printed before it in the log only", () => {
    const run = runStep(`kb_wait_until 1 0.2 "no writer" false || { echo "own diagnostics" >&2; exit 3; }`);
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/failed with exit status 3\nno writer \(waited 1 s\)\nended by: exit 3\nfull log/);
    expect(run.stderr).not.toMatch(/own diagnostics|docker/);
    expect(fs.readFileSync(printedLog(run), "utf8")).toMatch(/^own diagnostics$/m);
  });

  it("a succeeding step prints its progress: stdout exactly as the body wrote it, stderr after the log line", () => {
    const run = runStep(`echo "first line of the output"\necho "progress on stderr" >&2\nprintf 'last line without newline'`);
    expect(run.status).toBe(0);
    expect(run.stdout).toBe("first line of the output\nlast line without newline");
    expect(run.stderr).toMatch(
      /^keybuzz step helpers-test on test-host: bounded to 20 min on the host; log \(root only\): \S+\nprogress on stderr\n$/,
    );
    const log = printedLog(run);
    expect(fs.readFileSync(log, "utf8")).toContain("progress on stderr");
    expect(run.logs()).toEqual([path.basename(log)]);
  });

  it(`keeps the newest ${STEP_LOGS_KEPT} logs of a step`, () => {
    const logDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-logs-")), "steps");
    roots.push(path.dirname(logDir));
    const printed: string[] = [];
    for (let run = 0; run < STEP_LOGS_KEPT + 2; run++) printed.push(path.basename(printedLog(runStep(`echo run ${run}`, { logDir }))));
    const kept = fs.readdirSync(logDir).sort();
    expect(kept).toEqual(printed.slice(2).sort());
    expect(fs.readFileSync(path.join(logDir, kept[kept.length - 1]), "utf8")).toBe(`run ${STEP_LOGS_KEPT + 1}\n`);
  });
});

describe("kb_is_changed: desired against applied state", () => {
  // A step writes its config, then fails before the restart that applies it (a daemon that does not
  // come up, a lost SSH session): the retry must still see the file as changed and restart.
  it("keeps a file changed until a run of the step ends successfully", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-applied-"));
    roots.push(root);
    const logDir = path.join(root, "steps");
    const files: HostFile[] = [{ path: path.join(root, "daemon.conf"), content: "maxmemory 100mb\n" }];
    const body = (fail: boolean) =>
      `if kb_is_changed ${root}/daemon.conf; then echo restart; else echo unchanged; fi${fail ? "\nexit 3" : ""}`;

    const failed = runStep(body(true), { files, logDir });
    expect(failed.status).toBe(3);
    expect(fs.readFileSync(printedLog(failed), "utf8")).toMatch(/^restart$/m);
    const retry = runStep(body(false), { files, logDir });
    expect(retry.status).toBe(0);
    expect(retry.stdout).toBe("restart\n");
    const converged = runStep(body(false), { files, logDir });
    expect(converged.stdout).toBe("unchanged\n");
    // New content is a change again, in this run only once it succeeded.
    const next = runStep(body(false), { files: [{ ...files[0], content: "maxmemory 200mb\n" }], logDir });
    expect(next.stdout).toBe("restart\n");
    expect(runStep(body(false), { files: [{ ...files[0], content: "maxmemory 200mb\n" }], logDir }).stdout).toBe("unchanged\n");
  });

  // Files that hold secrets arrive on stdin and go through a pipeline into kb_write: the change must
  // still count in this very run (found on real hosts: a Redis password-file change restarted nothing).
  it("sees a changed secret-bearing file in the run that wrote it", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-step-secret-"));
    roots.push(root);
    const file: HostFile = { path: path.join(root, "redis.conf"), content: `requirepass ${secretRef("pw")}\n`, mode: "0600" };
    const body = `if kb_is_changed ${file.path}; then echo restart; else echo unchanged; fi\necho "recorded: \${kb_changed[*]}"`;
    const stdin = (value: string) => `${Buffer.from(`requirepass ${value}\n`).toString("base64")}\n`;
    const logDir = path.join(root, "steps");
    const first = runStep(body, { files: [file], stdin: stdin("one"), logDir });
    expect(first.stdout).toBe(`restart\nrecorded: ${file.path}\n`);
    expect(runStep(body, { files: [file], stdin: stdin("one"), logDir }).stdout).toBe("unchanged\nrecorded: \n");
    expect(runStep(body, { files: [file], stdin: stdin("two"), logDir }).stdout).toBe(`restart\nrecorded: ${file.path}\n`);
  });
});

describe("kb_wait_until", () => {
  it("retries the command until it succeeds, in the step's own shell", () => {
    const run = runStep(`tries=0
ready() { tries=$((tries + 1)); [ "$tries" -ge 3 ]; }
kb_wait_until 10 0 "never printed" ready
echo "ready after $tries tries"`);
    expect(run.stderr).not.toMatch(/never printed/);
    expect(run.stdout.trim()).toBe("ready after 3 tries");
    expect(run.status).toBe(0);
  });

  it("after its bound reports the message and ends the step", () => {
    const run = runStep(`kb_wait_until 1 0.2 "PgBouncer: port 6432 not listening" false
echo "not reached"`);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^PgBouncer: port 6432 not listening \(waited 1 s\)$/m);
    expect(fs.readFileSync(printedLog(run), "utf8")).not.toMatch(/not reached/);
  });
});
