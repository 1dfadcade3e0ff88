import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { clusterNodes, ConfigError, loadVersions, parseInventory, parseVersions, serversOf, VERSIONS_FILE } from "../config";
import { rawStackConfig } from "./support/stack-config";

type Raw = Record<string, unknown> & { servers: Record<string, unknown>[]; loadBalancers: Record<string, unknown>[] };

function prodConfig(): Raw {
  return structuredClone(rawStackConfig("prod")) as Raw;
}

function problemsOf(raw: unknown): string[] {
  try {
    parseInventory(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error("the configuration was accepted");
}

function serverIndex(raw: Raw, name: string): number {
  return raw.servers.findIndex((server) => server.name === name);
}

describe("stack configuration", () => {
  it.each(["prod", "staging"])("accepts the %s stack file", (stack) => {
    const inventory = parseInventory(rawStackConfig(stack));
    expect(inventory.servers.length).toBeGreaterThan(0);
  });

  it("prod holds the spec's 29 hosts at their addresses", () => {
    const inventory = parseInventory(prodConfig());
    expect(inventory.servers).toHaveLength(29);
    const ipOf = Object.fromEntries(inventory.servers.map((server) => [server.name, server.privateIp]));
    expect(ipOf).toMatchObject({
      "haproxy-01": "10.0.0.11",
      "haproxy-02": "10.0.0.12",
      "k8s-master-01": "10.0.0.100",
      "k8s-worker-05": "10.0.0.114",
      "db-master-01": "10.0.0.120",
      "db-slave-02": "10.0.0.122",
      "redis-01": "10.0.0.123",
      "queue-03": "10.0.0.128",
      "minio-01": "10.0.0.134",
      "minio-02": "10.0.0.131",
      "minio-03": "10.0.0.132",
      "maria-01": "10.0.0.170",
      "proxysql-02": "10.0.0.174",
    });
  });

  it("staging has the minimum HA shape on current server types", () => {
    const inventory = parseInventory(rawStackConfig("staging"));
    const count = (group: string) => inventory.servers.filter((server) => server.group === group).length;
    expect([count("haproxy"), count("postgres"), count("redis"), count("rabbitmq"), count("minio"), count("mariadb")]).toEqual([
      1, 3, 3, 3, 3, 3,
    ]);
    expect([count("proxysql"), count("k8s-master"), count("k8s-worker")]).toEqual([1, 1, 2]);
    for (const server of inventory.servers) expect(server.serverType).toMatch(/^(cx23|cx33|cpx22|cpx32)$/);
  });

  it("rejects a duplicate name, naming the key", () => {
    const raw = prodConfig();
    raw.servers[1].name = raw.servers[0].name;
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/^keybuzz:servers\[1\]\.name: "haproxy-01" is already used/));
  });

  it("rejects a duplicate IP", () => {
    const raw = prodConfig();
    raw.servers[serverIndex(raw, "redis-02")].privateIp = "10.0.0.123";
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/privateIp: 10\.0\.0\.123 is already used by .*redis-01/));
  });

  it("rejects an IP outside the network", () => {
    const raw = prodConfig();
    raw.servers[0].privateIp = "10.1.0.11";
    expect(problemsOf(raw)).toContainEqual(
      "keybuzz:servers[0].privateIp: 10.1.0.11 is outside the subnet 10.0.0.0/24; pick an address inside it",
    );
  });

  it("rejects the gateway address", () => {
    const raw = prodConfig();
    raw.servers[0].privateIp = "10.0.0.1";
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/servers\[0\]\.privateIp: 10\.0\.0\.1 is the network gateway/));
  });

  it("rejects a load balancer's IP on a server", () => {
    const raw = prodConfig();
    raw.servers[0].privateIp = "10.0.0.10";
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/privateIp: 10\.0\.0\.10 belongs to load balancer lb-internal/));
  });

  it.each([
    ["an even count", 2, /the redis cluster has 2 nodes; a quorum needs an odd count of at least 3/],
    ["fewer than 3", 1, /the redis cluster has 1 nodes; a quorum needs an odd count of at least 3/],
  ])("rejects a quorum cluster with %s", (_, keep, message) => {
    const raw = prodConfig();
    const redis = raw.servers.filter((server) => server.role === "redis");
    raw.servers = raw.servers.filter((server) => !redis.slice(keep).includes(server));
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(message));
  });

  it("rejects an even number of control planes", () => {
    const raw = prodConfig();
    raw.servers.splice(serverIndex(raw, "k8s-master-03"), 1);
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/2 Kubernetes control planes; etcd needs an odd count/));
  });

  it("rejects a missing role", () => {
    const raw = prodConfig();
    raw.servers = raw.servers.filter((server) => server.subrole !== "proxysql");
    expect(problemsOf(raw)).toContainEqual("keybuzz:servers: no server has the proxysql role; add at least one");
  });

  it("rejects an unknown role with the list of roles", () => {
    const raw = prodConfig();
    raw.servers[0].role = "cache";
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/^keybuzz:servers\[0\]\.role: "cache" is not a role; use one of lb, db/));
  });

  it("rejects empty admin CIDRs", () => {
    const raw = prodConfig();
    raw.adminCidrs = [];
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/^keybuzz:adminCidrs: must list at least one admin CIDR/));
  });

  it("rejects more services than the load balancer type holds", () => {
    const raw = prodConfig();
    (raw.loadBalancers[0].services as unknown[]).push({ name: "extra", listenPort: 7000 });
    expect(problemsOf(raw)).toContainEqual(
      "keybuzz:loadBalancers[0].services: 6 services but lb11 holds 5; use a larger type (lb21 holds 15) or split the load balancer",
    );
  });

  it("rejects a retired server type and names its replacement", () => {
    const raw = prodConfig();
    raw.servers[0].serverType = "cx22";
    expect(problemsOf(raw)).toContainEqual('keybuzz:servers[0].serverType: "cx22" is being retired by Hetzner; use "cx23"');
  });

  it("requires a data volume on database nodes", () => {
    const raw = prodConfig();
    delete raw.servers[serverIndex(raw, "maria-02")].volumeSizeGb;
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/volumeSizeGb: mariadb nodes keep their data on an XFS volume/));
  });

  it("rejects a pod CIDR inside the private network", () => {
    const raw = prodConfig();
    (raw.kubernetes as Record<string, unknown>).podCidr = "10.0.128.0/17";
    expect(problemsOf(raw)).toContainEqual(
      expect.stringMatching(/^keybuzz:kubernetes\.podCidr: 10\.0\.128\.0\/17 overlaps the private network/),
    );
  });

  it("reports every problem at once, not just the first", () => {
    const raw = prodConfig();
    raw.servers[0].privateIp = "10.0.0.1";
    raw.servers.splice(serverIndex(raw, "k8s-master-03"), 1);
    expect(problemsOf(raw)).toEqual([
      expect.stringMatching(/^keybuzz:servers\[0\]\.privateIp: 10\.0\.0\.1 is the network gateway/),
      expect.stringMatching(/2 Kubernetes control planes/),
    ]);
  });

  it("names the key of a schema error", () => {
    const raw = prodConfig();
    raw.adminCidrs = ["not-a-cidr"];
    expect(problemsOf(raw)).toEqual([expect.stringMatching(/^keybuzz:adminCidrs\[0\]: must be an IPv4 CIDR/)]);
  });
});

