import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import type { PlannedStep } from "../../components/lib/remote";
import { ConfigError } from "../../config/errors";
import { asOfflinePlan } from "../../config/offline-plan";

/**
 * Runs the real program on Pulumi's mock engine: no CLI, no cloud, no network. Shared by the
 * offline plan (`npm run plan`) and the jest tests, so both see exactly what `pulumi up` declares.
 */

/** The project root (where `Pulumi.yaml` and `index.ts` live). */
export const PROJECT_ROOT = path.resolve(__dirname, "..", "..");

/** Pulumi's wire marker of a secret value (`{ [SECRET_SIG_KEY]: SECRET_SIG, value }`). */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** One resource the program declared, with its inputs as the engine received them. */
export interface Registration {
  readonly type: string;
  readonly name: string;
  /** Inputs; secret values are still wrapped, see {@link isSecretValue} / {@link reveal}. */
  readonly inputs: Record<string, unknown>;
  readonly custom: boolean;
  /** Declaration order, from 0. */
  readonly index: number;
  /** The `protect` resource option (set once everything has registered). */
  protect: boolean;
  /** Names of the resources it depends on: its `dependsOn` and those its inputs come from (set likewise). */
  dependsOn: string[];
  /** Provider reference (`urn::id`), empty for the default provider (set likewise). */
  provider: string;
  /** URN of the parent resource, empty for the stack itself (set likewise). */
  parent: string;
  /** The `deleteBeforeReplace` resource option (set likewise). */
  deleteBeforeReplace: boolean;
  /** The `additionalSecretOutputs` resource option (set likewise). */
  additionalSecretOutputs: string[];
  /** Type token of the top-level component it belongs to (`keybuzz:infra:ServerFleet`), or `stack`. */
  module: string;
  /** The resource's URN as the engine built it (set once everything has registered); what `pulumi stack --show-urns` lists. */
  urn: string;
  /** URNs of its `aliases` (set likewise): the names it had before, which `pulumi up` moves to it instead of replacing. */
  aliasUrns: string[];
}

/** True for a value the program marked secret. */
export function isSecretValue(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** The value with every secret wrapper removed (deeply). */
export function reveal(value: unknown): unknown {
  if (isSecretValue(value)) return reveal((value as { value: unknown }).value);
  if (Array.isArray(value)) return value.map(reveal);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, reveal(inner)]));
  }
  return value;
}

/** Id the mock engine gives the resource declared at `index`: numeric, like Hetzner's. */
export function mockId(index: number): string {
  return String(100000 + index);
}

/** Mock value of a generated secret: recognisable, so tests can scan for leaks. */
export function mockSecret(resourceName: string): string {
  return `mock-secret-${resourceName}`;
}

/** Secret stack config values the plan cannot decrypt; replaced by placeholders. */
const SECRET_CONFIG_PLACEHOLDERS: Record<string, string> = {
  "keybuzz:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nplaceholder (keybuzz:sshPrivateKey)\n-----END OPENSSH PRIVATE KEY-----\n",
  "hcloud:token": "placeholder-hcloud-token",
};

/** Computed outputs a real provider would return, faked per type. */
function fakeOutputs(type: string, name: string, index: number): Record<string, unknown> {
  switch (type) {
    case "hcloud:index/server:Server":
      // TEST-NET-3 (RFC 5737): documentation addresses, never routed, never contacted.
      return { ipv4Address: `203.0.113.${(index % 250) + 1}`, ipv6Address: `2001:db8::${index.toString(16)}` };
    case "hcloud:index/loadBalancer:LoadBalancer":
      return { ipv4: `198.51.100.${(index % 250) + 1}` };
    case "random:index/randomPassword:RandomPassword":
      return { result: { [SECRET_SIG_KEY]: SECRET_SIG, value: mockSecret(name) } };
    case "tls:index/privateKey:PrivateKey":
      return {
        privateKeyPem: {
          [SECRET_SIG_KEY]: SECRET_SIG,
          value: `-----BEGIN PRIVATE KEY-----\n${mockSecret(name)}\n-----END PRIVATE KEY-----\n`,
        },
        publicKeyPem: `-----BEGIN PUBLIC KEY-----\n${name}\n-----END PUBLIC KEY-----\n`,
        // The OpenSSH forms (an SSH key pair, e.g. the Galera backups' channel to backup-01).
        privateKeyOpenssh: {
          [SECRET_SIG_KEY]: SECRET_SIG,
          value: `-----BEGIN OPENSSH PRIVATE KEY-----\n${mockSecret(name)}\n-----END OPENSSH PRIVATE KEY-----\n`,
        },
        publicKeyOpenssh: `ssh-ed25519 ${Buffer.from(name).toString("base64")}\n`,
      };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\n${name}\n-----END CERTIFICATE REQUEST-----\n` };
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      return { certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` };
    case "command:remote:Command":
      return { stdout: { [SECRET_SIG_KEY]: SECRET_SIG, value: "" }, stderr: { [SECRET_SIG_KEY]: SECRET_SIG, value: "" } };
    default:
      return {};
  }
}

