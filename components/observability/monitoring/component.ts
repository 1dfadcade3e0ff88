import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ChartPin } from "../../../config";
import { HAPROXY_PROMETHEUS } from "../../data/haproxy";
import { DEFAULT_MINIO_SETTINGS } from "../../data/minio/settings";
import { DEFAULT_POSTGRES_LAYOUT } from "../../data/postgres";
import { ETCD_METRICS_PORT } from "../../k8s/cluster/render";
import { MINIO_METRICS_PATH, PGBOUNCER_EXPORTER_PORT, POSTGRES_EXPORTER_PORT } from "../exporters/render";
import { DEFAULT_PROXYSQL_CNF_SETTINGS } from "../../data/proxysql";
import { DEFAULT_RABBITMQ_SETTINGS } from "../../data/rabbitmq";
import type { ModuleArgs, ModuleOutputs } from "../../lib/contract";
import type { ExportersSettings } from "../exporters/settings";
import {
  BACKED_UP_SYSTEMS,
  renderAlertRuleGroups,
  renderDashboards,
  renderScrapeConfigSpecs,
  scrapeConfigName,
  type RuleContext,
  type ScrapedServer,
  type ScrapeJobSpec,
} from "./render";
import type { MonitoringSettings } from "./settings";

/** Namespace of kube-prometheus-stack (components/k8s/addons.ts), where these objects live. */
export const MONITORING_NAMESPACE = "monitoring";
/** ConfigMap holding the platform CA that signed Patroni's REST API certificate. */
export const SCRAPE_CA_CONFIGMAP = "keybuzz-scrape-ca";
const PLATFORM_CA_KEY = "platform-ca.crt";
/** Secret holding the scrape credentials: Prometheus's etcd client certificate and MinIO's bearer token. */
export const SCRAPE_SECRET = "keybuzz-scrape-credentials";
/** Keys of {@link SCRAPE_SECRET}. */
export const SCRAPE_SECRET_KEYS = {
  etcdClientCert: "etcd-client.crt",
  etcdClientKey: "etcd-client.key",
  minioToken: "minio-token",
} as const;

/** The monitoring module's slice of the platform's credentials. */
export interface MonitoringSecrets {
  /** The platform PKI's CA certificate (`Pki.caCertPem`, public): Prometheus verifies Patroni's and etcd's TLS with it. */
  readonly caCertPem: pulumi.Input<string>;
  /**
   * Prometheus's client certificate of the platform CA (`Pki.issueClient("prometheus")`, key
   * secret): Patroni's etcd requires one (`ETCD_CLIENT_CERT_AUTH`) on every connection, `/metrics` included.
   */
  readonly etcdClient: { readonly certPem: pulumi.Input<string>; readonly keyPem: pulumi.Input<string> };
  /** MinIO's Prometheus bearer token (`Exporters.minioMetricsToken`, secret). */
  readonly minioMetricsToken: pulumi.Input<string>;
}

/** Arguments of {@link Monitoring}. `hosts` = every server (the scrape targets); `after.all` = kube-prometheus-stack's release. */
export interface MonitoringArgs extends ModuleArgs<MonitoringSettings, MonitoringSecrets> {
  /** The Kubernetes provider (`KubernetesCluster.provider`), explicit on every object. */
  readonly provider: k8s.Provider;
  /** The exporters' ports (`keybuzz:exporters`). */
  readonly exporters: ExportersSettings;
  /** Patroni's synchronous mode (`keybuzz:postgres.synchronousMode`): a missing sync standby alerts only when it is on. */
  readonly postgresSynchronousMode: boolean;
  /** MinIO's S3 port (`keybuzz:minio.apiPort`), where its metrics are served. */
  readonly minioApiPort: number;
}

/**
 * The scrape jobs of the exporters deployed today, from the inventory's servers: node_exporter
 * everywhere, postgres_exporter, Patroni's `/metrics` and etcd's on the DB nodes, pgbouncer_exporter
 * beside PgBouncer, RabbitMQ's plugin, redis_exporter (Redis and Sentinel), mysqld_exporter,
 * ProxySQL's REST API, MinIO's cluster metrics, HAProxy's built-in exporter, and kubeadm's etcd on
 * the control planes. UFW opens each job's port on its servers to the Kubernetes nodes only
 * (components/os/base-os, `exporterUfwRules`), but a service's own port. Pure.
 *
 * @param minioApiPort `keybuzz:minio.apiPort` (MinIO serves its metrics on the S3 port).
 */
