import * as yaml from "js-yaml";
import { ConfigError, Inventory, loadVersions, parseInventory, serversOf } from "../../config";
import {
  backendConfigData,
  calicoValues,
  INGRESS_HEALTH_CHECK,
  ingressController,
  ingressProxyProtocol,
  kubePrometheusStackValues,
  renderVerifyScript,
} from "../../components/k8s/addons";
import {
  caCertHashFromKubeconfig,
  clusterFacts,
  kubeadmPatchFiles,
  KUBEADM_PATCHES_DIR,
  kubernetesMinor,
  renderBootstrapTokenSecret,
  renderContainerdConfig,
  renderEtcdMetricsPatch,
  renderKubeadmInitConfig,
  renderKubeadmJoinConfig,
  renderKubernetesAptSource,
  renderKubernetesSysctl,
  renderPrepareScript,
  rewriteKubeconfigServer,
  parseK8sSettings,
} from "../../components/k8s/cluster";
import { secretKeysIn } from "../../components/lib/remote";
import { rawStackConfig } from "../support/stack-config";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const versions = loadVersions();
const inventory = parseInventory(rawStackConfig("prod"));
const facts = clusterFacts(inventory, versions);
const [master1, master2] = serversOf(inventory, "k8s-master");
const worker1 = serversOf(inventory, "k8s-worker")[0];
const docs = (text: string) => yaml.loadAll(text) as Doc[];
const withLoadBalancers = (change: (lb: Inventory["loadBalancers"][number]) => Inventory["loadBalancers"][number]): Inventory => ({
  ...inventory,
  loadBalancers: inventory.loadBalancers.map(change),
});

describe("kubeadm init config", () => {
  const [init, cluster, kubelet, kubeProxy] = docs(renderKubeadmInitConfig(master1, facts));

  it("is InitConfiguration + ClusterConfiguration (v1beta4) + kubelet + kube-proxy configs", () => {
    expect([init, cluster, kubelet, kubeProxy].map((doc) => `${doc.apiVersion}/${doc.kind}`)).toEqual([
      "kubeadm.k8s.io/v1beta4/InitConfiguration",
      "kubeadm.k8s.io/v1beta4/ClusterConfiguration",
      "kubelet.config.k8s.io/v1beta1/KubeletConfiguration",
      "kubeproxy.config.k8s.io/v1alpha1/KubeProxyConfiguration",
    ]);
  });

  it("puts the control plane behind the API load balancer, pod CIDR outside the private network", () => {
    const apiLb = inventory.loadBalancers.find((lb) => lb.name === inventory.kubernetes.apiLoadBalancer)!;
    expect(cluster.controlPlaneEndpoint).toBe(`${apiLb.privateIp}:6443`);
    expect(cluster.kubernetesVersion).toBe(`v${versions.kubernetes.version}`);
    expect(cluster.networking).toMatchObject({ podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12" });
    expect(cluster.networking.podSubnet.startsWith("10.0.")).toBe(false);
    expect(kubeProxy.mode).toBe("iptables");
    expect(kubelet.cgroupDriver).toBe("systemd");
  });

  it("lists the LB IP, the control planes' private IPs and (placeholders for) public IPs as SANs", () => {
    const sans: string[] = cluster.apiServer.certSANs;
    expect(sans).toEqual(expect.arrayContaining(["10.0.0.30", "10.0.0.100", "10.0.0.101", "10.0.0.102"]));
    expect(sans.filter((san) => secretKeysIn(san).length > 0).map((san) => secretKeysIn(san)[0])).toEqual([
      "public-ip-k8s-master-01",
      "public-ip-k8s-master-02",
      "public-ip-k8s-master-03",
    ]);
  });

  it("carries the token and certificate key only as placeholders, and the kubelet's node IP", () => {
    expect(init.bootstrapTokens[0].token).toBe("{{secret:kubeadm-token}}");
    expect(init.certificateKey).toBe("{{secret:kubeadm-certificate-key}}");
    expect(init.localAPIEndpoint.advertiseAddress).toBe(master1.privateIp);
    expect(init.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "node-ip", value: master1.privateIp }]);
  });
});

describe("etcd metrics, per control plane", () => {
  it("are never bound to 0.0.0.0: no cluster-wide etcd metrics address, a per-node patch instead", () => {
    const text = renderKubeadmInitConfig(master1, facts);
    const [init, cluster] = docs(text);
    expect(text).not.toContain("0.0.0.0:2381");
    expect(cluster.etcd).toBeUndefined();
    expect(init.patches).toEqual({ directory: KUBEADM_PATCHES_DIR });
  });

  it("appends the node's own listen-metrics-urls (localhost for kubeadm's probes, then its private IP) to the etcd Pod", () => {
    for (const node of [master1, master2]) {
      expect(yaml.load(renderEtcdMetricsPatch(node))).toEqual([
        {
          op: "add",
          path: "/spec/containers/0/command/-",
          value: `--listen-metrics-urls=http://127.0.0.1:2381,http://${node.privateIp}:2381`,
        },
      ]);
      // kubeadm reads `target[suffix][+patchtype].extension`: target etcd, JSON patch, YAML.
      expect(kubeadmPatchFiles(node).map((file) => file.path)).toEqual([`${KUBEADM_PATCHES_DIR}/etcd+json.yaml`]);
    }
  });

  it("are applied by control-plane joins, not by worker joins", () => {
    expect(docs(renderKubeadmJoinConfig(master2, facts, true))[0].patches).toEqual({ directory: KUBEADM_PATCHES_DIR });
    expect(docs(renderKubeadmJoinConfig(worker1, facts, false))[0].patches).toBeUndefined();
  });
});

