import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { PRIVATE_ONLY_PORTS } from "../../config/inventory";
import { worldOpenCidrs, WORLD_OPEN_PREFIX } from "../preflight/admin-cidrs";

/**
 * The rules of the KeyBuzz policy pack, as plain objects so tests can call them on the program's
 * own resources from the mock engine. Resource shapes: the providers' input properties
 * (@pulumi/hcloud, @pulumi/command remote.Command, @pulumi/kubernetes helm.v3.Release, @pulumi/random).
 */

type Props = Record<string, unknown>;

/**
 * Ports that must never listen on a public load balancer (a Hetzner LB has no source filter): the
 * data tier's, SSH and the Kubernetes API — the config check's own list (`PRIVATE_ONLY_PORTS`,
 * config/inventory.ts), so the policy and the check cannot drift apart.
 */
export const DATA_PORTS: Readonly<Record<number, string>> = PRIVATE_ONLY_PORTS;

/**
 * Why an image reference is not pinned, or undefined when it is. Pinned: a digest, or a tag with a
 * full version (`2.8.15`, `v3.5.21`, `7.2.5-alpine`, `RELEASE.…`); PostgreSQL's own `major.minor`
 * tags (`postgres:16.10-bookworm`) are exact. Floating: no tag, `latest`, `7`, `3.13-management`.
 */
export function unpinnedImageReason(reference: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(reference)) return undefined;
  const lastSlash = reference.lastIndexOf("/");
  const colon = reference.indexOf(":", lastSlash + 1);
  if (colon < 0) return "has no tag (Docker reads it as latest)";
  const repository = reference.slice(0, colon);
  const tag = reference.slice(colon + 1);
  if (/^latest$/i.test(tag) || /(^|-)latest(-|$)/i.test(tag)) return "uses `latest`";
  if (/^v?\d+\.\d+\.\d+/.test(tag) || /^RELEASE\./.test(tag)) return undefined;
  if (/(^|\/)postgres$/.test(repository) && /^\d+\.\d+(-[a-z]+)?$/.test(tag)) return undefined;
  return `tag ${tag} floats (name a full release such as 1.2.3)`;
}

/**
 * Image references a remote step's script names: `*IMAGE=<ref>` / `image=<ref>` assignments and
 * `${…IMAGE:-<ref>}` defaults (the steps pass their pinned image through such variables), and the
 * operand of `docker pull` — also inside a `bash -c '…'` command, where quotes are escaped (`'\\''`).
 */
