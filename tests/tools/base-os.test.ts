import * as fs from "fs";
import * as path from "path";
import { renderSshdDropIn } from "../../components/os/base-os";
import { runProgram } from "../../scripts/lib/mock-engine";
import { requireTool, run, tempDir } from "../support/tools";

describe("real tools on the rendered base OS files", () => {
  it("sshd -t accepts the rendered sshd drop-in, and sshd -T shows the hardening", () => {
    const sshd = requireTool("sshd");
    const keygen = requireTool("ssh-keygen");
    const dir = tempDir("sshd");
    fs.writeFileSync(path.join(dir, "99-keybuzz.conf"), renderSshdDropIn());
    expect(run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]).status).toBe(0);
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(
      config,
      `Include ${path.join(dir, "99-keybuzz.conf")}\nHostKey ${path.join(dir, "host_key")}\nListenAddress 127.0.0.1:2222\n`,
    );
    fs.mkdirSync("/run/sshd", { recursive: true });
    const test = run(sshd, ["-t", "-f", config]);
    expect(test.stderr).toBe("");
    expect(test.status).toBe(0);
    const effective = run(sshd, ["-T", "-f", config]).stdout;
    expect(effective).toMatch(/^passwordauthentication no$/m);
    expect(effective).toMatch(/^permitrootlogin without-password$/m);
    expect(effective).toMatch(/^maxauthtries 3$/m);
  });

  it("sshd -t rejects a broken drop-in (the check is real)", () => {
    const sshd = requireTool("sshd");
    const dir = tempDir("sshd-bad");
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(config, `${renderSshdDropIn()}MaxAuthTries many\n`);
    expect(run(sshd, ["-t", "-f", config]).status).not.toBe(0);
  });

  // The whole plan, then shellcheck on its ~120 step scripts: minutes on a loaded 2-core machine.
  jest.setTimeout(300_000);
  it.each(["prod", "staging"])("shellcheck passes every rendered step script (%s)", async (stack) => {
    const shellcheck = requireTool("shellcheck");
    const { steps } = await runProgram(stack);
    const dir = tempDir(`steps-${stack}`);
    const files = steps.map((step, index) => {
      const file = path.join(dir, `${String(index).padStart(3, "0")}-${step.step}.sh`);
      fs.writeFileSync(file, step.script);
      return file;
    });
    expect(files.length).toBeGreaterThan(0);
    // Every step carries the step runner and helpers (components/remote.ts): ~0.1 s of CPU per script.
    const result = run(shellcheck, ["--severity=warning", "--shell=bash", ...files], { timeout: 240_000 });
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });
});
