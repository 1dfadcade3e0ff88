import { spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { adminCidrFact, dockerfileBaseImages, readPatroniDockerfile } from "../../scripts/preflight/checks";
import { readLock } from "../../scripts/preflight/lock";
import { formatReport, summarizeFacts } from "../../scripts/preflight/report";
import { loadVersions } from "../../config/versions";
import { parseImageRef } from "../../scripts/preflight/registry";
import { healthyProject, startFakeHetzner } from "../support/fake-hetzner";
import * as yaml from "js-yaml";
import {
  buildDeb,
  freePort,
  ftparchive,
  LOOPBACK,
  OCI,
  serveFiles,
  startRegistry,
  TestRegistry,
  tinyImage,
} from "../support/preflight-servers";
import { tempDir } from "../support/tools";

const ROOT = path.resolve(__dirname, "..", "..");

/** `text` as a literal inside a RegExp. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * A stack of the test's own: prod's file with a real-looking admin address in place of the shipped
 * documentation-range placeholder (which the preflight rightly fails), so every fact can hold.
 * Written beside the real stack files (the preflight reads `Pulumi.<stack>.yaml` there) and removed after.
 */
const E2E_STACK = "preflight-e2e";
function writeE2eStack(): string {
  const file = path.join(ROOT, `Pulumi.${E2E_STACK}.yaml`);
  const prod = fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");
  const replaced = prod.replace(/^(\s*- )192\.0\.2\.\d+\/32\b.*$/m, "$1198.18.7.1/32");
  if (replaced === prod) throw new Error("Pulumi.prod.yaml no longer holds the 192.0.2.x placeholder this test replaces");
  fs.writeFileSync(file, replaced);
  return file;
}

/** Runs `npm run preflight -- <args>` (its ts-node command) with a clean environment; resolves with status, output, seconds. */
function preflight(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string; seconds: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(path.join(ROOT, "node_modules", ".bin", "ts-node"), ["--transpile-only", "scripts/preflight.ts", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

/** An endpoints file sending every upstream source of versions.yaml to `base` (a loopback address). */
function endpointsTo(dir: string, base: string): string {
  const versions = loadVersions();
  const domains = ["docker.io", "quay.io"];
  const file = path.join(dir, "endpoints.json");
  fs.writeFileSync(
    file,
    JSON.stringify({
      hcloud: `${base}/v1`,
      registries: Object.fromEntries(domains.map((domain) => [domain, base])),
      dockerApt: `${base}/docker`,
      kubernetesApt: `${base}/k8s`,
      pgdgApt: `${base}/pgdg`,
      charts: Object.fromEntries(Object.values(versions.charts).map((chart) => [chart.repo, `${base}/charts`])),
    }),
  );
  return file;
}

describe("npm run preflight", () => {
  const dir = tempDir("preflight-cli");
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("offline (every source refused) ends quickly with each fact UNREACHABLE and exit status 1", async () => {
    const port = await freePort(LOOPBACK.dead);
    const result = await preflight(["--stack", "prod", "--endpoints", endpointsTo(dir, `http://${LOOPBACK.dead}:${port}`)], {
      HCLOUD_TOKEN: "offline-test",
    });
    expect(result.status).toBe(1);
    expect(result.seconds).toBeLessThan(60);
    expect(result.stdout).toMatch(
      new RegExp(
        `images\\.etcd: ${escapeRegExp(loadVersions().images.etcd)} for linux/amd64 +registry quay\\.io +UNREACHABLE: connection refused \\(${LOOPBACK.dead}:${port}\\)`,
      ),
    );
    expect(result.stdout).toMatch(/token works +Hetzner API \S+ +UNREACHABLE: connection refused/);
    expect(result.stdout).toMatch(/^FAIL: 32 facts — 0 hold, 1 fail, 31 unreachable, 0 skipped$/m);
  });

  it("bounds a source that accepts connections but never answers (--timeout)", async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, LOOPBACK.dead, resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const result = await preflight(
        ["--stack", "prod", "--json", "--timeout", "1", "--endpoints", endpointsTo(dir, `http://${LOOPBACK.dead}:${port}`)],
        { HCLOUD_TOKEN: "offline-test" },
      );
      expect(result.status).toBe(1);
      // One timeout per source, sources in parallel: a few seconds, not one timeout per fact.
      expect(result.seconds).toBeLessThan(30);
      const report = JSON.parse(result.stdout) as { facts: { status: string; detail: string }[]; summary: { exitCode: number } };
      expect(report.summary.exitCode).toBe(1);
      expect(report.facts.filter((fact) => fact.status === "unreachable").map((fact) => fact.detail)).toEqual(
        Array(31).fill("no answer within 1 s"),
      );
    } finally {
      silent.close();
    }
  });

  it("exits 2 on a configuration error, naming the file and key", async () => {
    const limits = path.join(dir, "limits.yaml");
    fs.writeFileSync(limits, "servers: 40\nfloating_ips: 3\n");
    const result = await preflight(["--stack", "prod", "--limits", limits]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`--limits ${limits}: `);
    expect(result.stderr).toContain("floating_ips");
  });
});

describe("npm run preflight against loopback copies of every upstream source", () => {
  const dir = tempDir("preflight-e2e");
  const versions = loadVersions();
  const stops: (() => Promise<void>)[] = [];
  let endpoints: string;
  let limits: string;
  const digests: Record<string, string> = {};
  const token = "e2e-test-token";
  let registry: TestRegistry;

  beforeAll(async () => {
    const e2eStackFile = writeE2eStack();
    stops.push(async () => fs.rmSync(e2eStackFile, { force: true }));
    // Every image of versions.yaml (and the Dockerfile's FROM), as a one-platform amd64 image.
    registry = await startRegistry();
    stops.push(() => registry.stop());
    for (const reference of Object.values(versions.images)) {
      const image = parseImageRef(reference);
      const built = tinyImage("amd64", `${reference} layer`);
      digests[reference] = await registry.pushManifest(image.repository, image.tagOrDigest, built.manifest, OCI.manifest, built.blobs);
    }
    // The three apt repositories with exactly the pinned packages.
    const files = path.join(dir, "files");
    const docker = path.join(files, "docker");
    for (const name of ["docker-ce", "docker-ce-cli"]) buildDeb(docker, name, versions.docker.engine);
    buildDeb(docker, "containerd.io", versions.docker.containerd);
    ftparchive(docker, path.join(docker, "dists", "noble", "stable", "binary-amd64"));
    const minor = versions.kubernetes.version.split(".").slice(0, 2).join(".");
    const kubernetes = path.join(files, "k8s", `v${minor}`, "deb");
    for (const name of ["kubeadm", "kubelet", "kubectl"])
      buildDeb(kubernetes, name, `${versions.kubernetes.version}-${versions.kubernetes.packageRevision}`);
    ftparchive(kubernetes, kubernetes);
    const pgdg = path.join(files, "pgdg");
    buildDeb(pgdg, "postgresql-16-pgvector", versions.packages.pgvector);
    buildDeb(pgdg, "pgbackrest", versions.packages.pgbackrest);
    ftparchive(pgdg, path.join(pgdg, "dists", "bookworm-pgdg", "main", "binary-amd64"));
    // backup-01's pgBackRest: PGDG's Ubuntu suite, its own pool (only the Ubuntu build is listed there).
    const pgdgNoble = path.join(dir, "pgdg-noble");
    buildDeb(pgdgNoble, "pgbackrest", versions.packages.pgbackrestRepoHost);
    ftparchive(pgdgNoble, path.join(pgdg, "dists", "noble-pgdg", "main", "binary-amd64"));
    // One chart index listing every pinned chart.
    fs.mkdirSync(path.join(files, "charts"), { recursive: true });
    const entries = Object.fromEntries(
      Object.values(versions.charts).map((chart) => [chart.chart, [{ name: chart.chart, version: chart.version, apiVersion: "v2" }]]),
    );
    fs.writeFileSync(path.join(files, "charts", "index.yaml"), JSON.stringify({ apiVersion: "v1", entries }));
    const served = await serveFiles(LOOPBACK.files, files);
    stops.push(() => served.close());
    const api = await startFakeHetzner(healthyProject(["cx23", "cx33", "cx43"]), token);
    stops.push(() => api.close());
    endpoints = path.join(dir, "endpoints.yaml");
    fs.writeFileSync(
      endpoints,
      JSON.stringify({
        hcloud: api.baseUrl,
        registries: { "docker.io": registry.base, "quay.io": registry.base },
        dockerApt: `${served.base}/docker`,
        kubernetesApt: `${served.base}/k8s`,
        pgdgApt: `${served.base}/pgdg`,
        charts: Object.fromEntries(Object.values(versions.charts).map((chart) => [chart.repo, `${served.base}/charts`])),
      }),
    );
    limits = path.join(dir, "limits.yaml");
    fs.writeFileSync(limits, "servers: 50\nload_balancers: 10\nplacement_groups: 50\nprimary_ips: 100\nvolumes: 20\n");
  });
  afterAll(async () => {
    await Promise.all(stops.map((stop) => stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("exits 0 when every fact holds, and records each image's digest", async () => {
    const result = await preflight(["--stack", E2E_STACK, "--json", "--endpoints", endpoints, "--limits", limits], { HCLOUD_TOKEN: token });
    const report = JSON.parse(result.stdout) as {
      facts: { fact: string; status: string; digest?: string }[];
      summary: { exitCode: number };
    };
    expect(report.facts.filter((fact) => fact.status !== "ok")).toEqual([]);
    expect(result.status).toBe(0);
    expect(report.facts).toHaveLength(45);
    // lb-internal is an lb21 since MinIO's S3 service made it six services (issue 19): both LB types are checked.
    expect(report.facts.map((fact) => fact.fact)).toEqual(
      expect.arrayContaining([
        "load balancer type lb11 offered in fsn1, not deprecated",
        "load balancer type lb21 offered in fsn1, not deprecated",
      ]),
    );
    for (const [key, reference] of Object.entries(versions.images)) {
      // `images.redis:` and `images.redis ` only: `images.redisExporter` starts with `images.redis` too.
      expect(report.facts.find((fact) => new RegExp(`^images\\.${key}[: ]`).test(fact.fact))?.digest).toBe(digests[reference]);
    }
  });

  it("prints the table with a PASS summary", async () => {
    const result = await preflight(["--stack", E2E_STACK, "--endpoints", endpoints, "--limits", limits], { HCLOUD_TOKEN: token });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^fact +source +result$/m);
    expect(result.stdout).toMatch(/^PASS: 45 facts — 45 hold, 0 fail, 0 unreachable, 0 skipped$/m);
  });
  it("writes the digest lock, then holds against it, then fails a tag moved upstream", async () => {
    const lockFile = path.join(dir, "versions.lock.yaml");
    const written = await preflight(
      ["--stack", E2E_STACK, "--endpoints", endpoints, "--limits", limits, "--lock", lockFile, "--write-lock"],
      {
        HCLOUD_TOKEN: token,
      },
    );
    expect(written.status).toBe(0);
    expect(written.stderr).toContain(`wrote 14 digests to ${lockFile}`);
    expect((yaml.load(fs.readFileSync(lockFile, "utf8")) as { images: Record<string, string> }).images).toEqual(digests);

    const held = await preflight(["--stack", E2E_STACK, "--endpoints", endpoints, "--limits", limits, "--lock", lockFile], {
      HCLOUD_TOKEN: token,
    });
    expect(held.status).toBe(0);
    expect(held.stdout).toMatch(
      new RegExp(
        `images\\.redis: ${escapeRegExp(versions.images.redis)} for linux/amd64 .* ok: sha256:[0-9a-f]{64} \\(1 platform\\), as locked`,
      ),
    );

    // The same tag now names other content, as when a publisher re-pushes a tag.
    const moved = tinyImage("amd64", "redis rebuilt upstream");
    const movedDigest = await registry.pushManifest(
      "library/redis",
      versions.images.redis.split(":")[1],
      moved.manifest,
      OCI.manifest,
      moved.blobs,
    );
    const failed = await preflight(["--stack", E2E_STACK, "--endpoints", endpoints, "--limits", limits, "--lock", lockFile], {
      HCLOUD_TOKEN: token,
    });
    expect(failed.status).toBe(1);
    expect(failed.stdout).toContain(
      `FAIL: tag moved upstream: locked ${digests[versions.images.redis]}, the registry now serves ${movedDigest}`,
    );
    expect(failed.stdout).toMatch(/^FAIL: 45 facts — 44 hold, 1 fail, 0 unreachable, 0 skipped$/m);
  });
});

describe("preflight report and inputs", () => {
  it("takes the Patroni Dockerfile's base image from its FROM line (ARG default resolved)", () => {
    expect(dockerfileBaseImages(readPatroniDockerfile())).toEqual([loadVersions().images.postgres]);
    expect(dockerfileBaseImages("ARG A=redis:7.2.5\nFROM $A AS build\nFROM build\nFROM quay.io/x/y:1.0.0\n")).toEqual([
      "redis:7.2.5",
      "quay.io/x/y:1.0.0",
    ]);
  });

  it("fails world-open and placeholder admin CIDRs", () => {
    expect(adminCidrFact(["91.98.128.153/32", "10.20.0.0/16"]).status).toBe("ok");
    expect(adminCidrFact(["91.98.128.153/32", "0.0.0.0/0"])).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/^0\.0\.0\.0\/0 broader than \/16/),
    });
    expect(adminCidrFact(["10.0.0.0/8"]).status).toBe("fail");
    expect(adminCidrFact(["203.0.113.10/32"])).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("documentation range (RFC 5737)"),
    });
  });

  it("refuses a lock entry that is not a sha256 digest, naming it", () => {
    const file = path.join(tempDir("preflight-lock"), "versions.lock.yaml");
    fs.writeFileSync(file, "images:\n  redis:7.2.5-alpine: sha256:abc\n");
    expect(() => readLock(file)).toThrow(/versions\.lock\.yaml: images\.redis:7\.2\.5-alpine: must be a sha256:<64 hex> manifest digest/);
    expect(readLock(path.join(path.dirname(file), "absent.yaml"))).toEqual({});
  });

  it("passes only when no fact fails or is unreachable (skipped rows do not fail)", () => {
    const ok = { fact: "a", source: "s", status: "ok" as const, detail: "d" };
    expect(summarizeFacts([ok, { ...ok, status: "skipped" }]).exitCode).toBe(0);
    expect(summarizeFacts([ok, { ...ok, status: "unreachable" }]).exitCode).toBe(1);
    expect(summarizeFacts([ok, { ...ok, status: "fail" }]).exitCode).toBe(1);
    expect(formatReport("prod", [ok])).toMatch(/^PASS: 1 facts — 1 hold, 0 fail, 0 unreachable, 0 skipped$/m);
  });
});
