import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { lockedImage } from "../../../config";
import { HaproxyContribution, ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { HostFile, remoteStep } from "../../lib/remote";
import { HAPROXY_HOST_DIR, HAPROXY_IMAGE_UID, renderHaproxyConfig, renderHaproxyStepScript } from "./render";
import type { HaproxySettings } from "./settings";

/** Bound of an end-to-end check through the load balancer, minutes (its own wait is 120 s). */
const ENDPOINT_CHECK_TIMEOUT_MINUTES = 5;

/** The load balancer in front of the haproxy group, through which the endpoint checks go. */
export interface HaproxyLoadBalancer {
  /** Its private address (prod: 10.0.0.10); each check goes through `address:<listener port>`. */
  readonly address: string;
  /** The resource that exists once it forwards (the Hetzner load balancer and its services). */
  readonly ready: pulumi.Resource;
}

/** Arguments of {@link HaproxyLayer}: the module contract (no secrets of its own) plus what it serves. */
export interface HaproxyLayerArgs extends ModuleArgs<HaproxySettings, Record<string, never>> {
  /**
   * Every module's HAProxy contribution (its `haproxy` output), in the order its listen sections
   * appear in haproxy.cfg. HAProxy waits for each contribution's `verified`.
   */
  readonly contributions: readonly HaproxyContribution[];
  /**
   * The internal load balancer that targets the haproxy group. The contributions' endpoint checks
   * are declared only when it is given (they go through it).
   */
  readonly loadBalancer?: HaproxyLoadBalancer;
}

/**
 * The shared HAProxy on the haproxy group (`keybuzz:data:HaproxyLayer`; spec 001 module 3): the
 * rendered haproxy.cfg (every contribution's listen sections) and the files beside it on each host,
 * in a pinned container on the host network. Hosts change one at a time: haproxy-02's step waits
 * for haproxy-01's verified step, so the LB always has one healthy target. Once every host is
 * verified and the load balancer forwards, it declares the contributions' end-to-end checks.
 */
export class HaproxyLayer extends pulumi.ComponentResource implements ModuleOutputs {
  /** The last host's verified step: every host runs HAProxy and each listener has a checked server UP. */
  public readonly verified: command.remote.Command;
  /** The verified step of each host, by host name (PgBouncer on that host waits for it). */
  public readonly verifiedByHost: Readonly<Record<string, command.remote.Command>>;
  /** The rendered haproxy.cfg (may hold secret placeholders, never values). */
  public readonly config: string;

  constructor(name: string, args: HaproxyLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:HaproxyLayer", name, {}, opts);
    const listeners = args.contributions.flatMap((contribution) => contribution.listeners);
    this.config = renderHaproxyConfig(listeners);
    const owner = `${HAPROXY_IMAGE_UID}:${HAPROXY_IMAGE_UID}`;
    const files: HostFile[] = [
      { path: `${HAPROXY_HOST_DIR}/haproxy.cfg`, content: this.config, mode: "0640", owner },
      ...args.contributions
        .flatMap((contribution) => contribution.files ?? [])
        .map((file) => ({ path: `${HAPROXY_HOST_DIR}/${file.name}`, content: file.content, mode: "0640", owner })),
    ];
    const secrets = contributedSecrets(args.contributions);
    const script = renderHaproxyStepScript(lockedImage(args.versions, "haproxy"), listeners, args.settings.verifyTimeoutSeconds);
    const backends = args.contributions.map((contribution) => contribution.verified);
    const verifiedByHost: Record<string, command.remote.Command> = {};
    let previous: command.remote.Command | undefined;
    for (const host of args.hosts) {
      const hostName = host.spec.name;
      previous = remoteStep(
        `${hostName}-haproxy`,
        { host, files, script, secrets, timeoutMinutes: 10 },
        { parent: this, dependsOn: waitsFor(args.after, hostName, ...backends, previous) },
      );
      verifiedByHost[hostName] = previous;
    }
    if (!previous) throw new Error(`HaproxyLayer ${name}: no hosts`);
    this.verified = previous;
    this.verifiedByHost = verifiedByHost;

    const loadBalancer = args.loadBalancer;
    if (loadBalancer) {
      for (const contribution of args.contributions) {
        for (const check of contribution.endpointChecks ?? []) {
          const listener = contribution.listeners.find((candidate) => candidate.name === check.listener);
          if (!listener)
            throw new Error(`HaproxyLayer ${name}: endpoint check ${check.name} names no listener of its module (${check.listener})`);
          remoteStep(
            check.name,
            {
              host: check.host,
              script: check.script(loadBalancer.address, listener.port),
              timeoutMinutes: ENDPOINT_CHECK_TIMEOUT_MINUTES,
              triggers: [...check.triggers],
            },
            {
              parent: this,
              dependsOn: [contribution.verified, loadBalancer.ready, ...Object.values(verifiedByHost)],
              // Declared under its module before this layer declared it: the alias moves the URN instead of replacing the step.
              aliases: check.formerParent ? [{ parent: check.formerParent }] : undefined,
            },
          );
        }
      }
    }
    this.registerOutputs({ verified: this.verified, verifiedByHost: this.verifiedByHost, config: this.config });
  }
}

/**
 * The secret values of every contribution, by placeholder key.
 *
 * @throws Error when two contributions use the same key (a wiring bug: each module owns its keys).
 */
function contributedSecrets(contributions: readonly HaproxyContribution[]): Record<string, pulumi.Input<string>> {
  const secrets: Record<string, pulumi.Input<string>> = {};
  for (const [key, value] of contributions.flatMap((contribution) => Object.entries(contribution.secrets ?? {}))) {
    if (key in secrets) throw new Error(`HAProxy secret placeholder "${key}" is contributed twice`);
    secrets[key] = value;
  }
  return secrets;
}
