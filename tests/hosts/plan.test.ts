import { dependencyOrder, durationSeconds, planHostSteps, stepKind } from "./plan";

/** The real-host tier's step selection, on the program's real plan (mock engine, no hosts). */

describe("real-host tier: steps taken from the program's plan", () => {
  const redisHosts = ["redis-01", "redis-02", "redis-03"];

  it("keeps the plan's dependency order, timeouts and commands, and replaces every mock secret by one fresh value per secret", async () => {
    const plan = await planHostSteps({
      stack: "staging",
      configOverride: { "keybuzz:adminCidrs": JSON.stringify(["100.64.0.1/32"]) },
      hosts: redisHosts,
      kinds: ["base-os", "base-os-verify", "redis"],
    });
    const names = plan.steps.map((step) => step.name);
    expect(names).toHaveLength(9);
    for (const host of redisHosts) {
      expect(names.indexOf(`${host}-base-os`)).toBeLessThan(names.indexOf(`${host}-base-os-verify`));
      expect(names.indexOf(`${host}-base-os-verify`)).toBeLessThan(names.indexOf(`${host}-redis`));
    }
    // The Redis nodes roll one at a time in the program (redis-02 waits for redis-01).
    expect(names.indexOf("redis-01-redis")).toBeLessThan(names.indexOf("redis-02-redis"));
    const byName = new Map(plan.steps.map((step) => [step.name, step]));
    expect(byName.get("redis-01-base-os")?.timeoutSeconds).toBe(30 * 60);
    expect(byName.get("redis-01-base-os-verify")?.timeoutSeconds).toBe(5 * 60);
    expect(byName.get("redis-01-base-os")?.command).toMatch(/^bash -c '#!\/usr\/bin\/env bash\n/);
    expect(byName.get("redis-01-base-os")?.command).toContain("100.64.0.1/32");
    expect(byName.get("redis-01-base-os")?.command).toContain("KB_DOCKER_SOURCE='\\''docker-ce'\\''");

    const stdinText = (name: string) =>
      (byName.get(name)?.stdin ?? "")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => Buffer.from(line, "base64").toString("utf8"))
        .join("\n");
    const first = stdinText("redis-01-redis");
    expect(first.length).toBeGreaterThan(0);
    expect(first).not.toContain("mock-secret-");
    expect(plan.secretValues.length).toBeGreaterThan(0);
    for (const secret of plan.secretValues) expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // The same password reaches every node; a new plan draws new values.
    for (const secret of plan.secretValues) expect(stdinText("redis-02-redis")).toContain(secret);
    const again = await planHostSteps({
      stack: "staging",
      configOverride: {},
      hosts: ["redis-01"],
      kinds: ["base-os", "base-os-verify", "redis"],
    });
    expect(again.secretValues.filter((secret) => plan.secretValues.includes(secret))).toEqual([]);

    expect(plan.allKinds).toEqual(expect.arrayContaining(["base-os", "base-os-verify", "redis", "redis-verify", "haproxy", "k8s-join"]));
    expect(plan.totalSteps).toBeGreaterThan(plan.steps.length);
  });

  it("leaves out a step whose dependency does not run (a step on a host not booted, or of a kind not chosen)", async () => {
    const plan = await planHostSteps({
      stack: "staging",
      configOverride: {},
      hosts: ["redis-01", "redis-03"],
      kinds: ["base-os", "base-os-verify", "redis"],
      docker: { source: "distribution", engine: "26.1.5+dfsg1-9+deb13u1+b1", containerd: "1.7.24~ds1-6+deb13u1" },
    });
    // redis-03-base-os waits for redis-02-base-os-verify (the base OS rolls one server at a time per
    // group), and redis-02 is not booted: redis-03 gets nothing.
    expect(plan.steps.map((step) => step.name)).toEqual(["redis-01-base-os", "redis-01-base-os-verify", "redis-01-redis"]);
    // The test stack's Docker pins reach the rendered step (the program's default is Docker CE).
    expect(plan.steps[0].command).toContain("KB_DOCKER_SOURCE='\\''distribution'\\''");
    expect(plan.steps[0].command).toContain("KB_DOCKER_VERSION='\\''26.1.5+dfsg1-9+deb13u1+b1'\\''");
  });

  it("runs HAProxy and the endpoint check only when the PostgreSQL, RabbitMQ and MinIO verifications are taken as done", async () => {
    const args = {
      stack: "staging",
      configOverride: {},
      hosts: ["redis-01", "redis-02", "redis-03", "haproxy-01"],
      kinds: ["base-os", "base-os-verify", "redis", "redis-master-roll", "redis-verify", "haproxy", "redis-endpoint-check"],
    };
    const strict = await planHostSteps(args);
    expect(strict.steps.map((step) => step.name)).not.toContain("haproxy-01-haproxy");
    const assumed = await planHostSteps({ ...args, assumedDoneKinds: ["postgres-verify", "rabbitmq-verify", "minio-verify"] });
    const byName = new Map(assumed.steps.map((step) => [step.name, step]));
    expect(byName.get("haproxy-01-haproxy")?.dependsOn).toEqual(["haproxy-01-base-os-verify", "redis-verify"]);
    expect(byName.get("redis-01-redis-endpoint-check")?.dependsOn).toEqual(["redis-verify", "haproxy-01-haproxy"]);
    const names = assumed.steps.map((step) => step.name);
    expect(names.indexOf("haproxy-01-haproxy")).toBeLessThan(names.indexOf("redis-01-redis-endpoint-check"));
  });

  it("names step kinds without their host, wherever the host name sits", () => {
    expect(stepKind("redis-01-base-os", "redis-01")).toBe("base-os");
    expect(stepKind("galera-maria-01-bootstrap", "maria-01")).toBe("galera-bootstrap");
    expect(stepKind("proxysql-proxysql-01", "proxysql-01")).toBe("proxysql");
    expect(stepKind("redis-verify", "redis-01")).toBe("redis-verify");
    expect(stepKind("k8s-worker-01-k8s-join-credentials", "k8s-master-01", ["k8s-master-01", "k8s-worker-01"])).toBe(
      "k8s-join-credentials",
    );
  });

  it("orders by dependencies and refuses a cycle", () => {
    const order = dependencyOrder([
      { name: "c", dependsOn: ["b"] },
      { name: "b", dependsOn: ["a"] },
      { name: "a", dependsOn: [] },
    ]);
    expect(order.map((step) => step.name)).toEqual(["a", "b", "c"]);
    expect(() =>
      dependencyOrder([
        { name: "a", dependsOn: ["b"] },
        { name: "b", dependsOn: ["a"] },
      ]),
    ).toThrow("dependency cycle among steps a, b");
  });

  it("reads Pulumi durations", () => {
    expect(durationSeconds("20m")).toBe(1200);
    expect(durationSeconds("1h30m")).toBe(5400);
    expect(durationSeconds("45s")).toBe(45);
    expect(() => durationSeconds("20 minutes")).toThrow("not a Pulumi duration");
  });
});
