import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { Inventory } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { Host, remoteStep } from "../../lib/remote";
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
import { ClusterSettings } from "./settings";

/** The cluster's slice of `PlatformSecrets` (its `kubeadm` entry), secrets. */
export interface KubeadmSecrets {
  /** The bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm's format). */
  readonly token: pulumi.Input<string>;
  /** The `--upload-certs` certificate key, 64 hex characters. */
  readonly certificateKey: pulumi.Input<string>;
}

/**
 * Arguments of {@link KubernetesCluster}: the module contract (`hosts` = the `k8s-master` and
 * `k8s-worker` servers, in inventory order, the first control plane runs `kubeadm init`;
 * `after.hosts` = each node's verified base OS) plus what kubeadm needs beyond its hosts.
 */
export interface KubernetesClusterArgs extends ModuleArgs<ClusterSettings, KubeadmSecrets> {
  /**
   * The inventory, for the cluster-wide facts of the kubeadm files (`clusterFacts`): the API load
   * balancer's private IP (the controlPlaneEndpoint), `kubernetes.{podCidr,serviceCidr}`.
   */
  readonly inventory: Inventory;
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
export class KubernetesCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** admin.conf with its server at `https://<first control plane public IP>:6443`; secret. */
  public readonly kubeconfig: pulumi.Output<string>;
  /** The provider every Kubernetes resource and Helm release of the platform uses. */
  public readonly provider: k8s.Provider;
  /**
   * Every node joined (kubeadm init, then each join, succeeded): this component, which a
   * `dependsOn` expands to all its steps. The nodes become Ready only once the CNI runs, so
   * `ClusterAddons` verifies them after Calico.
   */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: KubernetesClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:k8s:KubernetesCluster", name, {}, opts);
    const { inventory, versions } = args;
    const facts = clusterFacts(inventory, versions);
    const controlPlanes = args.hosts.filter((host) => host.spec.group === "k8s-master");
    const workers = args.hosts.filter((host) => host.spec.group === "k8s-worker");
    const [first, ...otherControlPlanes] = controlPlanes;

    // 1. Every node: kernel, containerd CRI, pinned packages.
    const prepared: Record<string, command.remote.Command> = {};
    for (const host of [...controlPlanes, ...workers]) {
      prepared[host.spec.name] = remoteStep(
        `${host.spec.name}-k8s-prepare`,
        { host, files: prepareFiles(versions), script: renderPrepareScript(versions), timeoutMinutes: 20 },
        { parent: this, dependsOn: waitsFor(args.after, host.spec.name) },
      );
    }

    const token = pulumi.secret(pulumi.output(args.secrets.token));
    const certificateKey = pulumi.secret(pulumi.output(args.secrets.certificateKey));
    const publicIps = Object.fromEntries(controlPlanes.map((host) => [publicIpKey(host.spec.name), host.server.ipv4Address]));
    const initConfig = { path: `${KEYBUZZ_K8S_DIR}/kubeadm-init.yaml`, content: renderKubeadmInitConfig(first.spec, facts), mode: "0600" };

    // 2. kubeadm init on the first control plane; its (secret) stdout is admin.conf.
    const init = remoteStep(
      `${first.spec.name}-k8s-init`,
      {
        host: first,
        files: [initConfig, ...kubeadmPatchFiles(first.spec)],
        script: renderInitScript(),
        secrets: { [SECRET_KEYS.token]: token, [SECRET_KEYS.certificateKey]: certificateKey, ...publicIps },
        timeoutMinutes: 30,
      },
      { parent: this, dependsOn: [prepared[first.spec.name], args.apiLoadBalancer] },
    );
    const adminConf = pulumi.secret(init.stdout);
    const caCertHash = pulumi.secret(adminConf.apply(caCertHashFromKubeconfig));

    // 3. Fresh join credentials whenever the node list changes (token expiration, uploaded certs).
    const nodeNames = [...controlPlanes, ...workers].map((host) => host.spec.name);
    const credentials = remoteStep(
      `${first.spec.name}-k8s-join-credentials`,
      {
        host: first,
        files: [initConfig, { path: `${KEYBUZZ_K8S_DIR}/bootstrap-token.yaml`, content: renderBootstrapTokenSecret(), mode: "0600" }],
        script: renderJoinCredentialsScript(),
        secrets: {
          [SECRET_KEYS.token]: token,
          [SECRET_KEYS.certificateKey]: certificateKey,
          [SECRET_KEYS.tokenId]: pulumi.secret(token.apply((value) => value.split(".")[0])),
          [SECRET_KEYS.tokenSecret]: pulumi.secret(token.apply((value) => value.split(".")[1] ?? "")),
          ...publicIps,
        },
        triggers: [nodeNames.join(",")],
        timeoutMinutes: 10,
      },
      { parent: this, dependsOn: [init] },
    );

    // 4. Control planes join one at a time (etcd grows by one member at a time), then the workers in parallel.
    const join = (host: Host, controlPlane: boolean, after: pulumi.Resource) =>
      remoteStep(
        `${host.spec.name}-k8s-join`,
        {
          host,
          files: [
            {
              path: `${KEYBUZZ_K8S_DIR}/kubeadm-join.yaml`,
              content: renderKubeadmJoinConfig(host.spec, facts, controlPlane),
              mode: "0600",
            },
            ...(controlPlane ? kubeadmPatchFiles(host.spec) : []),
          ],
          script: renderJoinScript(host.spec),
          secrets: {
            [SECRET_KEYS.token]: token,
            [SECRET_KEYS.caCertHash]: caCertHash,
            ...(controlPlane ? { [SECRET_KEYS.certificateKey]: certificateKey } : {}),
          },
          timeoutMinutes: args.settings.joinTimeoutMinutes,
        },
        { parent: this, dependsOn: [prepared[host.spec.name], after, args.apiLoadBalancer] },
      );
    let previous: pulumi.Resource = credentials;
    for (const host of otherControlPlanes) previous = join(host, true, previous);
    for (const host of workers) join(host, false, previous);

    // 5. The provider: admin.conf through the first control plane's public IP (in the SANs).
    this.kubeconfig = pulumi.secret(
      pulumi.all([adminConf, first.server.ipv4Address]).apply(([conf, publicIp]) => rewriteKubeconfigServer(conf, publicIp)),
    );
    this.provider = new k8s.Provider(`${name}-provider`, { kubeconfig: this.kubeconfig }, { parent: this });
    this.verified = this;
    this.registerOutputs({ kubeconfig: this.kubeconfig, provider: this.provider, verified: this.verified });
  }
}
