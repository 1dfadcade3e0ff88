import { loadVersions } from "../../config/versions";
import { runProgram } from "../../scripts/lib/mock-engine";
import { imagesInScript, keybuzzPolicies, unpinnedImageReason } from "../../scripts/policy/policies";
import { asPolicyResource, CheckedResource, evaluatePolicies } from "../support/policy-harness";

/** The policy pack on the program's own resources (mock engine), clean and with one violation per rule. */
describe("policy pack (scripts/policy) on the program's resources", () => {
  let prod: CheckedResource[];

  beforeAll(async () => {
    prod = (await runProgram("prod")).registrations
      .filter((registration) => registration.custom)
      .map((registration) => asPolicyResource(registration, "prod"));
  });

  const ofType = (resources: CheckedResource[], type: string) => resources.filter((resource) => resource.type === type);
  /** A deep copy, so a variant never changes the clean list. */
  const copy = (resources: CheckedResource[]) => structuredClone(resources);

  it("passes the prod and staging programs as they are", async () => {
    expect(await evaluatePolicies(prod, keybuzzPolicies)).toEqual([]);
    const staging = (await runProgram("staging")).registrations
      .filter((registration) => registration.custom)
      .map((registration) => asPolicyResource(registration, "staging"));
    expect(await evaluatePolicies(staging, keybuzzPolicies)).toEqual([]);
  });

  it("has something to check in the clean program (no rule passes vacuously)", () => {
    const commands = ofType(prod, "command:remote:Command");
    const images = new Set(
      commands.flatMap((command) => ["create", "stdin"].flatMap((key) => imagesInScript(String(command.props[key] ?? "")))),
    );
    // Every pinned registry image of versions.yaml reaches a step's script, where the rule reads it.
    expect([...images].sort()).toEqual(Object.values(loadVersions().images).sort());
    expect(commands.filter((command) => command.props.stdin).length).toBeGreaterThan(10);
    expect(ofType(prod, "hcloud:index/volume:Volume").every((volume) => volume.opts.protect)).toBe(true);
    expect(
      ofType(prod, "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork").some((network) => network.props.enablePublicInterface === true),
    ).toBe(true);
  });

  it("fails a floating or latest image in a step and a chart range", async () => {
    const variant = copy(prod);
    const step = ofType(variant, "command:remote:Command").find((command) =>
      String(command.props.create).includes(loadVersions().images.etcd),
    )!;
    step.props.create = String(step.props.create)
      .replace(loadVersions().images.etcd, "quay.io/coreos/etcd:latest")
      .concat("\ndocker pull redis:7\n");
    ofType(variant, "kubernetes:helm.sh/v3:Release")[0].props.version = "^4.0.0";
    const violations = await evaluatePolicies(variant, keybuzzPolicies);
    expect(violations.map((violation) => violation.policy)).toEqual(["no-floating-images", "no-floating-images", "no-floating-images"]);
    expect(violations.map((violation) => violation.message)).toEqual([
      expect.stringContaining("image quay.io/coreos/etcd:latest uses `latest`"),
      expect.stringContaining("image redis:7 tag 7 floats"),
      expect.stringMatching(/version "\^4\.0\.0" is not an exact release/),
    ]);
  });

  it("fails a data port on a load balancer whose public interface is on", async () => {
    const variant = copy(prod);
    const internal = ofType(variant, "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork").find(
      (network) => network.props.ip === "10.0.0.10",
    )!;
    internal.props.enablePublicInterface = true;
    const violations = await evaluatePolicies(variant, keybuzzPolicies);
    expect(new Set(violations.map((violation) => violation.policy))).toEqual(new Set(["no-data-port-on-public-load-balancer"]));
    expect(violations.map((violation) => violation.message.replace(/^\S+: /, ""))).toEqual(
      [5432, 5433, 6432, 6379, 5672, 9000].map((port) => expect.stringContaining(`port ${port} (`)),
    );
  });

  it("fails a world-open firewall source, an unprotected prod volume, a plain generated credential, a stdin step that logs", async () => {
    const variant = copy(prod);
    const firewall = ofType(variant, "hcloud:index/firewall:Firewall")[0];
    (firewall.props.rules as { sourceIps: string[] }[])[0].sourceIps = ["0.0.0.0/0"];
    const volume = ofType(variant, "hcloud:index/volume:Volume")[0];
    volume.opts.protect = false;
    variant.push({
      type: "random:index/randomString:RandomString",
      name: "grafana-admin",
      urn: "urn:pulumi:prod::keybuzz::random:index/randomString:RandomString::grafana-admin",
      props: { length: 24 },
      opts: { protect: false, additionalSecretOutputs: [] },
    });
    const step = ofType(variant, "command:remote:Command").find((command) => command.props.stdin)!;
    step.props.logging = "stdoutAndStderr";
    const violations = await evaluatePolicies(variant, keybuzzPolicies);
    expect(violations).toEqual([
      { policy: "admin-cidrs-not-world-open", message: expect.stringMatching(/port 22 open to 0\.0\.0\.0\/0$/) },
      { policy: "prod-data-volumes-protected", message: `${volume.name}: a prod data volume without the protect option` },
      {
        policy: "generated-credentials-secret",
        message: expect.stringContaining("grafana-admin: RandomString keeps its result in plain state"),
      },
      { policy: "stdin-steps-log-nothing", message: `${step.name}: has stdin but logging is "stdoutAndStderr"` },
    ]);
  });

  it("accepts a plain generator whose result is marked secret", async () => {
    const marked: CheckedResource = {
      type: "random:index/randomString:RandomString",
      name: "token",
      urn: "urn:pulumi:prod::keybuzz::random:index/randomString:RandomString::token",
      props: {},
      opts: { protect: false, additionalSecretOutputs: ["result"] },
    };
    expect(await evaluatePolicies([marked], keybuzzPolicies)).toEqual([]);
  });

  it("tells pinned image references from floating ones", () => {
    expect(
      [
        "haproxy:2.8.15",
        "quay.io/coreos/etcd:v3.5.21",
        "minio/minio:RELEASE.2024-10-02T10-00Z",
        "postgres:16.10-bookworm",
        `redis@sha256:${"a".repeat(64)}`,
      ].map(unpinnedImageReason),
    ).toEqual(Array(5).fill(undefined));
    expect(
      ["redis", "redis:latest", "rabbitmq:3.13-management", "mariadb:10.11", "127.0.0.1:5000/x:1"].map(
        (reference) => unpinnedImageReason(reference) !== undefined,
      ),
    ).toEqual([true, true, true, true, true]);
  });
});
