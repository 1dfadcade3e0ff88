import * as pulumi from "@pulumi/pulumi";
import {
  DEFAULT_RABBITMQ_SETTINGS,
  erlangNodeName,
  RABBITMQ_STOP_GRACE_SECONDS,
  parseRabbitMqSettings,
  RabbitMqCluster,
  rabbitmqHaproxyListener,
  rabbitmqHealthCheckAuthorization,
  rabbitMqNodeFiles,
  renderEnabledPlugins,
  renderRabbitMqConf,
  renderRabbitMqEndpointCheckScript,
  renderRabbitMqNodeScript,
} from "../../components/data/rabbitmq";
import { secretKeysIn } from "../../components/lib/remote";
import { isConfigError, loadVersions } from "../../config";
import { isSecretValue, reveal, runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { declared, mockHosts, testSpec } from "../support/component-mocks";
import { configProblems } from "../support/module-checks";

const NODES = [1, 2, 3].map((n) => ({ name: `queue-0${n}`, address: `10.0.0.${125 + n}` }));

describe("rabbitmq.conf and enabled_plugins", () => {
  const conf = renderRabbitMqConf(NODES[1], NODES);

  it("discovers the 3 nodes through classic_config", () => {
    expect(conf).toMatch(/^cluster_formation\.peer_discovery_backend = classic_config$/m);
    expect(conf).toMatch(/^cluster_formation\.classic_config\.nodes\.1 = rabbit@queue-01$/m);
    expect(conf).toMatch(/^cluster_formation\.classic_config\.nodes\.3 = rabbit@queue-03$/m);
  });

  it("declares quorum queues by default and listens on the node's private IP", () => {
    expect(conf).toMatch(/^default_queue_type = quorum$/m);
    expect(conf).toMatch(/^listeners\.tcp\.1 = 10\.0\.0\.127:5672$/m);
    expect(conf).toMatch(/^management\.tcp\.ip = 10\.0\.0\.127$/m);
  });

  it("creates the default user from secrets and opens no guest login", () => {
    expect(conf).toMatch(/^default_user = keybuzz$/m);
    expect(secretKeysIn(conf)).toEqual(["rabbitmq-password"]);
    expect(conf).not.toMatch(/guest/);
  });

  it("enables management and Prometheus", () => {
    expect(renderEnabledPlugins()).toBe("[rabbitmq_management,rabbitmq_prometheus].\n");
  });

  it("writes the Erlang cookie as a secret, read-only file", () => {
    const cookie = rabbitMqNodeFiles(NODES[0], NODES).find((file) => file.path.endsWith("/.erlang.cookie"));
    expect(cookie?.mode).toBe("0400");
    expect(secretKeysIn(cookie?.content ?? "")).toEqual(["rabbitmq-erlang-cookie"]);
  });

  it("runs the node as rabbit@<inventory name> and gates restarts on quorum criticality", () => {
    const script = renderRabbitMqNodeScript(NODES[1], NODES, "rabbitmq:3.13.7-management");
    expect(script).toContain("RABBITMQ_NODENAME=rabbit@queue-02");
    expect(script).toContain("check_if_node_is_quorum_critical");
    expect(script).toContain("delete_user guest");
  });
});

describe("the node step's day-2 inputs", () => {
  const script = renderRabbitMqNodeScript(NODES[0], NODES, "rabbitmq:3.13.7-management");

  it("stops the old container with SIGTERM and the grace period before removing it, never SIGKILL first", () => {
    const stop = script.indexOf(`docker stop -t ${RABBITMQ_STOP_GRACE_SECONDS} rabbitmq`);
    expect(RABBITMQ_STOP_GRACE_SECONDS).toBe(90);
    expect(stop).toBeGreaterThan(0);
    expect(script.indexOf("docker rm -f rabbitmq")).toBeGreaterThan(stop);
  });

  it("names the peers a replaced node asks to forget its old identity (every node but itself)", () => {
    expect(script).toContain("KB_PEER_NODES='rabbit@queue-02 rabbit@queue-03'");
    expect(erlangNodeName(NODES[0])).toBe("rabbit@queue-01");
    expect(erlangNodeName({ ...NODES[0], erlangName: "rabbit-queue-01@queue-01" })).toBe("rabbit-queue-01@queue-01");
  });
});

describe("RabbitMQ HAProxy listener", () => {
  const listener = rabbitmqHaproxyListener(NODES);
  it("balances round robin over the 3 nodes with a management-API port-listener check", () => {
    expect(listener.port).toBe(5672);
    expect(listener.lines).toContain("balance roundrobin");
    expect(listener.lines).toContain("option httpchk");
    const send = listener.lines.find((line) => line.startsWith("http-check send")) ?? "";
    expect(send).toContain("uri /api/health/checks/port-listener/5672");
    expect(secretKeysIn(send)).toEqual(["rabbitmq-health-auth"]);
    expect(listener.lines.find((line) => line.startsWith("default-server"))).toMatch(/port 15672/);
    expect(listener.lines.filter((line) => line.startsWith("server "))).toHaveLength(3);
  });
});

describe("health-check credentials", () => {
  it("build the Basic header of the monitor user from its own password, as a secret", async () => {
    const header = rabbitmqHealthCheckAuthorization("M0nitorSecretValue");
    expect(await pulumi.isSecret(header)).toBe(true);
    const value = await new Promise<string>((resolve) => header.apply(resolve));
    expect(Buffer.from(value, "base64").toString()).toBe("keybuzz-monitor:M0nitorSecretValue");
  });
});

describe("RabbitMqCluster on the mock engine", () => {
  it("joins the nodes one at a time, then verifies", async () => {
    const resources = await declared(() => {
      const { list: hosts, ready } = mockHosts(NODES.map((node) => testSpec(node.name, node.address, "rabbitmq")));
      new RabbitMqCluster("rabbitmq", {
        hosts,
        after: { hosts: ready },
        versions: loadVersions(),
        settings: DEFAULT_RABBITMQ_SETTINGS,
        secrets: {
          password: pulumi.secret("Adm1nSecretValue"),
          erlangCookie: pulumi.secret("COOKIE"),
          monitorPassword: pulumi.secret("M0nitorSecretValue"),
        },
      });
    });
    const deps = new Map([...resources].map(([name, resource]) => [name, resource.deps]));
    const inputs = new Map([...resources].map(([name, resource]) => [name, resource.inputs]));
    expect(deps.get("queue-01-rabbitmq")).toEqual(["queue-01-base"]);
    expect(deps.get("queue-02-rabbitmq")).toEqual(expect.arrayContaining(["queue-01-rabbitmq"]));
    expect(deps.get("queue-03-rabbitmq")).toEqual(expect.arrayContaining(["queue-02-rabbitmq"]));
    expect(deps.get("rabbitmq-verify")).toEqual(expect.arrayContaining(["queue-01-rabbitmq", "queue-02-rabbitmq", "queue-03-rabbitmq"]));
    const step = inputs.get("queue-03-rabbitmq") ?? {};
    expect(isSecretValue(step.stdin)).toBe(true);
    expect(String(reveal(step.create))).not.toMatch(/Adm1nSecretValue|COOKIE|M0nitorSecretValue/);
    // The monitor user's own password travels in the secret stdin (one base64 line per secret file).
    const files = String(reveal(step.stdin))
      .trim()
      .split("\n")
      .map((line) => Buffer.from(line, "base64").toString());
    expect(files).toContain("M0nitorSecretValue\n");
  });
});

describe("keybuzz:rabbitmq settings", () => {
  it("default to today's production values when the key is absent", () => {
    expect(parseRabbitMqSettings(undefined)).toEqual({
      amqpPort: 5672,
      managementPort: 15672,
      prometheusPort: 15692,
      clusterName: "keybuzz",
      defaultUser: "keybuzz",
    });
  });

  it("reach rabbitmq.conf, the HAProxy listener and the management endpoints", () => {
    const settings = parseRabbitMqSettings({ amqpPort: 5673, managementPort: 15673, clusterName: "kb-two" });
    const conf = renderRabbitMqConf(NODES[0], NODES, settings);
    expect(conf).toMatch(/^listeners\.tcp\.1 = 10\.0\.0\.126:5673$/m);
    expect(conf).toMatch(/^management\.tcp\.port = 15673$/m);
    expect(conf).toMatch(/^cluster_name = kb-two$/m);
    const listener = rabbitmqHaproxyListener(NODES, settings);
    expect(listener.port).toBe(5673);
    expect(listener.lines).toContain("server queue-01 10.0.0.126:5673 check");
    expect(listener.lines.find((line) => line.startsWith("default-server"))).toMatch(/port 15673/);
  });

  it.each([
    [{ amqpPort: 70000 }, /^keybuzz:rabbitmq\.amqpPort: /],
    [{ amqpPort: 15672 }, /^keybuzz:rabbitmq\.amqpPort: amqpPort, managementPort and prometheusPort must differ$/],
    [{ defaultUser: "admin user" }, /^keybuzz:rabbitmq\.defaultUser: letters, digits/],
    [{ clusterNmae: "x" }, /^keybuzz:rabbitmq: Unrecognized key: "clusterNmae"$/],
  ])("refuses %j with a ConfigError naming the key", (raw, problem) => {
    expect(configProblems(() => parseRabbitMqSettings(raw))).toContainEqual(expect.stringMatching(problem));
  });
  it("are validated in the config pass: a bad keybuzz:rabbitmq stops the program before the first resource", async () => {
    const { error, registrations } = await runFailingProgram("prod", { "keybuzz:rabbitmq": JSON.stringify({ amqpPort: 70000 }) });
    if (!isConfigError(error)) throw error;
    expect(error.problems).toContainEqual(expect.stringMatching(/^keybuzz:rabbitmq\.amqpPort: /));
    expect(registrations).toHaveLength(0);
  });
});

describe("the RabbitMQ HAProxy contribution", () => {
  it("holds the listener, the health check's Authorization (secret) and the AMQP check, under the cluster", async () => {
    let cluster: RabbitMqCluster | undefined;
    await declared(() => {
      const { list: hosts, ready } = mockHosts(NODES.map((node) => testSpec(node.name, node.address, "rabbitmq")));
      cluster = new RabbitMqCluster("rabbitmq", {
        hosts,
        after: { hosts: ready },
        versions: loadVersions(),
        settings: DEFAULT_RABBITMQ_SETTINGS,
        secrets: { password: "Adm1nSecretValue", erlangCookie: "COOKIE", monitorPassword: "M0nitorSecretValue" },
      });
    });
    if (!cluster) throw new Error("no cluster declared");
    const { listeners, secrets, endpointChecks, verified } = cluster.haproxy;
    expect(listeners).toEqual([rabbitmqHaproxyListener(NODES)]);
    expect(verified).toBe(cluster.verified);
    const authorization = pulumi.output(secrets?.["rabbitmq-health-auth"] ?? "");
    expect(await pulumi.isSecret(authorization)).toBe(true);
    const value = await new Promise<string>((resolve) => authorization.apply(resolve));
    expect(Buffer.from(value, "base64").toString()).toBe("keybuzz-monitor:M0nitorSecretValue");
    expect(endpointChecks).toHaveLength(1);
    const [check] = endpointChecks ?? [];
    expect(check.name).toBe("queue-01-rabbitmq-endpoint-check");
    expect(check.host.spec.name).toBe("queue-01");
    expect(check.listener).toBe(listeners[0].name);
    expect(check.formerParent).toBe(cluster);
    expect(check.script("10.0.0.10", 5672)).toBe(renderRabbitMqEndpointCheckScript("10.0.0.10", 5672));
    expect(check.script("10.0.0.10", 5672)).toMatch(/^KB_LB_ADDRESS='10\.0\.0\.10'\nKB_LB_PORT='5672'\n/);
  });
});

describe("the program (prod)", () => {
  let program: Awaited<ReturnType<typeof runProgram>>;
  beforeAll(async () => {
    program = await runProgram("prod");
  });

  it("lands rabbitmq.conf, enabled_plugins and the cookie on every queue node, secrets as placeholders", () => {
    const { steps } = program;
    for (const name of ["queue-01", "queue-02", "queue-03"]) {
      const step = steps.find((candidate) => candidate.step === `${name}-rabbitmq`);
      expect(step?.host).toBe(name);
      expect(step?.files.map((file) => file.path)).toEqual(
        expect.arrayContaining([
          "/opt/keybuzz/rabbitmq/config/rabbitmq.conf",
          "/opt/keybuzz/rabbitmq/config/enabled_plugins",
          "/opt/keybuzz/rabbitmq/data/.erlang.cookie",
        ]),
      );
      for (const file of step?.files ?? []) expect(file.content).not.toMatch(/mock-secret/);
    }
  });

  it("checks AMQP through the internal LB from queue-01 (declared by HaproxyLayer, aliased from RabbitMqCluster), after the verification, HAProxy and the LB", () => {
    const { registrations, steps } = program;
    const check = registrations.find((registration) => registration.name === "queue-01-rabbitmq-endpoint-check");
    const cluster = registrations.find((registration) => registration.type === "keybuzz:data:RabbitMqCluster");
    const layer = registrations.find((registration) => registration.type === "keybuzz:data:HaproxyLayer");
    expect(check?.parent).toBe(layer?.urn);
    expect(check?.aliasUrns).toEqual([
      `${cluster?.urn.replace("::rabbitmq", "")}$command:remote:Command::queue-01-rabbitmq-endpoint-check`,
    ]);
    expect(check?.dependsOn).toEqual(
      expect.arrayContaining(["rabbitmq-verify", "haproxy-01-haproxy", "haproxy-02-haproxy", "lb-internal"]),
    );
    const step = steps.find((candidate) => candidate.step === "queue-01-rabbitmq-endpoint-check");
    expect(step?.host).toBe("queue-01");
    expect(step?.script).toContain("KB_LB_ADDRESS='10.0.0.10'\nKB_LB_PORT='5672'\n");
  });
});
