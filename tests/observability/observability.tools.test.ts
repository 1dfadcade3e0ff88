import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { CERT_EXPIRY_FILE } from "../../components/observability/exporters";
import {
  CERTIFICATE_EXPIRY_METRIC,
  DASHBOARD_METRICS,
  DATASOURCE_VARIABLE,
  renderDashboards,
} from "../../components/observability/monitoring";
import { SCRIPTS_DIR } from "../../components/lib/scripts";
import { requireTool, run, selfSignedCertificate, tempDir } from "../support/tools";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const dir = tempDir("observability");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("certificate scan (scripts/exporters/cert-expiry.sh, real openssl and promtool)", () => {
  it("writes one series per certificate with its notAfter, skips keys, and promtool accepts the file", () => {
    const openssl = requireTool("openssl");
    const pki = path.join(dir, "pki", "etcd");
    fs.mkdirSync(pki, { recursive: true });
    const cert = path.join(pki, "server.crt");
    const key = path.join(pki, "server.key.pem");
    selfSignedCertificate({ certFile: cert, keyFile: key, commonName: "test", days: 30 });
    const notAfter = run(openssl, ["x509", "-noout", "-enddate", "-in", cert])
      .stdout.trim()
      .replace(/^notAfter=/, "");
    const output = path.join(dir, path.basename(CERT_EXPIRY_FILE));
    const scan = run("bash", [
      path.join(SCRIPTS_DIR, "exporters", "cert-expiry.sh"),
      output,
      path.join(dir, "pki"),
      path.join(dir, "absent"),
    ]);
    expect(scan.stderr).toBe("");
    expect(scan.status).toBe(0);
    const text = fs.readFileSync(output, "utf8");
    const series = text.split("\n").filter((line) => line.startsWith(CERTIFICATE_EXPIRY_METRIC));
    expect(series).toEqual([`${CERTIFICATE_EXPIRY_METRIC}{path="${cert}"} ${Math.floor(Date.parse(notAfter) / 1000)}`]);
    const lint = run(requireTool("promtool"), ["check", "metrics"], { input: text });
    expect(lint.stdout + lint.stderr).toBe("");
    expect(lint.status).toBe(0);
  });
});

describe("dashboards", () => {
  const dashboards = renderDashboards();
  const queries = Object.entries(dashboards).flatMap(([file, json]) =>
    (json.panels as Doc[]).flatMap((panel) => (panel.targets as Doc[]).map((target) => ({ file, panel, target }))),
  );
  /**
   * Metric names in a PromQL expression: what is left once label matchers, range selectors and
   * grouping clauses (`by (…)`, `on (…)`) are removed, minus function names (followed by `(`),
   * operators' keywords and numbers.
   */
  const metricsOf = (expr: string) =>
    [
      ...expr
        .replace(/\{[^}]*\}|\[[^\]]*\]/g, " ")
        .replace(/\b(by|on|without|ignoring)\s*\([^)]*\)/g, " ")
        .matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?![a-zA-Z0-9_:]|\s*\()/g),
    ]
      .map((match) => match[0])
      .filter((word) => !["and", "or", "unless", "bool", "group_left", "group_right"].includes(word));

  it("are valid JSON, with a datasource variable every panel and query reads", () => {
    for (const [file, json] of Object.entries(dashboards)) {
      const parsed = JSON.parse(JSON.stringify(json)) as Doc;
      expect(parsed.templating.list).toContainEqual(
        expect.objectContaining({ name: DATASOURCE_VARIABLE, type: "datasource", query: "prometheus" }),
      );
      expect(file).toMatch(/^keybuzz-[a-z]+\.json$/);
    }
    for (const { panel, target } of queries) {
      expect(panel.datasource).toEqual({ type: "prometheus", uid: `\${${DATASOURCE_VARIABLE}}` });
      expect(target.datasource).toEqual(panel.datasource);
    }
  });

  it("query only metrics that a deployed exporter produces", () => {
    const produced = new Set(["up", ...Object.values(DASHBOARD_METRICS).flat()]);
    const unknown = queries.flatMap(({ file, target }) =>
      metricsOf(String(target.expr))
        .filter((name) => !produced.has(name))
        .map((name) => `${file}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it("every node_exporter metric they list is served by a real node_exporter", async () => {
    const exporter = requireTool("prometheus-node-exporter");
    const address = `127.0.161.${20 + (process.pid % 200)}:19100`;
    const child: ChildProcess = spawn(exporter, [`--web.listen-address=${address}`], { stdio: "ignore" });
    try {
      let body = "";
      for (let attempt = 0; attempt < 50 && !body.includes("node_exporter_build_info"); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        body = run(requireTool("curl"), ["-fsS", "--max-time", "2", `http://${address}/metrics`]).stdout ?? "";
      }
      const served = new Set(
        body
          .split("\n")
          .filter((line) => line && !line.startsWith("#"))
          .map((line) => line.split(/[{ ]/)[0]),
      );
      expect((DASHBOARD_METRICS.node ?? []).filter((name) => !served.has(name))).toEqual([]);
    } finally {
      child.kill("SIGTERM");
    }
  });
});