/** Results of the provider functions (invokes) the program calls, faked per token. */
function fakeInvoke(token: string, inputs: Record<string, unknown>): Record<string, unknown> {
  switch (token) {
    case "hcloud:index/getSshKey:getSshKey":
      // An SSH key already in the project (`keybuzz:sshKeys: [{ existing: <name> }]`): a numeric id, like Hetzner's.
      return { ...inputs, id: 900000 + [...String(inputs.name)].reduce((sum, char) => sum + char.charCodeAt(0), 0), labels: {} };
    default:
      return inputs;
  }
}

/**
 * Reads `Pulumi.<stack>.yaml` as the config map the engine would pass (objects as JSON text).
 *
 * @throws {ConfigError} with one line naming the file, line and column when it is not valid YAML.
 */
export function readStackConfig(stack: string): { config: Record<string, string>; secretKeys: string[] } {
  const file = path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`no stack file ${file}; known stacks: ${knownStacks().join(", ")}`);
  let document: { config?: Record<string, unknown> };
  try {
    document = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as typeof document;
  } catch (error) {
    if (!(error instanceof yaml.YAMLException)) throw error;
    const where = error.mark ? `:${error.mark.line + 1}:${error.mark.column + 1}` : "";
    throw new ConfigError([`${path.basename(file)}${where}: not valid YAML (${error.reason}); fix the stack file`]);
  }
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(document.config ?? {})) {
    if (typeof value === "object" && value !== null && "secure" in value) continue;
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  for (const [key, placeholder] of Object.entries(SECRET_CONFIG_PLACEHOLDERS)) config[key] = placeholder;
  return { config, secretKeys: Object.keys(SECRET_CONFIG_PLACEHOLDERS) };
}

/** Stacks that have a `Pulumi.<stack>.yaml`. */
export function knownStacks(): string[] {
  return fs
    .readdirSync(PROJECT_ROOT)
    .map((file) => /^Pulumi\.(.+)\.yaml$/.exec(file)?.[1])
    .filter((stack): stack is string => stack !== undefined);
}

/** Result of one run of the program on the mock engine. */
export interface MockRun {
  readonly registrations: Registration[];
  /** The program's stack exports (`index.ts`), resolved. */
  readonly outputs: Record<string, unknown>;
  /** Every remote step with its rendered script and files (secrets as placeholders), in order. */
  readonly steps: readonly PlannedStep[];
  /** What a real `pulumi preview`/`up` would refuse but the offline plan accepts (the placeholder admin CIDR). */
  readonly warnings: readonly string[];
}

/** How {@link runProgram} runs the program. */
export interface RunOptions {
  /**
   * Run as the offline plan (default): the config loader accepts the shipped placeholders with a
   * warning. `false` runs it as a real `pulumi preview`/`up` would, for the tests of that refusal.
   */
  readonly offlinePlan?: boolean;
  /**
   * The digest lock the offline plan reads (default: config/versions.lock.yaml, or
   * `KEYBUZZ_VERSIONS_LOCK`); `null` plans without one. The preflight passes its `--lock`.
   */
  readonly lockFile?: string | null;
}

/**
 * Sets Pulumi's mocks for `stack` and starts recording: every resource declared from now on is
 * appended to the returned list, with the faked provider outputs a real engine would return.
 */
