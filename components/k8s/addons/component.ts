import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ChartPin, Inventory } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { remoteStep } from "../../lib/remote";
import { ACCOUNTS } from "../../security/secrets";
import {
  backendConfigData,
  backendConnectionValues,
  backendEndpoints,
  BackendPasswords,
  calicoValues,
  ingressController,
  kubePrometheusStackValues,
  PLATFORM_NAMESPACES,
  renderVerifyScript,
  STORAGE_CLASS,
} from "./render";
import { AddonsSettings } from "./settings";

/** The add-ons' slice of the platform's credentials, every value secret. */
export interface AddonsSecrets {
  /** Grafana's admin password (`PlatformSecrets.grafana.admin`). */
  readonly grafanaAdmin: pulumi.Input<string>;
  /** Hetzner API token for the CSI driver (`hcloud:token`, the provider's own secret config). */
  readonly hcloudToken: pulumi.Input<string>;
  /**
   * The application credentials of `keybuzz-backend-credentials` (`PlatformSecrets`' application
   * passwords, never an administrator's): the backend's URLs ({@link BackendPasswords}) and spec 001's
   * `*_PASSWORD` keys, plus MariaDB's application password for the latter.
   */
  readonly backend: { readonly [K in keyof BackendPasswords]: pulumi.Input<string> } & { readonly mariadb: pulumi.Input<string> };
  /** The platform CA (`Pki.caCertPem`, public): ConfigMap `keybuzz-postgres-ca`, for clients of PostgreSQL's TLS ports. */
  readonly caCertPem: pulumi.Input<string>;
}

/**
 * Arguments of {@link ClusterAddons}: the module contract (`hosts` = the cluster's nodes, control
 * planes first as in `KubernetesCluster`: the verification runs on the first control plane and
 * waits for every one of them to be Ready; `after.all` = the cluster's `verified`, which Calico
 * waits for, the other releases waiting for the verification after it; the namespaces and Secrets
 * need only the provider, as before) plus the cluster's provider and the inventory.
 */
export interface ClusterAddonsArgs extends ModuleArgs<AddonsSettings, AddonsSecrets> {
  /** The cluster's provider (`KubernetesCluster.provider`): explicit on every Kubernetes resource and Helm release. */
  readonly provider: k8s.Provider;
  /**
   * The inventory, for the values built from it: Calico's node-address CIDR and pod pool, the
   * backend ConfigMap's load balancers and MinIO node, the ingress load balancers' PROXY protocol.
   */
  readonly inventory: Inventory;
}

/**
 * What runs inside the cluster (spec 001/002 module 9), every chart a pinned `helm.v3.Release` on
 * the explicit provider: Calico (tigera-operator), then the verification (all nodes Ready, CoreDNS
 * up), the Hetzner CSI driver, the Prometheus operator CRDs then kube-prometheus-stack in
 * `monitoring`, the ingress controller (the swappable section of render.ts), the platform
 * namespaces and the backend ConfigMap/Secret. Applications are out of scope (design section E: Deployments + ClusterIP +
 * HPA behind the ingress; no hostNetwork except the ingress controller).
 */
export class ClusterAddons extends pulumi.ComponentResource implements ModuleOutputs {
  /** Helm releases: tigeraOperator, hcloudCsi, prometheusOperatorCrds, kubePrometheusStack, ingress. */
  public readonly releases: Readonly<Record<string, k8s.helm.v3.Release>>;
  /**
   * Every add-on installed, after the cluster verification: this component, which a `dependsOn`
   * expands to all its resources (a Helm release is done once its resources are ready: `skipAwait`
   * false, @pulumi/kubernetes' default).
   */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: ClusterAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:k8s:ClusterAddons", name, {}, opts);
    const { inventory, versions, settings, provider } = args;
    const controlPlanes = args.hosts.filter((host) => host.spec.group === "k8s-master");
    const nodeNames = [...controlPlanes, ...args.hosts.filter((host) => host.spec.group === "k8s-worker")].map((host) => host.spec.name);
    const [first] = controlPlanes;
    const k8sOpts = (dependsOn: pulumi.Input<pulumi.Resource>[] = []): pulumi.CustomResourceOptions => ({
      parent: this,
      provider,
      dependsOn,
    });
    const release = (
      key: string,
      pin: ChartPin,
      namespace: string,
      values: pulumi.Inputs,
      dependsOn: pulumi.Input<pulumi.Resource>[],
      extra: Partial<k8s.helm.v3.ReleaseArgs> = {},
    ) =>
      new k8s.helm.v3.Release(
        `${name}-${key}`,
        {
          name: key,
          chart: pin.chart,
          version: pin.version,
          repositoryOpts: { repo: pin.repo },
          namespace,
          values,
          timeout: 900,
          ...extra,
        },
        k8sOpts(dependsOn),
      );

    // Namespaces first: releases and the backend config land in them.
    const namespaces = Object.fromEntries(
      PLATFORM_NAMESPACES.map((namespace) => [
        namespace,
        new k8s.core.v1.Namespace(`${name}-ns-${namespace}`, { metadata: { name: namespace } }, k8sOpts()),
      ]),
    );

