import * as pulumi from "@pulumi/pulumi";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import { rabbitmqHaproxyListener } from "../../components/data/rabbitmq";
import {
  DEFAULT_REDIS_DAEMON_SETTINGS,
  maxmemoryMb,
  parseRedisSettings,
  RedisCluster,
  RedisDaemonSettings,
  redisDaemonSettings,
  redisHaproxyListener,
  renderRedisConf,
  renderRedisEndpointCheckScript,
  renderSentinelConf,
  SENTINEL_PROFILES,
} from "../../components/data/redis";
import { secretKeysIn } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { isSecretValue, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { declared, mockHosts, testSpec } from "../support/component-mocks";

const NODES = [
  { name: "redis-01", address: "10.0.0.123" },
  { name: "redis-02", address: "10.0.0.124" },
  { name: "redis-03", address: "10.0.0.125" },
];
const SETTINGS: RedisDaemonSettings = { ...DEFAULT_REDIS_DAEMON_SETTINGS, maxmemoryMb: maxmemoryMb(8, 60) };

describe("redis.conf", () => {
  const conf = renderRedisConf(NODES[1], SETTINGS);

  it("binds and announces the node's private IP", () => {
    expect(conf).toMatch(/^bind 10\.0\.0\.124$/m);
    expect(conf).toMatch(/^replica-announce-ip 10\.0\.0\.124$/m);
  });

  it("holds the spec's persistence and eviction settings, maxmemory from the server's memory", () => {
    expect(conf).toMatch(/^appendonly yes$/m);
    expect(conf).toMatch(/^save 900 1$/m);
    expect(conf).toMatch(/^save 300 10$/m);
    expect(conf).toMatch(/^maxmemory-policy allkeys-lru$/m);
    expect(conf).toMatch(/^maxmemory 4915mb$/m); // 60 % of 8 GB (cx33)
  });

  it("refuses writes on a master without a replica (min-replicas-to-write 1, lag 10)", () => {
    expect(conf).toMatch(/^min-replicas-to-write 1$/m);
    expect(conf).toMatch(/^min-replicas-max-lag 10$/m);
  });

  it("holds passwords only as placeholders (data, exporter) and no role", () => {
    expect(secretKeysIn(conf)).toEqual(["redis-password", "redis-exporter-password"]);
    expect(conf).toMatch(/^requirepass \{\{secret:redis-password\}\}$/m);
    expect(conf).toMatch(/^masterauth \{\{secret:redis-password\}\}$/m);
    expect(conf).not.toMatch(/replicaof/);
  });

  it("declares redis_exporter's ACL user: INFO and the slowlog/latency reads, no key, no CONFIG", () => {
    expect(conf).toMatch(
      /^user exporter on >\{\{secret:redis-exporter-password\}\} -@all \+ping \+client\|setname \+info \+slowlog\|len \+slowlog\|get \+latency\|latest \+latency\|histogram$/m,
    );
    expect(conf).not.toMatch(/^user .*(~|\+config|\+@)/m);
  });
});

describe("sentinel.conf", () => {
  const conf = renderSentinelConf(NODES[2], NODES[0].address, SETTINGS);

  it("monitors the bootstrap master with quorum 2, the fast profile's down-after and the spec's other timings", () => {
    expect(conf).toMatch(/^sentinel monitor kb-redis-master 10\.0\.0\.123 6379 2$/m);
    expect(conf).toMatch(/^sentinel down-after-milliseconds kb-redis-master 2000$/m);
    expect(conf).toMatch(/^sentinel failover-timeout kb-redis-master 60000$/m);
    expect(conf).toMatch(/^sentinel parallel-syncs kb-redis-master 1$/m);
    expect(conf).toMatch(/^sentinel announce-ip 10\.0\.0\.125$/m);
    expect(conf).toMatch(/^sentinel announce-port 26379$/m);
  });

  it("is reachable on the private IP only, behind its own password, never `protected-mode no`", () => {
    expect(conf).toMatch(/^bind 10\.0\.0\.125$/m);
    expect(conf).not.toMatch(/protected-mode no/);
    expect(conf).toMatch(/^requirepass \{\{secret:redis-sentinel-password\}\}$/m);
    expect(conf).toMatch(/^sentinel sentinel-pass \{\{secret:redis-sentinel-password\}\}$/m);
    expect(conf).toMatch(/^sentinel auth-pass kb-redis-master \{\{secret:redis-password\}\}$/m);
  });

  it("renders loopback clusters from the same function (addresses and ports are inputs)", () => {
    const local = renderSentinelConf({ name: "redis-01", address: "127.0.10.1" }, "127.0.10.1", { ...SETTINGS, sentinelPort: 26400 });
    expect(local).toMatch(/^bind 127\.0\.10\.1$/m);
    expect(local).toMatch(/^port 26400$/m);
  });
});

describe("keybuzz:redis settings", () => {
  it("defaults to the fast Sentinel profile and the spec's other values", () => {
    expect(parseRedisSettings(undefined)).toEqual({
      maxmemoryPercent: 60,
      failoverProfile: "fast",
      downAfterMilliseconds: 2000,
      failoverTimeoutMilliseconds: 60000,
    });
    expect(DEFAULT_REDIS_DAEMON_SETTINGS.downAfterMilliseconds).toBe(SENTINEL_PROFILES.fast.downAfterMilliseconds);
  });
  it("takes down-after-milliseconds from the profile unless it is set explicitly", () => {
    expect(parseRedisSettings({ failoverProfile: "standard" }).downAfterMilliseconds).toBe(5000);
    expect(parseRedisSettings({ failoverProfile: "standard", downAfterMilliseconds: 3000 }).downAfterMilliseconds).toBe(3000);
    expect(() => parseRedisSettings({ failoverProfile: "instant" })).toThrow(/keybuzz:redis\.failoverProfile/);
  });
  it("renders the profile's down-after-milliseconds into sentinel.conf", () => {
    const tuning = parseRedisSettings({ failoverProfile: "standard" });
    const conf = renderSentinelConf(NODES[0], NODES[0].address, { ...SETTINGS, downAfterMilliseconds: tuning.downAfterMilliseconds });
    expect(conf).toMatch(/^sentinel down-after-milliseconds kb-redis-master 5000$/m);
  });
  it("derives a node's daemon settings: Sentinel timings from the settings, maxmemory from the server's memory", () => {
    const daemon = redisDaemonSettings(
      parseRedisSettings({ failoverProfile: "standard", maxmemoryPercent: 50, failoverTimeoutMilliseconds: 30000 }),
      16,
    );
    expect(daemon).toEqual({
      ...DEFAULT_REDIS_DAEMON_SETTINGS,
      downAfterMilliseconds: 5000,
      failoverTimeoutMilliseconds: 30000,
      maxmemoryMb: 8192,
    });
  });
  it("names the bad key", () => {
    expect(() => parseRedisSettings({ maxmemoryPercent: 95 })).toThrow(/keybuzz:redis\.maxmemoryPercent/);
    expect(() => parseRedisSettings({ maxmemory: 1 })).toThrow(/keybuzz:redis/);
  });
});

describe("Redis HAProxy listener", () => {
  const listener = redisHaproxyListener(NODES);

  it("sends every client to the current master only", () => {
    expect(listener.port).toBe(6379);
    expect(listener.lines).toContain("tcp-check send AUTH\\ {{secret:redis-password}}\\r\\n");
    expect(listener.lines).toContain("tcp-check send PING\\r\\n");
    expect(listener.lines).toContain("tcp-check send info\\ replication\\r\\n");
    expect(listener.lines).toContain("tcp-check expect string role:master");
    expect(listener.lines.join("\n")).not.toMatch(/roundrobin/);
    const defaults = listener.lines.find((line) => line.startsWith("default-server")) ?? "";
    expect(defaults).toMatch(/on-marked-down shutdown-sessions/);
    // A promoted replica is UP within downinter + fastinter (0.75 s); a demoted master out within inter + fastinter.
    expect(defaults).toMatch(/^default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 /);
    expect(listener.lines.filter((line) => line.startsWith("server "))).toEqual([
      "server redis-01 10.0.0.123:6379 check",
      "server redis-02 10.0.0.124:6379 check",
      "server redis-03 10.0.0.125:6379 check",
    ]);
  });

  it("rejects a check interval above 1 s", () => {
    expect(() => redisHaproxyListener(NODES, { checkIntervalMs: 2000 })).toThrow(/at most 1000/);
  });

  it("shares one haproxy.cfg with the RabbitMQ listener", () => {
    const queues = [1, 2, 3].map((n) => ({ name: `queue-0${n}`, address: `10.0.0.${125 + n}` }));
    const cfg = renderHaproxyConfig([listener, rabbitmqHaproxyListener(queues)]);
    expect(cfg).toMatch(/^listen redis\n {4}bind 0\.0\.0\.0:6379$/m);
    expect(cfg).toMatch(/^listen rabbitmq\n {4}bind 0\.0\.0\.0:5672$/m);
  });
});

describe("RedisCluster on the mock engine", () => {
  let cluster: RedisCluster | undefined;
  const build = () => {
    const { list: hosts, ready } = mockHosts(NODES.map((node) => testSpec(node.name, node.address, "redis")));
    cluster = new RedisCluster("redis", {
      hosts,
      versions: loadVersions(),
      settings: parseRedisSettings(undefined),
      secrets: {
        password: pulumi.secret("data-pass"),
        sentinelPassword: pulumi.secret("sentinel-pass"),
        exporterPassword: pulumi.secret("exporter-pass"),
      },
      after: { hosts: ready },
    });
  };

  it("starts redis-01 first, each replica after the previous node, then verifies", async () => {
    const resources = await declared(build);
    expect(resources.get("redis-01-redis")?.deps).toEqual(["redis-01-base"]);
    expect(resources.get("redis-02-redis")?.deps).toEqual(expect.arrayContaining(["redis-02-base", "redis-01-redis"]));
    expect(resources.get("redis-03-redis")?.deps).toEqual(expect.arrayContaining(["redis-03-base", "redis-02-redis"]));
    expect(resources.get("redis-verify")?.deps).toEqual(expect.arrayContaining(["redis-01-redis", "redis-02-redis", "redis-03-redis"]));
    const step = resources.get("redis-02-redis")?.inputs ?? {};
    expect(isSecretValue(step.stdin)).toBe(true);
    expect(String(reveal(step.create))).not.toMatch(/data-pass|sentinel-pass/);
  });

  it("rolls a deferred master after every node step: master-roll steps one at a time, then the verification", async () => {
    const resources = await declared(build);
    const nodes = ["redis-01-redis", "redis-02-redis", "redis-03-redis"];
    expect(resources.get("redis-01-redis-master-roll")?.deps).toEqual(nodes);
    expect(resources.get("redis-02-redis-master-roll")?.deps).toEqual([...nodes, "redis-01-redis-master-roll"]);
    expect(resources.get("redis-03-redis-master-roll")?.deps).toEqual([
      ...nodes,
      "redis-01-redis-master-roll",
      "redis-02-redis-master-roll",
    ]);
    expect(resources.get("redis-verify")?.deps).toEqual(expect.arrayContaining(["redis-03-redis-master-roll"]));
    // No files and no secrets: it restarts from what the node step landed.
    const roll = resources.get("redis-02-redis-master-roll")?.inputs ?? {};
    expect(roll.stdin).toBeUndefined();
    expect(String(reveal(roll.create))).toMatch(/KB_PHASE=\W*master-roll\W/);
    expect(String(reveal(resources.get("redis-02-redis")?.inputs.create))).toMatch(/KB_PHASE=\W*node\W/);
  });

  it("hands HAProxy the master-only listener, the AUTH secret and a write-through check, declaring no check itself", async () => {
    const resources = await declared(build);
    expect([...resources.keys()].filter((name) => name.includes("endpoint-check"))).toEqual([]);
    const contribution = cluster!.haproxy;
    expect(contribution.listeners).toEqual([redisHaproxyListener(NODES)]);
    expect(Object.keys(contribution.secrets ?? {})).toEqual(["redis-password"]);
    expect(contribution.verified).toBe(cluster!.verified);
    const [check] = contribution.endpointChecks ?? [];
    expect(check).toMatchObject({ name: "redis-01-redis-endpoint-check", listener: "redis", formerParent: cluster });
    expect(check.host.spec.name).toBe("redis-01");
    expect(check.script("10.0.0.10", 6379)).toBe(renderRedisEndpointCheckScript("10.0.0.10", 6379, loadVersions().images.redis));
    expect(check.triggers).toHaveLength(1);
    expect(cluster!.sentinelEndpoints).toEqual(["10.0.0.123:26379", "10.0.0.124:26379", "10.0.0.125:26379"]);
    expect(Object.keys(cluster!.nodeSteps)).toEqual(["redis-01", "redis-02", "redis-03"]);
  });
});

describe("the Redis endpoint check script", () => {
  it("reads the address, port and image from its quoted preamble", () => {
    const script = renderRedisEndpointCheckScript("10.0.0.10", 6379, "redis:7.2.16-alpine");
    expect(script).toMatch(
      /^KB_ADDRESS='10\.0\.0\.10'\nKB_PORT='6379'\nKB_IMAGE='redis:7\.2\.16-alpine'\nKB_MANAGED_DIR='\/etc\/keybuzz\/redis'\n/,
    );
    expect(script).not.toContain("10.0.0.10:6379 ");
  });
});

describe("the program (prod)", () => {
  it("lands redis.conf, sentinel.conf and the node step on every Redis node, secrets as placeholders", async () => {
    const { steps, registrations } = await runProgram("prod");
    for (const name of ["redis-01", "redis-02", "redis-03"]) {
      const step = steps.find((candidate) => candidate.step === `${name}-redis`);
      expect(step?.host).toBe(name);
      const paths = step?.files.map((file) => file.path);
      expect(paths).toEqual(expect.arrayContaining(["/etc/keybuzz/redis/redis.conf", "/etc/keybuzz/redis/sentinel.conf"]));
      for (const file of step?.files ?? []) expect(file.content).not.toMatch(/mock-secret/);
      const command = registrations.find((registration) => registration.name === `${name}-redis`);
      expect(isSecretValue(command?.inputs.stdin)).toBe(true);
    }
    expect(steps.findIndex((step) => step.step === "redis-02-redis")).toBeGreaterThan(
      steps.findIndex((step) => step.step === "redis-01-redis"),
    );
    expect(registrations.filter((registration) => registration.type === "keybuzz:data:RedisCluster")).toHaveLength(1);
  });

  it("checks a write through the internal LB from redis-01, declared by the HAProxy layer under its former URN as alias", async () => {
    const { registrations, steps } = await runProgram("prod");
    const check = registrations.find((registration) => registration.name === "redis-01-redis-endpoint-check");
    const layer = registrations.find((registration) => registration.type === "keybuzz:data:HaproxyLayer");
    expect(check?.parent).toBe(layer?.urn);
    expect(check?.aliasUrns).toEqual([
      "urn:pulumi:prod::keybuzz::keybuzz:data:RedisCluster$command:remote:Command::redis-01-redis-endpoint-check",
    ]);
    expect(check?.dependsOn).toEqual(expect.arrayContaining(["haproxy-01-haproxy", "haproxy-02-haproxy", "lb-internal", "redis-verify"]));
    expect(steps.find((step) => step.step === "redis-01-redis-endpoint-check")?.script).toContain(
      "\nKB_ADDRESS='10.0.0.10'\nKB_PORT='6379'\n",
    );
  });
});