async function startRecording(stack: string): Promise<{ registrations: Registration[]; finish: () => Promise<Registration[]> }> {
  const registrations: Registration[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const index = registrations.length;
        registrations.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          custom: args.custom ?? true,
          index,
          module: "stack",
          protect: false,
          dependsOn: [],
          provider: "",
          parent: "",
          additionalSecretOutputs: [],
          deleteBeforeReplace: false,
          urn: "",
          aliasUrns: [],
        });
        // Hetzner ids are numbers; the program converts them with Number().
        return {
          id: args.custom === false ? undefined : mockId(index),
          state: { ...args.inputs, ...fakeOutputs(args.type, args.name, index) },
        };
      },
      call: (args) => fakeInvoke(args.token, args.inputs),
    },
    "keybuzz",
    stack,
    false,
  );
  const wiring = recordWiring();
  const finish = async () => {
    await settle(registrations);
    assignModules(registrations);
    for (const registration of registrations) {
      const { aliases, ...options } = wiring.get(`${registration.type}::${registration.name}`) ?? { aliases: [] };
      Object.assign(registration, options);
      registration.aliasUrns = aliases.map((alias) => aliasUrn(alias, registration, stack));
    }
    return registrations;
  };
  return { registrations, finish };
}

/**
 * Runs `build` (which declares resources, e.g. one component with fake hosts) on the mock engine
 * and returns every resource it declared once they have all registered. For tests of one module.
 */
export async function declareResources(build: () => void): Promise<Registration[]> {
  const { finish } = await startRecording("test");
  build();
  return finish();
}

/**
 * Runs `index.ts` for `stack` on the mock engine and waits until it has declared everything.
 *
 * @param configOverride replaces or adds config keys (`keybuzz:servers` → JSON text), for tests.
 * @throws whatever the program throws, e.g. a `ConfigError` for bad configuration.
 */
export async function runProgram(stack: string, configOverride: Record<string, string> = {}, options: RunOptions = {}): Promise<MockRun> {
  const { registrations, finish, outcome } = await startProgram(stack, configOverride, options);
  if ("error" in outcome) throw outcome.error;
  const outputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(outcome.program)) {
    outputs[key] = pulumi.Output.isInstance(value) ? await outputValue(value) : value;
  }
  await finish();
  return { registrations, outputs, steps: outcome.steps, warnings: outcome.warnings };
}

/**
 * Runs `index.ts` for `stack` like {@link runProgram}, for a configuration the program must refuse:
 * returns its error and every resource it had declared by then (after they all registered).
 *
 * @throws {Error} when the program ran to the end.
 */
export async function runFailingProgram(
  stack: string,
  configOverride: Record<string, string> = {},
  options: RunOptions = {},
): Promise<{ error: unknown; registrations: Registration[] }> {
  const { finish, outcome } = await startProgram(stack, configOverride, options);
  const registrations = await finish();
  if (!("error" in outcome)) throw new Error(`the ${stack} program ran to the end; it was expected to fail`);
  return { error: outcome.error, registrations };
}

/** Sets the mocks and config for `stack` and executes `index.ts` once, catching what it throws. */
async function startProgram(stack: string, configOverride: Record<string, string>, options: RunOptions) {
  const { config, secretKeys } = readStackConfig(stack);
  const { registrations, finish } = await startRecording(stack);
  pulumi.runtime.setAllConfig({ ...config, ...configOverride }, secretKeys);

  let program: Record<string, unknown> = {};
  let steps: PlannedStep[] = [];
  // A fresh module registry per run, so index.ts executes again for each stack and test.
  const load = () =>
    isolated(() => {
      // The program must run on each call, after the mocks are set: a static import would run it once.
      /* eslint-disable @typescript-eslint/no-require-imports */
      program = require(path.join(PROJECT_ROOT, "index"));
      steps = (require(path.join(PROJECT_ROOT, "components", "lib", "remote")) as typeof import("../../components/lib/remote"))
        .plannedSteps;
      /* eslint-enable @typescript-eslint/no-require-imports */
    });
  let warnings: readonly string[] = [];
  try {
    if (options.offlinePlan === false) load();
    else warnings = asOfflinePlan(load, options.lockFile).plan.warnings;
  } catch (error) {
    return { registrations, finish, outcome: { error } };
  }
  return { registrations, finish, outcome: { program, steps, warnings } };
}

/** The options the mock monitor does not pass to the mocks, noted from each register request. */
type Wiring = Pick<Registration, "protect" | "dependsOn" | "provider" | "parent" | "additionalSecretOutputs" | "deleteBeforeReplace"> & {
  readonly aliases: readonly AliasRequest[];
};

/** One alias of a register request (the engine's `Alias` message: a URN, or a spec relative to the resource). */
interface AliasRequest {
  getUrn(): string;
  hasSpec(): boolean;
  getSpec():
    | { getName(): string; getType(): string; getStack(): string; getProject(): string; getParenturn(): string; getNoparent(): boolean }
    | undefined;
}