describe("kubeadm join configs", () => {
  it("joins a control plane through the LB with token, pinned CA and certificate key", () => {
    const [join] = docs(renderKubeadmJoinConfig(master2, facts, true));
    expect(`${join.apiVersion}/${join.kind}`).toBe("kubeadm.k8s.io/v1beta4/JoinConfiguration");
    expect(join.discovery.bootstrapToken).toEqual({
      apiServerEndpoint: "10.0.0.30:6443",
      token: "{{secret:kubeadm-token}}",
      caCertHashes: ["{{secret:kubeadm-ca-cert-hash}}"],
    });
    expect(join.controlPlane).toEqual({
      localAPIEndpoint: { advertiseAddress: master2.privateIp, bindPort: 6443 },
      certificateKey: "{{secret:kubeadm-certificate-key}}",
    });
    expect(join.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "node-ip", value: master2.privateIp }]);
  });

  it("joins a worker without control-plane section or certificate key", () => {
    const text = renderKubeadmJoinConfig(worker1, facts, false);
    const [join] = docs(text);
    expect(join.controlPlane).toBeUndefined();
    expect(secretKeysIn(text)).toEqual(["kubeadm-token", "kubeadm-ca-cert-hash"]);
    expect(join.nodeRegistration).toMatchObject({ name: worker1.name, kubeletExtraArgs: [{ name: "node-ip", value: worker1.privateIp }] });
  });

  it("renders the bootstrap token as kubeadm's Secret format", () => {
    const [secret] = docs(renderBootstrapTokenSecret());
    expect(secret).toMatchObject({ kind: "Secret", type: "bootstrap.kubernetes.io/token", metadata: { namespace: "kube-system" } });
    expect(secret.stringData["auth-extra-groups"]).toBe("system:bootstrappers:kubeadm:default-node-token");
  });
});

describe("node preparation", () => {
  it("enables containerd's CRI plugin with runc under systemd cgroups", () => {
    const toml = renderContainerdConfig();
    expect(toml).toMatch(/^version = 2$/m);
    expect(toml).toMatch(/^disabled_plugins = \[\]$/m);
    expect(toml).toMatch(/runtimes\.runc\.options\]\n {2}SystemdCgroup = true/);
  });

  it("forwards and bridges traffic through iptables", () => {
    expect(renderKubernetesSysctl()).toMatch(/net.bridge.bridge-nf-call-iptables = 1/);
    expect(renderKubernetesSysctl()).toMatch(/net.ipv4.ip_forward = 1/);
  });

  it("pins the pkgs.k8s.io minor channel and the exact package version, held", () => {
    expect(kubernetesMinor("1.33.5")).toBe("1.33");
    expect(renderKubernetesAptSource("1.33.5")).toContain("https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /");
    const script = renderPrepareScript(versions);
    expect(script).toContain(`KB_K8S_PACKAGE_VERSION='${versions.kubernetes.version}-${versions.kubernetes.packageRevision}'`);
    expect(script).toContain("apt-mark hold kubeadm kubelet kubectl");
  });

  it("verifies every node by name", () => {
    expect(renderVerifyScript(["a-1", "b-2"])).toContain("KB_NODES='a-1 b-2'");
  });
});

describe("kubeconfig handling", () => {
  it("points the provider's kubeconfig at the public IP, and leaves an empty one empty", () => {
    const conf = "clusters:\n- cluster:\n    server: https://10.0.0.30:6443\n  name: keybuzz\n";
    expect(rewriteKubeconfigServer(conf, "203.0.113.9")).toContain("    server: https://203.0.113.9:6443\n");
    expect(rewriteKubeconfigServer("", "203.0.113.9")).toBe("");
    expect(caCertHashFromKubeconfig("")).toBe("");
    expect(() => caCertHashFromKubeconfig("clusters: []\n")).toThrow(/certificate-authority-data/);
  });
});

