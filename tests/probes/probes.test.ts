import * as fs from "fs";
import * as path from "path";
import { loadVersions, parseInventory } from "../../config";
import {
  BACKEND_CONFIGMAP,
  BACKEND_SECRET,
  blackboxValues,
  parseProbesSettings,
  PROBE_CONTAINERS,
  PROBE_JOB_NAME,
  PROBE_NAMESPACE,
  probeTargets,
  renderProbeJobSpec,
  renderProbeScrapeConfigSpecs,
  renderProbeScripts,
} from "../../components/observability/probes";
import { BACKEND_PROBE_JOB } from "../../components/observability/monitoring";
import { MockRun, Registration, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const inventory = parseInventory(rawStackConfig("prod"));
const versions = loadVersions();
const settings = parseProbesSettings(undefined);

describe("keybuzz:probes settings", () => {
  it("defaults: a 300 s deadline, one retry, 10 s per check, the application bucket, a 30 s probe interval", () => {
    expect(settings).toEqual({
      jobDeadlineSeconds: 300,
      jobBackoffLimit: 1,
      checkTimeoutSeconds: 10,
      bucket: "keybuzz-attachments",
      probeIntervalSeconds: 30,
    });
  });

  it("a bad bucket name and a deadline too short for the PostgreSQL checks name their key", () => {
    expect(() => parseProbesSettings({ bucket: "Keybuzz_Attachments" })).toThrow(/keybuzz:probes\.bucket/);
    expect(() => parseProbesSettings({ jobDeadlineSeconds: 60, checkTimeoutSeconds: 20 })).toThrow(
      /keybuzz:probes\.jobDeadlineSeconds: 60 s cannot hold 5 checks .* raise it above 100/,
    );
  });
});

describe("probe Job (render)", () => {
  const spec = renderProbeJobSpec(inventory, versions, settings) as Doc;
  const pod = spec.template.spec;

  it("is bounded: activeDeadlineSeconds and backoffLimit from the settings, pods never restarted in place", () => {
    expect(spec).toMatchObject({ activeDeadlineSeconds: 300, backoffLimit: 1 });
    expect(pod.restartPolicy).toBe("Never");
  });

  it("one container per backend, each in the platform's own pinned image, running the mounted script for its service", () => {
    expect(pod.containers.map((container: Doc) => [container.name, container.image, container.command])).toEqual(
      PROBE_CONTAINERS.map((container) => [
        container.service,
        versions.images[container.image],
        [container.shell, "/opt/keybuzz/probe/backend-probe.sh", container.service],
      ]),
    );
    expect(pod.containers.map((container: Doc) => container.name)).toEqual(["postgres", "redis", "mariadb", "rabbitmq", "minio"]);
  });

  it("every container gets the backend's ConfigMap then Secret by name, and the load balancer's PostgreSQL ports", () => {
    for (const container of pod.containers as Doc[]) {
      expect(container.envFrom).toEqual([{ configMapRef: { name: BACKEND_CONFIGMAP } }, { secretRef: { name: BACKEND_SECRET } }]);
      const env = Object.fromEntries((container.env as Doc[]).map((entry) => [entry.name, entry.value]));
      expect(env).toMatchObject({
        KB_PG_WRITE_PORT: "5432",
        KB_PG_READ_PORT: "5433",
        KB_PGBOUNCER_PORT: "6432",
        KB_MINIO_BUCKET: "keybuzz-attachments",
      });
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
    }
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65534 });
    expect(pod.volumes).toContainEqual({ name: "credentials", secret: { secretName: BACKEND_SECRET, defaultMode: 0o440 } });
  });

  it("the scripts' ConfigMap carries the files of scripts/probes/ unchanged", () => {
    const dir = path.join(__dirname, "..", "..", "scripts", "probes");
    expect(renderProbeScripts()).toEqual(
      Object.fromEntries(fs.readdirSync(dir).map((file) => [file, fs.readFileSync(path.join(dir, file), "utf8")])),
    );
  });

  it("an internal load balancer forwarding no PgBouncer port is a ConfigError naming it", () => {
    const raw = rawStackConfig("prod") as Doc;
    const loadBalancers = (raw.loadBalancers as Doc[]).map((lb) =>
      lb.name === "lb-internal" ? { ...lb, services: lb.services.filter((service: Doc) => service.name !== "pgbouncer") } : lb,
    );
    expect(() => renderProbeJobSpec(parseInventory({ ...raw, loadBalancers }), versions, settings)).toThrow(
      /keybuzz:loadBalancers: lb-internal forwards no port to 6432 \(PgBouncer\)/,
    );
  });
});

