import { createHash, createPublicKey } from "crypto";
import * as yaml from "js-yaml";
import { Inventory, ServerSpec, Versions } from "../../../config";
import { HostFile, secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";

/**
 * Pure render functions of the Kubernetes module (spec 002 module 9, DESIGN.md "Kubernetes"):
 * every file and script that lands on a node. Plain inputs in, text out; secrets appear only as
 * {@link secretRef} placeholders.
 */

/** Where the module keeps its own files on a node (root only). */
export const KEYBUZZ_K8S_DIR = "/etc/kubernetes/keybuzz";
/** Port of the Kubernetes API server (spec 000, UFW table). */
export const API_SERVER_PORT = 6443;
/** containerd's CRI socket (Docker's containerd.io package). */
export const CRI_SOCKET = "unix:///run/containerd/containerd.sock";
/** Pause image of Kubernetes 1.33 (kubeadm's default sandbox image for that minor). */
export const SANDBOX_IMAGE = "registry.k8s.io/pause:3.10";
/**
 * Fingerprint of the pkgs.k8s.io signing key ("isv:kubernetes OBS Project <isv:kubernetes@build.opensuse.org>",
 * the same key for every minor channel; kubernetes/kubernetes#128609 shows `gpg` on the v1.26/v1.27
 * Release.key, kubernetes/release#3818 its expiry being extended). The Release.key downloaded on every
 * run is refused unless it matches.
 */
export const K8S_APT_KEY_FINGERPRINT = "DE15B14486CD377B9E876E1A234654DA9A296436";
/** Where the pkgs.k8s.io key lives on a node (the `signed-by` of the apt source). */
export const K8S_APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
/** kubeadm's root directory on a node: admin.conf, manifests/, pki/. */
export const KUBERNETES_DIR = "/etc/kubernetes";
/** etcd's client port (kubeadm's constants.EtcdListenClientPort): it listens on 127.0.0.1 and the private IP (etcd/local.go). */
export const ETCD_CLIENT_PORT = 2379;
/** etcd's peer port (kubeadm's constants.EtcdListenPeerPort): a member's peer URL is `https://<private IP>:2380`. */
export const ETCD_PEER_PORT = 2380;
/** etcd's metrics port (kubeadm's constants.EtcdMetricsPort; its probes use it on 127.0.0.1). */
export const ETCD_METRICS_PORT = 2381;
/**
 * The per-node kubeadm patches of a control plane (`patches.directory` of Init/JoinConfiguration;
 * kubeadm reads files named `target[suffix][+patchtype].extension`).
 */
export const KUBEADM_PATCHES_DIR = `${KEYBUZZ_K8S_DIR}/patches`;
/** The ClusterConfiguration alone, as rendered, written by the init step next to kubeadm-init.yaml. */
export const CLUSTER_CONFIG_FILE = `${KEYBUZZ_K8S_DIR}/kubeadm-cluster.yaml`;
/** The ClusterConfiguration kubeadm applied (copied at init): the reference a later rendering is compared with. */
export const APPLIED_CLUSTER_CONFIG_FILE = `${KEYBUZZ_K8S_DIR}/kubeadm-cluster.applied.yaml`;
/** Placeholder keys of the module's secret values. */
export const SECRET_KEYS = {
  token: "kubeadm-token",
  tokenId: "kubeadm-token-id",
  tokenSecret: "kubeadm-token-secret",
  certificateKey: "kubeadm-certificate-key",
  caCertHash: "kubeadm-ca-cert-hash",
} as const;

/**
 * Placeholder key of a control plane's public IPv4: a certificate SAN known only once the server
 * exists, so it reaches the host through the step's value channel like the secrets.
 */
export function publicIpKey(controlPlane: string): string {
  return `public-ip-${controlPlane}`;
}

/** The cluster-wide facts every kubeadm file needs. */
export interface ClusterFacts {
  /** `kubernetes.version` of versions.yaml, e.g. `1.33.5`. */
  readonly kubernetesVersion: string;
  /** `host:port` of the API load balancer, e.g. `10.0.0.30:6443`. */
  readonly controlPlaneEndpoint: string;
  /** Pod CIDR given to kubeadm and Calico (outside the private network). */
  readonly podCidr: string;
  readonly serviceCidr: string;
  /** Certificate SANs known before deployment: LB IP, control planes' names and private IPs. */
  readonly certSans: readonly string[];
  /** Control plane names, first = the one `kubeadm init` runs on; their public IPs join the SANs. */
  readonly controlPlanes: readonly string[];
}

/** Minor channel of pkgs.k8s.io for a version: `1.33.5` → `1.33`. */
export function kubernetesMinor(version: string): string {
  const match = /^v?(\d+)\.(\d+)\./.exec(version);
  if (!match) throw new Error(`not a Kubernetes version: ${version}`);
  return `${match[1]}.${match[2]}`;
}

/** The cluster facts from the inventory and the pins. Pure. */
export function clusterFacts(inventory: Inventory, versions: Versions): ClusterFacts {
  const apiLb = inventory.loadBalancers.find((lb) => lb.name === inventory.kubernetes.apiLoadBalancer);
  if (!apiLb) throw new Error(`no load balancer named ${inventory.kubernetes.apiLoadBalancer}`);
  const controlPlanes = inventory.servers.filter((server) => server.group === "k8s-master");
  return {
    kubernetesVersion: versions.kubernetes.version,
    controlPlaneEndpoint: `${apiLb.privateIp}:${API_SERVER_PORT}`,
    podCidr: inventory.kubernetes.podCidr,
    serviceCidr: inventory.kubernetes.serviceCidr,
    certSans: [apiLb.privateIp, ...controlPlanes.flatMap((server) => [server.name, server.privateIp]), "127.0.0.1", "localhost"],
    controlPlanes: controlPlanes.map((server) => server.name),
  };
}

const dump = (document: unknown) => yaml.dump(document, { lineWidth: -1, noRefs: true, quotingType: '"' });

function nodeRegistration(node: ServerSpec, controlPlane: boolean) {
  return {
    name: node.name,
    criSocket: CRI_SOCKET,
    // kubelet --node-ip: the private IP, so node traffic and Calico stay on the private network.
    kubeletExtraArgs: [{ name: "node-ip", value: node.privateIp }],
    ...(controlPlane ? { taints: [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }] } : {}),
  };
}

