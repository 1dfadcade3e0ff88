import * as pulumi from "@pulumi/pulumi";
import type { Versions } from "../../config";
import type { Host } from "./remote";

/**
 * The module contract (DESIGN.md, "Module contract"): every module of components/<area>/<module>/
 * takes the same five inputs and exposes the same readiness output, so the second module reads like
 * the first. `config/` has already validated everything a module reads (its hosts exist, its
 * settings are in range), so a component throws no ConfigError; an Error from a component is a bug.
 */

/**
 * What a module's steps wait for. `hosts` gates each host's first step on that host's own
 * predecessor (its verified base OS), so one slow server does not hold the others back; `all`
 * gates every step (another module's `verified`).
 */
export interface After {
  /** Per host name: the resource that host's first step waits for (e.g. `BaseOs.verifiedByHost`). */
  readonly hosts?: Readonly<Record<string, pulumi.Resource>>;
  /** Resources every step of the module waits for (other modules' `verified`). */
  readonly all?: readonly pulumi.Resource[];
}

/** The inputs every module takes, `TSettings` and `TSecrets` being its own. */
export interface ModuleArgs<TSettings, TSecrets> {
  /** The module's hosts in inventory order (the inventory's group, e.g. `serversOf(inventory, "redis")` in index.ts; config/ has checked it is there); changes roll in this order. */
  readonly hosts: readonly Host[];
  /** Pinned versions (config/versions.yaml, with the digest lock when present). */
  readonly versions: Versions;
  /** The module's validated settings (its `settings.ts` schema, parsed by `config/`). */
  readonly settings: TSettings;
  /** The module's own typed slice of the platform's credentials (`PlatformSecrets`), every value secret. */
  readonly secrets: TSecrets;
  /** What the module's steps wait for. */
  readonly after: After;
}

/** The readiness output every module exposes. */
export interface ModuleOutputs {
  /** The end of the module's verification step: what depends on a healthy module waits for it. */
  readonly verified: pulumi.Resource;
}

/**
 * The resources a step of `hostName` waits for: that host's entry of `after.hosts` (when given) and
 * every `after.all`, then `extra` (the module's own ordering, e.g. the previous node of a roll).
 *
 * @throws Error when `after.hosts` is given but has no entry for `hostName` (a wiring bug: config/
 *   guarantees the host exists).
 */
export function waitsFor(after: After, hostName: string, ...extra: (pulumi.Resource | undefined)[]): pulumi.Resource[] {
  const own = after.hosts?.[hostName];
  if (after.hosts && !own) throw new Error(`no readiness for host ${hostName} in the module's "after.hosts"`);
  return [...(own ? [own] : []), ...(after.all ?? []), ...extra.filter((resource): resource is pulumi.Resource => resource !== undefined)];
}

/** One `listen` section of the shared HAProxy on haproxy-01/02. */
export interface HaproxyListener {
  /** Section name, e.g. "postgres-write", "redis". */
  readonly name: string;
  /** Port bound on 0.0.0.0 (never the LB IP). */
  readonly port: number;
  /** Lines of the section after the bind line: mode, options, checks, `server` lines. May hold secretRef() placeholders (e.g. the Redis AUTH in a tcp-check). */
  readonly lines: readonly string[];
}

/** A file the HAProxy layer places beside haproxy.cfg (e.g. a CA certificate a check verifies against). */
export interface HaproxyFile {
  /** File name inside HAProxy's config directory. */
  readonly name: string;
  /** Content; may be a secretRef() placeholder whose value is in the contribution's `secrets`. */
  readonly content: string;
}

/**
 * An end-to-end check the HAProxy layer declares once HAProxy and the load balancer in front of it
 * are ready: a client of the module, on one of the module's hosts, goes through `address:port`.
 */
export interface EndpointCheck {
  /** Resource name of the step (stable: part of its URN). */
  readonly name: string;
  /** Host the client runs on (one of the module's own, where its client tools are). */
  readonly host: Host;
  /** The listener whose port the check goes through. */
  readonly listener: string;
  /** Bash body, given the load balancer's address and the listener's port. Pure. */
  readonly script: (address: string, port: number) => string;
  /** Values whose change re-runs the check (never secret), e.g. the module's rendered fingerprint. */
  readonly triggers: readonly pulumi.Input<string>[];
  /** The resource the check was declared under before HAProxyLayer declared it; kept as an alias so the URN does not change. */
  readonly formerParent?: pulumi.Resource;
}

/** What a module behind the shared HAProxy hands to `HaproxyLayer` (its `haproxy` output). */
export interface HaproxyContribution {
  /** Its listen sections, in the order they appear in haproxy.cfg. */
  readonly listeners: readonly HaproxyListener[];
  /** Files beside haproxy.cfg its listeners reference. */
  readonly files?: readonly HaproxyFile[];
  /** Values of the secretRef() placeholders in its listeners and files, by key. */
  readonly secrets?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Its end-to-end checks through the load balancer. */
  readonly endpointChecks?: readonly EndpointCheck[];
  /** What HAProxy waits for before serving the listeners (the module's `verified`). */
  readonly verified: pulumi.Resource;
}
