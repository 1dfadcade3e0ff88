import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { renderHaproxyConfig, renderHaproxyStepScript } from "../../components/data/haproxy";
import { renderStepScript } from "../../components/lib/remote";
import { hostScript, shellVariables } from "../../components/lib/scripts";
import { parsePostgresSettings, postgresHaproxyListeners } from "../../components/data/postgres";
import { DEFAULT_MINIO_SETTINGS, minioHaproxyListener } from "../../components/data/minio";
import { loadVersions, parseInventory } from "../../config";
import { rawStackConfig } from "../support/stack-config";
import { runBash } from "../support/bash-fakes";
import { requireTool, run, selfSignedCertificate, tempDir } from "../support/tools";

const inventory = parseInventory(rawStackConfig("prod"));

/** A throwaway CA certificate: HAProxy loads the ca-file of `check-ssl verify required` at check time. */
function caFile(dir: string): string {
  const file = path.join(dir, "ca.crt");
  selfSignedCertificate({ certFile: file, keyFile: path.join(dir, "ca.key"), commonName: "test-ca", days: 1 });
  return file;
}

describe("haproxy -c on the rendered haproxy.cfg", () => {
  it("accepts the PostgreSQL listeners without a warning", () => {
    const haproxy = requireTool("haproxy");
    const dir = tempDir("haproxy");
    const listeners = postgresHaproxyListeners(inventory, parsePostgresSettings(undefined), { caFile: caFile(dir) });
    const config = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(config, renderHaproxyConfig(listeners));
    const result = run(haproxy, ["-c", "-f", config]);
    expect(result.stderr.trim()).toBe("");
    expect(result.stdout).toMatch(/Configuration file is valid/);
    expect(result.status).toBe(0);
  });

  it("accepts the MinIO S3 listener without a warning", () => {
    const dir = tempDir("haproxy-minio");
    const config = path.join(dir, "haproxy.cfg");
    const nodes = [
      { name: "minio-01", address: "10.0.0.134" },
      { name: "minio-02", address: "10.0.0.131" },
      { name: "minio-03", address: "10.0.0.132" },
    ];
    fs.writeFileSync(config, renderHaproxyConfig([minioHaproxyListener(nodes)]));
    const result = run(requireTool("haproxy"), ["-c", "-f", config]);
    expect(result.stderr.trim()).toBe("");
    expect(result.stdout).toMatch(/Configuration file is valid/);
    expect(result.status).toBe(0);
  });

  it("shellcheck accepts the rendered HAProxy step script", () => {
    const file = path.join(tempDir("haproxy-step"), "haproxy-step.sh");
    const listeners = postgresHaproxyListeners(inventory, parsePostgresSettings(undefined));
    fs.writeFileSync(file, renderStepScript("haproxy-01-haproxy", [], renderHaproxyStepScript(loadVersions().images.haproxy, listeners)));
    expect(run(requireTool("shellcheck"), ["-s", "bash", file]).stdout).toBe("");
  });

  it("rejects a listener with a bad line (the check is real)", () => {
    const haproxy = requireTool("haproxy");
    const dir = tempDir("haproxy-bad");
    const config = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(
      config,
      renderHaproxyConfig([{ name: "broken", port: 15432, lines: ["mode tcp", "server a 127.0.0.1:5432 check fastinter soon"] }]),
    );
    expect(run(haproxy, ["-c", "-f", config]).status).not.toBe(0);
  });
});

