import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ChartPin } from "../../../config";
import { HAPROXY_PROMETHEUS } from "../../data/haproxy";
import { DEFAULT_POSTGRES_LAYOUT } from "../../data/postgres";
import { PGBOUNCER_EXPORTER_PORT, POSTGRES_EXPORTER_PORT } from "../exporters/render";
import { DEFAULT_PROXYSQL_CNF_SETTINGS } from "../../data/proxysql";
import { DEFAULT_RABBITMQ_SETTINGS } from "../../data/rabbitmq";
import type { ModuleArgs, ModuleOutputs } from "../../lib/contract";
import type { ExportersSettings } from "../exporters/settings";
import {
  BACKED_UP_SYSTEMS,
  renderAlertRuleGroups,
  renderDashboards,
  renderScrapeConfigSpecs,
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

/** The monitoring module's slice of the platform's credentials (none secret: a CA certificate is public). */
export interface MonitoringSecrets {
  /** The platform PKI's CA certificate (`Pki.caCertPem`): Prometheus verifies Patroni's TLS with it. */
  readonly caCertPem: pulumi.Input<string>;
}

/** Arguments of {@link Monitoring}. `hosts` = every server (the scrape targets); `after.all` = kube-prometheus-stack's release. */
export interface MonitoringArgs extends ModuleArgs<MonitoringSettings, MonitoringSecrets> {
  /** The Kubernetes provider (`KubernetesCluster.provider`), explicit on every object. */
  readonly provider: k8s.Provider;
  /** The exporters' ports (`keybuzz:exporters`). */
  readonly exporters: ExportersSettings;
  /** Patroni's synchronous mode (`keybuzz:postgres.synchronousMode`): a missing sync standby alerts only when it is on. */
  readonly postgresSynchronousMode: boolean;
}

/**
 * The scrape jobs of the exporters deployed today, from the inventory's servers: node_exporter
 * everywhere, postgres_exporter and Patroni's `/metrics` on the DB nodes, pgbouncer_exporter beside
 * PgBouncer, RabbitMQ's plugin, redis_exporter (Redis and Sentinel), mysqld_exporter, ProxySQL's REST
 * API, and HAProxy's built-in exporter. UFW opens each job's port on its servers to the Kubernetes
 * nodes only (components/os/base-os, `exporterUfwRules`). Pure.
 */
export function deployedScrapeJobs(servers: readonly ScrapedServer[], exporters: ExportersSettings): ScrapeJobSpec[] {
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
  /** The ScrapeConfig objects, by job. */
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
    const ruleContext: RuleContext = {
      postgresSynchronousMode: args.postgresSynchronousMode,
      proxysqlWriterHostgroup: DEFAULT_PROXYSQL_CNF_SETTINGS.hostgroups.writer,
      // Backups run when the inventory has a backup server (docs/backups.md).
      backedUpSystems: args.hosts.some((host) => host.spec.group === "backup") ? BACKED_UP_SYSTEMS : [],
    };
    const jobs = deployedScrapeJobs(
      args.hosts.map((host) => host.spec),
      args.exporters,
    );
    this.scrapeConfigs = Object.fromEntries(
      renderScrapeConfigSpecs(jobs, SCRAPE_CA_CONFIGMAP).map((spec) => {
        const job = String(spec.jobName);
        return [
          job,
          new k8s.apiextensions.CustomResource(
            `${name}-scrape-${job}`,
            { apiVersion: "monitoring.coreos.com/v1alpha1", kind: "ScrapeConfig", metadata: { name: `keybuzz-${job}`, namespace }, spec },
            { ...childOpts, dependsOn: [...(args.after.all ?? []), ca] },
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
