import { execFileSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { VERSIONS_FILE } from "../../config/versions";
import { isSecretValue, Registration, reveal, runProgram } from "../../scripts/lib/mock-engine";

/**
 * The steps the real-host tier runs: the program's own `remote.Command`s (the `create` command and
 * stdin that `pulumi up` sends) from a mock-engine run of the test's stack, on the hosts it boots.
 */

/** One remote step as `pulumi up` would run it. */
export interface HostStep {
  /** Resource name, e.g. `redis-01-base-os`. */
  readonly name: string;
  /** Inventory name of the host it runs on. */
  readonly host: string;
  /** The step's kind: its name without the host prefix (`base-os`, `base-os-verify`). */
  readonly kind: string;
  /** The command sent over SSH (`bash -c '<rendered script>'`). */
  readonly command: string;
  /** What the step reads on stdin (secret-bearing files, base64 lines), with fresh test secrets. */
  readonly stdin: string;
  /** The step's create timeout (its `customTimeouts.create`), seconds. */
  readonly timeoutSeconds: number;
  /** Names of the steps it depends on (directly), among the selected ones. */
  readonly dependsOn: readonly string[];
}

/** What {@link planHostSteps} returns. */
export interface HostPlan {
  /** The selected steps, in an order that respects every dependency. */
  readonly steps: readonly HostStep[];
  /** Every step kind the whole plan has (on every host), sorted. */
  readonly allKinds: readonly string[];
  /** Number of remote steps in the whole plan. */
  readonly totalSteps: number;
  /** The fresh secret values the selected steps' stdin carries (to mask them in printed output). */
  readonly secretValues: readonly string[];
  /** The same values by the resource the mock engine named them after (e.g. `secrets-redis`). */
  readonly secrets: Map<string, string>;
  /** The fresh certificates that replaced the mock ones, with their keys, by resource (e.g. `pki-ca`). */
  readonly certificates: Map<string, FreshCertificate>;
}

/** A fresh self-signed certificate and its private key (PEM), standing in for a mock one. */
export interface FreshCertificate {
  readonly certificate: string;
  readonly key: string;
}

const COMMAND_TYPE = "command:remote:Command";

/** Parses a Pulumi duration such as `20m`, `90s`, `1h30m` into seconds. @throws Error on another form. */
export function durationSeconds(text: string): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!match || text === "") throw new Error(`not a Pulumi duration: "${text}"`);
  return Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
}

/**
 * A step's kind: its name without its host's name, wherever the module put it
 * (`redis-01-base-os` → `base-os`, `galera-maria-01-bootstrap` → `galera-bootstrap`), or without
 * the name of another server it is about (`k8s-worker-01-k8s-join-credentials`, run on
 * k8s-master-01 → `k8s-join-credentials`).
 */
export function stepKind(stepName: string, host: string, otherServers: readonly string[] = []): string {
  const parts = stepName.split("-");
  for (const server of [host, ...otherServers]) {
    const serverParts = server.split("-");
    for (let start = 0; start + serverParts.length <= parts.length; start++) {
      if (serverParts.every((part, offset) => parts[start + offset] === part)) {
        const rest = [...parts.slice(0, start), ...parts.slice(start + serverParts.length)];
        if (rest.length > 0) return rest.join("-");
      }
    }
  }
  return stepName;
}

/**
 * Orders `steps` so each comes after the ones it depends on (Kahn's algorithm, declaration order
 * among ready steps). @throws Error on a cycle, naming the steps left.
 */
export function dependencyOrder<T extends { name: string; dependsOn: readonly string[] }>(steps: readonly T[]): T[] {
  const remaining = new Map(steps.map((step) => [step.name, step]));
  const ordered: T[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.values()].filter((step) => step.dependsOn.every((dependency) => !remaining.has(dependency)));
    if (ready.length === 0) throw new Error(`dependency cycle among steps ${[...remaining.keys()].join(", ")}`);
    for (const step of ready) {
      ordered.push(step);
      remaining.delete(step.name);
    }
  }
  return ordered;
}

/** A mock engine certificate (`-----BEGIN CERTIFICATE-----\n<resource>\n-----END CERTIFICATE-----`). */
const MOCK_CERTIFICATE = /-----BEGIN CERTIFICATE-----\n([A-Za-z0-9_-]+)\n-----END CERTIFICATE-----\n?/g;