export function imagesInScript(script: string): string[] {
  const found = new Set<string>();
  for (const match of script.matchAll(/\b\w*(?:IMAGE|image)\w*(?:=|:-)["'\\]*([a-z0-9][\w.\-/:@]*)/g)) found.add(match[1]);
  for (const match of script.matchAll(/\bdocker\s+pull\s+(?:-\S+\s+)*["'\\]*([a-z0-9][\w.\-/:@]*)/g)) found.add(match[1]);
  // Locally built images (keybuzz/…:<version>-<hash>) and shell expansions are not registry pins.
  return [...found].filter((reference) => !reference.startsWith("keybuzz/"));
}

const commandScripts = (props: Props) =>
  ["create", "update", "stdin"].map((key) => props[key]).filter((value): value is string => typeof value === "string");

/** No floating or `latest` image in a remote step's script, no chart without an exact version. */
export const noFloatingImages: ResourceValidationPolicy = {
  name: "no-floating-images",
  description:
    "Every container image is pinned to a release tag or a digest (no `latest`, no floating tag); every Helm chart to an exact version.",
  validateResource: (args, reportViolation) => {
    if (args.type === "command:remote:Command") {
      for (const reference of new Set(commandScripts(args.props).flatMap(imagesInScript))) {
        const reason = unpinnedImageReason(reference);
        if (reason) reportViolation(`${args.name}: image ${reference} ${reason}`);
      }
    }
    if (args.type === "kubernetes:helm.sh/v3:Release") {
      const version = String(args.props.version ?? "");
      if (!/^v?\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version))
        reportViolation(`${args.name}: chart ${String(args.props.chart)} version "${version}" is not an exact release`);
    }
  },
};

/** No data port on a load balancer whose public interface is on (services and attachment share their component parent). */
export const noDataPortOnPublicLoadBalancer: StackValidationPolicy = {
  name: "no-data-port-on-public-load-balancer",
  description:
    "A load balancer with its public interface enabled serves no data-tier port (PostgreSQL, Redis, RabbitMQ, MariaDB, MinIO, etcd…).",
  validateStack: (args, reportViolation) => {
    const publicParents = new Set(
      args.resources
        .filter(
          (resource) =>
            resource.type === "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork" && resource.props.enablePublicInterface !== false,
        )
        .map((resource) => resource.opts.parent ?? resource.urn),
    );
    for (const service of args.resources.filter((resource) => resource.type === "hcloud:index/loadBalancerService:LoadBalancerService")) {
      if (!publicParents.has(service.opts.parent ?? "")) continue;
      for (const port of new Set([Number(service.props.listenPort), Number(service.props.destinationPort ?? service.props.listenPort)])) {
        if (DATA_PORTS[port])
          reportViolation(
            `${service.name}: port ${port} (${DATA_PORTS[port]}) on a public load balancer; keep it on an internal one`,
            service.urn,
          );
      }
    }
  },
};

/** Firewall rules open their ports to narrow sources only. */
export const adminCidrsNotWorldOpen: ResourceValidationPolicy = {
  name: "admin-cidrs-not-world-open",
  description: `Inbound firewall rules (SSH, the Kubernetes API) admit only sources of /${WORLD_OPEN_PREFIX} or narrower, never 0.0.0.0/0.`,
  validateResource: (args, reportViolation) => {
    if (args.type !== "hcloud:index/firewall:Firewall") return;
    for (const rule of (args.props.rules as Props[] | undefined) ?? []) {
      if (rule.direction !== "in") continue;
      const open = worldOpenCidrs((rule.sourceIps as string[] | undefined) ?? []);
      if (open.length > 0) reportViolation(`${args.name}: port ${String(rule.port)} open to ${open.join(", ")}`);
    }
  },
};

/** In prod, data volumes carry both `protect` and Hetzner's delete protection. */
export const prodDataVolumesProtected: ResourceValidationPolicy = {
  name: "prod-data-volumes-protected",
  description: "In the prod stack every data volume is `protect`ed and has Hetzner delete protection, so destroy stops at it.",
  validateResource: (args, reportViolation) => {
    if (args.type !== "hcloud:index/volume:Volume") return;
    if ((args.props.labels as Props | undefined)?.stack !== "prod") return;
    if (!args.opts.protect) reportViolation(`${args.name}: a prod data volume without the protect option`);
    if (args.props.deleteProtection !== true) reportViolation(`${args.name}: a prod data volume without deleteProtection`);
  },
};

/**
 * Generators whose result the provider does not mark secret: a credential made with one must list
 * its result in `additionalSecretOutputs` (RandomPassword and tls PrivateKey are secret by schema).
 */
const PLAIN_GENERATORS: Readonly<Record<string, string>> = {
  "random:index/randomString:RandomString": "result",
  "random:index/randomId:RandomId": "hex",
  "random:index/randomUuid:RandomUuid": "result",
  "random:index/randomPet:RandomPet": "id",
  "random:index/randomInteger:RandomInteger": "result",
};

/** Every generated credential is held as a secret. */
export const generatedCredentialsSecret: ResourceValidationPolicy = {
  name: "generated-credentials-secret",
  description:
    "Generated credentials are secrets: RandomPassword / tls PrivateKey, or a plain generator whose result is in additionalSecretOutputs.",
  validateResource: (args, reportViolation) => {
    const output = PLAIN_GENERATORS[args.type];
    if (output === undefined) return;
    const secretOutputs = args.opts.additionalSecretOutputs ?? [];
    if (
      !secretOutputs.includes(output) &&
      !(output === "hex" && ["b64Std", "b64Url", "dec", "hex"].every((key) => secretOutputs.includes(key)))
    ) {
      reportViolation(
        `${args.name}: ${args.type.split(":").pop()} keeps its ${output} in plain state; use RandomPassword or add additionalSecretOutputs: ["${output}"]`,
      );
    }
  },
};

/** A remote step that receives stdin (where secrets travel) logs nothing. */
export const stdinStepsLogNothing: ResourceValidationPolicy = {
  name: "stdin-steps-log-nothing",
  description: "Every remote.Command with stdin uses logging: none, so nothing sent or printed reaches the engine's logs.",
  validateResource: (args, reportViolation) => {
    if (args.type !== "command:remote:Command") return;
    const stdin = args.props.stdin;
    if (stdin === undefined || stdin === null || stdin === "") return;
    if (args.props.logging !== "none")
      reportViolation(`${args.name}: has stdin but logging is ${JSON.stringify(args.props.logging ?? "stdoutAndStderr (default)")}`);
  },
};

/** The pack's rules, in the order README lists them. */
export const keybuzzPolicies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
  noFloatingImages,
  noDataPortOnPublicLoadBalancer,
  adminCidrsNotWorldOpen,
  prodDataVolumesProtected,
  generatedCredentialsSecret,
  stdinStepsLogNothing,
];
