import * as fs from "fs";
import * as path from "path";
import { isConfigError, parseInventory } from "../../config";
import { MockRun, Registration, reveal, runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { urnChanges } from "../../scripts/plan";
import { rawStackConfig } from "../support/stack-config";

type Inputs = Record<string, unknown>;

const runs: Record<string, MockRun> = {};
beforeAll(async () => {
  for (const stack of ["prod", "staging"]) runs[stack] = await runProgram(stack);
});

const ofType = (run: MockRun, type: string) => run.registrations.filter((registration) => registration.type === type);
const inputs = (registration: Registration) => reveal(registration.inputs) as Inputs;
const idOf = (registration: Registration) => 100000 + registration.index;

describe("the public ingress load balancers' certificate (keybuzz:k8s.ingressDomains)", () => {
  it("passes 443 through as TCP and declares no certificate when no domain is set", () => {
    expect(ofType(runs.prod, "hcloud:index/managedCertificate:ManagedCertificate")).toEqual([]);
  });

  it("with domains: one Hetzner managed certificate, which the 443 services of both ingress LBs terminate TLS with, to port 80", async () => {
    const run = await runProgram("prod", { "keybuzz:k8s": JSON.stringify({ ingressDomains: ["app.keybuzz.io", "api.keybuzz.io"] }) });
    const certificates = ofType(run, "hcloud:index/managedCertificate:ManagedCertificate");
    expect(certificates.map((certificate) => [certificate.name, inputs(certificate).domainNames, inputs(certificate).name])).toEqual([
      ["ingress-certificate", ["app.keybuzz.io", "api.keybuzz.io"], "keybuzz-ingress"],
    ]);
    const services = ofType(run, "hcloud:index/loadBalancerService:LoadBalancerService");
    for (const lb of ["lb-ingress-01", "lb-ingress-02"]) {
      expect(inputs(services.find((service) => service.name === `${lb}-https`)!)).toMatchObject({
        protocol: "https",
        listenPort: 443,
        destinationPort: 80,
        http: { certificates: [idOf(certificates[0])] },
        healthCheck: { protocol: "http", port: 10254 },
      });
      expect(inputs(services.find((service) => service.name === `${lb}-http`)!)).toMatchObject({
        protocol: "tcp",
        listenPort: 80,
        destinationPort: 80,
      });
    }
    // The data tier's LBs are untouched.
    expect(inputs(services.find((service) => service.name === "lb-internal-minio")!)).toMatchObject({
      protocol: "tcp",
      healthCheck: { protocol: "tcp" },
    });
  });

  it("refuses a domain that is not a DNS name, naming the key", async () => {
    const { error } = await runFailingProgram("prod", { "keybuzz:k8s": JSON.stringify({ ingressDomains: ["https://app.keybuzz.io"] }) });
    if (!isConfigError(error)) throw error;
    expect(error.problems).toContainEqual(
      expect.stringMatching(/^keybuzz:k8s\.ingressDomains\[0\]: must be a DNS name such as app\.keybuzz\.io$/),
    );
  });
});

describe.each(["prod", "staging"])("Hetzner infrastructure (%s)", (stack) => {
  const inventory = parseInventory(rawStackConfig(stack));

  // A changed URN is a delete and a create on the next `pulumi up` (a server, a volume, a step):
  // renames must go through `aliases`. The list is `npm run plan -- --stack <stack> --urns`.
  it("keeps every resource's URN, or moves it through an alias (tests/infra/urns)", () => {
    const earlier = fs
      .readFileSync(path.join(__dirname, "urns", `${stack}.txt`), "utf8")
      .trim()
      .split("\n");
    expect(urnChanges(runs[stack], earlier)).toMatchObject({ removed: [], added: [] });
  });

  // Hetzner names and network attachments are unique: create-before-delete would fail on the name,
  // or detach the server when the old attachment goes (issue 15, item 9).
  it("replaces servers, load balancers and their network attachments delete-first", () => {
    const types = [
      "hcloud:index/server:Server",
      "hcloud:index/serverNetwork:ServerNetwork",
      "hcloud:index/loadBalancer:LoadBalancer",
      "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork",
    ];
    for (const type of types) {
      const declared = ofType(runs[stack], type);
      expect(declared.length).toBeGreaterThan(0);
      expect(declared.filter((registration) => !registration.deleteBeforeReplace).map((registration) => registration.name)).toEqual([]);
    }
  });

  it("declares one server per inventory entry, attached at its private IP through the subnet", () => {
    const run = runs[stack];
    const servers = ofType(run, "hcloud:index/server:Server");
    expect(servers.map((server) => server.name).sort()).toEqual(inventory.servers.map((server) => server.name).sort());
    const attachments = ofType(run, "hcloud:index/serverNetwork:ServerNetwork").map(inputs);
    for (const spec of inventory.servers) {
      const server = servers.find((registration) => registration.name === spec.name)!;
      const attachment = attachments.find((candidate) => candidate.serverId === idOf(server));
      expect(attachment).toMatchObject({ ip: spec.privateIp });
      expect(attachment?.subnetId).toBeDefined();
      expect(inputs(server)).toMatchObject({ image: "ubuntu-24.04", serverType: spec.serverType, location: inventory.location });
    }
  });

  it("prefixes Hetzner names with the stack outside prod", () => {
    const names = ofType(runs[stack], "hcloud:index/server:Server").map((server) => String(inputs(server).name));
    expect(names.every((name) => (stack === "prod" ? !name.startsWith("prod-") : name.startsWith(`${stack}-`)))).toBe(true);
  });

  it("builds each load balancer at its IP with its services and private-IP targets", () => {
    const run = runs[stack];
    const serverNameById = new Map(ofType(run, "hcloud:index/server:Server").map((server) => [idOf(server), server.name]));
    for (const spec of inventory.loadBalancers) {
      const lb = ofType(run, "hcloud:index/loadBalancer:LoadBalancer").find((registration) => registration.name === spec.name)!;
      const belongs = (registration: Registration) => Number(inputs(registration).loadBalancerId) === idOf(lb);
      const network = ofType(run, "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork").filter(belongs).map(inputs);
      expect(network).toEqual([expect.objectContaining({ ip: spec.privateIp, enablePublicInterface: spec.public })]);
      const services = ofType(run, "hcloud:index/loadBalancerService:LoadBalancerService").filter(belongs).map(inputs);
      expect(services.map((service) => [service.listenPort, service.destinationPort])).toEqual(
        spec.services.map((service) => [service.listenPort, service.destinationPort]),
      );
      for (const service of services) {
        // The ingress LBs ask the ingress controller's health endpoint (issue 19); the others connect to the port served.
        const healthCheck =
          spec.public && spec.targetGroup === "k8s-worker"
            ? { protocol: "http", port: 10254, http: { path: "/healthz", statusCodes: ["200"] } }
            : { protocol: "tcp", port: service.destinationPort };
        expect(service).toMatchObject({ protocol: "tcp", healthCheck: expect.objectContaining(healthCheck) });
      }
      const targets = ofType(run, "hcloud:index/loadBalancerTarget:LoadBalancerTarget").filter(belongs).map(inputs);
      expect(targets.every((target) => target.usePrivateIp === true && target.type === "server")).toBe(true);
      // A target by private IP needs both ends on the network first.
      for (const target of ofType(run, "hcloud:index/loadBalancerTarget:LoadBalancerTarget").filter(belongs)) {
        const server = serverNameById.get(Number(inputs(target).serverId));
        expect(target.dependsOn).toEqual(expect.arrayContaining([`${spec.name}-private`, `${server}-private`]));
      }
      expect(targets.map((target) => serverNameById.get(Number(target.serverId))).sort()).toEqual(
        inventory.servers
          .filter((server) => server.group === spec.targetGroup)
          .map((server) => server.name)
          .sort(),
      );
    }
  });

  it("keeps the internal load balancers off the public internet", () => {
    const internal = inventory.loadBalancers.filter((lb) => ["10.0.0.10", "10.0.0.20", "10.0.0.30"].includes(lb.privateIp));
    expect(internal.map((lb) => lb.public)).toEqual([false, false, false]);
    const networks = ofType(runs[stack], "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork").map(inputs);
    for (const lb of internal) expect(networks.find((network) => network.ip === lb.privateIp)?.enablePublicInterface).toBe(false);
  });

  it("opens only SSH to the admin CIDRs, and 6443 on control planes only", () => {
    const run = runs[stack];
    const firewalls = ofType(run, "hcloud:index/firewall:Firewall");
    const openPorts = new Map<number, string[]>();
    for (const firewall of firewalls) {
      const rules = inputs(firewall).rules as Inputs[];
      for (const rule of rules) {
        expect(rule).toMatchObject({ direction: "in", protocol: "tcp", sourceIps: inventory.adminCidrs });
        expect(["22", "6443"]).toContain(rule.port);
      }
      openPorts.set(
        idOf(firewall),
        rules.map((rule) => String(rule.port)),
      );
    }
    for (const server of ofType(run, "hcloud:index/server:Server")) {
      const [firewallId] = inputs(server).firewallIds as number[];
      const group = (inputs(server).labels as Record<string, string>).group;
      expect(openPorts.get(firewallId)).toEqual(group === "k8s-master" ? ["22", "6443"] : ["22"]);
    }
  });

  it("spreads every cluster group over placement groups of at most 10 servers", () => {
    const run = runs[stack];
    const members = new Map<number, string[]>();
    for (const server of ofType(run, "hcloud:index/server:Server")) {
      const id = Number(inputs(server).placementGroupId);
      members.set(id, [...(members.get(id) ?? []), (inputs(server).labels as Record<string, string>).group]);
    }
    for (const group of ofType(run, "hcloud:index/placementGroup:PlacementGroup")) {
      expect(inputs(group).type).toBe("spread");
      const groups = members.get(idOf(group)) ?? [];
      expect(groups.length).toBeGreaterThan(0);
      expect(groups.length).toBeLessThanOrEqual(10);
      expect(new Set(groups).size).toBe(1);
    }
  });

  it("gives PostgreSQL, MariaDB and MinIO nodes an XFS volume, protected only when protectData is on", () => {
    const run = runs[stack];
    const volumes = ofType(run, "hcloud:index/volume:Volume");
    const expected = inventory.servers.filter((server) => ["postgres", "mariadb", "minio"].includes(server.group));
    expect(expected.filter((server) => server.group === "minio")).toHaveLength(3);
    expect(volumes.map((volume) => volume.name).sort()).toEqual(expected.map((server) => `${server.name}-data`).sort());
    for (const volume of volumes) {
      expect(inputs(volume)).toMatchObject({ format: "xfs", deleteProtection: stack === "prod" });
      expect(volume.protect).toBe(stack === "prod");
    }
  });
});
