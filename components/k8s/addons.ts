import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ChartPin, ConfigError, Inventory, serversOf, Versions } from "../../config";
import { remoteStep } from "../lib/remote";
import { ACCOUNTS } from "../security/secrets";
import { KubernetesCluster } from "./cluster";
import { ingressController } from "./ingress";
import { renderVerifyScript } from "./render";
import { K8sSettings } from "./settings";

/** The platform namespaces (spec 001 module 9, "Namespaces"). */
export const PLATFORM_NAMESPACES = ["keybuzz", "chatwoot", "n8n", "analytics", "ai", "vault", "monitoring"] as const;

/** Storage class the Hetzner CSI driver creates (Hetzner volumes, ReadWriteOnce). */
export const STORAGE_CLASS = "hcloud-volumes";

/** MinIO's S3 API port (spec 001, MinIO). */
const MINIO_PORT = 9000;

/**
 * The `keybuzz-backend-config` data (spec 001 module 9, "ConfigMaps"), from the inventory: each
 * host/port is the load balancer that serves the port (PostgreSQL write 5432, Redis 6379, RabbitMQ
 * 5672 on the internal LB; MariaDB 3306 on the ProxySQL LB); MinIO is the first MinIO node by
 * private IP (pods resolve through CoreDNS, not the hosts' /etc/hosts, so no `s3.<domain>` name).
 *
 * @throws {ConfigError} when no load balancer serves one of the ports.
 */
export function backendConfigData(inventory: Inventory): Record<string, string> {
  const lbFor = (port: number, what: string) => {
    const lb = inventory.loadBalancers.find((candidate) => candidate.services.some((service) => service.listenPort === port));
    if (!lb)
      throw new ConfigError([`keybuzz:loadBalancers: no load balancer serves port ${port} (${what}); keybuzz-backend-config needs it`]);
    return lb.privateIp;
  };
  const minio = serversOf(inventory, "minio")[0];
  if (!minio) throw new ConfigError(["keybuzz:servers: no MinIO node; keybuzz-backend-config needs MINIO_ENDPOINT"]);
  return {
    POSTGRES_HOST: lbFor(5432, "PostgreSQL"),
    POSTGRES_PORT: "5432",
    REDIS_HOST: lbFor(6379, "Redis"),
    REDIS_PORT: "6379",
    RABBITMQ_HOST: lbFor(5672, "RabbitMQ"),
    RABBITMQ_PORT: "5672",
    MARIADB_HOST: lbFor(3306, "MariaDB"),
    MARIADB_PORT: "3306",
    MINIO_ENDPOINT: `${minio.privateIp}:${MINIO_PORT}`,
  };
}

/**
 * Values of the tigera-operator chart: the Installation with Calico IPIP always, VXLAN never
 * (operator encapsulation `IPIP`), BGP, the MTU, node addresses autodetected in the private
 * network's CIDR, one pool over the pod CIDR given to kubeadm.
 */
export function calicoValues(inventory: Inventory, settings: K8sSettings): Record<string, unknown> {
  return {
    installation: {
      enabled: true,
      cni: { type: "Calico" },
      calicoNetwork: {
        bgp: "Enabled",
        mtu: settings.calicoMtu,
        nodeAddressAutodetectionV4: { cidrs: [inventory.network.ipRange] },
        ipPools: [
          {
            name: "default-ipv4-ippool",
            cidr: inventory.kubernetes.podCidr,
            encapsulation: "IPIP",
            natOutgoing: "Enabled",
            nodeSelector: "all()",
            blockSize: 26,
          },
        ],
      },
    },
  };
}

/**
 * Values of kube-prometheus-stack: CRDs left to their own release, retention, Prometheus /
 * Alertmanager / Grafana on Hetzner volumes, Grafana's admin from an existing Secret, every
 * ServiceMonitor/PodMonitor/PrometheusRule/ScrapeConfig of the cluster selected.
 */
export function kubePrometheusStackValues(settings: K8sSettings, grafanaSecret: string): Record<string, unknown> {
  const claim = (sizeGb: number) => ({
    spec: { storageClassName: STORAGE_CLASS, accessModes: ["ReadWriteOnce"], resources: { requests: { storage: `${sizeGb}Gi` } } },
  });
  return {
    crds: { enabled: false },
    prometheus: {
      prometheusSpec: {
        retention: settings.prometheusRetention,
        storageSpec: { volumeClaimTemplate: claim(settings.prometheusStorageGb) },
        serviceMonitorSelectorNilUsesHelmValues: false,
        podMonitorSelectorNilUsesHelmValues: false,
        ruleSelectorNilUsesHelmValues: false,
        // The platform's ScrapeConfig objects (components/observability/monitoring) are selected too.
        scrapeConfigSelectorNilUsesHelmValues: false,
      },
    },
    alertmanager: { alertmanagerSpec: { storage: { volumeClaimTemplate: claim(settings.alertmanagerStorageGb) } } },
    grafana: {
      admin: { existingSecret: grafanaSecret, userKey: "admin-user", passwordKey: "admin-password" },
      persistence: { enabled: true, storageClassName: STORAGE_CLASS, size: `${settings.grafanaStorageGb}Gi` },
    },
  };
}

