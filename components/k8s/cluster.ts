import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { Inventory, ServerSpec, serversOf, Versions } from "../../config";
import { Host, remoteStep } from "../lib/remote";
import {
  caCertHashFromKubeconfig,
  clusterFacts,
  KEYBUZZ_K8S_DIR,
  kubeadmPatchFiles,
  prepareFiles,
  publicIpKey,
  renderBootstrapTokenSecret,
  renderInitScript,
  renderJoinCredentialsScript,
  renderJoinScript,
  renderKubeadmInitConfig,
  renderKubeadmJoinConfig,
  renderPrepareScript,
  rewriteKubeconfigServer,
  SECRET_KEYS,
} from "./render";
import { K8sSettings } from "./settings";

/** Arguments of {@link KubernetesCluster}. */
export interface KubernetesClusterArgs {
  /** The inventory: `k8s-master` / `k8s-worker` groups, `kubernetes.{apiLoadBalancer,podCidr,serviceCidr}`. */
  readonly inventory: Inventory;
  /** `kubernetes.version` / `kubernetes.packageRevision` (pkgs.k8s.io). */
  readonly versions: Versions;
  /** Every server by inventory name (`ServerFleet.hosts`). */
  readonly hosts: Readonly<Record<string, Host>>;
  /** By inventory name: the verified end of the base OS (`BaseOs.ready`); each node's first step waits for it. */
  readonly baseReady: Readonly<Record<string, pulumi.Resource>>;
  /** The kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) and `--upload-certs` key (64 hex), secrets. */
  readonly kubeadm: { readonly token: pulumi.Input<string>; readonly certificateKey: pulumi.Input<string> };
  /** `keybuzz:k8s` settings (join timeout). */
  readonly settings: K8sSettings;
  /**
   * The Kubernetes API load balancer (`kubernetes.apiLoadBalancer`, a `keybuzz:infra:LoadBalancer`:
   * the LB, its network attachment, its 6443 service and its targets). `kubeadm init` and every join
   * reach the API through its private IP (the controlPlaneEndpoint), so they wait for all of it.
   */
  readonly apiLoadBalancer: pulumi.Resource;
}

/**
 * The kubeadm Kubernetes HA cluster (spec 002 module 9; DESIGN.md "Kubernetes"): on every node,
 * kernel settings, containerd's CRI with systemd cgroups and the pinned, held kubeadm/kubelet/kubectl;
 * `kubeadm init` on the first control plane behind the API load balancer; the other control planes
 * join one at a time, then the workers in parallel. The admin kubeconfig is read back as a secret
 * and drives the explicit Kubernetes provider, through the first control plane's public IP
 * (6443 is open to the admin CIDRs only, see docs/kubernetes.md).
 */
export class KubernetesCluster extends pulumi.ComponentResource {
  /** admin.conf with its server at `https://<first control plane public IP>:6443`; secret. */
  public readonly kubeconfig: pulumi.Output<string>;
  /** The provider every Kubernetes resource and Helm release of the platform uses. */
  public readonly provider: k8s.Provider;
  /** The first control plane, where cluster-wide remote steps (verification) run. */
  public readonly bootstrapHost: Host;
  /** By node name: the node's join step (init for the first control plane). */
  public readonly joined: Readonly<Record<string, command.remote.Command>>;
  /** Inventory names of every node, control planes first. */
  public readonly nodeNames: readonly string[];

