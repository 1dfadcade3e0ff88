import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Inventory } from "../../../config";
import type { ModuleArgs, ModuleOutputs } from "../../lib/contract";
import { MONITORING_NAMESPACE } from "../monitoring/component";
import {
  blackboxValues,
  PROBE_JOB_NAME,
  PROBE_NAMESPACE,
  probeTargets,
  renderProbeJobSpec,
  renderProbeScrapeConfigSpecs,
  renderProbeScripts,
} from "./render";
import type { ProbesSettings } from "./settings";

/**
 * Arguments of {@link BackendProbes}: the module contract with no hosts of its own (`hosts: []`:
 * everything runs in the cluster; the targets come from the inventory) and no secrets (the Job
 * reads the backend's Secret in the cluster, by name). `after.all` = what must stand before the
 * probe can pass: the add-ons (the backend ConfigMap/Secret, kube-prometheus-stack's CRDs), every
 * data cluster's and proxy layer's verification, and the internal load balancers.
 */
export interface BackendProbesArgs extends ModuleArgs<ProbesSettings, Record<string, never>> {
  /** The Kubernetes provider (`KubernetesCluster.provider`), explicit on every object. */
  readonly provider: k8s.Provider;
  /** The inventory: the load balancers' ports and the MinIO nodes the probes target. */
  readonly inventory: Inventory;
  /** MinIO's S3 port (`keybuzz:minio.apiPort`), where each node's liveness is probed. */
  readonly minioPort: number;
}

/**
 * The backends as the applications reach them (`keybuzz:observability:BackendProbes`, issue 16
 * item 6, spec 001 "Connectivité Services Backend 5/5"): the deploy's final verification, a Job in
 * `keybuzz` that connects with the backend's own ConfigMap and Secret to PostgreSQL (write, read,
 * PgBouncer, both URLs), Redis, MariaDB through ProxySQL, RabbitMQ and MinIO, and fails `pulumi up`
 * when one is unreachable (@pulumi/kubernetes 4.34 awaits a Job until its `Complete` condition and
 * fails on `Failed`); and blackbox_exporter probing the same endpoints continuously for the
 * BackendEndpointDown alert (components/observability/monitoring).
 */
export class BackendProbes extends pulumi.ComponentResource implements ModuleOutputs {
  /** The probe Job: done when every backend answered. */
  public readonly verified: pulumi.Resource;
  /** The blackbox_exporter release. */
  public readonly blackboxExporter: k8s.helm.v3.Release;
  /** The ScrapeConfig objects of the continuous probes, by blackbox module. */
  public readonly scrapeConfigs: Readonly<Record<string, pulumi.Resource>>;

  constructor(name: string, args: BackendProbesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:observability:BackendProbes", name, {}, opts);
    const { inventory, versions, settings, provider } = args;
    const childOpts: pulumi.CustomResourceOptions = { parent: this, provider, dependsOn: [...(args.after.all ?? [])] };

    const scripts = new k8s.core.v1.ConfigMap(
      `${name}-scripts`,
      { metadata: { name: PROBE_JOB_NAME, namespace: PROBE_NAMESPACE }, data: renderProbeScripts() },
      childOpts,
    );
    // A changed script, image or endpoint changes the pod template, which Kubernetes cannot update:
    // Pulumi replaces the Job, deleting the old one first (its name is fixed). A Job that failed is
    // replaced on the next `pulumi up` (replaceUnready), so a fixed backend is probed again.
    const deadline = settings.jobDeadlineSeconds + 120;
    this.verified = new k8s.batch.v1.Job(
      `${name}-job`,
      {
        metadata: { name: PROBE_JOB_NAME, namespace: PROBE_NAMESPACE, annotations: { "pulumi.com/replaceUnready": "true" } },
        spec: renderProbeJobSpec(inventory, versions, settings),
      },
      {
        ...childOpts,
        dependsOn: [...(args.after.all ?? []), scripts],
        deleteBeforeReplace: true,
        customTimeouts: { create: `${deadline}s`, update: `${deadline}s` },
      },
    );

    this.blackboxExporter = new k8s.helm.v3.Release(
      `${name}-blackbox-exporter`,
      {
        name: "blackbox-exporter",
        chart: versions.charts.blackboxExporter.chart,
        version: versions.charts.blackboxExporter.version,
        repositoryOpts: { repo: versions.charts.blackboxExporter.repo },
        namespace: MONITORING_NAMESPACE,
        values: blackboxValues(settings),
        timeout: 600,
      },
      childOpts,
    );
    const targets = probeTargets(inventory, args.minioPort);
    this.scrapeConfigs = Object.fromEntries(
      renderProbeScrapeConfigSpecs(targets, settings, MONITORING_NAMESPACE).map((spec) => {
        const module = (spec.params as { module: string[] }).module[0];
        const resourceName = `keybuzz-backend-probe-${module.replace(/_/g, "-")}`;
        return [
          module,
          new k8s.apiextensions.CustomResource(
            `${name}-scrape-${module.replace(/_/g, "-")}`,
            {
              apiVersion: "monitoring.coreos.com/v1alpha1",
              kind: "ScrapeConfig",
              metadata: { name: resourceName, namespace: MONITORING_NAMESPACE },
              spec,
            },
            { ...childOpts, dependsOn: [...(args.after.all ?? []), this.blackboxExporter] },
          ),
        ];
      }),
    );
    this.registerOutputs({ verified: this.verified, blackboxExporter: this.blackboxExporter, scrapeConfigs: this.scrapeConfigs });
  }
}