/**
 * `kubeadm-init.yaml` for the first control plane (kubeadm.k8s.io/v1beta4): InitConfiguration
 * with the generated bootstrap token and certificate key (placeholders), ClusterConfiguration with
 * the API LB as `controlPlaneEndpoint`, the SANs (plus the control planes' public IPs, placeholders
 * filled at deployment because they exist only once the servers do), the pod/service CIDRs and metrics
 * endpoints Prometheus can scrape; KubeletConfiguration (systemd cgroups) and KubeProxyConfiguration
 * (iptables, spec 002).
 */
export function renderKubeadmInitConfig(node: ServerSpec, facts: ClusterFacts): string {
  const init = {
    apiVersion: "kubeadm.k8s.io/v1beta4",
    kind: "InitConfiguration",
    bootstrapTokens: [
      {
        token: secretRef(SECRET_KEYS.token),
        description: "KeyBuzz join token (Pulumi)",
        ttl: "24h0m0s",
        usages: ["signing", "authentication"],
        groups: ["system:bootstrappers:kubeadm:default-node-token"],
      },
    ],
    certificateKey: secretRef(SECRET_KEYS.certificateKey),
    localAPIEndpoint: { advertiseAddress: node.privateIp, bindPort: API_SERVER_PORT },
    nodeRegistration: nodeRegistration(node, true),
    patches: { directory: KUBEADM_PATCHES_DIR },
  };
  const kubelet = { apiVersion: "kubelet.config.k8s.io/v1beta1", kind: "KubeletConfiguration", cgroupDriver: "systemd" };
  const kubeProxy = {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "iptables",
    metricsBindAddress: "0.0.0.0:10249",
  };
  return [dump(init), renderKubeadmClusterConfig(facts), dump(kubelet), dump(kubeProxy)].join("---\n");
}

/**
 * The ClusterConfiguration document of `kubeadm-init.yaml` (kubeadm.k8s.io/v1beta4): the API LB as
 * `controlPlaneEndpoint`, the SANs (plus the control planes' public IPs, placeholders filled at
 * deployment because they exist only once the servers do), the pod/service CIDRs and metrics
 * endpoints Prometheus can scrape. kubeadm reads it only at init; the init step also writes it alone
 * ({@link CLUSTER_CONFIG_FILE}) to notice a later change.
 */
