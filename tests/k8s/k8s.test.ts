import { isConfigError, loadVersions, parseInventory, serversOf } from "../../config";
import { isSecretValue, mockSecret, MockRun, Registration, reveal, runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { BACKEND_VARIABLES } from "../support/backend-contract";
import { rawStackConfig } from "../support/stack-config";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const versions = loadVersions();
const inventory = parseInventory(rawStackConfig("prod"));
const controlPlanes = serversOf(inventory, "k8s-master").map((server) => server.name);
const workers = serversOf(inventory, "k8s-worker").map((server) => server.name);
const RELEASE = "kubernetes:helm.sh/v3:Release";
const COMMAND = "command:remote:Command";

let run: MockRun;
beforeAll(async () => {
  run = await runProgram("prod");
});

const registration = (type: string, name: string): Registration => {
  const found = run.registrations.find((candidate) => candidate.type === type && candidate.name === name);
  if (!found) throw new Error(`no ${type} named ${name}`);
  return found;
};
const dependsOn = (type: string, name: string) => registration(type, name).dependsOn;
const release = (name: string) => reveal(registration(RELEASE, `k8s-addons-${name}`).inputs) as Doc;

describe("Kubernetes cluster steps (mock engine, prod)", () => {
  it("prepares all 8 nodes after their base OS", () => {
    for (const node of [...controlPlanes, ...workers]) {
      expect(dependsOn(COMMAND, `${node}-k8s-prepare`)).toContain(`${node}-base-os-verify`);
      expect(run.steps.some((step) => step.host === node && step.step === `${node}-k8s-prepare`)).toBe(true);
    }
    expect(controlPlanes.length + workers.length).toBe(8);
  });

  it("inits on the first control plane, joins the others one at a time, then the workers in parallel", () => {
    const [first, second, third] = controlPlanes;
    expect(dependsOn(COMMAND, `${first}-k8s-init`)).toContain(`${first}-k8s-prepare`);
    expect(dependsOn(COMMAND, `${first}-k8s-admin-conf`)).toContain(`${first}-k8s-init`);
    expect(dependsOn(COMMAND, `${second}-k8s-join-credentials`)).toContain(`${first}-k8s-admin-conf`);
    expect(dependsOn(COMMAND, `${second}-k8s-join`)).toEqual(
      expect.arrayContaining([`${second}-k8s-prepare`, `${second}-k8s-join-credentials`]),
    );
    expect(dependsOn(COMMAND, `${third}-k8s-join-credentials`)).toContain(`${second}-k8s-join`);
    expect(dependsOn(COMMAND, `${third}-k8s-join`)).toContain(`${third}-k8s-join-credentials`);
    for (const worker of workers) {
      expect(dependsOn(COMMAND, `${worker}-k8s-join-credentials`)).toContain(`${third}-k8s-join`);
      const deps = dependsOn(COMMAND, `${worker}-k8s-join`);
      expect(deps).toContain(`${worker}-k8s-join-credentials`);
      expect(deps.filter((dep) => workers.some((other) => dep === `${other}-k8s-join`))).toEqual([]);
    }
  });

  // Issue 15 item 5: a node replaced later joins with fresh credentials, made together with its join.
  it("refreshes each node's join credentials on the first control plane whenever that node's server is replaced", () => {
    const first = controlPlanes[0];
    for (const node of [...controlPlanes.slice(1), ...workers]) {
      const step = run.steps.find((candidate) => candidate.step === `${node}-k8s-join-credentials`);
      expect(step?.host).toBe(first);
      const credentials = registration(COMMAND, `${node}-k8s-join-credentials`);
      expect(credentials.dependsOn).toContain(node);
      // The mock engine's id of a resource is 100000 + its declaration index (scripts/lib/mock-engine.ts).
      const serverId = String(100000 + registration("hcloud:index/server:Server", node).index);
      expect((reveal(credentials.inputs.triggers) as unknown[]).map(String)).toContain(serverId);
    }
    expect(run.registrations.some((candidate) => candidate.name === `${first}-k8s-join-credentials`)).toBe(false);
  });

  // Issue 15 item 7: the provider reads admin.conf from a step that changes nothing, not from init's output.
  it("feeds the provider and the joins' CA hash from the read-only admin.conf step", () => {
    const first = controlPlanes[0];
    const provider = registration("pulumi:providers:kubernetes", "k8s-provider");
    expect(provider.dependsOn).toContain(`${first}-k8s-admin-conf`);
    expect(provider.dependsOn).not.toContain(`${first}-k8s-init`);
    const read = run.steps.find((candidate) => candidate.step === `${first}-k8s-admin-conf`);
    expect(read?.files).toEqual([]);
    for (const node of [...controlPlanes.slice(1), ...workers])
      expect(dependsOn(COMMAND, `${node}-k8s-join`)).toContain(`${first}-k8s-admin-conf`);
  });

  it("declares no certificate renewal unless keybuzz:k8s.certificateRenewal is set, then one per control plane, chained", async () => {
    expect(run.registrations.filter((candidate) => candidate.name.endsWith("-k8s-certificate-renewal"))).toEqual([]);
    const renewed = await runProgram("prod", { "keybuzz:k8s": JSON.stringify({ certificateRenewal: "2027-10" }) });
    const renewalDeps = (node: string) => {
      const found = renewed.registrations.find((candidate) => candidate.name === `${node}-k8s-certificate-renewal`);
      if (!found) throw new Error(`no renewal step on ${node}`);
      return found.dependsOn;
    };
    const [first, second, third] = controlPlanes;
    expect(renewalDeps(first)).toContain(`${first}-k8s-init`);
    const read = renewed.registrations.find((candidate) => candidate.name === `${first}-k8s-admin-conf`)!;
    expect(read.dependsOn).toContain(`${first}-k8s-certificate-renewal`);
    expect(renewalDeps(second)).toContain(`${second}-k8s-join`);
    expect(renewed.registrations.find((candidate) => candidate.name === `${third}-k8s-join-credentials`)!.dependsOn).toContain(
      `${second}-k8s-certificate-renewal`,
    );
    expect(renewalDeps(third)).toContain(`${third}-k8s-join`);
    for (const worker of workers) {
      expect(renewed.registrations.find((candidate) => candidate.name === `${worker}-k8s-certificate-renewal`)).toBeUndefined();
      expect(renewed.registrations.find((candidate) => candidate.name === `${worker}-k8s-join-credentials`)!.dependsOn).toContain(
        `${third}-k8s-certificate-renewal`,
      );
    }
  });

  it("refuses a certificate renewal label that is not a short word, naming the key", async () => {
    const { error } = await runFailingProgram("prod", { "keybuzz:k8s": JSON.stringify({ certificateRenewal: "next year please" }) });
    expect(isConfigError(error)).toBe(true);
    expect(String((error as Error).message)).toContain("keybuzz:k8s.certificateRenewal: must be a short label");
  });

  it("runs kubeadm init and every join only once the API load balancer, its targets and attachment exist", () => {
    const lbName = inventory.kubernetes.apiLoadBalancer;
    const lbResources = run.registrations.filter(
      (candidate) =>
        candidate.custom && (candidate.name === lbName || candidate.name.startsWith(`${lbName}-`)) && candidate.type.startsWith("hcloud:"),
    );
    const types = new Set(lbResources.map((resource) => resource.type));
    expect(types).toEqual(
      new Set([
        "hcloud:index/loadBalancer:LoadBalancer",
        "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork",
        "hcloud:index/loadBalancerService:LoadBalancerService",
        "hcloud:index/loadBalancerTarget:LoadBalancerTarget",
      ]),
    );
    for (const step of [`${controlPlanes[0]}-k8s-init`, ...[...controlPlanes.slice(1), ...workers].map((node) => `${node}-k8s-join`)]) {
      expect(dependsOn(COMMAND, step)).toEqual(expect.arrayContaining(lbResources.map((resource) => resource.name)));
    }
  });

  it("writes each control plane's own etcd metrics patch in its init or join step, none on workers", () => {
    for (const node of serversOf(inventory, "k8s-master")) {
      const step = run.steps.find((candidate) => candidate.step === `${node.name}-k8s-init` || candidate.step === `${node.name}-k8s-join`);
      const patch = step?.files.find((file) => file.path.endsWith("/patches/etcd+json.yaml"));
      expect(patch?.content).toContain(`http://${node.privateIp}:2381`);
    }
    for (const worker of workers) {
      const step = run.steps.find((candidate) => candidate.step === `${worker}-k8s-join`);
      expect(step?.files.map((file) => file.path).filter((file) => file.includes("/patches/"))).toEqual([]);
    }
  });

  it("keeps the token, certificate key and kubeconfig secret everywhere", () => {
    const init = registration(COMMAND, `${controlPlanes[0]}-k8s-init`);
    expect(isSecretValue(init.inputs.stdin)).toBe(true);
    expect(String(reveal(init.inputs.stdin))).not.toBe("");
    for (const step of run.steps.filter((candidate) => candidate.step.includes("-k8s-"))) {
      expect(step.script).not.toMatch(/mock-secret-|kubeadm-token-id|certificateKey: [0-9a-f]{64}/);
      for (const file of step.files) expect(file.content).not.toContain("mock-secret-");
    }
    for (const command of run.registrations.filter((candidate) => candidate.type === COMMAND && candidate.name.includes("-k8s-"))) {
      expect(JSON.stringify(command.inputs.create)).not.toContain("mock-secret-");
      if (command.inputs.stdin !== undefined) expect(isSecretValue(command.inputs.stdin)).toBe(true);
    }
    const joins = run.registrations.filter((candidate) => candidate.type === COMMAND && candidate.name.endsWith("-k8s-join"));
    expect(joins.length).toBe(7);
    for (const join of joins) expect(isSecretValue(join.inputs.stdin)).toBe(true);
    const provider = registration("pulumi:providers:kubernetes", "k8s-provider");
    expect(isSecretValue(provider.inputs.kubeconfig)).toBe(true);
  });

  it("opens 6443 on public interfaces to the admin CIDRs only, on the control planes only", () => {
    const firewalls = run.registrations
      .filter((candidate) => candidate.type === "hcloud:index/firewall:Firewall")
      .map((fw) => reveal(fw.inputs) as Doc);
    const apiRules = firewalls.flatMap((fw) =>
      (fw.rules as Doc[]).filter((rule) => rule.port === "6443").map((rule) => ({ fw: fw.name, rule })),
    );
    expect(apiRules).toHaveLength(1);
    expect(apiRules[0].rule.sourceIps).toEqual([...inventory.adminCidrs]);
    const apiFirewall = run.registrations.find(
      (candidate) => candidate.type === "hcloud:index/firewall:Firewall" && (reveal(candidate.inputs) as Doc).name === apiRules[0].fw,
    )!;
    const apiFirewallId = 100000 + apiFirewall.index;
    for (const server of run.registrations.filter((candidate) => candidate.type === "hcloud:index/server:Server")) {
      const ids = (reveal(server.inputs) as Doc).firewallIds as number[];
      expect([server.name, ids.includes(apiFirewallId)]).toEqual([server.name, controlPlanes.includes(server.name)]);
    }
  });

  it("installs Calico only once the whole cluster module is done: kubeadm init and every join", () => {
    const calico = dependsOn(RELEASE, "k8s-addons-tigera-operator");
    expect(calico).toEqual(
      expect.arrayContaining([
        `${controlPlanes[0]}-k8s-init`,
        ...[...controlPlanes.slice(1), ...workers].map((node) => `${node}-k8s-join`),
      ]),
    );
    const clusterSteps = run.registrations.filter((candidate) => candidate.module === "keybuzz:k8s:KubernetesCluster" && candidate.custom);
    expect(clusterSteps.length).toBeGreaterThan(16);
    expect(calico).toEqual(expect.arrayContaining(clusterSteps.map((step) => step.name)));
  });

  it("verifies every node Ready and CoreDNS after Calico", () => {
    const verify = run.steps.find((step) => step.step === `${controlPlanes[0]}-k8s-verify`)!;
    expect(verify.script).toContain(`KB_NODES='${[...controlPlanes, ...workers].join(" ")}'`);
    expect(verify.script).toContain("rollout status deployment/coredns");
    expect(dependsOn(COMMAND, `${controlPlanes[0]}-k8s-verify`)).toContain("k8s-addons-tigera-operator");
  });
});

describe("Kubernetes configuration (config pass)", () => {
  // A missing control plane used to surface as a TypeError inside the component; config/ names the key first.
  it.each([
    ["k8s-master", /^keybuzz:servers: no server has the k8s-master role/],
    ["k8s-worker", /^keybuzz:servers: no server has the k8s-worker role/],
  ])("refuses a stack without a %s server before any resource", async (group, message) => {
    const raw = rawStackConfig("prod") as { servers: { name: string }[] };
    const names = new Set(serversOf(inventory, group as "k8s-master" | "k8s-worker").map((server) => server.name));
    const servers = raw.servers.filter((server) => !names.has(server.name));
    const { error, registrations } = await runFailingProgram("prod", { "keybuzz:servers": JSON.stringify(servers) });
    expect(isConfigError(error)).toBe(true);
    expect((error as { problems: string[] }).problems).toContainEqual(expect.stringMatching(message));
    expect(registrations).toHaveLength(0);
  });
});

describe("cluster add-ons (mock engine, prod)", () => {
  const pins: [string, keyof typeof versions.charts][] = [
    ["tigera-operator", "tigeraOperator"],
    ["hcloud-csi", "hcloudCsi"],
    ["prometheus-operator-crds", "prometheusOperatorCrds"],
    ["kube-prometheus-stack", "kubePrometheusStack"],
    ["ingress-nginx", "ingressNginx"],
  ];

  it.each(pins)("installs %s from its pinned chart through the explicit provider", (name, key) => {
    const pin = versions.charts[key];
    expect(release(name)).toMatchObject({ name, chart: pin.chart, version: pin.version, repositoryOpts: { repo: pin.repo } });
    expect(pin.version).not.toMatch(/latest|[*^~x]/);
    expect(registration(RELEASE, `k8s-addons-${name}`).provider).toMatch(/pulumi:providers:kubernetes::k8s-provider::/);
  });

  it("declares only pinned helm.v3 releases, every Kubernetes resource on the explicit provider", () => {
    const kubernetesResources = run.registrations.filter((candidate) => candidate.type.startsWith("kubernetes:"));
    // The add-ons' five; the monitoring module adds metrics-server (tests/observability).
    const releases = kubernetesResources.filter((candidate) => candidate.type === RELEASE);
    expect(releases.filter((candidate) => candidate.module === "keybuzz:k8s:ClusterAddons")).toHaveLength(5);
    expect(releases.map((candidate) => candidate.name)).toContain("monitoring-metrics-server");
    expect(kubernetesResources.some((candidate) => candidate.type.startsWith("kubernetes:helm.sh/v4"))).toBe(false);
    for (const resource of kubernetesResources) {
      expect([resource.name, resource.provider]).toEqual([resource.name, expect.stringContaining("k8s-provider")]);
    }
  });

  it("configures Calico IPIP always / VXLAN never / MTU 1430 over the kubeadm pod CIDR", () => {
    const network = release("tigera-operator").values.installation.calicoNetwork;
    expect(network).toMatchObject({ mtu: 1430, nodeAddressAutodetectionV4: { cidrs: ["10.0.0.0/16"] } });
    expect(network.ipPools).toEqual([expect.objectContaining({ cidr: inventory.kubernetes.podCidr, encapsulation: "IPIP" })]);
    expect(JSON.stringify(network)).not.toContain("VXLAN");
  });

  it("installs CRDs before the charts that use them", () => {
    expect(dependsOn(RELEASE, "k8s-addons-kube-prometheus-stack")).toEqual(
      expect.arrayContaining(["k8s-addons-prometheus-operator-crds", "k8s-addons-hcloud-csi"]),
    );
    expect(release("kube-prometheus-stack")).toMatchObject({ skipCrds: true, values: { crds: { enabled: false } } });
    expect(dependsOn(RELEASE, "k8s-addons-ingress-nginx")).toContain("k8s-addons-prometheus-operator-crds");
    const index = (name: string) => registration(RELEASE, `k8s-addons-${name}`).index;
    expect(index("prometheus-operator-crds")).toBeLessThan(index("kube-prometheus-stack"));
    // tigera-operator's CRDs ship in its chart's crds/ directory, which Helm applies before its templates.
    expect(release("tigera-operator").skipCrds).toBeFalsy();
  });

  it("runs ingress-nginx as a hostNetwork DaemonSet with PROXY protocol as the public load balancers", () => {
    const controller = release("ingress-nginx").values.controller;
    expect(controller).toMatchObject({
      kind: "DaemonSet",
      hostNetwork: true,
      dnsPolicy: "ClusterFirstWithHostNet",
      service: { enabled: false },
    });
    const lbServices = run.registrations
      .filter((candidate) => candidate.type === "hcloud:index/loadBalancerService:LoadBalancerService")
      .map((candidate) => reveal(candidate.inputs) as Doc)
      .filter((service) => [80, 443].includes(Number(service.listenPort)));
    expect(lbServices).toHaveLength(4);
    const ingressLbs = inventory.loadBalancers.filter((lb) => lb.targetGroup === "k8s-worker");
    expect(ingressLbs.map((lb) => lb.privateIp)).toEqual(["10.0.0.5", "10.0.0.6"]);
    for (const service of lbServices) expect(String(service.proxyprotocol)).toBe(controller.config["use-proxy-protocol"]);
  });

  it("keeps 30 days in Prometheus and takes Grafana's admin password from a secret", () => {
    const values = release("kube-prometheus-stack").values;
    expect(values.prometheus.prometheusSpec.retention).toBe("30d");
    expect(values.grafana.admin.existingSecret).toBe("grafana-admin");
    const grafana = registration("kubernetes:core/v1:Secret", "k8s-addons-grafana-admin");
    expect(isSecretValue((grafana.inputs.stringData as Doc)["admin-password"]) || isSecretValue(grafana.inputs.stringData)).toBe(true);
    const hcloud = registration("kubernetes:core/v1:Secret", "k8s-addons-hcloud-token");
    expect(isSecretValue((hcloud.inputs.stringData as Doc).token) || isSecretValue(hcloud.inputs.stringData)).toBe(true);
  });

  it("creates the platform namespaces and the backend ConfigMap from the configured endpoints", () => {
    const namespaces = run.registrations
      .filter((candidate) => candidate.type === "kubernetes:core/v1:Namespace")
      .map((candidate) => (reveal(candidate.inputs) as Doc).metadata.name);
    expect(namespaces.sort()).toEqual(["ai", "analytics", "chatwoot", "keybuzz", "monitoring", "n8n", "vault"]);
    const data = (reveal(registration("kubernetes:core/v1:ConfigMap", "k8s-addons-backend-config").inputs) as Doc).data;
    const lbServing = (port: number) =>
      inventory.loadBalancers.find((lb) => lb.services.some((service) => service.listenPort === port))!.privateIp;
    expect(data).toMatchObject({
      POSTGRES_HOST: lbServing(5432),
      REDIS_HOST: lbServing(6379),
      RABBITMQ_HOST: lbServing(5672),
      MARIADB_HOST: lbServing(3306),
      MINIO_ENDPOINT: `${inventory.loadBalancers.find((lb) => lb.targetGroup === "haproxy")!.privateIp}:9000`,
    });
    const credentials = registration("kubernetes:core/v1:Secret", "k8s-addons-backend-credentials").inputs.stringData as Doc;
    for (const key of ["POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD", "MARIADB_PASSWORD", "MINIO_SECRET_KEY"]) {
      expect([key, isSecretValue(credentials[key]) || isSecretValue(credentials)]).toEqual([key, true]);
    }
  });

  it("gives the backend its ready URLs, every one secret, with the application users only, and the PostgreSQL CA", () => {
    const stringData = registration("kubernetes:core/v1:Secret", "k8s-addons-backend-credentials").inputs.stringData;
    expect(isSecretValue(stringData)).toBe(true);
    const credentials = reveal(stringData) as Doc;
    expect(Object.keys(credentials)).toEqual(expect.arrayContaining(BACKEND_VARIABLES));
    expect(credentials.MINIO_ACCESS_KEY).toBe("keybuzz-backend");
    expect(credentials.MINIO_SECRET_KEY).toBe(mockSecret("secrets-minio-app"));
    expect(new URL(credentials.DATABASE_URL).username).toBe("kb_backend");
    expect(decodeURIComponent(new URL(credentials.DATABASE_URL).password)).toBe(mockSecret("secrets-postgres-backend"));
    expect(Object.values(credentials)).not.toContain(mockSecret("secrets-minio-root"));
    const ca = reveal(registration("kubernetes:core/v1:ConfigMap", "k8s-addons-postgres-ca").inputs) as Doc;
    expect(ca.metadata).toEqual({ name: "keybuzz-postgres-ca", namespace: "keybuzz" });
    expect(ca.data["ca.crt"]).toMatch(/^-----BEGIN CERTIFICATE-----/);
  });
});
