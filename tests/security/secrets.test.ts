import * as pulumi from "@pulumi/pulumi";
import { PlatformSecrets } from "../../components/security/secrets";
import { isSecretValue, runProgram } from "../../scripts/lib/mock-engine";
import { registeredOutputs } from "../support/registered-outputs";

/** Every string held inside a secret wrapper anywhere in the value. */
function secretStrings(value: unknown, insideSecret = false, found = new Set<string>()): Set<string> {
  if (isSecretValue(value)) return secretStrings((value as { value: unknown }).value, true, found);
  if (typeof value === "string" && insideSecret && value.length >= 8) found.add(value);
  if (Array.isArray(value)) value.forEach((item) => secretStrings(item, insideSecret, found));
  else if (typeof value === "object" && value !== null) Object.values(value).forEach((item) => secretStrings(item, insideSecret, found));
  return found;
}

/** Every plain (non-secret) string in the value, with its path. */
function plainStrings(value: unknown, where: string, found: [string, string][] = []): [string, string][] {
  if (isSecretValue(value)) return found;
  if (typeof value === "string") found.push([where, value]);
  else if (Array.isArray(value)) value.forEach((item, index) => plainStrings(item, `${where}[${index}]`, found));
  else if (typeof value === "object" && value !== null)
    Object.entries(value).forEach(([key, item]) => plainStrings(item, `${where}.${key}`, found));
  return found;
}

describe("secrets", () => {
  it("holds every generated credential as a Pulumi secret", async () => {
    const { PlatformSecrets: Fresh } =
      jest.requireActual<typeof import("../../components/security/secrets")>("../../components/security/secrets");
    await runProgram("staging");
    const secrets: PlatformSecrets = new Fresh("secrets-under-test");
    const outputs: [string, pulumi.Output<string>][] = [];
    for (const [area, values] of Object.entries(secrets)) {
      if (typeof values !== "object" || values === null || pulumi.Output.isInstance(values) || area.startsWith("__")) continue;
      for (const [key, output] of Object.entries(values))
        if (pulumi.Output.isInstance(output)) outputs.push([`${area}.${key}`, output as pulumi.Output<string>]);
    }
    expect(outputs.length).toBeGreaterThanOrEqual(17);
    for (const [key, output] of outputs) expect([key, await pulumi.isSecret(output)]).toEqual([key, true]);
    // Its registerOutputs (every credential) must reach this run's monitor before the next test replaces it.
    const urn = await new Promise<string>((resolve) => secrets.urn.apply(resolve));
    expect([...(await registeredOutputs((candidate) => candidate === urn)).keys()]).toEqual([urn]);
  });

  it.each(["prod", "staging"])("never puts a secret value into a plain input of any resource (%s)", async (stack) => {
    const run = await runProgram(stack);
    const secretValues = new Set<string>();
    // A Kubernetes Secret's `data`/`stringData` is secret as a whole (@pulumi/kubernetes wraps it in
    // pulumi.secret), plain addresses and user names included: its passwords are collected where
    // the program itself made them secret.
    for (const registration of run.registrations.filter((candidate) => candidate.type !== "kubernetes:core/v1:Secret")) {
      secretStrings(registration.inputs, false, secretValues);
    }
    expect(secretValues.size).toBeGreaterThan(0);
    const leaks: string[] = [];
    for (const registration of run.registrations) {
      for (const [where, text] of plainStrings(registration.inputs, `${registration.type}::${registration.name}`)) {
        if (text.includes("mock-secret-") || [...secretValues].some((secret) => text.includes(secret))) leaks.push(where);
      }
    }
    expect(leaks).toEqual([]);
  });
});
