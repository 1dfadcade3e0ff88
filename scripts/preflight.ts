/**
 * The preflight: checks every fact the program takes from outside before the first resource is
 * created — pinned images (linux/amd64, digests recorded), apt pins, chart versions, Hetzner
 * location, types, image, SSH keys and limits, and the admin CIDRs.
 *
 *   npm run preflight -- --stack prod [--json] [--limits FILE] [--endpoints FILE] [--timeout S] [--write-lock]
 *
 * Each image's digest is compared with config/versions.lock.yaml (a moved tag fails); `--write-lock`
 * records the digests resolved, after every fact held.
 *
 * The Hetzner token is read from HCLOUD_TOKEN (as the hcloud CLI reads it), else from the stack's
 * `hcloud:token` through `pulumi config get` when the Pulumi CLI is there.
 * Exit status: 0 every fact holds, 1 a fact fails or its source is unreachable, 2 configuration error.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import { promisify } from "util";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { z } from "zod";
import { ConfigError, formatZodError, isConfigError } from "../config/errors";
import { loadVersions } from "../config/versions";
import { knownStacks, readStackConfig, runProgram } from "./lib/mock-engine";
import { DEFAULT_ENDPOINTS, Endpoints, readPatroniDockerfile, runPreflight } from "./preflight/checks";
import { LIMIT_KINDS, LimitKind } from "./preflight/hetzner";
import { compareWithLock, LOCK_FILE, readLock, writeLock } from "./preflight/lock";
import { formatReport, summarizeFacts } from "./preflight/report";

const url = z.string().url();

/** `--endpoints FILE`: any base URL replaced (all keys optional). */
const endpointsSchema = z.strictObject({
  hcloud: url.optional(),
  registries: z.record(z.string(), url).optional(),
  dockerApt: url.optional(),
  kubernetesApt: url.optional(),
  pgdgApt: url.optional(),
  charts: z.record(z.string(), url).optional(),
});

/** `--limits FILE`: the project's limits from Hetzner's Console (Project → Limits), by API resource name. */
const limitsSchema = z.strictObject(
  Object.fromEntries(LIMIT_KINDS.map((kind) => [kind, z.number().int().min(0).optional()])) as Record<
    LimitKind,
    z.ZodOptional<z.ZodNumber>
  >,
);

/** Reads and validates a YAML (or JSON) options file. @throws {ConfigError} naming the file and key. */
function readOptionsFile<T>(file: string, schema: z.ZodType<T>, flag: string): T {
  let raw: unknown;
  try {
    raw = yaml.load(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError([`${flag} ${file}: ${(error as Error).message}`]);
  }
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, `${flag} ${file}: `));
  return parsed.data;
}

/** The Hetzner token: HCLOUD_TOKEN, else the stack's secret `hcloud:token` via the Pulumi CLI (kept in memory only). */
async function hetznerToken(stack: string): Promise<string | undefined> {
  if (process.env.HCLOUD_TOKEN) return process.env.HCLOUD_TOKEN;
  try {
    const { stdout } = await promisify(execFile)("pulumi", ["config", "get", "hcloud:token", "--stack", stack], { timeout: 20_000 });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName("npm run preflight --")
    .usage("$0 --stack <stack> [--json]\n\nChecks every external fact the stack depends on before anything is created.")
    .option("stack", { type: "string", demandOption: true, choices: knownStacks(), describe: "stack whose Pulumi.<stack>.yaml is checked" })
    .option("json", { type: "boolean", default: false, describe: "print the facts and the summary as JSON" })
    .option("limits", {
      type: "string",
      describe: "YAML file with the project's limits (servers, load_balancers, placement_groups, primary_ips, volumes)",
    })
    .option("endpoints", {
      type: "string",
      describe: "YAML file replacing upstream base URLs (hcloud, registries, dockerApt, kubernetesApt, pgdgApt, charts)",
    })
    .option("timeout", { type: "number", default: 10, describe: "bound of one request, seconds" })
    .option("lock", { type: "string", default: LOCK_FILE, describe: "digest lock the images are compared with" })
    .option("write-lock", { type: "boolean", default: false, describe: "write the resolved digests to the lock when every fact holds" })
    .strict()
    .help()
    .parse();

  let facts;
  try {
    const versions = loadVersions();
    const endpointOverrides = argv.endpoints ? readOptionsFile(argv.endpoints, endpointsSchema, "--endpoints") : {};
    const endpoints: Endpoints = {
      ...DEFAULT_ENDPOINTS,
      ...endpointOverrides,
      registries: { ...DEFAULT_ENDPOINTS.registries, ...endpointOverrides.registries },
      charts: { ...DEFAULT_ENDPOINTS.charts, ...endpointOverrides.charts },
    };
    const limits = argv.limits ? readOptionsFile(argv.limits, limitsSchema, "--limits") : {};
    const lock = argv.writeLock ? {} : readLock(argv.lock);
    // The plan of the stack is read with the preflight's lock; --write-lock replaces it, so a stale one must not stop it.
    const run = await runProgram(argv.stack, {}, { lockFile: argv.writeLock ? null : argv.lock });
    const adminCidrs = JSON.parse(readStackConfig(argv.stack).config["keybuzz:adminCidrs"] ?? "[]") as string[];
    const resolved = await runPreflight(
      { versions, adminCidrs, registrations: run.registrations, dockerfile: readPatroniDockerfile() },
      { endpoints, token: await hetznerToken(argv.stack), timeoutMs: argv.timeout * 1000, limits },
    );
    facts = compareWithLock(resolved, lock);
  } catch (error) {
    if (isConfigError(error)) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const summary = summarizeFacts(facts);
  if (argv.writeLock) {
    if (summary.exitCode === 0) {
      const images = writeLock(facts, argv.lock);
      process.stderr.write(`wrote ${Object.keys(images).length} digests to ${argv.lock}\n`);
    } else process.stderr.write(`lock not written: not every fact holds\n`);
  }
  process.stdout.write(argv.json ? `${JSON.stringify({ stack: argv.stack, facts, summary }, null, 2)}\n` : formatReport(argv.stack, facts));
  process.exit(summary.exitCode);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`preflight failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
