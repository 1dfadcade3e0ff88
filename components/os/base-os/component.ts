import * as pulumi from "@pulumi/pulumi";
import { Inventory } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { remoteStep, sha256 } from "../../lib/remote";
import type { ScrapeJobSpec } from "../../observability/monitoring/render";
import { baseOsFiles, exporterPortsOf, renderBaseOsScript, renderVerifyScript } from "./render";
import { BaseOsSettings } from "./settings";

/**
 * Arguments of {@link BaseOs}: the module contract (`hosts` = every server, `after.hosts` = each
 * server's private network attachment; no secrets) plus the inventory.
 */
export interface BaseOsArgs extends ModuleArgs<BaseOsSettings, Record<string, never>> {
  /**
   * The whole inventory, beyond the hosts it hardens: every server's name and private IP (the
   * managed /etc/hosts block), the private network and admin CIDRs (fail2ban's ignore list, each
   * role's UFW rules), the pod CIDR (routed traffic on Kubernetes nodes).
   */
  readonly inventory: Inventory;
  /**
   * The scrape jobs of the deployed exporters (`deployedScrapeJobs` of
   * components/observability/monitoring): each server's exporter ports open to the Kubernetes nodes only.
   */
  readonly scrapeJobs: readonly ScrapeJobSpec[];
}

/**
 * Base OS & security (spec 000, "Module 2"), on every server before anything else: packages,
 * Europe/Paris + NTP, swap off, kernel settings, Docker pinned, SSH hardening, UFW per role, fixed
 * DNS, journald limits, fail2ban, auditd and the managed /etc/hosts block; then the spec's 8
 * validation tests. Per server, two steps: `<name>-base-os` (waits for cloud-init, applies
 * everything, idempotent, re-runs only when its rendered script or files change) and
 * `<name>-base-os-verify` (the spec's 8 tests, then the server's platform containers running and
 * healthy; fails the deployment otherwise). Within a server group the servers go one at a time,
 * each after the previous one's verification (issue 15 item 6).
 */
export class BaseOs extends pulumi.ComponentResource implements ModuleOutputs {
  /** By inventory name: that server's verification step; each module's first step on the server waits for it (`after.hosts`). */
  public readonly verifiedByHost: Readonly<Record<string, pulumi.Resource>>;
  /**
   * Every server hardened and verified: this component, which a `dependsOn` expands to all its
   * steps (the verifications last on each server).
   */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: BaseOsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:os:BaseOs", name, {}, opts);
    const files = baseOsFiles(args.inventory, args.settings);
    const verifiedByHost: Record<string, pulumi.Resource> = {};
    // One server at a time within each group (inventory order), each after the previous one's
    // verification, its containers back included: a change (a Docker bump, a UFW rule) never hits
    // every member of a cluster at once. The groups roll in parallel.
    const previousInGroup: Record<string, pulumi.Resource> = {};
    for (const host of args.hosts) {
      const { name: hostName, group } = host.spec;
      const script = renderBaseOsScript(hostName, group, args.inventory, args.versions, exporterPortsOf(hostName, args.scrapeJobs));
      const previous = previousInGroup[group];
      const apply = remoteStep(
        `${hostName}-base-os`,
        { host, files, script, timeoutMinutes: 30 },
        { parent: this, dependsOn: waitsFor(args.after, hostName, previous) },
      );
      // Re-verify whenever the hardening changes.
      const appliedFingerprint = sha256(script + files.map((file) => file.content).join(""));
      verifiedByHost[hostName] = remoteStep(
        `${hostName}-base-os-verify`,
        { host, script: renderVerifyScript(hostName, args.versions), timeoutMinutes: 5, triggers: [appliedFingerprint] },
        { parent: this, dependsOn: [apply] },
      );
      previousInGroup[group] = verifiedByHost[hostName];
    }
    this.verifiedByHost = verifiedByHost;
    this.verified = this;
    this.registerOutputs({ verifiedByHost: this.verifiedByHost, verified: this.verified });
  }
}
