import * as pulumi from "@pulumi/pulumi";

/** A resource as Pulumi's mock monitor keeps it: its state is a plain object until `registerOutputs` lands, then a Struct. */
interface MonitoredResource {
  readonly urn: string;
  readonly state?: { toJavaScript?: () => Record<string, unknown> };
}

/** The mock monitor's resources by URN (`@pulumi/pulumi/runtime/mocks`' `MockMonitor.resources`). */
export function monitoredResources(): Map<string, MonitoredResource> {
  return (pulumi.runtime.getMonitor() as unknown as { resources: Map<string, MonitoredResource> }).resources;
}

/**
 * The outputs the components of the current mock run gave `registerOutputs`, by URN, once every
 * component's have landed: `registerOutputs` resolves its outputs first, so it reaches the monitor
 * after the resources themselves (and possibly after the run's own settling).
 *
 * @param isComponent which URNs to wait for (e.g. those of `keybuzz:` types).
 * @throws Error when some component's outputs have not landed within `timeoutMs`.
 */
export async function registeredOutputs(
  isComponent: (urn: string) => boolean,
  timeoutMs = 10000,
): Promise<Map<string, Record<string, unknown>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const components = [...monitoredResources().values()].filter((resource) => isComponent(resource.urn));
    const pending = components.filter((resource) => typeof resource.state?.toJavaScript !== "function");
    if (pending.length === 0) {
      return new Map(components.map((resource) => [resource.urn, resource.state!.toJavaScript!()]));
    }
    if (Date.now() > deadline) throw new Error(`no registered outputs for ${pending.map((resource) => resource.urn).join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