export function renderKubeadmClusterConfig(facts: ClusterFacts): string {
  return dump({
    apiVersion: "kubeadm.k8s.io/v1beta4",
    kind: "ClusterConfiguration",
    clusterName: "keybuzz",
    kubernetesVersion: `v${facts.kubernetesVersion.replace(/^v/, "")}`,
    controlPlaneEndpoint: facts.controlPlaneEndpoint,
    networking: { podSubnet: facts.podCidr, serviceSubnet: facts.serviceCidr, dnsDomain: "cluster.local" },
    apiServer: { certSANs: [...facts.certSans, ...facts.controlPlanes.map((name) => secretRef(publicIpKey(name)))] },
    // Metrics on all interfaces so kube-prometheus-stack can scrape them over the private network;
    // UFW opens 10257/10259 to the private network only and the Hetzner firewall keeps public
    // interfaces closed (22 and 6443 only). etcd's metrics are bound per node (renderEtcdMetricsPatch).
    controllerManager: { extraArgs: [{ name: "bind-address", value: "0.0.0.0" }] },
    scheduler: { extraArgs: [{ name: "bind-address", value: "0.0.0.0" }] },
  });
}

/**
 * `kubeadm-join.yaml` (JoinConfiguration v1beta4) for a node: discovery through the API LB with
 * the bootstrap token and the CA's public-key hash (both placeholders), the node's private IP;
 * for a control plane also its advertise address and the certificate key of `--upload-certs`.
 */
export function renderKubeadmJoinConfig(node: ServerSpec, facts: ClusterFacts, controlPlane: boolean): string {
  const join = {
    apiVersion: "kubeadm.k8s.io/v1beta4",
    kind: "JoinConfiguration",
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: facts.controlPlaneEndpoint,
        token: secretRef(SECRET_KEYS.token),
        caCertHashes: [secretRef(SECRET_KEYS.caCertHash)],
      },
    },
    nodeRegistration: nodeRegistration(node, controlPlane),
    ...(controlPlane
      ? {
          controlPlane: {
            localAPIEndpoint: { advertiseAddress: node.privateIp, bindPort: API_SERVER_PORT },
            certificateKey: secretRef(SECRET_KEYS.certificateKey),
          },
          patches: { directory: KUBEADM_PATCHES_DIR },
        }
      : {}),
  };
  return dump(join);
}

/**
 * `etcd+json.yaml` in {@link KUBEADM_PATCHES_DIR}: a JSON patch (RFC 6902) of this control plane's
 * etcd static Pod that serves metrics on 127.0.0.1 (kubeadm's probes) and the node's private IP only,
 * never 0.0.0.0. ClusterConfiguration's `etcd.local.extraArgs` is the same on every node, hence a
 * per-node patch (kubeadm "Customizing components": patches per node). kubeadm writes its own
 * `--listen-metrics-urls=http://127.0.0.1:2381` first; this one is appended, and etcd keeps the last
 * value of a flag (its UniqueURLs flag value replaces the previous one on each Set).
 */
export function renderEtcdMetricsPatch(node: ServerSpec): string {
  const urls = [`http://127.0.0.1:${ETCD_METRICS_PORT}`, `http://${node.privateIp}:${ETCD_METRICS_PORT}`].join(",");
  return dump([{ op: "add", path: "/spec/containers/0/command/-", value: `--listen-metrics-urls=${urls}` }]);
}

/** The per-node patch files of a control plane (init and control-plane joins). */
export function kubeadmPatchFiles(node: ServerSpec): HostFile[] {
  return [{ path: `${KUBEADM_PATCHES_DIR}/etcd+json.yaml`, content: renderEtcdMetricsPatch(node) }];
}

/**
 * The bootstrap token as a Kubernetes Secret (the format kubeadm uses), applied by the join
 * credentials step with a fresh `expiration` so nodes added later can still join.
 */
export function renderBootstrapTokenSecret(): string {
  return dump({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `bootstrap-token-${secretRef(SECRET_KEYS.tokenId)}`, namespace: "kube-system" },
    type: "bootstrap.kubernetes.io/token",
    stringData: {
      description: "KeyBuzz join token (Pulumi)",
      "token-id": secretRef(SECRET_KEYS.tokenId),
      "token-secret": secretRef(SECRET_KEYS.tokenSecret),
      expiration: "__EXPIRATION__",
      "usage-bootstrap-authentication": "true",
      "usage-bootstrap-signing": "true",
      "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    },
  });
}