export function deployedScrapeJobs(
  servers: readonly ScrapedServer[],
  exporters: ExportersSettings,
  minioApiPort: number = DEFAULT_MINIO_SETTINGS.apiPort,
): ScrapeJobSpec[] {
  const ofGroup = (group: string) => servers.filter((server) => server.group === group);
  const http = { metricsPath: "/metrics", scheme: "http" } as const;
  return [
    { job: "node", port: exporters.nodeExporterPort, ...http, servers },
    {
      job: "patroni",
      port: DEFAULT_POSTGRES_LAYOUT.ports.restApi,
      metricsPath: "/metrics",
      scheme: "https",
      caConfigMapKey: PLATFORM_CA_KEY,
      // HAProxy's health checks read the same REST API.
      servicePort: true,
      servers: ofGroup("postgres"),
    },
    { job: "postgres", port: POSTGRES_EXPORTER_PORT, ...http, servers: ofGroup("postgres") },
    { job: "pgbouncer", port: PGBOUNCER_EXPORTER_PORT, ...http, servers: ofGroup("haproxy") },
    { job: "rabbitmq", port: DEFAULT_RABBITMQ_SETTINGS.prometheusPort, ...http, servers: ofGroup("rabbitmq") },
    { job: "redis", port: exporters.redisExporterPort, ...http, servers: ofGroup("redis") },
    { job: "sentinel", port: exporters.sentinelExporterPort, ...http, servers: ofGroup("redis") },
    { job: "mysqld", port: exporters.mysqldExporterPort, ...http, servers: ofGroup("mariadb") },
    { job: "proxysql", port: DEFAULT_PROXYSQL_CNF_SETTINGS.restapiPort, ...http, servers: ofGroup("proxysql") },
    { job: "haproxy", port: HAPROXY_PROMETHEUS.port, metricsPath: HAPROXY_PROMETHEUS.path, scheme: "http", servers: ofGroup("haproxy") },
    {
      // Patroni's etcd serves /metrics on its client port, behind the same mutual TLS as Patroni's
      // own connections (components/data/postgres renderEtcdEnv): the platform CA both ways.
      job: "etcd",
      port: DEFAULT_POSTGRES_LAYOUT.ports.etcdClient,
      metricsPath: "/metrics",
      scheme: "https",
      caConfigMapKey: PLATFORM_CA_KEY,
      clientCert: { certKey: SCRAPE_SECRET_KEYS.etcdClientCert, keyKey: SCRAPE_SECRET_KEYS.etcdClientKey },
      // Patroni on every DB node (and the backups) reach the same port.
      servicePort: true,
      servers: ofGroup("postgres"),
    },
    {
      // kubeadm's etcd: plain http metrics on the control plane's private address
      // (components/k8s/cluster renderEtcdMetricsPatch). The port serves nothing but metrics and
      // health, so UFW limits it to the Kubernetes nodes like an exporter's.
      job: "etcd",
      name: "kube-etcd",
      port: ETCD_METRICS_PORT,
      ...http,
      servers: ofGroup("k8s-master"),
    },
    {
      job: "minio",
      port: minioApiPort,
      metricsPath: MINIO_METRICS_PATH,
      scheme: "http",
      bearerTokenKey: SCRAPE_SECRET_KEYS.minioToken,
      // The S3 API itself: HAProxy and the applications reach it.
      servicePort: true,
      servers: ofGroup("minio"),
    },
  ];
}

/**
 * Monitoring inside the cluster (`keybuzz:observability:Monitoring`, issue 16 items 2–5): the
 * ScrapeConfig objects of every deployed exporter, built from the inventory; the PrometheusRule of
 * the alert rules; the dashboards as ConfigMaps for Grafana's sidecar (label `grafana_dashboard:
 * "1"`, kube-prometheus-stack 77.14.0 `grafana.sidecar.dashboards`); and metrics-server for HPAs.
 * kube-prometheus-stack picks the ScrapeConfigs and rules up because its selectors select every
 * object (`scrapeConfigSelectorNilUsesHelmValues: false`, `ruleSelectorNilUsesHelmValues: false`).
 */