/** A port nobody listens on at the moment (the kernel's pick on `address`). */
async function freePort(address: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Debian's haproxy, the rendered haproxy.cfg, and the step's own check (scripts/haproxy/server-check.sh)
// reading the real stats CSV: HAProxy shows a server UP before its first check, so a listener whose
// backends all refuse connections must not pass until a check has actually succeeded.
describe("the step's server check against the real haproxy", () => {
  const address = "127.0.14.1";
  let haproxy: ChildProcess | undefined;
  let backend: net.Server | undefined;
  let statsUrl = "";
  let metricsUrl = "";

  beforeAll(async () => {
    backend = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => backend!.listen(0, address, resolve));
    const upPort = (backend.address() as net.AddressInfo).port;
    const [statsPort, upListen, downListen, refused1, refused2, prometheusPort] = await Promise.all(
      [1, 2, 3, 4, 5, 6].map(() => freePort(address)),
    );
    const config = renderHaproxyConfig(
      [
        { name: "up", port: upListen, lines: ["mode tcp", "default-server inter 500ms", `server live ${address}:${upPort} check`] },
        {
          name: "down",
          port: downListen,
          // A long interval keeps both servers at HAProxy's initial "UP, not checked yet" for the whole test.
          lines: [
            "mode tcp",
            "default-server inter 60s",
            `server dead-1 ${address}:${refused1} check`,
            `server dead-2 ${address}:${refused2} check`,
          ],
        },
      ],
      { bindAddress: address, statsAddress: address, statsPort, prometheusPort },
    );
    const file = path.join(tempDir("haproxy-checks"), "haproxy.cfg");
    fs.writeFileSync(file, config);
    haproxy = spawn(requireTool("haproxy"), ["-db", "-f", file], { stdio: "ignore" });
    statsUrl = `http://${address}:${statsPort}/stats;csv`;
    metricsUrl = `http://${address}:${prometheusPort}/metrics`;
    for (let attempt = 0; attempt < 50 && run("curl", ["-fsS", statsUrl]).status !== 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  afterAll(() => {
    haproxy?.kill("SIGKILL");
    backend?.close();
  });

  const checkedServer = (proxy: string) =>
    runBash(
      `${shellVariables({ KB_STATS_URL: statsUrl })}\n${hostScript("haproxy", "server-check.sh")}\nkb_haproxy_checked_server ${proxy}`,
    );
  const csvRows = (proxy: string) =>
    run("curl", ["-fsS", statsUrl])
      .stdout.split("\n")
      .map((line) => line.split(","))
      .filter((fields) => fields[0] === proxy && !["FRONTEND", "BACKEND"].includes(fields[1]));

  it("passes a listener whose backend answered its check", async () => {
    const deadline = Date.now() + 5000;
    while (checkedServer("up").status !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(checkedServer("up").status).toBe(0);
    expect(csvRows("up").map((fields) => [fields[1], fields[17], fields[36]])).toEqual([["live", "UP", "L4OK"]]);
  });

  it("fails a listener whose backends are down, although HAProxy still shows them UP before their first check", () => {
    const rows = csvRows("down");
    // The defect: by the status column alone both dead servers look UP (their check has not run: INI).
    expect(rows.map((fields) => [fields[1], fields[17].replace(/ .*/, ""), fields[36]])).toEqual([
      ["dead-1", "UP", "INI"],
      ["dead-2", "UP", "INI"],
    ]);
    expect(checkedServer("down").status).toBe(1);
  });

  it("fails when the stats page does not answer", () => {
    const result = runBash(
      `${shellVariables({ KB_STATS_URL: `http://${address}:1/stats;csv` })}\n${hostScript("haproxy", "server-check.sh")}\nkb_haproxy_checked_server up`,
    );
    expect(result.status).not.toBe(0);
  });

  it("serves the Prometheus metrics HaproxyBackendDown reads on the exporter's frontend", async () => {
    const deadline = Date.now() + 5000;
    while (checkedServer("up").status !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    const metrics = run("curl", ["-fsS", metricsUrl]);
    expect(metrics.status).toBe(0);
    // The rule's metric and labels (components/observability/monitoring/render.ts): one live server behind "up".
    expect(metrics.stdout).toMatch(/^haproxy_backend_active_servers\{proxy="up"\} 1$/m);
    expect(metrics.stdout).toMatch(/^haproxy_backend_active_servers\{proxy="down"\} \d+$/m);
    // The stats page is a listen section without servers: always 0, which HaproxyBackendDown leaves out.
    expect(metrics.stdout).toMatch(/^haproxy_backend_active_servers\{proxy="stats"\} 0$/m);
    expect(metrics.stdout).not.toMatch(/^haproxy_backend_\w+\{proxy="prometheus"/m);
    expect(run("curl", ["-fsS", metricsUrl.replace(/metrics$/, "other")]).status).not.toBe(0);
  });
});

// The MinIO listener (components/data/minio/render.ts) in Debian's haproxy, in front of two stand-in
// nodes that answer MinIO's cluster probe with 200 or 503 (as ClusterCheckHandler does with and
// without write quorum): S3 requests reach only the node whose probe answers 200, and move when that changes.
describe("the MinIO listener against the real haproxy", () => {
  const address = "127.0.14.1";
  const nodeAddresses = ["127.0.14.2", "127.0.14.3"];
  const healthy = new Map<string, boolean>([
    ["minio-01", true],
    ["minio-02", false],
  ]);
  let haproxy: ChildProcess | undefined;
  const servers: http.Server[] = [];
  let s3Url = "";
  let statsUrl = "";

  beforeAll(async () => {
    const apiPort = await freePort(nodeAddresses[0]);
    const nodes = [...healthy.keys()].map((name, index) => ({ name, address: nodeAddresses[index] }));
    for (const node of nodes) {
      const server = http.createServer((request, response) => {
        if (request.url === "/minio/health/cluster") response.writeHead(healthy.get(node.name) ? 200 : 503).end();
        else response.writeHead(200).end(node.name);
      });
      await new Promise<void>((resolve) => server.listen(apiPort, node.address, resolve));
      servers.push(server);
    }
    const statsPort = await freePort(address);
    const config = renderHaproxyConfig([minioHaproxyListener(nodes, { ...DEFAULT_MINIO_SETTINGS, apiPort })], {
      bindAddress: address,
      statsAddress: address,
      statsPort,
    });
    const file = path.join(tempDir("haproxy-minio-checks"), "haproxy.cfg");
    fs.writeFileSync(file, config);
    haproxy = spawn(requireTool("haproxy"), ["-db", "-f", file], { stdio: "ignore" });
    s3Url = `http://${address}:${apiPort}/keybuzz-attachments/object`;
    statsUrl = `http://${address}:${statsPort}/stats;csv`;
  });
  afterAll(() => {
    haproxy?.kill("SIGKILL");
    for (const server of servers) server.close();
  });

  /** The status column of each MinIO server in HAProxy's stats CSV. */
  const statuses = () =>
    run("curl", ["-fsS", statsUrl])
      .stdout.split("\n")
      .map((line) => line.split(","))
      .filter((fields) => fields[0] === "minio" && !["FRONTEND", "BACKEND"].includes(fields[1]))
      .map((fields) => `${fields[1]} ${fields[17]}`);
  async function waitForStatuses(expected: string[]): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (JSON.stringify(statuses()) !== JSON.stringify(expected) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(statuses()).toEqual(expected);
  }
  // Asked from this process without blocking it: the stand-in nodes answer on its event loop.
  const answeredBy = () =>
    Promise.all(Array.from({ length: 6 }, () => fetch(s3Url, { signal: AbortSignal.timeout(2000) }).then((response) => response.text())));

  it("sends every request to the node whose cluster probe answers 200", async () => {
    await waitForStatuses(["minio-01 UP", "minio-02 DOWN"]);
    expect(new Set(await answeredBy())).toEqual(new Set(["minio-01"]));
  });

  it("moves them when that node loses its write quorum and the other has it", async () => {
    healthy.set("minio-01", false);
    healthy.set("minio-02", true);
    await waitForStatuses(["minio-01 DOWN", "minio-02 UP"]);
    expect(new Set(await answeredBy())).toEqual(new Set(["minio-02"]));
  });
});
