import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { declareResources, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { PlanSummary } from "../../scripts/plan";

const root = path.resolve(__dirname, "..", "..");
/** Runs `fn` with a throwaway stack file `Pulumi.<stack>.yaml` beside the real ones. */
function withStackFile<T>(stack: string, content: string, fn: () => T): T {
  const stackFile = path.join(root, `Pulumi.${stack}.yaml`);
  fs.writeFileSync(stackFile, content);
  try {
    return fn();
  } finally {
    fs.rmSync(stackFile);
  }
}
const prodStackFile = () => fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");

const plan = (args: string[]) =>
  spawnSync(process.execPath, [require.resolve("ts-node/dist/bin"), "--transpile-only", path.join(root, "scripts", "plan.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
  });

describe("offline plan (npm run plan)", () => {
  it.each([
    ["prod", 29, 5],
    ["staging", 20, 4],
  ])("summarises the %s stack as JSON", (stack, serverCount, lbCount) => {
    const result = plan(["--stack", stack, "--json"]);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout) as PlanSummary;
    expect(summary.stack).toBe(stack);
    expect(summary.servers).toHaveLength(serverCount);
    expect(summary.loadBalancers).toHaveLength(lbCount);
    expect(summary.resources["hcloud:index/server:Server"]).toBe(serverCount);
    const internal = summary.loadBalancers.find((lb) => lb.privateIp === "10.0.0.10");
    expect(internal).toMatchObject({ publicInterface: false });
    expect(internal?.services.map((service) => service.listenPort)).toEqual([5432, 5433, 6432, 6379, 5672, 9000]);
    expect(summary.steps.length).toBeGreaterThanOrEqual(serverCount * 2);
  });

  it("writes every host file under DIR/<host>/<path>, with secrets only as placeholders", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "plan-out-"));
    const result = plan(["--stack", "prod", "--out", out]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("Load balancers (5)");
    expect(fs.readFileSync(path.join(out, "redis-01", "etc/ssh/sshd_config.d/00-keybuzz.conf"), "utf8")).toContain(
      "PasswordAuthentication no",
    );
    expect(fs.readdirSync(path.join(out, "redis-01", "keybuzz-steps"))).toContain("01-redis-01-base-os.sh");
    // The mock engine's generated secrets are `mock-secret-<name>`: none may reach a written file.
    const leaks = spawnSync("grep", ["-rl", "mock-secret-", out], { encoding: "utf8" });
    expect(leaks.stdout).toBe("");
    expect(leaks.status).toBe(1);
  });

  it("exits with status 2 and the validation message on a bad config", () => {
    // A throwaway stack file beside the real ones: prod with haproxy-02 on haproxy-01's address.
    const stackFile = path.join(root, "Pulumi.plan-test-bad.yaml");
    fs.writeFileSync(
      stackFile,
      fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8").replace("privateIp: 10.0.0.12,", "privateIp: 10.0.0.11,"),
    );
    try {
      const result = plan(["--stack", "plan-test-bad"]);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/keybuzz:servers\[1\]\.privateIp: 10\.0\.0\.11 is already used by keybuzz:servers\[0\]/);
      expect(result.stdout).toBe("");
    } finally {
      fs.rmSync(stackFile);
    }
  });

  it("runs the README's documented JSON command through npm: pure JSON, the placeholder admin CIDR warned on stderr", () => {
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
    const commands = readme.split("\n").filter((line) => /^npm run .*\bplan\b.*--json\s*>\s*\S+$/.test(line));
    expect(commands).toHaveLength(1);
    const [command] = commands;
    const file = path.join(root, command.split(">").pop()!.trim());
    try {
      const result = spawnSync("bash", ["-c", command], { cwd: root, encoding: "utf8", timeout: 120_000 });
      expect(result.status).toBe(0);
      const summary = JSON.parse(fs.readFileSync(file, "utf8")) as PlanSummary;
      expect(summary.stack).toBe("prod");
      expect(summary.servers).toHaveLength(29);
      expect(summary.warnings).toEqual([expect.stringMatching(/^keybuzz:adminCidrs\[0\]: 192\.0\.2\.10\/32 is the shipped placeholder/)]);
      expect(result.stderr).toMatch(/^warning: keybuzz:adminCidrs\[0\]: 192\.0\.2\.10\/32 .*a real pulumi preview\/up refuses it/m);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it("exits 2 with one line naming the file and line of a YAML syntax error, no stack trace", () => {
    const lines = prodStackFile().split("\n");
    const index = lines.findIndex((text) => text.startsWith("  keybuzz:location:"));
    lines[index] = "  keybuzz:location: fsn1: nbg1"; // a second `:` on one line: not a mapping entry
    const result = withStackFile("plan-test-yaml", lines.join("\n"), () => plan(["--stack", "plan-test-yaml"]));
    expect(result.status).toBe(2);
    const problems = result.stderr.split("\n").filter((text) => text.startsWith("  - "));
    expect(problems).toEqual([
      expect.stringMatching(
        new RegExp(`^  - Pulumi\\.plan-test-yaml\\.yaml:${index + 1}:\\d+: not valid YAML \\(.+\\); fix the stack file$`),
      ),
    ]);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe("");
  });

  it("exits 2 on a misspelt keybuzz:* key, naming the nearest one", () => {
    const content = prodStackFile().replace("  keybuzz:servers:", "  keybuzz:sever:");
    const result = withStackFile("plan-test-typo", content, () => plan(["--stack", "plan-test-typo"]));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("keybuzz:sever: not a KeyBuzz setting; did you mean keybuzz:servers?");
    expect(result.stdout).toBe("");
  });

  it("uploads prod's SSH key and has staging reuse it by name (Hetzner refuses the same fingerprint twice)", async () => {
    const sshKeysOfServers = (run: Awaited<ReturnType<typeof runProgram>>) => [
      ...new Set(
        run.registrations
          .filter((registration) => registration.type === "hcloud:index/server:Server")
          .map((registration) => JSON.stringify((reveal(registration.inputs) as { sshKeys: unknown }).sshKeys)),
      ),
    ];
    const prod = await runProgram("prod");
    const uploaded = prod.registrations.filter((registration) => registration.type === "hcloud:index/sshKey:SshKey");
    expect(uploaded.map((registration) => (reveal(registration.inputs) as { name: string }).name)).toEqual(["keybuzz-operator-1"]);
    expect(sshKeysOfServers(prod)).toEqual([JSON.stringify([String(100000 + uploaded[0].index)])]);

    const staging = await runProgram("staging");
    expect(staging.registrations.filter((registration) => registration.type === "hcloud:index/sshKey:SshKey")).toEqual([]);
    const [reused] = sshKeysOfServers(staging);
    expect(sshKeysOfServers(staging)).toHaveLength(1);
    expect(JSON.parse(reused)).toEqual([expect.stringMatching(/^\d+$/)]);
  });

  it("refuses a stack that has no stack file, listing the known ones", () => {
    const result = plan(["--stack", "no-such-stack"]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Choices: .*"prod"/);
  });
});

describe("URNs and aliases on the mock engine", () => {
  it("records a moved resource's former URN from its alias, as the engine would resolve it", async () => {
    const registrations = await declareResources(() => {
      const former = new pulumi.ComponentResource("keybuzz:test:Former", "former");
      const current = new pulumi.ComponentResource("keybuzz:test:Current", "current");
      new pulumi.ComponentResource("keybuzz:test:Child", "child", {}, { parent: current, aliases: [{ parent: former }] });
    });
    const child = registrations.find((registration) => registration.name === "child")!;
    expect(child.urn).toBe("urn:pulumi:test::keybuzz::keybuzz:test:Current$keybuzz:test:Child::child");
    expect(child.aliasUrns).toEqual(["urn:pulumi:test::keybuzz::keybuzz:test:Former$keybuzz:test:Child::child"]);
  });
});