/**
 * `/etc/containerd/config.toml` (config version 2, read by containerd 1.7 and migrated by 2.x):
 * the CRI plugin enabled (Docker's package ships it disabled), runc through the systemd cgroup
 * driver like the kubelet, the sandbox image of this Kubernetes minor.
 */
export function renderContainerdConfig(): string {
  return [
    "# Managed by KeyBuzz (Pulumi). containerd for Docker and the kubelet (CRI plugin enabled).",
    "version = 2",
    "disabled_plugins = []",
    "",
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${SANDBOX_IMAGE}"`,
    "",
    '[plugins."io.containerd.grpc.v1.cri".containerd]',
    '  default_runtime_name = "runc"',
    "",
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '  runtime_type = "io.containerd.runc.v2"',
    "",
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    "  SystemdCgroup = true",
    "",
    '[plugins."io.containerd.grpc.v1.cri".cni]',
    '  bin_dir = "/opt/cni/bin"',
    '  conf_dir = "/etc/cni/net.d"',
    "",
  ].join("\n");
}

/** `/etc/modules-load.d/kubernetes.conf`: overlay, bridged traffic, Calico's IPIP tunnel. */
export function renderKernelModules(): string {
  return "overlay\nbr_netfilter\nipip\n";
}

/** `/etc/sysctl.d/90-kubernetes.conf`: bridged traffic through iptables and IPv4 forwarding. */
export function renderKubernetesSysctl(): string {
  return ["net.bridge.bridge-nf-call-iptables = 1", "net.bridge.bridge-nf-call-ip6tables = 1", "net.ipv4.ip_forward = 1", ""].join("\n");
}

/** `/etc/crictl.yaml`: crictl talks to containerd. */
export function renderCrictlConfig(): string {
  return `runtime-endpoint: ${CRI_SOCKET}\nimage-endpoint: ${CRI_SOCKET}\ntimeout: 10\n`;
}

/** `/etc/apt/sources.list.d/kubernetes.list`: pkgs.k8s.io, the minor channel of the pinned version. */
export function renderKubernetesAptSource(version: string): string {
  return `deb [signed-by=${K8S_APT_KEYRING}] https://pkgs.k8s.io/core:/stable:/v${kubernetesMinor(version)}/deb/ /\n`;
}

/** A step body of this module: its variables, then `scripts/k8s/<file>`. */
function script(file: string, variables: Readonly<Record<string, string>>): string {
  return stepBody("k8s", [file], { variables });
}

/** The files of the node preparation step (every node). */
export function prepareFiles(versions: Versions): HostFile[] {
  return [
    { path: "/etc/modules-load.d/kubernetes.conf", content: renderKernelModules() },
    { path: "/etc/sysctl.d/90-kubernetes.conf", content: renderKubernetesSysctl() },
    { path: "/etc/containerd/config.toml", content: renderContainerdConfig() },
    { path: "/etc/crictl.yaml", content: renderCrictlConfig() },
    { path: "/etc/apt/sources.list.d/kubernetes.list", content: renderKubernetesAptSource(versions.kubernetes.version) },
  ];
}

/**
 * Node preparation: kernel, containerd (CRI), pinned and held kubeadm/kubelet/kubectl; the shared apt
 * helpers (`scripts/common/apt.sh`: lock retries, signing-key check) come before the node script.
 */
export function renderPrepareScript(versions: Versions): string {
  const variables = {
    KB_K8S_MINOR: kubernetesMinor(versions.kubernetes.version),
    KB_K8S_PACKAGE_VERSION: `${versions.kubernetes.version}-${versions.kubernetes.packageRevision}`,
    KB_K8S_KEY_FINGERPRINT: K8S_APT_KEY_FINGERPRINT,
    KB_K8S_KEYRING: K8S_APT_KEYRING,
  };
  return stepBody("k8s", ["prepare-node.sh"], { variables, common: ["apt.sh"] });
}

/**
 * `kubeadm init` on the first control plane (skipped once done), then a failure when the rendered
 * ClusterConfiguration differs from the applied one (kubeadm would ignore the change).
 */
export function renderInitScript(): string {
  return script("init.sh", {
    KB_CONFIG: `${KEYBUZZ_K8S_DIR}/kubeadm-init.yaml`,
    KB_CLUSTER_CONFIG: CLUSTER_CONFIG_FILE,
    KB_APPLIED_CLUSTER_CONFIG: APPLIED_CLUSTER_CONFIG_FILE,
    KB_ADMIN_CONF: `${KUBERNETES_DIR}/admin.conf`,
  });
}

