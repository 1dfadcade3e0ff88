import * as fs from "fs";
import * as path from "path";
import { checkAptPins, parsePackagesIndex } from "../../scripts/preflight/apt";
import { checkCharts } from "../../scripts/preflight/helm";
import { buildDeb, ftparchive, LOOPBACK, serveFiles } from "../support/preflight-servers";
import { tempDir } from "../support/tools";

describe("preflight: apt pins against repositories laid out by apt-ftparchive", () => {
  let served: { base: string; close: () => Promise<void> };
  let root: string;

  beforeAll(async () => {
    root = tempDir("preflight-apt");
    // Docker's layout: dists/<codename>/stable/binary-amd64, compressed index.
    const docker = path.join(root, "docker");
    buildDeb(docker, "docker-ce", "5:27.5.1-1~ubuntu.24.04~noble");
    buildDeb(docker, "docker-ce", "5:28.0.0-1~ubuntu.24.04~noble");
    ftparchive(docker, path.join(docker, "dists", "noble", "stable", "binary-amd64"));
    // pkgs.k8s.io's flat layout (`deb … /`), plain index only.
    const kubernetes = path.join(root, "k8s", "v1.33", "deb");
    buildDeb(kubernetes, "kubeadm", "1.33.5-1.1");
    ftparchive(kubernetes, kubernetes, true);
    served = await serveFiles(LOOPBACK.files, root);
  });
  afterAll(async () => {
    await served?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("reads apt-ftparchive's stanzas", () => {
    const index = parsePackagesIndex(
      fs.readFileSync(path.join(root, "docker", "dists", "noble", "stable", "binary-amd64", "Packages"), "utf8"),
    );
    expect([...(index.get("docker-ce") ?? [])].sort()).toEqual(["5:27.5.1-1~ubuntu.24.04~noble", "5:28.0.0-1~ubuntu.24.04~noble"]);
  });

  it("finds a present version and fails an absent one, naming what the index has", async () => {
    const docker = { label: "Docker CE (noble)", indexUrl: `${served.base}/docker/dists/noble/stable/binary-amd64` };
    const kubernetes = { label: "pkgs.k8s.io v1.33", indexUrl: `${served.base}/k8s/v1.33/deb` };
    const rows = await checkAptPins(
      [
        { repository: docker, packageName: "docker-ce", version: "5:27.5.1-1~ubuntu.24.04~noble", key: "docker.engine" },
        { repository: docker, packageName: "docker-ce", version: "5:27.9.9-1~ubuntu.24.04~noble", key: "docker.engine" },
        { repository: docker, packageName: "containerd.io", version: "1.7.27-1", key: "docker.containerd" },
        { repository: kubernetes, packageName: "kubeadm", version: "1.33.5-1.1", key: "kubernetes.version" },
        { repository: kubernetes, packageName: "kubeadm", version: "1.33.6-1.1", key: "kubernetes.version" },
      ],
      5000,
    );
    expect(rows.map((row) => row.status)).toEqual(["ok", "fail", "fail", "ok", "fail"]);
    expect(rows[1].detail).toContain("version not in the index (it lists 5:27.5.1-1~ubuntu.24.04~noble, 5:28.0.0-1~ubuntu.24.04~noble)");
    expect(rows[2].detail).toBe("package not in the index");
    expect(rows[4].detail).toContain("it lists 1.33.5-1.1");
  });

  it("fails a repository that serves no index", async () => {
    const [row] = await checkAptPins(
      [
        {
          repository: { label: "PGDG bookworm-pgdg", indexUrl: `${served.base}/pgdg/dists/bookworm-pgdg/main/binary-amd64` },
          packageName: "postgresql-16-pgvector",
          version: "0.8.1-1.pgdg120+1",
          key: "packages.pgvector",
        },
      ],
      5000,
    );
    expect(row.status).toBe("fail");
    expect(row.detail).toContain("no Packages index");
  });
});

describe("preflight: Helm chart versions against a chart repository index.yaml", () => {
  let served: { base: string; close: () => Promise<void> };
  let root: string;
  const repo = "https://charts.keybuzz.test";

  beforeAll(async () => {
    root = tempDir("preflight-charts");
    // Helm's repository index format (apiVersion v1, entries.<chart>[] newest first).
    fs.writeFileSync(
      path.join(root, "index.yaml"),
      [
        "apiVersion: v1",
        "entries:",
        "  hcloud-csi:",
        "    - { name: hcloud-csi, version: 2.18.0, apiVersion: v2, urls: [hcloud-csi-2.18.0.tgz], digest: aa }",
        "    - { name: hcloud-csi, version: 2.17.0, apiVersion: v2, urls: [hcloud-csi-2.17.0.tgz], digest: bb }",
        "generated: '2026-01-01T00:00:00Z'",
        "",
      ].join("\n"),
    );
    served = await serveFiles(LOOPBACK.files, root);
  });
  afterAll(async () => {
    await served?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("finds a listed version, fails an unlisted version and an unlisted chart", async () => {
    const rows = await checkCharts(
      [
        { key: "charts.hcloudCsi", repo, chart: "hcloud-csi", version: "2.17.0" },
        { key: "charts.hcloudCsi", repo, chart: "hcloud-csi", version: "2.16.9" },
        { key: "charts.other", repo, chart: "other", version: "1.0.0" },
      ],
      { [repo]: served.base },
      5000,
    );
    expect(rows.map((row) => row.status)).toEqual(["ok", "fail", "fail"]);
    expect(rows[1].detail).toBe("version not in index.yaml (newest listed: 2.18.0, 2.17.0)");
    expect(rows[2].detail).toBe("chart other not in index.yaml");
  });
});