    // Calico: the CNI; the nodes become Ready once it runs. tigera-operator ships its CRDs in the chart's crds/ (installed first by Helm).
    const calico = release(
      "tigera-operator",
      versions.charts.tigeraOperator,
      "tigera-operator",
      calicoValues(inventory, settings),
      waitsFor(args.after, first.spec.name),
      {
        createNamespace: true,
      },
    );
    const nodesVerified = remoteStep(
      `${first.spec.name}-k8s-verify`,
      {
        host: first,
        script: renderVerifyScript(nodeNames),
        timeoutMinutes: 20,
        triggers: [calico.version, nodeNames.join(",")],
      },
      { parent: this, dependsOn: [calico] },
    );

    // Hetzner CSI: its token as a Secret, then the chart (storage class hcloud-volumes).
    const hcloudSecret = new k8s.core.v1.Secret(
      `${name}-hcloud-token`,
      {
        metadata: { name: "hcloud", namespace: "kube-system" },
        type: "Opaque",
        stringData: { token: pulumi.secret(args.secrets.hcloudToken) },
      },
      k8sOpts([nodesVerified]),
    );
    const csi = release(
      "hcloud-csi",
      versions.charts.hcloudCsi,
      "kube-system",
      {
        controller: { hcloudToken: { existingSecret: { name: "hcloud", key: "token" } } },
        storageClasses: [{ name: STORAGE_CLASS, defaultStorageClass: true, reclaimPolicy: "Delete" }],
      },
      [hcloudSecret, nodesVerified],
    );

    // Monitoring: CRDs in their own release first, then the stack (Grafana admin from a Secret).
    const crds = release("prometheus-operator-crds", versions.charts.prometheusOperatorCrds, "monitoring", {}, [
      namespaces.monitoring,
      nodesVerified,
    ]);
    const grafanaSecret = new k8s.core.v1.Secret(
      `${name}-grafana-admin`,
      {
        metadata: { name: "grafana-admin", namespace: "monitoring" },
        type: "Opaque",
        stringData: { "admin-user": ACCOUNTS.grafanaAdmin, "admin-password": pulumi.secret(args.secrets.grafanaAdmin) },
      },
      k8sOpts([namespaces.monitoring]),
    );
    const monitoring = release(
      "kube-prometheus-stack",
      versions.charts.kubePrometheusStack,
      "monitoring",
      kubePrometheusStackValues(settings, "grafana-admin"),
      [crds, csi, grafanaSecret],
      { skipCrds: true },
    );

    // Ingress: the swappable controller (render.ts, `ingressController`); its ServiceMonitor needs the CRDs.
    const ingress = ingressController(inventory, versions);
    const ingressRelease = release(ingress.name, ingress.chart, ingress.name, ingress.values, [crds, nodesVerified], {
      createNamespace: true,
    });

    // The backend's configuration and credentials (spec 001 "ConfigMaps"; secrets generated).
    new k8s.core.v1.ConfigMap(
      `${name}-backend-config`,
      { metadata: { name: "keybuzz-backend-config", namespace: "keybuzz" }, data: backendConfigData(inventory) },
      k8sOpts([namespaces.keybuzz]),
    );
    const endpoints = backendEndpoints(inventory);
    new k8s.core.v1.Secret(
      `${name}-backend-credentials`,
      {
        metadata: { name: "keybuzz-backend-credentials", namespace: "keybuzz" },
        type: "Opaque",
        // One secret Output: the ready URLs (docs/application.md) and spec 001's keys.
        stringData: pulumi.secret(
          pulumi.output(args.secrets.backend).apply((passwords) => ({
            POSTGRES_USER: ACCOUNTS.postgresApp,
            POSTGRES_PASSWORD: passwords.postgresProduct,
            REDIS_PASSWORD: passwords.redis,
            RABBITMQ_USER: ACCOUNTS.rabbitmqUser,
            RABBITMQ_PASSWORD: passwords.rabbitmq,
            MARIADB_USER: ACCOUNTS.mariadbApp,
            MARIADB_PASSWORD: passwords.mariadb,
            ...backendConnectionValues(endpoints, passwords),
          })),
        ),
      },
      k8sOpts([namespaces.keybuzz]),
    );
    // The CA of PostgreSQL's TLS ports (5432/5433): `sslrootcert=` or NODE_EXTRA_CA_CERTS in a pod (docs/application.md).
    new k8s.core.v1.ConfigMap(
      `${name}-postgres-ca`,
      { metadata: { name: "keybuzz-postgres-ca", namespace: "keybuzz" }, data: { "ca.crt": args.secrets.caCertPem } },
      k8sOpts([namespaces.keybuzz]),
    );

    this.releases = {
      tigeraOperator: calico,
      hcloudCsi: csi,
      prometheusOperatorCrds: crds,
      kubePrometheusStack: monitoring,
      ingress: ingressRelease,
    };
    this.verified = this;
    this.registerOutputs({ releases: this.releases, verified: this.verified });
  }
}