/**
 * A fresh self-signed certificate (PEM) named after `resource`, valid one day, from the machine's
 * openssl, with its key (a stand-in backend serves it, so HAProxy's `ca-file` check verifies it).
 */
function freshCertificate(resource: string): FreshCertificate {
  const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "-", "-out", "-"];
  args.push("-subj", `/CN=keybuzz-host-tier ${resource}`, "-days", "1");
  const pem = execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const certificate = /-----BEGIN CERTIFICATE-----\n[^-]+-----END CERTIFICATE-----\n/.exec(pem)?.[0];
  const key = /-----BEGIN PRIVATE KEY-----\n[^-]+-----END PRIVATE KEY-----\n/.exec(pem)?.[0];
  if (certificate === undefined || key === undefined) throw new Error(`openssl gave no certificate and key for ${resource}`);
  return { certificate, key };
}

/**
 * Replaces every mock secret (`mock-secret-<resource>`) inside the base64 stdin lines with a fresh
 * random value, the same value for the same resource within one plan, so files that share a secret
 * (a password and its HAProxy check) still agree; and every mock certificate with a real fresh one
 * (the daemons parse them: HAProxy refuses a `ca-file` that is not PEM).
 */
export function withFreshSecrets(stdin: string, values: Map<string, string>, certificates = new Map<string, FreshCertificate>()): string {
  return stdin
    .split("\n")
    .map((line) => {
      if (line === "") return line;
      const text = Buffer.from(line, "base64").toString("utf8");
      const fresh = text
        .replace(/mock-secret-([A-Za-z0-9_-]+)/g, (_, resource: string) => {
          if (!values.has(resource)) values.set(resource, randomBytes(24).toString("base64url"));
          return values.get(resource) as string;
        })
        .replace(MOCK_CERTIFICATE, (_, resource: string) => {
          if (!certificates.has(resource)) certificates.set(resource, freshCertificate(resource));
          return (certificates.get(resource) as FreshCertificate).certificate;
        });
      return Buffer.from(fresh).toString("base64");
    })
    .join("\n");
}

/** Where the patched mock monitor notes create timeouts, for the plan being run. */
let noteTimeouts: Map<string, string> | undefined;

/**
 * Notes each resource's `customTimeouts.create` (the mock engine does not keep it): the program's
 * steps carry their bound there (components/lib/remote.ts). Patches the mock monitor once per process.
 */
function recordCreateTimeouts(): Map<string, string> {
  const timeouts = new Map<string, string>();
  if (noteTimeouts === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mocks = require("@pulumi/pulumi/runtime/mocks") as {
      MockMonitor: { prototype: { registerResource(request: unknown, callback: unknown): unknown } };
    };
    type Request = { getName(): string; getCustomtimeouts(): { getCreate(): string } | undefined };
    const prototype = mocks.MockMonitor.prototype;
    const original = prototype.registerResource;
    prototype.registerResource = function (this: unknown, request: unknown, callback: unknown) {
      const create = (request as Request).getCustomtimeouts()?.getCreate();
      if (create) noteTimeouts?.set((request as Request).getName(), create);
      return original.call(this, request, callback);
    };
  }
  noteTimeouts = timeouts;
  return timeouts;
}

/** Arguments of {@link planHostSteps}. */
export interface PlanArgs {
  /** Stack whose file gives the base config (`Pulumi.<stack>.yaml`). */
  readonly stack: string;
  /** Config keys replaced for the test (`keybuzz:adminCidrs`, `keybuzz:sshPublicKeys`), values as JSON text. */
  readonly configOverride: Record<string, string>;
  /** Inventory names of the booted hosts: only their steps run. */
  readonly hosts: readonly string[];
  /** Step kinds to run (e.g. `base-os`); a step of another kind is left out, and so is every step after it. */
  readonly kinds: readonly string[];
  /**
   * Step kinds the tier does not run but takes as done (e.g. `postgres-verify` before HAProxy): a
   * dependency on such a step does not hold its dependents back. Default none.
   */
  readonly assumedDoneKinds?: readonly string[];
  /**
   * The test stack's Docker source, over `config/versions.yaml`'s `docker` block (the hosts are
   * Debian: the distribution's docker.io, at the versions the golden image holds).
   */
  readonly docker?: { readonly source: string; readonly engine: string; readonly containerd: string };
  /**
   * The test stack's image pins over `config/versions.yaml`'s `images` (e.g. the Redis stand-in
   * under a second tag, for a roll that must restart every node). Default none.
   */
  readonly images?: Readonly<Record<string, string>>;
  /**
   * Fresh secret values by resource, shared with an earlier plan so a second plan of the same hosts
   * (a changed setting) carries the same passwords; filled with new values as needed. Default a new map.
   */
  readonly secrets?: Map<string, string>;
}

