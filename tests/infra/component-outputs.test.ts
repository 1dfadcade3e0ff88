import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import * as fs from "fs";
import * as path from "path";
import { runProgram } from "../../scripts/lib/mock-engine";
import { registeredOutputs } from "../support/registered-outputs";

/**
 * DESIGN.md "Layout": a component registers every public output (`registerOutputs`), so the
 * engine and `pulumi stack` see what it exposes. The public fields are read from each component's
 * source (`public readonly <name>` in the class whose `super()` names the type token); the
 * registered outputs from the mock monitor, which keeps them as the component's state.
 */

const ROOT = path.join(__dirname, "..", "..");
/** The components this check covers (infra, security, base OS, Kubernetes). */
const COMPONENT_FILES = [
  "components/infra/firewall.ts",
  "components/infra/fleet.ts",
  "components/infra/load-balancer.ts",
  "components/infra/network.ts",
  "components/security/pki.ts",
  "components/security/secrets.ts",
  "components/os/base-os/component.ts",
  "components/k8s/cluster/component.ts",
  "components/k8s/addons/component.ts",
];

/** Type token → public field names, from the source of each component class. */
function publicFieldsByType(): Map<string, string[]> {
  const byType = new Map<string, string[]>();
  for (const file of COMPONENT_FILES) {
    const source = fs.readFileSync(path.join(ROOT, file), "utf8");
    for (const body of source.split(/^export class /m).slice(1)) {
      const token = /super\("(keybuzz:[^"]+)"/.exec(body)?.[1];
      if (!token) continue;
      byType.set(token, [...body.matchAll(/^ {2}public readonly (\w+)/gm)].map((match) => match[1]).sort());
    }
  }
  return byType;
}

let secretsState: Record<string, unknown> = {};
/** Every registered component output, with its path (`keybuzz:k8s:KubernetesCluster.kubeconfig`). */
const registeredValues: [string, unknown][] = [];

/** Every property of `value` reached by walking objects and arrays (stopping at secrets), with its path. */
function walk(path: string, value: unknown, into: [string, unknown][]): void {
  into.push([path, value]);
  if (typeof value !== "object" || value === null || (value as Record<string, unknown>)[specialSigKey] === specialSecretSig) return;
  for (const [key, child] of Object.entries(value)) walk(`${path}.${key}`, child, into);
}

/** Type token → the output names each registered component of that type gave `registerOutputs`. */
async function registeredOutputsByType(): Promise<Map<string, string[][]>> {
  const byType = new Map<string, string[][]>();
  const typeOf = (urn: string) => urn.split("::")[2].split("$").pop() ?? "";
  for (const [urn, state] of await registeredOutputs((urn) => typeOf(urn).startsWith("keybuzz:"))) {
    const type = typeOf(urn);
    if (type === "keybuzz:security:PlatformSecrets") secretsState = state;
    walk(type, state, registeredValues);
    byType.set(type, [...(byType.get(type) ?? []), Object.keys(state).sort()]);
  }
  return byType;
}

describe("components register every public output", () => {
  let registered: Map<string, string[][]>;
  beforeAll(async () => {
    await runProgram("prod");
    registered = await registeredOutputsByType();
  });

  const expected = [...publicFieldsByType()];

  it("finds every covered component and its public fields in the sources", () => {
    expect(expected.map(([token]) => token).sort()).toEqual([
      "keybuzz:infra:AdminFirewall",
      "keybuzz:infra:LoadBalancer",
      "keybuzz:infra:PrivateNetwork",
      "keybuzz:infra:ServerFleet",
      "keybuzz:k8s:ClusterAddons",
      "keybuzz:k8s:KubernetesCluster",
      "keybuzz:os:BaseOs",
      "keybuzz:security:Pki",
      "keybuzz:security:PlatformSecrets",
    ]);
    for (const [token, fields] of expected) expect([token, fields.length > 0]).toEqual([token, true]);
  });

  it("keeps every credential secret in PlatformSecrets' registered outputs", () => {
    const leaves = Object.entries(secretsState).flatMap(([module, values]) =>
      Object.entries(values as Record<string, unknown>).map(([key, value]) => [`${module}.${key}`, value] as const),
    );
    expect(leaves.length).toBeGreaterThan(10);
    for (const [name, value] of leaves)
      expect([name, value]).toEqual([name, expect.objectContaining({ [specialSigKey]: specialSecretSig })]);
  });

  // An output whose value is undefined (a private load balancer's publicIp) is not serialized, so
  // each instance registers a subset and together they register every field.
  it("keeps the kubeconfig, the SSH private key and the node keys secret in the registered outputs", () => {
    const sensitive = registeredValues.filter(([path]) => /\.(kubeconfig|privateKey|keyPem)$/.test(path));
    expect(new Set(sensitive.map(([path]) => path.split(".").pop()))).toEqual(new Set(["kubeconfig", "privateKey", "keyPem"]));
    for (const [path, value] of sensitive)
      expect([path, value]).toEqual([path, expect.objectContaining({ [specialSigKey]: specialSecretSig })]);
  });

  it.each(expected)("%s registers exactly its public fields", (token, fields) => {
    const instances = registered.get(token) ?? [];
    expect(instances.length).toBeGreaterThan(0);
    for (const keys of instances) expect(fields).toEqual(expect.arrayContaining(keys));
    expect([...new Set(instances.flat())].sort()).toEqual(fields);
  });
});
