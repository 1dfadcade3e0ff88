import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { renderStepScript, secretRef, shellQuote } from "../../components/lib/remote";
import { requireTool, run, tempDir } from "../support/tools";

/**
 * A rendered step sent the way the command provider sends it: one SSH exec request `bash -c SCRIPT`
 * as root, the secret files on stdin, to a real sshd on loopback (the log dir moved to a temp dir,
 * as sshd passes no environment).
 */
const dir = tempDir("remote-ssh");
let sshd: ChildProcess | undefined;
let port = 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

async function listening(until: number): Promise<void> {
  while (Date.now() < until) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`sshd does not listen on 127.0.0.1:${port}`);
}

beforeAll(async () => {
  const sshdPath = requireTool("sshd");
  const keygen = requireTool("ssh-keygen");
  for (const key of ["host_key", "client_key"])
    expect(run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, key)]).status).toBe(0);
  fs.copyFileSync(path.join(dir, "client_key.pub"), path.join(dir, "authorized_keys"));
  port = await freePort();
  fs.writeFileSync(
    path.join(dir, "sshd_config"),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${path.join(dir, "host_key")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "StrictModes no",
      "UsePAM no",
      "",
    ].join("\n"),
  );
  fs.mkdirSync("/run/sshd", { recursive: true });
  sshd = spawn(sshdPath, ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: "ignore" });
  await listening(Date.now() + 10_000);
});

afterAll(() => {
  if (sshd?.pid !== undefined) sshd.kill("SIGTERM");
  fs.rmSync(dir, { recursive: true, force: true });
});

function overSsh(script: string, stdin = ""): { status: number | null; stdout: string; stderr: string; seconds: number } {
  const ssh = requireTool("ssh", ["/usr/bin", "/bin"]);
  const logDir = path.join(dir, "logs");
  const started = Date.now();
  const result = spawnSync(
    ssh,
    [
      ...["-p", String(port), "-i", path.join(dir, "client_key"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"],
      ...["-o", `UserKnownHostsFile=${path.join(dir, "known_hosts")}`, "-o", "LogLevel=ERROR", "root@127.0.0.1"],
      `KB_STEP_LOG_DIR=${logDir} bash -c ${shellQuote(script)}`,
    ],
    { encoding: "utf8", input: stdin, timeout: 30_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, seconds: (Date.now() - started) / 1000 };
}

describe("a step over SSH, as the command provider runs it", () => {
  it("ends at its bound on the host: the SSH session returns with the step's message", () => {
    const script = renderStepScript("hung-step on test-host", [], "sleep 120", { timeoutMinutes: 2 / 60 });
    const result = overSsh(script);
    expect(result.seconds).toBeLessThan(15);
    expect(result.status).toBe(124);
    expect(result.stderr).toMatch(/keybuzz step hung-step on test-host: stopped at its bound of 2 s/);
    expect(result.stderr).toMatch(/^was running: sleep 120$/m);
  });

  it("a failed step returns a short diagnosis: neither the secret it read from stdin nor its output", () => {
    const file = path.join(dir, "step-secret.conf");
    const script = renderStepScript(
      "failing-step on test-host",
      [{ path: file, content: `token = ${secretRef("token")}\n` }],
      `cat ${file}\nfalse`,
    );
    const result = overSsh(script, `${Buffer.from("token = Sup3rSecretT0ken\n").toString("base64")}\n`);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).not.toContain("Sup3rSecretT0ken");
    expect(result.stderr.trim().split("\n")).toHaveLength(4);
    const log = /full log \(root only\): (\S+)/.exec(result.stderr)?.[1] ?? "";
    expect(fs.readFileSync(log, "utf8")).toContain("token = Sup3rSecretT0ken");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});
