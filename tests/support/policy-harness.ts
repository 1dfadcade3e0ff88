import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import { reveal, type Registration } from "../../scripts/lib/mock-engine";

/**
 * Calls policy-pack rules the way the Pulumi engine does — each resource rule on each resource,
 * then each stack rule on all of them — with resources built from the mock engine's registrations.
 */

/** What the rules read of a resource (a subset of @pulumi/policy's PolicyResource). */
export type CheckedResource = Pick<PolicyResource, "type" | "name" | "urn" | "props"> & {
  opts: Pick<PolicyResource["opts"], "protect" | "parent" | "additionalSecretOutputs">;
};

/** A registration as the engine presents it to a policy: plain props (secrets unwrapped), URN, options. */
export function asPolicyResource(registration: Registration, stack: string): CheckedResource {
  return {
    type: registration.type,
    name: registration.name,
    urn: `urn:pulumi:${stack}::keybuzz::${registration.type}::${registration.name}`,
    props: reveal(registration.inputs) as Record<string, unknown>,
    opts: {
      protect: registration.protect,
      parent: registration.parent || undefined,
      additionalSecretOutputs: registration.additionalSecretOutputs,
    },
  };
}

/** Every violation the rules report over `resources`. */
export async function evaluatePolicies(
  resources: readonly CheckedResource[],
  policies: readonly (ResourceValidationPolicy | StackValidationPolicy)[],
): Promise<{ policy: string; message: string }[]> {
  const violations: { policy: string; message: string }[] = [];
  for (const policy of policies) {
    const report: ReportViolation = (message) => violations.push({ policy: policy.name, message });
    if ("validateResource" in policy && policy.validateResource) {
      const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
      for (const resource of resources) {
        for (const validate of validations)
          await validate({ ...resource, notApplicable: () => undefined } as unknown as ResourceValidationArgs, report);
      }
    } else if ("validateStack" in policy && policy.validateStack) {
      await policy.validateStack(
        { resources, getConfig: () => ({}), notApplicable: () => undefined } as unknown as StackValidationArgs,
        report,
      );
    }
  }
  return violations;
}