  constructor(name: string, args: KubernetesClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:k8s:KubernetesCluster", name, {}, opts);
    const { inventory, versions, hosts } = args;
    const facts = clusterFacts(inventory, versions);
    const controlPlanes = serversOf(inventory, "k8s-master");
    const workers = serversOf(inventory, "k8s-worker");
    const [first, ...otherControlPlanes] = controlPlanes;
    const host = (node: ServerSpec) => hosts[node.name];

    // 1. Every node: kernel, containerd CRI, pinned packages.
    const prepared: Record<string, command.remote.Command> = {};
    for (const node of [...controlPlanes, ...workers]) {
      prepared[node.name] = remoteStep(
        `${node.name}-k8s-prepare`,
        { host: host(node), files: prepareFiles(versions), script: renderPrepareScript(versions), timeoutMinutes: 20 },
        { parent: this, dependsOn: [args.baseReady[node.name]] },
      );
    }

    const token = pulumi.secret(pulumi.output(args.kubeadm.token));
    const certificateKey = pulumi.secret(pulumi.output(args.kubeadm.certificateKey));
    const publicIps = Object.fromEntries(controlPlanes.map((node) => [publicIpKey(node.name), host(node).server.ipv4Address]));
    const initConfig = { path: `${KEYBUZZ_K8S_DIR}/kubeadm-init.yaml`, content: renderKubeadmInitConfig(first, facts), mode: "0600" };

    // 2. kubeadm init on the first control plane; its (secret) stdout is admin.conf.
    const init = remoteStep(
      `${first.name}-k8s-init`,
      {
        host: host(first),
        files: [initConfig, ...kubeadmPatchFiles(first)],
        script: renderInitScript(),
        secrets: { [SECRET_KEYS.token]: token, [SECRET_KEYS.certificateKey]: certificateKey, ...publicIps },
        timeoutMinutes: 30,
      },
      { parent: this, dependsOn: [prepared[first.name], args.apiLoadBalancer] },
    );
    const adminConf = pulumi.secret(init.stdout);
    const caCertHash = pulumi.secret(adminConf.apply(caCertHashFromKubeconfig));

    // 3. Fresh join credentials whenever the node list changes (token expiration, uploaded certs).
    this.nodeNames = [...controlPlanes, ...workers].map((node) => node.name);
    const credentials = remoteStep(
      `${first.name}-k8s-join-credentials`,
      {
        host: host(first),
        files: [initConfig, { path: `${KEYBUZZ_K8S_DIR}/bootstrap-token.yaml`, content: renderBootstrapTokenSecret(), mode: "0600" }],
        script: renderJoinCredentialsScript(),
        secrets: {
          [SECRET_KEYS.token]: token,
          [SECRET_KEYS.certificateKey]: certificateKey,
          [SECRET_KEYS.tokenId]: pulumi.secret(token.apply((value) => value.split(".")[0])),
          [SECRET_KEYS.tokenSecret]: pulumi.secret(token.apply((value) => value.split(".")[1] ?? "")),
          ...publicIps,
        },
        triggers: [this.nodeNames.join(",")],
        timeoutMinutes: 10,
      },
      { parent: this, dependsOn: [init] },
    );

    // 4. Control planes join one at a time (etcd grows by one member at a time), then the workers in parallel.
    const joined: Record<string, command.remote.Command> = { [first.name]: init };
    const join = (node: ServerSpec, controlPlane: boolean, after: pulumi.Resource) =>
      remoteStep(
        `${node.name}-k8s-join`,
        {
          host: host(node),
          files: [
            { path: `${KEYBUZZ_K8S_DIR}/kubeadm-join.yaml`, content: renderKubeadmJoinConfig(node, facts, controlPlane), mode: "0600" },
            ...(controlPlane ? kubeadmPatchFiles(node) : []),
          ],
          script: renderJoinScript(node),
          secrets: {
            [SECRET_KEYS.token]: token,
            [SECRET_KEYS.caCertHash]: caCertHash,
            ...(controlPlane ? { [SECRET_KEYS.certificateKey]: certificateKey } : {}),
          },
          timeoutMinutes: args.settings.joinTimeoutMinutes,
        },
        { parent: this, dependsOn: [prepared[node.name], after, args.apiLoadBalancer] },
      );
    let previous: pulumi.Resource = credentials;
    for (const node of otherControlPlanes) {
      joined[node.name] = join(node, true, previous);
      previous = joined[node.name];
    }
    for (const node of workers) joined[node.name] = join(node, false, previous);
    this.joined = joined;
    this.bootstrapHost = host(first);

    // 5. The provider: admin.conf through the first control plane's public IP (in the SANs).
    this.kubeconfig = pulumi.secret(
      pulumi.all([adminConf, host(first).server.ipv4Address]).apply(([conf, publicIp]) => rewriteKubeconfigServer(conf, publicIp)),
    );
    this.provider = new k8s.Provider(`${name}-provider`, { kubeconfig: this.kubeconfig }, { parent: this });
    this.registerOutputs({ kubeconfig: this.kubeconfig });
  }
}