describe("continuous probes (render)", () => {
  const targets = probeTargets(inventory, 9000);

  it("TCP connects to every internal load balancer port, HTTP liveness on every MinIO node", () => {
    expect(targets).toEqual([
      { endpoint: "postgres-write", module: "tcp_connect", target: "10.0.0.10:5432" },
      { endpoint: "postgres-read", module: "tcp_connect", target: "10.0.0.10:5433" },
      { endpoint: "pgbouncer", module: "tcp_connect", target: "10.0.0.10:6432" },
      { endpoint: "redis", module: "tcp_connect", target: "10.0.0.10:6379" },
      { endpoint: "rabbitmq", module: "tcp_connect", target: "10.0.0.10:5672" },
      // MinIO's HA S3 endpoint: the HAProxy listener behind the internal LB (issue 19).
      { endpoint: "minio", module: "tcp_connect", target: "10.0.0.10:9000" },
      { endpoint: "mariadb", module: "tcp_connect", target: "10.0.0.20:3306" },
      ...["minio-01", "minio-02", "minio-03"].map((name) => ({
        endpoint: `minio-${name}`,
        module: "http_2xx",
        target: `http://${inventory.servers.find((server) => server.name === name)?.privateIp}:9000/minio/health/live`,
      })),
    ]);
  });

  it("one ScrapeConfig per module through blackbox_exporter's /probe, job backend-probe, target relabelled as the blackbox docs say", () => {
    const specs = renderProbeScrapeConfigSpecs(targets, settings, "monitoring");
    expect(specs.map((spec) => [spec.jobName, spec.params])).toEqual([
      [BACKEND_PROBE_JOB, { module: ["tcp_connect"] }],
      [BACKEND_PROBE_JOB, { module: ["http_2xx"] }],
    ]);
    expect(specs[0]).toMatchObject({ metricsPath: "/probe", scrapeInterval: "30s", scrapeTimeout: "11s" });
    expect(specs[0].relabelings).toEqual([
      { sourceLabels: ["__address__"], targetLabel: "__param_target" },
      { sourceLabels: ["__param_target"], targetLabel: "instance" },
      { targetLabel: "__address__", replacement: "blackbox-exporter.monitoring.svc:9115" },
    ]);
    expect(specs[0].staticConfigs).toContainEqual({ targets: ["10.0.0.20:3306"], labels: { endpoint: "mariadb" } });
    expect(Object.keys((blackboxValues(settings).config as Doc).modules)).toEqual(["tcp_connect", "http_2xx"]);
  });
});

describe("backend probes in the prod plan (mock engine)", () => {
  let run: MockRun;
  beforeAll(async () => {
    run = await runProgram("prod");
  });
  const named = (type: string, name: string): Registration => {
    const found = run.registrations.find((candidate) => candidate.type === type && candidate.name === name);
    if (!found) throw new Error(`no ${type} named ${name}`);
    return found;
  };

  it("the Job runs in keybuzz after the add-ons' backend ConfigMap/Secret, every data cluster, proxy layer and internal LB", () => {
    const job = named("kubernetes:batch/v1:Job", "probes-job");
    expect(job.module).toBe("keybuzz:observability:BackendProbes");
    const inputs = reveal(job.inputs) as Doc;
    expect(inputs.metadata).toMatchObject({
      name: PROBE_JOB_NAME,
      namespace: PROBE_NAMESPACE,
      annotations: { "pulumi.com/replaceUnready": "true" },
    });
    expect(inputs.spec).toEqual(JSON.parse(JSON.stringify(renderProbeJobSpec(inventory, versions, settings))));
    expect(job.deleteBeforeReplace).toBe(true);
    for (const dependency of [
      "k8s-addons-backend-config",
      "k8s-addons-backend-credentials",
      "probes-scripts",
      "lb-internal",
      "lb-mariadb",
    ]) {
      expect(job.dependsOn).toContain(dependency);
    }
    // The end of every data module (its verification step) and of the proxy layers; not the ingress or API load balancers.
    for (const pattern of [
      /-postgres-verify$/,
      /^redis-verify$/,
      /^rabbitmq-verify$/,
      /^minio-verify$/,
      /^galera-.+-verify$/,
      /^proxysql-.+-verify$/,
      /-pgbouncer$/,
      /-haproxy$/,
    ]) {
      expect(job.dependsOn.filter((name) => pattern.test(name))).not.toEqual([]);
    }
    expect(job.dependsOn).not.toContain("lb-ingress-01");
  });

  it("the backend ConfigMap and Secret the Job names exist in its namespace", () => {
    for (const [type, name] of [
      ["kubernetes:core/v1:ConfigMap", BACKEND_CONFIGMAP],
      ["kubernetes:core/v1:Secret", BACKEND_SECRET],
    ]) {
      const found = run.registrations.filter(
        (registration) => registration.type === type && (registration.inputs.metadata as Doc | undefined)?.name === name,
      );
      expect(found.map((registration) => (registration.inputs.metadata as Doc).namespace)).toEqual([PROBE_NAMESPACE]);
    }
  });

  it("blackbox_exporter is the pinned chart in monitoring, and its ScrapeConfigs wait for it", () => {
    const release = named("kubernetes:helm.sh/v3:Release", "probes-blackbox-exporter");
    expect(reveal(release.inputs)).toMatchObject({
      chart: versions.charts.blackboxExporter.chart,
      version: versions.charts.blackboxExporter.version,
      namespace: "monitoring",
      values: blackboxValues(settings),
    });
    for (const module of ["tcp-connect", "http-2xx"]) {
      const scrape = named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", `probes-scrape-${module}`);
      expect(scrape.dependsOn).toContain("probes-blackbox-exporter");
      expect(scrape.dependsOn).toContain("k8s-addons-kube-prometheus-stack");
    }
  });
});
