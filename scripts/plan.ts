/**
 * The offline plan: runs the real program for a stack on Pulumi's mock engine (no Pulumi CLI, no
 * cloud token, no network) and prints what `pulumi up` would declare.
 *
 *   npm run plan -- --stack prod [--json] [--out DIR]
 *   npm run --silent plan -- --stack prod --json > plan.json   (--silent: no npm banner, pure JSON)
 *
 * --json   the summary as JSON (stack, resources, modules, servers, loadBalancers, steps, charts, warnings)
 * --out    writes every file the remote steps would land to DIR/<host>/<absolute path>, and each
 *          step's full script to DIR/<host>/keybuzz-steps/NN-<step>.sh; secrets appear only as
 *          `{{secret:<key>}}` placeholders.
 * Warnings (what a real preview/up would refuse, e.g. the placeholder admin CIDR) go to stderr.
 * A configuration error, including a stack file that is not valid YAML, exits with status 2 and the
 * validation message, before any resource is declared.
 */
import * as fs from "fs";
import * as path from "path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { isConfigError } from "../config/errors";
import { knownStacks, MockRun, mockId, reveal, runProgram } from "./lib/mock-engine";

/** The plan's summary; `--json` prints it as is. */
export interface PlanSummary {
  readonly stack: string;
  /** Resource type → count (custom resources only). */
  readonly resources: Record<string, number>;
  /** Top-level module (component type token) → resource type → count. */
  readonly modules: Record<string, Record<string, number>>;
  readonly servers: { name: string; privateIp: string; role: string; group: string; serverType: string }[];
  readonly loadBalancers: {
    name: string;
    privateIp: string;
    type: string;
    publicInterface: boolean;
    services: { listenPort: number; destinationPort: number }[];
    targets: string[];
  }[];
  /** Remote steps in declaration order (each module declares its steps in the order they run). */
  readonly steps: { host: string; step: string }[];
  readonly charts: { name: string; chart: string; version: string; namespace: string }[];
  /** What a real `pulumi preview`/`up` would refuse but the offline plan accepts (the placeholder admin CIDR). */
  readonly warnings: readonly string[];
}

type Inputs = Record<string, unknown>;

/** Builds the summary from a mock run. Pure over the run's registrations. */
export function summarize(stack: string, run: MockRun): PlanSummary {
  const custom = run.registrations.filter((registration) => registration.custom);
  const resources: Record<string, number> = {};
  const modules: Record<string, Record<string, number>> = {};
  for (const registration of custom) {
    resources[registration.type] = (resources[registration.type] ?? 0) + 1;
    const perModule = (modules[registration.module] ??= {});
    perModule[registration.type] = (perModule[registration.type] ?? 0) + 1;
  }
  const inputsOf = (type: string) =>
    custom.filter((registration) => registration.type === type).map((registration) => reveal(registration.inputs) as Inputs);
  const serverNameById = new Map(
    custom
      .filter((registration) => registration.type === "hcloud:index/server:Server")
      .map((registration) => [Number(mockId(registration.index)), registration.name]),
  );
  const serverNetworks = inputsOf("hcloud:index/serverNetwork:ServerNetwork");
  const servers = custom
    .filter((registration) => registration.type === "hcloud:index/server:Server")
    .map((registration) => {
      const inputs = reveal(registration.inputs) as Inputs;
      const labels = inputs.labels as Record<string, string>;
      const attachment = serverNetworks.find((network) => network.serverId === Number(mockId(registration.index)));
      return {
        name: registration.name,
        privateIp: String(attachment?.ip ?? ""),
        role: labels.subrole === labels.role ? labels.role : `${labels.role}/${labels.subrole}`,
        group: labels.group,
        serverType: String(inputs.serverType),
      };
    })
    .sort((a, b) => ipOrder(a.privateIp) - ipOrder(b.privateIp));
  const loadBalancers = custom
    .filter((registration) => registration.type === "hcloud:index/loadBalancer:LoadBalancer")
    .map((registration) => {
      const id = Number(mockId(registration.index));
      const network = inputsOf("hcloud:index/loadBalancerNetwork:LoadBalancerNetwork").find((inputs) => inputs.loadBalancerId === id);
      return {
        name: registration.name,
        privateIp: String(network?.ip ?? ""),
        type: String((reveal(registration.inputs) as Inputs).loadBalancerType),
        publicInterface: network?.enablePublicInterface === true,
        services: inputsOf("hcloud:index/loadBalancerService:LoadBalancerService")
          .filter((inputs) => Number(inputs.loadBalancerId) === id)
          .map((inputs) => ({ listenPort: Number(inputs.listenPort), destinationPort: Number(inputs.destinationPort) })),
        targets: inputsOf("hcloud:index/loadBalancerTarget:LoadBalancerTarget")
          .filter((inputs) => inputs.loadBalancerId === id)
          .map((inputs) => serverNameById.get(Number(inputs.serverId)) ?? String(inputs.serverId)),
      };
    });
  const charts = inputsOf("kubernetes:helm.sh/v3:Release").map((inputs) => ({
    name: String(inputs.name ?? ""),
    chart: String(inputs.chart),
    version: String(inputs.version),
    namespace: String(inputs.namespace ?? "default"),
  }));
  const steps = run.steps.map(({ host, step }) => ({ host, step }));
  return { stack, resources, modules, servers, loadBalancers, steps, charts, warnings: run.warnings };
}