/** Arguments of {@link ClusterAddons}. */
export interface ClusterAddonsArgs {
  readonly inventory: Inventory;
  /** `charts.*` pins (repo, chart, exact version). */
  readonly versions: Versions;
  /** The cluster: its provider (explicit on every resource), node list and first control plane. */
  readonly cluster: KubernetesCluster;
  /** `keybuzz:k8s` settings (MTU, retention, volume sizes). */
  readonly settings: K8sSettings;
  /** Grafana's admin password (generated, secret). */
  readonly grafanaAdminPassword: pulumi.Input<string>;
  /** Hetzner API token for the CSI driver (`hcloud:token`, secret). */
  readonly hcloudToken: pulumi.Input<string>;
  /** The generated application credentials for `keybuzz-backend-credentials`, secrets. */
  readonly credentials: {
    readonly postgresPassword: pulumi.Input<string>;
    readonly redisPassword: pulumi.Input<string>;
    readonly rabbitmqPassword: pulumi.Input<string>;
    readonly mariadbPassword: pulumi.Input<string>;
    readonly minioPassword: pulumi.Input<string>;
  };
}

/**
 * What runs inside the cluster (spec 001/002 module 9), every chart a pinned `helm.v3.Release` on
 * the explicit provider: Calico (tigera-operator), then the verification (all nodes Ready, CoreDNS
 * up), the Hetzner CSI driver, the Prometheus operator CRDs then kube-prometheus-stack in
 * `monitoring`, the ingress controller (see ingress.ts), the platform namespaces and the backend
 * ConfigMap/Secret. Applications are out of scope (design section E: Deployments + ClusterIP +
 * HPA behind the ingress; no hostNetwork except the ingress controller).
 */
export class ClusterAddons extends pulumi.ComponentResource {
  /** Helm releases: tigeraOperator, hcloudCsi, prometheusOperatorCrds, kubePrometheusStack, ingress. */
  public readonly releases: Readonly<Record<string, k8s.helm.v3.Release>>;
  /** The cluster verification step (after Calico). */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: ClusterAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:k8s:ClusterAddons", name, {}, opts);
    const { inventory, versions, cluster, settings } = args;
    const provider = cluster.provider;
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
      Object.values(cluster.joined),
      {
        createNamespace: true,
      },
    );
    this.verified = remoteStep(
      `${cluster.bootstrapHost.spec.name}-k8s-verify`,
      {
        host: cluster.bootstrapHost,
        script: renderVerifyScript(cluster.nodeNames),
        timeoutMinutes: 20,
        triggers: [calico.version, cluster.nodeNames.join(",")],
      },
      { parent: this, dependsOn: [calico] },
    );

    // Hetzner CSI: its token as a Secret, then the chart (storage class hcloud-volumes).
    const hcloudSecret = new k8s.core.v1.Secret(
      `${name}-hcloud-token`,
      { metadata: { name: "hcloud", namespace: "kube-system" }, type: "Opaque", stringData: { token: pulumi.secret(args.hcloudToken) } },
      k8sOpts([this.verified]),
    );
    const csi = release(
      "hcloud-csi",
      versions.charts.hcloudCsi,
      "kube-system",
      {
        controller: { hcloudToken: { existingSecret: { name: "hcloud", key: "token" } } },
        storageClasses: [{ name: STORAGE_CLASS, defaultStorageClass: true, reclaimPolicy: "Delete" }],
      },
      [hcloudSecret, this.verified],
    );

    // Monitoring: CRDs in their own release first, then the stack (Grafana admin from a Secret).
    const crds = release("prometheus-operator-crds", versions.charts.prometheusOperatorCrds, "monitoring", {}, [
      namespaces.monitoring,
      this.verified,
    ]);
    const grafanaSecret = new k8s.core.v1.Secret(
      `${name}-grafana-admin`,
      {
        metadata: { name: "grafana-admin", namespace: "monitoring" },
        type: "Opaque",
        stringData: { "admin-user": ACCOUNTS.grafanaAdmin, "admin-password": pulumi.secret(args.grafanaAdminPassword) },
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

    // Ingress: the swappable controller (ingress.ts); its ServiceMonitor needs the CRDs.
    const ingress = ingressController(inventory, versions);
    const ingressRelease = release(ingress.name, ingress.chart, ingress.name, ingress.values, [crds, this.verified], {
      createNamespace: true,
    });

    // The backend's configuration and credentials (spec 001 "ConfigMaps"; secrets generated).
    new k8s.core.v1.ConfigMap(
      `${name}-backend-config`,
      { metadata: { name: "keybuzz-backend-config", namespace: "keybuzz" }, data: backendConfigData(inventory) },
      k8sOpts([namespaces.keybuzz]),
    );
    const credentials = args.credentials;
    new k8s.core.v1.Secret(
      `${name}-backend-credentials`,
      {
        metadata: { name: "keybuzz-backend-credentials", namespace: "keybuzz" },
        type: "Opaque",
        stringData: {
          POSTGRES_USER: ACCOUNTS.postgresApp,
          POSTGRES_PASSWORD: pulumi.secret(credentials.postgresPassword),
          REDIS_PASSWORD: pulumi.secret(credentials.redisPassword),
          RABBITMQ_USER: ACCOUNTS.rabbitmqUser,
          RABBITMQ_PASSWORD: pulumi.secret(credentials.rabbitmqPassword),
          MARIADB_USER: ACCOUNTS.mariadbApp,
          MARIADB_PASSWORD: pulumi.secret(credentials.mariadbPassword),
          MINIO_ACCESS_KEY: ACCOUNTS.minioRootUser,
          MINIO_SECRET_KEY: pulumi.secret(credentials.minioPassword),
        },
      },
      k8sOpts([namespaces.keybuzz]),
    );

    this.releases = {
      tigeraOperator: calico,
      hcloudCsi: csi,
      prometheusOperatorCrds: crds,
      kubePrometheusStack: monitoring,
      ingress: ingressRelease,
    };
    this.registerOutputs({});
  }
}