/**
 * Refreshes one node's join credentials on the first control plane, just before that node's join:
 * the token's expiration; for a control plane also the uploaded certificates and the removal of
 * its stale etcd member (a replaced server's old member, matched by peer URL, never a healthy one).
 */
export function renderJoinCredentialsScript(node: ServerSpec, controlPlane: boolean): string {
  return script("join-credentials.sh", {
    KB_NODE: node.name,
    KB_CONTROL_PLANE: controlPlane ? "1" : "0",
    KB_PEER_URL: `https://${node.privateIp}:${ETCD_PEER_PORT}`,
    KB_INIT_CONFIG: `${KEYBUZZ_K8S_DIR}/kubeadm-init.yaml`,
    KB_TOKEN_MANIFEST: `${KEYBUZZ_K8S_DIR}/bootstrap-token.yaml`,
    KB_ETCD_PKI: `${KUBERNETES_DIR}/pki/etcd`,
  });
}

/** Reads admin.conf for the provider, changing nothing (the step's stdout is the kubeconfig). */
export function renderAdminConfScript(): string {
  return script("admin-conf.sh", { KB_ADMIN_CONF: `${KUBERNETES_DIR}/admin.conf` });
}

/**
 * Signs the certificate request at `csrPath` with kubeadm's etcd CA (`etcd/ca.crt`, `etcd/ca.key`
 * under the certificates directory: kubeadm's constants.EtcdCACertName/EtcdCAKeyName), a client
 * certificate valid `days` days; the step's stdout is that certificate, then the etcd CA
 * (scripts/k8s/etcd-client-cert.sh). Changes nothing on the node. Used by components/backup/etcd.
 */
export function renderEtcdClientCertScript(csrPath: string, days: number): string {
  return script("etcd-client-cert.sh", {
    KB_CA_CERT: `${KUBERNETES_DIR}/pki/etcd/ca.crt`,
    KB_CA_KEY: `${KUBERNETES_DIR}/pki/etcd/ca.key`,
    KB_CSR: csrPath,
    KB_DAYS: String(days),
  });
}

/**
 * Renews one control plane's kubeadm certificates and restarts its static Pods one at a time
 * (`keybuzz:k8s.certificateRenewal`; docs/kubernetes.md "Certificate renewal").
 *
 * @param renewal the operator's label of this renewal, printed in the step's output.
 */
export function renderCertificateRenewalScript(node: ServerSpec, renewal: string): string {
  return script("renew-certificates.sh", { KB_NODE: node.name, KB_KUBERNETES_DIR: KUBERNETES_DIR, KB_RENEWAL: renewal });
}

/** `kubeadm join` of one node (skipped when it already joined). */
export function renderJoinScript(node: ServerSpec): string {
  return script("join.sh", { KB_NODE: node.name, KB_CONFIG: `${KEYBUZZ_K8S_DIR}/kubeadm-join.yaml` });
}

/**
 * The kubeconfig the Pulumi Kubernetes provider uses: admin.conf with its `server` pointed at
 * `https://<publicIp>:6443` (the public IP is in the certificate SANs; the Hetzner firewall opens
 * 6443 to the admin CIDRs only). An empty text (the mock engine) stays empty.
 */
export function rewriteKubeconfigServer(kubeconfig: string, publicIp: string): string {
  return kubeconfig.replace(/^(\s*server:\s*).*$/gm, `$1https://${publicIp}:${API_SERVER_PORT}`);
}

/**
 * `sha256:<hex>` of the cluster CA's public key (kubeadm's `caCertHashes` format), from the
 * `certificate-authority-data` of a kubeconfig; empty when the kubeconfig is empty (mock engine).
 *
 * @throws Error when a non-empty kubeconfig carries no CA.
 */
export function caCertHashFromKubeconfig(kubeconfig: string): string {
  if (kubeconfig.trim() === "") return "";
  const match = /certificate-authority-data:\s*(\S+)/.exec(kubeconfig);
  if (!match) throw new Error("admin.conf has no certificate-authority-data; cannot pin the CA for kubeadm join");
  const caPem = Buffer.from(match[1], "base64").toString("utf8");
  const spki = createPublicKey(caPem).export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}