describe("versions.yaml", () => {
  const pins = () => yaml.load(fs.readFileSync(VERSIONS_FILE, "utf8")) as Record<string, Record<string, unknown>>;

  it("loads the project's pins", () => {
    const versions = loadVersions();
    expect(versions.images.rabbitmq).toMatch(/^rabbitmq:3\.13\./);
    expect(versions.kubernetes.version).toMatch(/^1\.\d+\.\d+$/);
  });

  it.each([
    ["images", "redis", "redis:latest", /^ {2}- versions\.yaml: images\.redis: `latest` is not a version/],
    ["images", "redis", "redis:7-alpine", /^ {2}- versions\.yaml: images\.redis: must name a release tag with its full version/],
    ["images", "postgres", "postgres:16", /^ {2}- versions\.yaml: images\.postgres: must name a release tag/],
    ["images", "haproxy", "haproxy", /^ {2}- versions\.yaml: images\.haproxy: must name a release tag/],
    ["kubernetes", "version", "1.33", /^ {2}- versions\.yaml: kubernetes\.version: must be an exact version/],
    ["kubernetes", "version", "latest", /^ {2}- versions\.yaml: kubernetes\.version: `latest` is not a version/],
  ])("rejects %s.%s = %s", (section, key, value, message) => {
    const raw = pins();
    raw[section][key] = value;
    expect(() => parseVersions(raw)).toThrow(new RegExp(message.source, "m"));
  });

  it("rejects a chart without a pinned version", () => {
    const raw = pins();
    (raw.charts.ingressNginx as Record<string, unknown>).version = "^4.13.0";
    expect(() => parseVersions(raw)).toThrow(/charts\.ingressNginx\.version: must be an exact version/);
  });

  it("names a file that is not YAML", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "versions-")), "versions.yaml");
    fs.writeFileSync(file, "images: [unclosed\n");
    expect(() => loadVersions(file)).toThrow(/versions\.yaml: cannot be read as YAML/);
  });
});

describe("cluster members", () => {
  it("are a group's servers by name and private IP, in inventory order (the first bootstraps)", () => {
    const inventory = parseInventory(prodConfig());
    expect(clusterNodes(serversOf(inventory, "redis"))).toEqual([
      { name: "redis-01", address: "10.0.0.123" },
      { name: "redis-02", address: "10.0.0.124" },
      { name: "redis-03", address: "10.0.0.125" },
    ]);
  });
});