export class Monitoring extends pulumi.ComponentResource implements ModuleOutputs {
  /** The PrometheusRule (the last object the operator needs). */
  public readonly verified: pulumi.Resource;
  /** The ScrapeConfig objects, by name ({@link scrapeConfigName}). */
  public readonly scrapeConfigs: Readonly<Record<string, pulumi.Resource>>;
  /** The metrics-server release. */
  public readonly metricsServer: k8s.helm.v3.Release;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:observability:Monitoring", name, {}, opts);
    const childOpts: pulumi.CustomResourceOptions = { parent: this, provider: args.provider, dependsOn: [...(args.after.all ?? [])] };
    const namespace = MONITORING_NAMESPACE;

    const ca = new k8s.core.v1.ConfigMap(
      `${name}-scrape-ca`,
      { metadata: { name: SCRAPE_CA_CONFIGMAP, namespace }, data: { [PLATFORM_CA_KEY]: args.secrets.caCertPem } },
      childOpts,
    );
    const credentials = new k8s.core.v1.Secret(
      `${name}-scrape-credentials`,
      {
        metadata: { name: SCRAPE_SECRET, namespace },
        stringData: {
          [SCRAPE_SECRET_KEYS.etcdClientCert]: args.secrets.etcdClient.certPem,
          [SCRAPE_SECRET_KEYS.etcdClientKey]: pulumi.secret(args.secrets.etcdClient.keyPem),
          [SCRAPE_SECRET_KEYS.minioToken]: pulumi.secret(args.secrets.minioMetricsToken),
        },
      },
      childOpts,
    );
    const ruleContext: RuleContext = {
      postgresSynchronousMode: args.postgresSynchronousMode,
      proxysqlWriterHostgroup: DEFAULT_PROXYSQL_CNF_SETTINGS.hostgroups.writer,
      // Backups run when the inventory has a backup server (docs/backups.md).
      backedUpSystems: args.hosts.some((host) => host.spec.group === "backup") ? BACKED_UP_SYSTEMS : [],
    };
    const jobs = deployedScrapeJobs(
      args.hosts.map((host) => host.spec),
      args.exporters,
      args.minioApiPort,
    ).filter((job) => job.servers.length > 0);
    this.scrapeConfigs = Object.fromEntries(
      jobs.map((job) => {
        const [spec] = renderScrapeConfigSpecs([job], SCRAPE_CA_CONFIGMAP, SCRAPE_SECRET);
        const scrapeName = scrapeConfigName(job);
        return [
          scrapeName,
          new k8s.apiextensions.CustomResource(
            `${name}-scrape-${scrapeName}`,
            {
              apiVersion: "monitoring.coreos.com/v1alpha1",
              kind: "ScrapeConfig",
              metadata: { name: `keybuzz-${scrapeName}`, namespace },
              spec,
            },
            { ...childOpts, dependsOn: [...(args.after.all ?? []), ca, credentials] },
          ),
        ];
      }),
    );
    this.verified = new k8s.apiextensions.CustomResource(
      `${name}-rules`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { name: "keybuzz-platform", namespace },
        spec: { groups: renderAlertRuleGroups(args.settings, ruleContext) },
      },
      childOpts,
    );
    for (const [file, json] of Object.entries(renderDashboards())) {
      const dashboardName = file.replace(/\.json$/, "");
      new k8s.core.v1.ConfigMap(
        `${name}-dashboard-${dashboardName}`,
        {
          metadata: { name: `${dashboardName}-dashboard`, namespace, labels: { grafana_dashboard: "1" } },
          data: { [file]: JSON.stringify(json, null, 2) },
        },
        childOpts,
      );
    }
    this.metricsServer = metricsServerRelease(`${name}-metrics-server`, args.versions.charts.metricsServer, childOpts);
    this.registerOutputs({ verified: this.verified, scrapeConfigs: this.scrapeConfigs, metricsServer: this.metricsServer });
  }
}

/**
 * metrics-server in kube-system (chart values of metrics-server-helm-chart-3.13.1). The kubelets'
 * serving certificates are kubeadm's self-signed ones (no `serverTLSBootstrap`), which
 * metrics-server cannot verify, hence `--kubelet-insecure-tls` (the chart's README case).
 */
function metricsServerRelease(name: string, pin: ChartPin, opts: pulumi.CustomResourceOptions): k8s.helm.v3.Release {
  return new k8s.helm.v3.Release(
    name,
    {
      name: "metrics-server",
      chart: pin.chart,
      version: pin.version,
      repositoryOpts: { repo: pin.repo },
      namespace: "kube-system",
      values: { args: ["--kubelet-insecure-tls"] },
      timeout: 600,
    },
    opts,
  );
}