describe("add-on values", () => {
  const settings = parseK8sSettings(undefined);

  it("defaults the settings to the spec and names a bad key", () => {
    expect(settings).toMatchObject({ calicoMtu: 1430, prometheusRetention: "30d" });
    expect(() => parseK8sSettings({ prometheusRetention: "a month" })).toThrow(/keybuzz:k8s\.prometheusRetention/);
  });

  it("configures Calico for IPIP always, VXLAN never, MTU 1430, autodetection in 10.0.0.0/16", () => {
    const network = (calicoValues(inventory, settings) as Doc).installation.calicoNetwork;
    expect(network.mtu).toBe(1430);
    expect(network.nodeAddressAutodetectionV4).toEqual({ cidrs: ["10.0.0.0/16"] });
    expect(network.ipPools).toEqual([expect.objectContaining({ cidr: "10.244.0.0/16", encapsulation: "IPIP" })]);
  });

  it("keeps 30 days of metrics on Hetzner volumes, Grafana's admin from a Secret", () => {
    const values = kubePrometheusStackValues(settings, "grafana-admin") as Doc;
    expect(values.crds.enabled).toBe(false);
    expect(values.prometheus.prometheusSpec.retention).toBe("30d");
    expect(values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.storageClassName).toBe("hcloud-volumes");
    expect(values.grafana.admin).toEqual({ existingSecret: "grafana-admin", userKey: "admin-user", passwordKey: "admin-password" });
    expect(JSON.stringify(values)).not.toMatch(/adminPassword/);
  });

  // Issue 15 item 8: a rolling update would wait forever for the old Pod's ReadWriteOnce volume.
  it("recreates Grafana's Deployment instead of rolling it, since its volume is ReadWriteOnce", () => {
    const values = kubePrometheusStackValues(settings, "grafana-admin") as Doc;
    expect(values.grafana.persistence.enabled).toBe(true);
    expect(values.grafana.deploymentStrategy).toEqual({ type: "Recreate" });
  });

  it("runs the ingress controller as a hostNetwork DaemonSet without LoadBalancer Service", () => {
    const { controller } = ingressController(inventory, versions).values as Doc;
    expect(controller).toMatchObject({
      kind: "DaemonSet",
      hostNetwork: true,
      dnsPolicy: "ClusterFirstWithHostNet",
      service: { enabled: false },
    });
    expect(controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions).toEqual([
      { key: "node-role.kubernetes.io/control-plane", operator: "DoesNotExist" },
    ]);
  });

  it("keeps the controller's health endpoint where the public load balancers check it (chart defaults: /healthz on 10254, every address)", () => {
    const { controller } = ingressController(inventory, versions).values as Doc;
    expect(INGRESS_HEALTH_CHECK).toEqual({ port: 10254, path: "/healthz" });
    // Any of these would move or hide the endpoint the load balancers' HTTP check asks.
    for (const key of ["healthCheckPath", "healthCheckHost", "extraArgs"]) expect(controller).not.toHaveProperty(key);
    expect(controller.metrics.port ?? 10254).toBe(INGRESS_HEALTH_CHECK.port);
    expect(controller.hostNetwork).toBe(true);
  });

  it("follows the load balancers' PROXY protocol, and refuses ingress services that disagree", () => {
    expect(ingressProxyProtocol(inventory)).toBe(false);
    const on = withLoadBalancers((lb) =>
      lb.targetGroup === "k8s-worker" ? { ...lb, services: lb.services.map((service) => ({ ...service, proxyProtocol: true })) } : lb,
    );
    expect((ingressController(on, versions).values as Doc).controller.config["use-proxy-protocol"]).toBe("true");
    let first = true;
    const mixed = withLoadBalancers((lb) => {
      if (lb.targetGroup !== "k8s-worker" || !first) return lb;
      first = false;
      return { ...lb, services: lb.services.map((service) => ({ ...service, proxyProtocol: true })) };
    });
    expect(() => ingressProxyProtocol(mixed)).toThrow(ConfigError);
  });

  it("takes the backend ConfigMap from the load balancers, MinIO at the HA S3 endpoint on the internal LB", () => {
    expect(backendConfigData(inventory)).toEqual({
      POSTGRES_HOST: "10.0.0.10",
      POSTGRES_PORT: "5432",
      REDIS_HOST: "10.0.0.10",
      REDIS_PORT: "6379",
      RABBITMQ_HOST: "10.0.0.10",
      RABBITMQ_PORT: "5672",
      MARIADB_HOST: "10.0.0.20",
      MARIADB_PORT: "3306",
      MINIO_ENDPOINT: "10.0.0.10:9000",
    });
    const moved = withLoadBalancers((lb) => (lb.name === "lb-mariadb" ? { ...lb, privateIp: "10.0.0.21" } : lb));
    expect(backendConfigData(moved).MARIADB_HOST).toBe("10.0.0.21");
    const noMaria = withLoadBalancers((lb) =>
      lb.name === "lb-mariadb" ? { ...lb, services: [{ ...lb.services[0], listenPort: 3307 }] } : lb,
    );
    expect(() => backendConfigData(noMaria)).toThrow(/port 3306/);
  });
});
