import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { run, tempDir } from "../support/tools";

const ROOT = path.resolve(__dirname, "..", "..");
const WORKFLOW = path.join(ROOT, ".github", "workflows", "pr.yml");
const VALIDATOR = path.join(ROOT, "node_modules", ".bin", "action-validator");

type Step = { run?: string; uses?: string; with?: Record<string, unknown>; env?: Record<string, string> };
type Workflow = {
  on: Record<string, unknown>;
  jobs: Record<string, { needs?: string; steps: Step[]; permissions?: Record<string, string> }>;
};

/** The PR workflow, checked by a real linter (@action-validator, GitHub's workflow schema) and for the gates it runs. */
describe(".github/workflows/pr.yml", () => {
  const workflow = yaml.load(fs.readFileSync(WORKFLOW, "utf8")) as Workflow;
  const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
  const commands = steps.map((step) => step.run ?? "").join("\n");

  it("passes action-validator, which fails a broken copy of it", () => {
    const valid = run(VALIDATOR, [WORKFLOW]);
    expect(valid.stderr + valid.stdout).toBe("");
    expect(valid.status).toBe(0);
    const broken = path.join(tempDir("workflow"), "pr.yml");
    fs.writeFileSync(broken, fs.readFileSync(WORKFLOW, "utf8").replace("timeout-minutes: 60", "timeout-minutes: sixty"));
    expect(run(VALIDATOR, [broken]).status).not.toBe(0);
  });

  it("runs install, typecheck, lint, the tests and the offline plan of both stacks", () => {
    for (const command of [
      "npm ci",
      "npm run typecheck",
      "npm run lint",
      "npm test",
      "npm run plan -- --stack prod",
      "npm run plan -- --stack staging",
    ]) {
      expect(commands).toContain(command);
    }
    const packageJson = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    for (const script of ["typecheck", "lint", "test", "plan", "preflight"]) expect(packageJson.scripts[script]).toBeDefined();
  });

  it("runs the preflight, then pulumi preview with the policy pack, commenting the diff on the PR", () => {
    expect(workflow.jobs.preflight.needs).toBe("checks");
    expect(workflow.jobs.preview.needs).toBe("preflight");
    expect(commands).toContain('npm run preflight -- "${args[@]}"');
    const preview = steps.find((step) => step.uses?.startsWith("pulumi/actions@"));
    expect(preview?.uses).toMatch(/^pulumi\/actions@[0-9a-f]{40}$/);
    expect(preview?.with).toMatchObject({
      command: "preview",
      policyPacks: "scripts/policy",
      "comment-on-pr": true,
      "stack-name": "${{ matrix.stack }}",
    });
    expect(workflow.jobs.preview.permissions).toMatchObject({ "pull-requests": "write" });
    // Secrets come from the repository's secrets, never from the file.
    expect(preview?.env).toEqual({
      PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
      HCLOUD_TOKEN: "${{ secrets[matrix.token] }}",
    });
    expect(fs.existsSync(path.join(ROOT, "scripts", "policy", "PulumiPolicy.yaml"))).toBe(true);
  });

  it("pins every action by commit", () => {
    for (const step of steps.filter((entry) => entry.uses)) expect(step.uses).toMatch(/@[0-9a-f]{40}$/);
  });
});