/** Numeric order of a dotted IPv4 address. */
function ipOrder(ip: string): number {
  return ip.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);
}

/** The summary as the text operators read. */
export function formatSummary(summary: PlanSummary): string {
  const lines: string[] = [`KeyBuzz offline plan — stack ${summary.stack} (Pulumi mock engine: nothing was created)`, ""];
  const total = Object.values(summary.resources).reduce((sum, count) => sum + count, 0);
  lines.push(`Resources by module (${total} in all)`);
  for (const [module, types] of Object.entries(summary.modules)) {
    lines.push(`  ${module}  (${Object.values(types).reduce((sum, count) => sum + count, 0)})`);
    for (const [type, count] of Object.entries(types)) lines.push(`    ${String(count).padStart(4)}  ${type}`);
  }
  lines.push("", `Servers (${summary.servers.length})`);
  for (const server of summary.servers)
    lines.push(`  ${server.name.padEnd(16)} ${server.privateIp.padEnd(12)} ${server.group.padEnd(11)} ${server.serverType}`);
  lines.push("", `Load balancers (${summary.loadBalancers.length})`);
  for (const lb of summary.loadBalancers) {
    lines.push(`  ${lb.name} ${lb.privateIp} ${lb.type}, public interface ${lb.publicInterface ? "on" : "off"}`);
    lines.push(`    services: ${lb.services.map((service) => `${service.listenPort}→${service.destinationPort}`).join(", ")}`);
    lines.push(`    targets (private IP): ${lb.targets.join(", ")}`);
  }
  if (summary.charts.length > 0) {
    lines.push("", `Helm releases (${summary.charts.length})`);
    for (const chart of summary.charts) lines.push(`  ${chart.name || chart.chart} ${chart.chart}@${chart.version} in ${chart.namespace}`);
  }
  lines.push("", `Remote steps (${summary.steps.length}, in declaration order)`);
  summary.steps.forEach((step, index) => lines.push(`  ${String(index + 1).padStart(4)}. ${step.host.padEnd(16)} ${step.step}`));
  return `${lines.join("\n")}\n`;
}

/** Every resource's URN, sorted (compare with `pulumi stack --show-urns`; a changed URN is a replacement). */
export function planUrns(run: MockRun): string[] {
  return run.registrations.map((registration) => registration.urn).sort();
}

/**
 * How the plan's URNs differ from an earlier list: `removed` were in it and are neither a URN nor
 * an alias of the plan (a `pulumi up` would delete them), `added` are new URNs without an alias in
 * it (created), `aliased` new URNs that carry an earlier one as an alias (moved, not replaced).
 */
export function urnChanges(run: MockRun, earlier: readonly string[]): { removed: string[]; added: string[]; aliased: string[] } {
  const before = new Set(earlier);
  const current = new Set(planUrns(run));
  const aliasesNow = new Set(run.registrations.flatMap((registration) => registration.aliasUrns));
  return {
    removed: earlier.filter((urn) => !current.has(urn) && !aliasesNow.has(urn)),
    added: run.registrations.filter((r) => !before.has(r.urn) && !r.aliasUrns.some((alias) => before.has(alias))).map((r) => r.urn),
    aliased: run.registrations.filter((r) => !before.has(r.urn) && r.aliasUrns.some((alias) => before.has(alias))).map((r) => r.urn),
  };
}

/** Writes every planned file and script under `outDir`; returns how many files were written. */
export function writeHostFiles(run: MockRun, outDir: string): number {
  let written = 0;
  const stepNumber = new Map<string, number>();
  for (const step of run.steps) {
    const hostDir = path.join(outDir, step.host);
    for (const file of step.files) {
      const target = path.join(hostDir, file.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, file.content);
      written++;
    }
    const number = (stepNumber.get(step.host) ?? 0) + 1;
    stepNumber.set(step.host, number);
    const scriptPath = path.join(hostDir, "keybuzz-steps", `${String(number).padStart(2, "0")}-${step.step}.sh`);
    fs.mkdirSync(path.dirname(scriptPath), { recursive: true });
    fs.writeFileSync(scriptPath, step.script, { mode: 0o755 });
    written++;
  }
  return written;
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName("npm run plan --")
    .usage("$0 --stack <stack> [--json | --urns] [--out DIR]\n\nRuns the program on Pulumi's mock engine and prints what would be created.")
    .option("stack", { type: "string", demandOption: true, choices: knownStacks(), describe: "stack whose Pulumi.<stack>.yaml is used" })
    .option("json", { type: "boolean", default: false, describe: "print the summary as JSON" })
    .option("out", { type: "string", describe: "write every rendered host file and script under this directory" })
    .option("urns", { type: "boolean", default: false, describe: "print every resource's URN, sorted, instead of the summary" })
    .strict()
    .help()
    .parse();

  let run: MockRun;
  try {
    run = await runProgram(argv.stack);
  } catch (error) {
    if (isConfigError(error)) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const summary = summarize(argv.stack, run);
  for (const warning of summary.warnings) process.stderr.write(`warning: ${warning}\n`);
  if (argv.urns) process.stdout.write(planUrns(run).join("\n") + "\n");
  else process.stdout.write(argv.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
  if (argv.out) {
    const count = writeHostFiles(run, path.resolve(argv.out));
    process.stderr.write(`wrote ${count} files under ${path.resolve(argv.out)}\n`);
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`plan failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