/**
 * Runs `load` while reads of `config/versions.yaml` return it with the test stack's own pins
 * (`docker` replaced, `images` entries replaced), as an operator would set them in that file.
 * Restores the reader afterwards.
 */
async function withVersionPins<T>(args: Pick<PlanArgs, "docker" | "images">, load: () => Promise<T>): Promise<T> {
  if (args.docker === undefined && args.images === undefined) return load();
  // The module object itself: config/versions.ts reads through it at call time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fsModule = require("fs") as { readFileSync: typeof fs.readFileSync };
  const original = fsModule.readFileSync;
  const patched = ((file: fs.PathOrFileDescriptor, options?: unknown) => {
    const content = original(file, options as BufferEncoding);
    if (typeof file !== "string" || path.resolve(file) !== VERSIONS_FILE) return content;
    const versions = yaml.load(String(content)) as Record<string, unknown>;
    return yaml.dump({
      ...versions,
      docker: { ...(versions.docker as object), ...args.docker },
      images: { ...(versions.images as object), ...args.images },
    });
  }) as typeof fs.readFileSync;
  fsModule.readFileSync = patched;
  try {
    return await load();
  } finally {
    fsModule.readFileSync = original;
  }
}

/**
 * Runs the program on the mock engine and selects the steps on `hosts` whose kind is in `kinds`
 * and whose step dependencies are all selected too, in dependency order.
 *
 * @throws Error when the program throws (bad config) or the dependencies have a cycle.
 */
export async function planHostSteps(args: PlanArgs): Promise<HostPlan> {
  const timeouts = recordCreateTimeouts();
  const run = await withVersionPins(args, () => runProgram(args.stack, args.configOverride));
  const hostOf = new Map(run.steps.map((step) => [step.step, step.host]));
  const servers = [...new Set(hostOf.values())];
  const commands = run.registrations.filter((registration) => registration.type === COMMAND_TYPE);
  const kindOf = (registration: Registration) => {
    const host = hostOf.get(registration.name);
    if (host === undefined) throw new Error(`step ${registration.name} is not in the planned steps`);
    return stepKind(registration.name, host, servers);
  };
  const allKinds = [...new Set(commands.map(kindOf))].sort();
  const assumedDone = args.assumedDoneKinds ?? [];
  // Dependencies that count: other steps, minus those the tier takes as done.
  const names = new Set(
    commands.filter((registration) => !assumedDone.includes(kindOf(registration))).map((registration) => registration.name),
  );

  const secrets = args.secrets ?? new Map<string, string>();
  const certificates = new Map<string, FreshCertificate>();
  const candidates = commands
    .filter((registration) => args.hosts.includes(hostOf.get(registration.name) ?? "") && args.kinds.includes(kindOf(registration)))
    .map((registration): HostStep => {
      const stdin = registration.inputs.stdin;
      const create = reveal(registration.inputs.create);
      if (typeof create !== "string") throw new Error(`step ${registration.name} has no create command`);
      const timeout = timeouts.get(registration.name);
      if (timeout === undefined) throw new Error(`step ${registration.name} has no create timeout`);
      return {
        name: registration.name,
        host: hostOf.get(registration.name) as string,
        kind: kindOf(registration),
        command: create,
        stdin: stdin === undefined ? "" : withFreshSecrets(String(isSecretValue(stdin) ? reveal(stdin) : stdin), secrets, certificates),
        timeoutSeconds: durationSeconds(timeout),
        dependsOn: registration.dependsOn.filter((dependency) => names.has(dependency)),
      };
    });
  // A step runs only when every step it depends on runs too (transitively).
  let selected = candidates;
  for (;;) {
    const kept = new Set(selected.map((step) => step.name));
    const next = selected.filter((step) => step.dependsOn.every((dependency) => kept.has(dependency)));
    if (next.length === selected.length) break;
    selected = next;
  }
  return {
    steps: dependencyOrder(selected),
    allKinds,
    totalSteps: commands.length,
    secretValues: [...secrets.values()],
    secrets,
    certificates,
  };
}
