import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT, runProgram } from "../../scripts/lib/mock-engine";
import { earlyExitPipes } from "../support/early-exit-pipes";

/**
 * Under `set -o pipefail` a pipe into a reader that stops early fails whenever the writer gets
 * SIGPIPE (issue 11 item 1: the base OS verification failed in most runs). No host script and no
 * rendered step script may hold one: capture the output first, then test it.
 */

describe("the early-exit pipe finder (shfmt's parser)", () => {
  it.each([
    ["sshd -T | grep -qx 'passwordauthentication no'", "grep -qx passwordauthentication no"],
    ["x=$(redis-cli ROLE | head -n 1 || true)", "head -n 1"],
    ["f() { ufw status | grep -q '^Status: active'; }", "grep -q ^Status: active"],
    ["if a | b | grep -m1 x; then :; fi", "grep -m1 x"],
    ["fp=$(gpg --show-keys k | awk -F: '$1 == \"fpr\" { print $10; exit }')", 'awk -F: $1 == "fpr" { print $10; exit }'],
    ["journalctl -u x | sed -n '1p;q'", "sed -n 1p;q"],
    ["producer |& grep --quiet x", "grep --quiet x"],
    ["producer | while read -r line; do :; done | read -r first", "read -r first"],
  ])("flags %s", (script, reader) => {
    expect(earlyExitPipes(script).map((pipe) => pipe.reader)).toEqual([reader]);
  });

  it.each([
    ["out=$(sshd -T)\ngrep -qx 'passwordauthentication no' <<<\"$out\""],
    ["ufw status | grep '^Status'"],
    ["a | sort -u | wc -l"],
    ["a || grep -q x file"],
    ["grep -qE 'a|b' /etc/fstab"],
    ["cat <<'EOF'\nx | grep -q y\nEOF"],
    ["# sshd -T | grep -q x"],
    ["sed -e 's/quiet/q/' file | awk '{ print $1 }'"],
    ["haproxy_csv | awk -F, '$18 ~ /^UP/ { found = 1 } END { exit !found }'"],
  ])("accepts %s", (script) => {
    expect(earlyExitPipes(script)).toEqual([]);
  });
});

describe("no pipe into an early-exiting reader", () => {
  const hostScripts = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "scripts/*.sh", "scripts/**/*.sh"], {
    cwd: PROJECT_ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter((file) => file !== "" && fs.existsSync(path.join(PROJECT_ROOT, file)));

  it("covers every host script file", () => {
    expect(hostScripts).toEqual(
      expect.arrayContaining(["scripts/base-os/verify-base-os.sh", "scripts/common/apt.sh", "scripts/k8s/prepare-node.sh"]),
    );
  });

  it.each(hostScripts)("in %s", (file) => {
    expect(earlyExitPipes(fs.readFileSync(path.join(PROJECT_ROOT, file), "utf8"))).toEqual([]);
  });

  it.each(["prod", "staging"])("in any rendered step script of the %s stack", async (stack) => {
    const { steps } = await runProgram(stack);
    expect(steps.length).toBeGreaterThan(50);
    const offending = steps.flatMap((step) => earlyExitPipes(step.script).map((pipe) => `${step.step}:${pipe.line}: ${pipe.reader}`));
    expect(offending).toEqual([]);
  });
});
