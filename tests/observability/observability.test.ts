import { loadVersions, parseInventory } from "../../config";
import {
  CERT_EXPIRY_FILE,
  nodeExporterContainer,
  parseExportersSettings,
  renderNodeExporterScript,
} from "../../components/observability/exporters";
import { SCRAPE_JOBS } from "../../components/observability/monitoring";
import { MockRun, Registration, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const inventory = parseInventory(rawStackConfig("prod"));
const versions = loadVersions();
const COMMAND = "command:remote:Command";

describe("node_exporter (render)", () => {
  const settings = parseExportersSettings(undefined);

  it("runs the pinned image with the host's PID namespace and root read-only, on the private address only", () => {
    const spec = nodeExporterContainer(versions.images.nodeExporter, "10.0.0.120", settings);
    expect(spec.image).toBe(versions.images.nodeExporter);
    expect(spec.options).toEqual(["--pid", "host", "-v", "/:/host:ro,rslave"]);
    expect(spec.command).toEqual([
      "--path.rootfs=/host",
      "--web.listen-address=10.0.0.120:9100",
      "--collector.textfile.directory=/host/var/lib/keybuzz/node-exporter",
    ]);
    expect(CERT_EXPIRY_FILE.startsWith("/var/lib/keybuzz/node-exporter/")).toBe(true);
  });

  it("the step's body runs the container on host networking and scrapes its own endpoint", () => {
    const script = renderNodeExporterScript(versions.images.nodeExporter, "10.0.0.120", settings);
    expect(script).toContain("--network host");
    expect(script).toContain("KB_NODE_IP='10.0.0.120'");
    expect(script).toContain('curl -fsS --max-time 5 "http://$KB_NODE_IP:$KB_PORT/metrics"');
  });

  it("a certificate directory must be an absolute path", () => {
    expect(() => parseExportersSettings({ certificateDirs: ["etc/x"] })).toThrow(
      /keybuzz:exporters\.certificateDirs\.0|keybuzz:exporters\.certificateDirs\[0\]/,
    );
  });
});

describe("observability in the prod plan (mock engine)", () => {
  let run: MockRun;
  beforeAll(async () => {
    run = await runProgram("prod");
  });
  const ofType = (type: string) => run.registrations.filter((registration) => registration.type === type);
  const named = (type: string, name: string): Registration => {
    const found = ofType(type).find((candidate) => candidate.name === name);
    if (!found) throw new Error(`no ${type} named ${name}`);
    return found;
  };

  it("every server gets a node_exporter step after its verified base OS", () => {
    for (const server of inventory.servers) {
      const step = named(COMMAND, `${server.name}-node-exporter`);
      expect(step.dependsOn).toContain(`${server.name}-base-os-verify`);
      expect(step.parent).toContain("keybuzz:observability:Exporters");
    }
    expect(ofType(COMMAND).filter((step) => step.name.endsWith("-node-exporter"))).toHaveLength(inventory.servers.length);
  });

  it("ScrapeConfigs target every server's private address, labelled with cluster, server_role and node", () => {
    const scrape = (job: string) =>
      reveal(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", `monitoring-scrape-${job}`).inputs) as Doc;
    const node = scrape(SCRAPE_JOBS.node);
    expect(node.metadata).toEqual({ name: "keybuzz-node", namespace: "monitoring" });
    expect(node.spec.jobName).toBe("node");
    expect(node.spec.staticConfigs).toEqual(
      inventory.servers.map((server) => ({
        targets: [`${server.privateIp}:9100`],
        labels: { cluster: server.group, server_role: server.role, node: server.name },
      })),
    );
    const patroni = scrape(SCRAPE_JOBS.patroni);
    expect(patroni.spec.scheme).toBe("HTTPS");
    expect(patroni.spec.tlsConfig).toEqual({ ca: { configMap: { name: "keybuzz-scrape-ca", key: "platform-ca.crt" } } });
    expect(patroni.spec.staticConfigs.map((group: Doc) => group.labels.node)).toEqual(
      inventory.servers.filter((server) => server.group === "postgres").map((server) => server.name),
    );
    expect(scrape(SCRAPE_JOBS.rabbitmq).spec.staticConfigs.map((group: Doc) => group.targets[0])).toEqual(
      inventory.servers.filter((server) => server.group === "rabbitmq").map((server) => `${server.privateIp}:15692`),
    );
  });

  it("the PrometheusRule, the dashboards and metrics-server wait for kube-prometheus-stack", () => {
    const rules = named("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "monitoring-rules");
    expect(rules.dependsOn).toContain("k8s-addons-kube-prometheus-stack");
    const groups = (reveal(rules.inputs) as Doc).spec.groups.map((group: Doc) => group.name);
    expect(groups).toContain("keybuzz-postgres");
    const dashboards = ofType("kubernetes:core/v1:ConfigMap").filter((map) => map.name.startsWith("monitoring-dashboard-"));
    expect(dashboards.map((map) => (reveal(map.inputs) as Doc).metadata.labels)).toEqual(
      dashboards.map(() => ({ grafana_dashboard: "1" })),
    );
    expect(dashboards.length).toBeGreaterThanOrEqual(4);
    const metricsServer = reveal(named("kubernetes:helm.sh/v3:Release", "monitoring-metrics-server").inputs) as Doc;
    expect(metricsServer).toMatchObject({
      chart: "metrics-server",
      version: versions.charts.metricsServer.version,
      namespace: "kube-system",
    });
  });

  it("kube-prometheus-stack selects every ScrapeConfig and PrometheusRule", () => {
    const values = (reveal(named("kubernetes:helm.sh/v3:Release", "k8s-addons-kube-prometheus-stack").inputs) as Doc).values;
    expect(values.prometheus.prometheusSpec).toMatchObject({
      scrapeConfigSelectorNilUsesHelmValues: false,
      ruleSelectorNilUsesHelmValues: false,
    });
  });
});