/** Wraps the mock monitor's `registerResource` to note each resource's {@link Wiring} by `type::name`. */
function recordWiring(): Map<string, Wiring> {
  type Request = {
    getType(): string;
    getName(): string;
    getProtect(): boolean;
    getDependenciesList(): string[];
    getProvider(): string;
    getParent(): string;
    getAdditionalsecretoutputsList(): string[];
    getAliasesList(): AliasRequest[];
    getDeletebeforereplace(): boolean;
  };
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(request: Request, callback: unknown): unknown };
  const registerResource = monitor.registerResource.bind(monitor);
  const wiring = new Map<string, Wiring>();
  monitor.registerResource = (request, callback) => {
    wiring.set(`${request.getType()}::${request.getName()}`, {
      protect: request.getProtect(),
      dependsOn: request.getDependenciesList().map((urn) => urn.slice(urn.lastIndexOf("::") + 2)),
      provider: request.getProvider(),
      parent: request.getParent(),
      additionalSecretOutputs: request.getAdditionalsecretoutputsList(),
      aliases: request.getAliasesList(),
      deleteBeforeReplace: request.getDeletebeforereplace(),
    });
    return registerResource(request, callback);
  };
  return wiring;
}

/**
 * Fills each registration's `urn` and `module` from the URNs the mock monitor built: a URN's type
 * part is the chain of parent types (`keybuzz:infra:ServerFleet$hcloud:index/server:Server`).
 */
function assignModules(registrations: Registration[]): void {
  const monitor = pulumi.runtime.getMonitor() as unknown as { getRegisteredResources(): Map<string, unknown> };
  const byKey = new Map<string, { urn: string; module: string }>();
  for (const urn of monitor.getRegisteredResources().keys()) {
    const [, , typeChain, name] = urn.split("::");
    const types = typeChain.split("$");
    const top = types.find((type) => type.startsWith("keybuzz:"));
    byKey.set(`${types[types.length - 1]}::${name}`, { urn, module: top ?? "stack" });
  }
  for (const registration of registrations) {
    const known = byKey.get(`${registration.type}::${registration.name}`);
    registration.module = known?.module ?? "stack";
    registration.urn = known?.urn ?? "";
  }
}

/**
 * The URN an alias names: its own URN, or its spec's fields, each empty one taken from the
 * resource (Pulumi's alias semantics: `{ parent: old }` keeps the name and type).
 */
function aliasUrn(alias: AliasRequest, registration: Registration, stack: string): string {
  const spec = alias.hasSpec() ? alias.getSpec() : undefined;
  if (!spec) return alias.getUrn();
  const parentUrn = spec.getNoparent() ? "" : spec.getParenturn() || registration.parent;
  const parentChain = parentUrn ? parentUrn.split("::")[2] : "";
  const chain = parentChain && parentChain !== "pulumi:pulumi:Stack" ? `${parentChain}$` : "";
  return `urn:pulumi:${spec.getStack() || stack}::${spec.getProject() || "keybuzz"}::${chain}${spec.getType() || registration.type}::${spec.getName() || registration.name}`;
}

function outputValue(output: pulumi.Output<unknown>): Promise<unknown> {
  return new Promise((resolve) => output.apply((value) => resolve(value)));
}

/** Waits until no new resource has been registered for a few event-loop turns. */
async function settle(registrations: Registration[]): Promise<void> {
  let seen = -1;
  let quietTurns = 0;
  for (let turn = 0; turn < 2000 && quietTurns < 20; turn++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (registrations.length === seen) quietTurns++;
    else {
      seen = registrations.length;
      quietTurns = 0;
    }
  }
}

/**
 * Runs `load` with a fresh copy of the project's own modules (config/, components/, index.ts):
 * jest's isolated registry under jest, else the require cache cleared of them.
 */
function isolated(load: () => void): void {
  if (typeof jest !== "undefined") {
    jest.isolateModules(load);
    return;
  }
  for (const key of Object.keys(require.cache)) {
    if (
      key.startsWith(PROJECT_ROOT) &&
      !key.includes(`${path.sep}node_modules${path.sep}`) &&
      !key.includes(`${path.sep}scripts${path.sep}lib${path.sep}`)
    ) {
      delete require.cache[key];
    }
  }
  load();
}
