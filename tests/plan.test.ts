import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PlanSummary } from "../scripts/plan";

const root = path.resolve(__dirname, "..");
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
    expect(internal?.services.map((service) => service.listenPort)).toEqual([5432, 5433, 6432, 6379, 5672]);
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

  it("refuses a stack that has no stack file, listing the known ones", () => {
    const result = plan(["--stack", "no-such-stack"]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Choices: .*"prod"/);
  });
});
