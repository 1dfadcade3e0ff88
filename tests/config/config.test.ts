import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import {
  clusterNodes,
  ConfigError,
  isConfigError,
  loadVersions,
  parseInventory,
  parseVersions,
  serversOf,
  unknownKeyProblems,
  VERSIONS_FILE,
} from "../../config";
import { runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";

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

function lbIndex(raw: Raw, name: string): number {
  return raw.loadBalancers.findIndex((lb) => lb.name === name);
}

/** The problems of a whole-program run on the mock engine that must fail, and how many resources it declared first. */
async function programProblems(
  overrides: Record<string, unknown>,
  offlinePlan = true,
): Promise<{ problems: readonly string[]; declared: number }> {
  const override = Object.fromEntries(Object.entries(overrides).map(([key, value]) => [key, JSON.stringify(value)]));
  const { error, registrations } = await runFailingProgram("prod", override, { offlinePlan });
  if (!isConfigError(error)) throw error;
  return { problems: error.problems, declared: registrations.length };
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
    // lb-internal's six services, on the type that holds five.
    raw.loadBalancers[0].type = "lb11";
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

  it("gives MinIO nodes a 200 GB data volume unless the server sets its own size (issue 19)", () => {
    const raw = prodConfig();
    raw.servers[serverIndex(raw, "minio-02")].volumeSizeGb = 500;
    const sizes = parseInventory(raw)
      .servers.filter((server) => server.group === "minio")
      .map((server) => [server.name, server.volumeSizeGb]);
    expect(sizes).toEqual([
      ["minio-01", 200],
      ["minio-02", 500],
      ["minio-03", 200],
    ]);
    raw.servers[serverIndex(raw, "redis-01")].volumeSizeGb = 50;
    expect(problemsOf(raw)).toContainEqual(
      expect.stringMatching(
        /^keybuzz:servers\[\d+\]\.volumeSizeGb: only postgres, mariadb, minio nodes get a data volume; remove the key$/,
      ),
    );
  });

  it("rejects a pod CIDR inside the private network", () => {
    const raw = prodConfig();
    (raw.kubernetes as Record<string, unknown>).podCidr = "10.0.128.0/17";
    expect(problemsOf(raw)).toContainEqual(
      expect.stringMatching(/^keybuzz:kubernetes\.podCidr: 10\.0\.128\.0\/17 overlaps the private network/),
    );
  });

  it.each([
    ["network", "10.0.0.0", "the subnet's network address (10.0.0.0/24)"],
    ["broadcast", "10.0.0.255", "the subnet's broadcast address (10.0.0.0/24)"],
  ])("rejects a server or load balancer at the subnet's %s address", (_, address, why) => {
    const raw = prodConfig();
    raw.servers[0].privateIp = address;
    raw.loadBalancers[lbIndex(raw, "lb-mariadb")].privateIp = address;
    const problems = problemsOf(raw);
    expect(problems).toContainEqual(`keybuzz:servers[0].privateIp: ${address} is ${why}; pick another address`);
    expect(problems).toContainEqual(
      `keybuzz:loadBalancers[${lbIndex(raw, "lb-mariadb")}].privateIp: ${address} is ${why}; pick another address`,
    );
  });

  it.each(["0.0.0.0/0", "10.0.0.0/8", "91.0.0.0/15"])(
    "rejects the broad admin CIDR %s unless keybuzz:allowBroadAdminCidrs says so",
    (cidr) => {
      const raw = prodConfig();
      raw.adminCidrs = ["198.51.100.7/32", cidr];
      expect(problemsOf(raw)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^keybuzz:adminCidrs\\[1\\]: ${cidr.replace(/\./g, "\\.")} is broader than /16 .*SSH \\(22\\) and the Kubernetes API \\(6443\\).*fail2ban.*keybuzz:allowBroadAdminCidrs: true`,
          ),
        ),
      ]);
      raw.allowBroadAdminCidrs = true;
      expect(parseInventory(raw).adminCidrs).toEqual(["198.51.100.7/32", cidr]);
    },
  );

  it("accepts a /16 admin range without the opt-in", () => {
    const raw = prodConfig();
    raw.adminCidrs = ["91.98.0.0/16"];
    expect(parseInventory(raw).adminCidrs).toEqual(["91.98.0.0/16"]);
  });

  it.each([
    [
      "adminCidrs",
      ["91.98.128.153/24"],
      "keybuzz:adminCidrs[0]: 91.98.128.153/24 has host bits set; write 91.98.128.0/24 (or 91.98.128.153/32 for that one address)",
    ],
    ["kubernetes.podCidr", "10.244.1.0/16", "keybuzz:kubernetes.podCidr: 10.244.1.0/16 has host bits set; write 10.244.0.0/16"],
    ["network.subnet", "10.0.0.7/24", "keybuzz:network.subnet: 10.0.0.7/24 has host bits set; write 10.0.0.0/24"],
  ])("rejects a CIDR with host bits set (%s)", (key, value, message) => {
    const raw = prodConfig();
    const [section, field] = key.split(".");
    if (field) (raw[section] as Record<string, unknown>)[field] = value;
    else raw[section] = value;
    expect(problemsOf(raw)).toContainEqual(message);
  });

  it("rejects a load balancer whose target group has no server", () => {
    const raw = prodConfig();
    raw.servers.splice(serverIndex(raw, "backup-01"), 1);
    const index = lbIndex(raw, "lb-mariadb");
    raw.loadBalancers[index].targets = "backup";
    expect(problemsOf(raw)).toEqual([
      `keybuzz:loadBalancers[${index}].targets: no server is in the backup group, so lb-mariadb would have no target; add servers to it or target another group`,
    ]);
  });

  it.each([
    ["100.64.0.0/16", "100.64.0.0/24", /^keybuzz:network\.ipRange: 100\.64\.0\.0\/16 is not a private \(RFC 1918\) range/],
    ["8.0.0.0/7", "10.0.0.0/24", /^keybuzz:network\.ipRange: 8\.0\.0\.0\/7 is not a private \(RFC 1918\) range/],
    ["10.0.0.0/25", "10.0.0.0/25", /^keybuzz:network\.ipRange: 10\.0\.0\.0\/25 is smaller than a Hetzner network's minimum \/24/],
  ])("rejects the network range %s", (ipRange, subnet, message) => {
    const raw = prodConfig();
    raw.network = { ...(raw.network as object), ipRange, subnet };
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(message));
  });

  it.each([
    [
      "lb-internal",
      /serves 5432 \(PostgreSQL\), 5433 \(PostgreSQL replicas\), 6432 \(PgBouncer\), 6379 \(Redis\), 5672 \(RabbitMQ\), 9000 \(MinIO\)/,
    ],
    ["lb-mariadb", /serves 3306 \(MariaDB\)/],
    ["lb-k8s-api", /serves 6443 \(the Kubernetes API\)/],
  ])("rejects %s with public: true", (name, served) => {
    const raw = prodConfig();
    const index = lbIndex(raw, name);
    raw.loadBalancers[index].public = true;
    expect(problemsOf(raw)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^keybuzz:loadBalancers\\[${index}\\]\\.public: ${name} ${served.source}, which must stay on the private network.*set public: false$`,
        ),
      ),
    ]);
  });

  it("rejects a public load balancer in front of a data group even on another port", () => {
    const raw = prodConfig();
    const index = lbIndex(raw, "lb-mariadb");
    raw.loadBalancers[index] = {
      ...raw.loadBalancers[index],
      public: true,
      services: [{ name: "custom", listenPort: 13306, destinationPort: 13306 }],
    };
    expect(problemsOf(raw)).toContainEqual(
      expect.stringMatching(/^keybuzz:loadBalancers\[\d+\]\.public: lb-mariadb targets the proxysql group/),
    );
  });

  it("rejects the same SSH public key listed twice (Hetzner's uniqueness_error), whatever its comment", () => {
    const raw = prodConfig();
    const [key] = raw.sshKeys as string[];
    raw.sshKeys = [key, `${key.split(" ").slice(0, 2).join(" ")} another-comment`, { existing: "ops" }, { existing: "ops" }];
    expect(problemsOf(raw)).toEqual([
      "keybuzz:sshKeys[1]: the same public key as keybuzz:sshKeys[0]; Hetzner refuses a second key with one fingerprint (uniqueness_error): list it once",
      'keybuzz:sshKeys[3]: "ops" is already listed at keybuzz:sshKeys[2]; list it once',
    ]);
  });

  it("takes SSH keys as public key lines to upload or existing Hetzner keys by name", () => {
    const raw = prodConfig();
    const [key] = raw.sshKeys as string[];
    raw.sshKeys = [key, { existing: "keybuzz-operator-1" }];
    expect(parseInventory(raw).sshKeys).toEqual([{ publicKey: key }, { existing: "keybuzz-operator-1" }]);
    raw.sshKeys = [{ name: "typo" }];
    expect(problemsOf(raw)).toContainEqual(expect.stringMatching(/^keybuzz:sshKeys\[0\]/));
  });

  it("names the nearest known key of a misspelt keybuzz:* key", () => {
    expect(
      unknownKeyProblems([
        "keybuzz:sever",
        "keybuzz:rediss",
        "keybuzz:servers",
        "hcloud:token",
        "keybuzz:sshPublicKeys",
        "keybuzz:zzzzzzzzzzzz",
      ]),
    ).toEqual([
      "keybuzz:sever: not a KeyBuzz setting; did you mean keybuzz:servers?",
      "keybuzz:rediss: not a KeyBuzz setting; did you mean keybuzz:redis?",
      "keybuzz:sshPublicKeys: renamed; use keybuzz:sshKeys",
      expect.stringMatching(
        /^keybuzz:zzzzzzzzzzzz: not a KeyBuzz setting; the settings are keybuzz:location, .*keybuzz:k8s, keybuzz:exporters, keybuzz:monitoring, keybuzz:probes, keybuzz:sshPrivateKey$/,
      ),
    ]);
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

describe("the configuration pass (loadPlatformConfig, whole program on the mock engine)", () => {
  it("reports module settings and inventory problems together, before any resource is declared", async () => {
    const servers = prodConfig().servers;
    servers[0].privateIp = "10.0.0.1";
    const { problems, declared } = await programProblems({
      "keybuzz:servers": servers,
      "keybuzz:redis": { maxmemoryPercent: 95 },
      "keybuzz:galera": { gcacheSize: "lots" },
    });
    expect(problems).toEqual([
      expect.stringMatching(/^keybuzz:servers\[0\]\.privateIp: 10\.0\.0\.1 is the network gateway/),
      expect.stringMatching(/^keybuzz:redis\.maxmemoryPercent: /),
      expect.stringMatching(/^keybuzz:galera\.gcacheSize: must be a size such as 2G/),
    ]);
    expect(declared).toBe(0);
  });

  it.each([
    ["keybuzz:postgres", { timingProfile: "instant" }, /^keybuzz:postgres\.timingProfile: /],
    ["keybuzz:k8s", { calicoMtu: 9000 }, /^keybuzz:k8s\.calicoMtu: /],
  ])("rejects a bad %s alone before any resource", async (key, value, message) => {
    const { problems, declared } = await programProblems({ [key]: value });
    expect(problems).toEqual([expect.stringMatching(message)]);
    expect(declared).toBe(0);
  });

  it.each([
    [
      "no ingress load balancer",
      (lbs: Record<string, unknown>[]) => lbs.filter((lb) => !String(lb.name).startsWith("lb-ingress")),
      "keybuzz:loadBalancers: no load balancer forwards 80/443 to the k8s-worker group; the ingress controller needs one",
    ],
    [
      "no load balancer serving MariaDB's 3306",
      (lbs: Record<string, unknown>[]) =>
        lbs.map((lb) => (lb.name === "lb-mariadb" ? { ...lb, services: [{ name: "mariadb", listenPort: 3307 }] } : lb)),
      "keybuzz:loadBalancers: no load balancer serves port 3306 (MariaDB); keybuzz-backend-config needs it",
    ],
    [
      "no load balancer in front of the haproxy group",
      (lbs: Record<string, unknown>[]) => lbs.map((lb) => (lb.name === "lb-internal" ? { ...lb, targets: "k8s-worker" } : lb)),
      "keybuzz:loadBalancers: no load balancer targets the haproxy group; the PostgreSQL endpoints (5432, 5433, 6432) need one",
    ],
  ])("rejects %s in the config pass, not mid-program", async (_, edit, message) => {
    const { problems, declared } = await programProblems({ "keybuzz:loadBalancers": edit(prodConfig().loadBalancers) });
    expect(problems).toEqual([message]);
    expect(declared).toBe(0);
  });

  it("rejects a misspelt keybuzz:* key, naming the nearest one", async () => {
    const { problems, declared } = await programProblems({ "keybuzz:sever": [], "keybuzz:rediss": {} });
    expect(problems).toEqual([
      "keybuzz:sever: not a KeyBuzz setting; did you mean keybuzz:servers?",
      "keybuzz:rediss: not a KeyBuzz setting; did you mean keybuzz:redis?",
    ]);
    expect(declared).toBe(0);
  });

  it("refuses the shipped placeholder admin CIDR in a real preview/up, telling the operator to put their own", async () => {
    const { problems, declared } = await programProblems({}, false);
    expect(problems).toEqual([
      expect.stringMatching(
        /^keybuzz:adminCidrs\[0\]: 192\.0\.2\.10\/32 is a documentation address \(RFC 5737\).*put your own egress address/,
      ),
    ]);
    expect(declared).toBe(0);
  });

  it("accepts an operator's own admin address in a real run (the offline plan's warning: tests/plan/plan.test.ts)", async () => {
    const real = await runProgram("prod", { "keybuzz:adminCidrs": JSON.stringify(["91.98.128.200/32"]) }, { offlinePlan: false });
    expect(real.warnings).toEqual([]);
    expect(real.registrations.length).toBeGreaterThan(200);
  });

  it("names a missing secret instead of failing mid-program", async () => {
    const { problems, declared } = await programProblems({ "keybuzz:sshPrivateKey": undefined });
    expect(problems).toEqual([expect.stringMatching(/^keybuzz:sshPrivateKey: not set; pulumi config set --secret keybuzz:sshPrivateKey/)]);
    expect(declared).toBe(0);
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
