import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderEtcdRestoreScript, renderEtcdSnapshotScript } from "../../components/backup/etcd";
import { clusterDir } from "../support/loopback/loopback";
import { issueTestPki } from "../support/loopback/pki";
import { ownedDir, ownedFile, Supervisor, waitFor } from "../support/loopback/supervisor";
import { requireTool } from "../support/tools";

/**
 * Issue 17, etcd: a loopback etcd (Debian's etcd-server, mutual TLS) gets keys, the rendered
 * snapshot script saves it (twice more, to check the retention), the rendered restore script builds
 * a new data directory from the newest snapshot, an etcd started on it serves the same keys.
 */
const ADDRESS = "127.0.20.1";
const CLIENT = `https://${ADDRESS}:2379`;
const PEER = `https://${ADDRESS}:2380`;

describe("etcd snapshot and restore on loopback (Debian's etcd, rendered scripts)", () => {
  const supervisor = new Supervisor();
  let dir = "";
  afterAll(async () => {
    await supervisor.stopAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("restores every key of the snapshot, and keeps only the newest snapshots", async () => {
    for (const tool of ["etcd", "etcdctl", "openssl"]) requireTool(tool);
    dir = clusterDir("etcd-backup");
    const pki = issueTestPki(path.join(dir, "pki"), [{ name: "etcd-01", address: ADDRESS }]);
    const tls = { ca: pki.caFile, cert: pki.nodes["etcd-01"].certFile, key: pki.nodes["etcd-01"].keyFile };
    const start = (name: string, dataDir: string, state: "new" | "existing") =>
      supervisor.start({
        name,
        command: "/usr/bin/etcd",
        args: [
          "--name=etcd-01",
          `--data-dir=${dataDir}`,
          `--listen-client-urls=${CLIENT}`,
          `--advertise-client-urls=${CLIENT}`,
          `--listen-peer-urls=${PEER}`,
          `--initial-advertise-peer-urls=${PEER}`,
          `--initial-cluster=etcd-01=${PEER}`,
          `--initial-cluster-state=${state}`,
          "--client-cert-auth",
          `--trusted-ca-file=${tls.ca}`,
          `--cert-file=${tls.cert}`,
          `--key-file=${tls.key}`,
          "--peer-client-cert-auth",
          `--peer-trusted-ca-file=${tls.ca}`,
          `--peer-cert-file=${tls.cert}`,
          `--peer-key-file=${tls.key}`,
        ],
        logFile: path.join(dir, `${name}.log`),
      });
    const etcdctl = (...args: string[]) => {
      const result = spawnSync(
        "etcdctl",
        [`--endpoints=${CLIENT}`, `--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`, ...args],
        {
          encoding: "utf8",
          env: { ...process.env, ETCDCTL_API: "3" },
          timeout: 30_000,
        },
      );
      if (result.status !== 0) throw new Error(`etcdctl ${args.join(" ")}: ${result.stderr}`);
      return result.stdout;
    };
    start("etcd-original", path.join(dir, "original"), "new");
    await waitFor(
      "etcd to answer",
      async () => {
        try {
          return etcdctl("endpoint", "status").includes(CLIENT);
        } catch {
          return false;
        }
      },
      60_000,
      500,
    );
    for (let index = 0; index < 50; index++) etcdctl("put", `/keybuzz/test/key-${String(index).padStart(2, "0")}`, `value-${index}`);
    const before = etcdctl("get", "--prefix", "/keybuzz/");

    const snapshots = ownedDir(path.join(dir, "snapshots"), "root");
    const textfile = ownedDir(path.join(dir, "textfile"), "root");
    const snapshotScript = ownedFile(
      path.join(dir, "keybuzz-etcd-snapshot"),
      renderEtcdSnapshotScript({
        cluster: "patroni",
        endpoints: ["https://127.0.20.9:2379", CLIENT],
        tls,
        snapshotDir: snapshots,
        keep: 2,
        textfileDir: textfile,
      }),
      "root",
      0o755,
    );
    for (let run = 0; run < 3; run++) {
      const result = spawnSync(snapshotScript, { encoding: "utf8", timeout: 120_000 });
      expect([result.status, result.stderr]).toEqual([0, expect.anything()]);
      await new Promise((resolve) => setTimeout(resolve, 1100));
    }
    const kept = fs
      .readdirSync(snapshots)
      .filter((file) => file.endsWith(".db"))
      .sort();
    expect(kept).toHaveLength(2);
    expect(fs.readFileSync(path.join(textfile, "keybuzz-backup-etcd-patroni.prom"), "utf8")).toMatch(/system="etcd",type="patroni"\} \d+/);

    await supervisor.stop("etcd-original");
    const restoredDir = path.join(dir, "restored");
    const restoreScript = ownedFile(
      path.join(dir, "keybuzz-etcd-restore"),
      renderEtcdRestoreScript({
        name: "etcd-01",
        initialCluster: `etcd-01=${PEER}`,
        peerUrl: PEER,
        token: "keybuzz-restored",
        dataDir: restoredDir,
      }),
      "root",
      0o755,
    );
    const startedAt = Date.now();
    const restore = spawnSync(restoreScript, [path.join(snapshots, kept[kept.length - 1])], { encoding: "utf8", timeout: 120_000 });
    expect([restore.status, restore.stderr]).toEqual([0, expect.anything()]);
    start("etcd-restored", restoredDir, "existing");
    await waitFor(
      "the restored etcd to answer",
      async () => {
        try {
          return etcdctl("endpoint", "status").includes(CLIENT);
        } catch {
          return false;
        }
      },
      60_000,
      500,
    );
    const after = etcdctl("get", "--prefix", "/keybuzz/");
    console.log(
      `etcd restore: ${before.trim().split("\n").length / 2} keys restored in ${((Date.now() - startedAt) / 1000).toFixed(1)} s; snapshots kept ${kept.length} of 3`,
    );
    expect(after).toBe(before);
  });
});
