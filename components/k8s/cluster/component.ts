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
  CLUSTER_CONFIG_FILE,
  renderAdminConfScript,
  renderBootstrapTokenSecret,
  renderCertificateRenewalScript,
  renderInitScript,
  renderKubeadmClusterConfig,
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

    // 2. kubeadm init on the first control plane; it also keeps the ClusterConfiguration it applied.
    const init = remoteStep(
      `${first.spec.name}-k8s-init`,
      {
        host: first,
        files: [
          initConfig,
          { path: CLUSTER_CONFIG_FILE, content: renderKubeadmClusterConfig(facts), mode: "0600" },
          ...kubeadmPatchFiles(first.spec),
        ],
        script: renderInitScript(),
        secrets: { [SECRET_KEYS.token]: token, [SECRET_KEYS.certificateKey]: certificateKey, ...publicIps },
        timeoutMinutes: 30,
      },
      { parent: this, dependsOn: [prepared[first.spec.name], args.apiLoadBalancer] },
    );

    // 3. Certificate renewal (`keybuzz:k8s.certificateRenewal`), one control plane at a time, the
    // first one right after init so the provider reads its renewed admin.conf.
    const renewal = args.settings.certificateRenewal;
    const renew = (host: Host, after: pulumi.Resource[]) =>
      renewal === undefined
        ? undefined
        : remoteStep(
            `${host.spec.name}-k8s-certificate-renewal`,
            { host, script: renderCertificateRenewalScript(host.spec, renewal), triggers: [renewal], timeoutMinutes: 30 },
            { parent: this, dependsOn: after },
          );
    const firstRenewal = renew(first, [init]);

    // 4. admin.conf read back by a step that changes nothing: the provider's kubeconfig and the CA
    // hash of the joins stay known in previews whatever changes in the init step.
    const adminConfRead = remoteStep(
      `${first.spec.name}-k8s-admin-conf`,
      { host: first, script: renderAdminConfScript(), triggers: [renewal ?? "no renewal"], timeoutMinutes: 5 },
      { parent: this, dependsOn: [init, ...(firstRenewal ? [firstRenewal] : [])] },
    );
    const adminConf = pulumi.secret(adminConfRead.stdout);
    const caCertHash = pulumi.secret(adminConf.apply(caCertHashFromKubeconfig));

    // 5. Each node's join credentials on the first control plane, then its join. The credentials
    // step re-runs with the join when the node's server is replaced (token expiration, uploaded
    // certificates, a stale etcd member). Control planes one at a time (etcd grows by one member at
    // a time), then the workers in parallel.
    const tokenManifest = { path: `${KEYBUZZ_K8S_DIR}/bootstrap-token.yaml`, content: renderBootstrapTokenSecret(), mode: "0600" };
    const credentialSecrets = {
      [SECRET_KEYS.token]: token,
      [SECRET_KEYS.certificateKey]: certificateKey,
      [SECRET_KEYS.tokenId]: pulumi.secret(token.apply((value) => value.split(".")[0])),
      [SECRET_KEYS.tokenSecret]: pulumi.secret(token.apply((value) => value.split(".")[1] ?? "")),
      ...publicIps,
    };
    const join = (host: Host, controlPlane: boolean, after: pulumi.Resource) => {
      const credentials = remoteStep(
        `${host.spec.name}-k8s-join-credentials`,
        {
          host: first,
          files: controlPlane ? [initConfig, tokenManifest] : [tokenManifest],
          script: renderJoinCredentialsScript(host.spec, controlPlane),
          secrets: credentialSecrets,
          triggers: [host.server.id],
          timeoutMinutes: 10,
        },
        { parent: this, dependsOn: [after] },
      );
      return remoteStep(
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
        { parent: this, dependsOn: [prepared[host.spec.name], credentials, args.apiLoadBalancer] },
      );
    };
    // A control plane renews once it joined, before the next one joins.
    let previous: pulumi.Resource = adminConfRead;
    for (const host of otherControlPlanes) {
      const joined = join(host, true, previous);
      previous = renew(host, [joined]) ?? joined;
    }
    for (const host of workers) join(host, false, previous);

    // 6. The provider: admin.conf through the first control plane's public IP (in the SANs).
    this.kubeconfig = pulumi.secret(
      pulumi.all([adminConf, first.server.ipv4Address]).apply(([conf, publicIp]) => rewriteKubeconfigServer(conf, publicIp)),
    );
    this.provider = new k8s.Provider(`${name}-provider`, { kubeconfig: this.kubeconfig }, { parent: this });
    this.verified = this;
    this.registerOutputs({ kubeconfig: this.kubeconfig, provider: this.provider, verified: this.verified });
  }
}
