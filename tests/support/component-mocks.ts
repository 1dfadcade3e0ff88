import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { ServerSpec } from "../../config";
import { Host } from "../../components/lib/remote";
import { declareResources } from "../../scripts/lib/mock-engine";

/** What a single-module test looks at: a resource's inputs and the names it depends on. */
export interface Declared {
  readonly inputs: Record<string, unknown>;
  readonly deps: string[];
}

/** Runs `build` on the mock engine and returns each declared resource by name. */
export async function declared(build: () => void): Promise<Map<string, Declared>> {
  const registrations = await declareResources(build);
  return new Map(registrations.map((registration) => [registration.name, { inputs: registration.inputs, deps: registration.dependsOn }]));
}

/** A server spec for a test host of `group` (only name, address and group matter to the modules). */
export function testSpec(name: string, privateIp: string, group: ServerSpec["group"]): ServerSpec {
  return { name, privateIp, role: group, subrole: group, group, serverType: "cx33", memoryGb: 8 };
}

/** Mocked hosts for a module under test. Call inside `declared`'s build. */
export interface MockHosts {
  /** In the order given. */
  readonly list: Host[];
  readonly byName: Record<string, Host>;
  /** Stand-in for each host's verified base OS, named `<host>-base`. */
  readonly ready: Record<string, pulumi.Resource>;
  /** `<host>-data` volumes, for specs that have `volumeSizeGb`. */
  readonly volumes: Record<string, hcloud.Volume>;
}

/** Declares a mocked server, a base-OS stand-in and (where the spec has one) a data volume per spec. */
export function mockHosts(specs: readonly ServerSpec[]): MockHosts {
  const hosts: MockHosts = { list: [], byName: {}, ready: {}, volumes: {} };
  for (const spec of specs) {
    const server = new hcloud.Server(spec.name, { serverType: spec.serverType, image: "ubuntu-24.04" });
    const host: Host = { spec, server, connection: { host: "203.0.113.1" } };
    hosts.list.push(host);
    hosts.byName[spec.name] = host;
    hosts.ready[spec.name] = new hcloud.Server(`${spec.name}-base`, { serverType: "cx23", image: "ubuntu-24.04" });
    if (spec.volumeSizeGb !== undefined) hosts.volumes[spec.name] = new hcloud.Volume(`${spec.name}-data`, { size: spec.volumeSizeGb });
  }
  return hosts;
}
