import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { pemCertificates, renderEtcdRestoreScript, renderEtcdSnapshotScript } from "../../components/backup/etcd";
import { renderEtcdClientCertScript } from "../../components/k8s/cluster/render";
import { renderStepScript } from "../../components/lib/remote";
import { clusterDir } from "../support/loopback/loopback";
import { issueTestPki, TestPki } from "../support/loopback/pki";
import { ownedDir, ownedFile, Supervisor, waitFor } from "../support/loopback/supervisor";
import { requireTool } from "../support/tools";

/**
 * Issue 17, etcd: a loopback etcd (Debian's etcd-server, mutual TLS) gets keys; backup-01's client
 * certificate is issued by the rendered signing step of the first control plane (a request signed
 * with the etcd CA, as for Kubernetes' etcd); the rendered snapshot script saves it with that
 * certificate (three runs, to check the retention). The newest snapshot is restored by the rendered
 * restore script into a new data directory of one member, then into a new 3-member cluster; each
 * serves the same keys.
 */
const ADDRESSES = ["127.0.20.1", "127.0.20.2", "127.0.20.3"];
const MEMBERS = ADDRESSES.map((address, index) => ({ name: `etcd-0${index + 1}`, address }));
const clientUrl = (address: string) => `https://${address}:2379`;
const peerUrl = (address: string) => `https://${address}:2380`;

describe("etcd snapshot and restore on loopback (Debian's etcd, rendered scripts)", () => {
  const supervisor = new Supervisor();
  let dir = "";
  let pki: TestPki;
  let client: { ca: string; cert: string; key: string };
  let before = "";
  let newestSnapshot = "";
  afterAll(async () => {
    await supervisor.stopAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = (process: string, member: (typeof MEMBERS)[number], dataDir: string, initialCluster: string, state: "new" | "existing") => {
    const tls = pki.nodes[member.name];
    supervisor.start({
      name: process,
      command: "/usr/bin/etcd",
      args: [
        `--name=${member.name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${clientUrl(member.address)}`,
        `--advertise-client-urls=${clientUrl(member.address)}`,
        `--listen-peer-urls=${peerUrl(member.address)}`,
        `--initial-advertise-peer-urls=${peerUrl(member.address)}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        "--client-cert-auth",
        `--trusted-ca-file=${pki.caFile}`,
        `--cert-file=${tls.certFile}`,
        `--key-file=${tls.keyFile}`,
        "--peer-client-cert-auth",
        `--peer-trusted-ca-file=${pki.caFile}`,
        `--peer-cert-file=${tls.certFile}`,
        `--peer-key-file=${tls.keyFile}`,
      ],
      logFile: path.join(dir, `${process}.log`),
    });
  };
  /** etcdctl against `address` with backup-01's client certificate. */
  const etcdctl = (address: string, ...args: string[]) => {
    const result = spawnSync(
      "etcdctl",
      [`--endpoints=${clientUrl(address)}`, `--cacert=${client.ca}`, `--cert=${client.cert}`, `--key=${client.key}`, ...args],
      { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: 30_000 },
    );
    if (result.status !== 0) throw new Error(`etcdctl ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  const answers = (address: string, what: string) =>
    waitFor(
      what,
      async () => {
        try {
          return etcdctl(address, "endpoint", "status").includes(clientUrl(address));
        } catch {
          return false;
        }
      },
      60_000,
      500,
    );

  it("restores every key of the snapshot, and keeps only the newest snapshots", async () => {
    for (const tool of ["etcd", "etcdctl", "openssl"]) requireTool(tool);
    dir = clusterDir("etcd-backup");
    pki = issueTestPki(path.join(dir, "pki"), MEMBERS);
    // backup-01's client certificate: its own key and request, signed by the rendered signing step with the etcd CA.
    const clientDir = ownedDir(path.join(dir, "backup-01-tls"), "root");
    const clientKey = path.join(clientDir, "client.key");
    const csr = path.join(clientDir, "client.csr");
    for (const args of [
      ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", clientKey],
      ["req", "-new", "-key", clientKey, "-subj", "/O=KeyBuzz/CN=keybuzz-etcd-backup", "-out", csr],
    ]) {
      expect(spawnSync("openssl", args, { encoding: "utf8" }).status).toBe(0);
    }
    const signBody = renderEtcdClientCertScript(csr, 365)
      .replace(/^KB_CA_CERT='[^']*'$/m, `KB_CA_CERT='${pki.caFile}'`)
      .replace(/^KB_CA_KEY='[^']*'$/m, `KB_CA_KEY='${path.join(dir, "pki", "ca.key")}'`);
    const signed = spawnSync("bash", ["-c", renderStepScript("etcd client cert", [], signBody)], {
      encoding: "utf8",
      env: { ...process.env, KB_STEP_LOG_DIR: path.join(dir, "step-logs") },
    });
    expect([signed.status, signed.stderr]).toEqual([0, expect.anything()]);
    const [clientCert, ca] = pemCertificates(signed.stdout);
    client = {
      ca: ownedFile(path.join(clientDir, "ca.crt"), ca, "root"),
      cert: ownedFile(path.join(clientDir, "client.crt"), clientCert, "root"),
      key: clientKey,
    };

    const [first] = MEMBERS;
    start("etcd-original", first, path.join(dir, "original"), `${first.name}=${peerUrl(first.address)}`, "new");
    await answers(first.address, "etcd to answer");
    for (let index = 0; index < 50; index++)
      etcdctl(first.address, "put", `/keybuzz/test/key-${String(index).padStart(2, "0")}`, `value-${index}`);
    before = etcdctl(first.address, "get", "--prefix", "/keybuzz/");

    const snapshots = ownedDir(path.join(dir, "snapshots"), "root");
    const textfile = ownedDir(path.join(dir, "textfile"), "root");
    const snapshotScript = ownedFile(
      path.join(dir, "keybuzz-etcd-snapshot"),
      renderEtcdSnapshotScript({
        cluster: "kubernetes",
        // A member that does not answer first: the script moves on to the next.
        endpoints: ["https://127.0.20.9:2379", clientUrl(first.address)],
        tls: client,
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
    expect(fs.readFileSync(path.join(textfile, "keybuzz-backup-etcd-kubernetes.prom"), "utf8")).toMatch(
      /system="etcd",type="kubernetes"\} \d+/,
    );
    newestSnapshot = path.join(snapshots, kept[kept.length - 1]);

    await supervisor.stop("etcd-original");
    const restoredDir = path.join(dir, "restored");
    const restoreScript = ownedFile(
      path.join(dir, "keybuzz-etcd-restore"),
      renderEtcdRestoreScript({
        name: first.name,
        initialCluster: `${first.name}=${peerUrl(first.address)}`,
        peerUrl: peerUrl(first.address),
        token: "keybuzz-restored",
        dataDir: restoredDir,
      }),
      "root",
      0o755,
    );
    const startedAt = Date.now();
    const restore = spawnSync(restoreScript, [newestSnapshot], { encoding: "utf8", timeout: 120_000 });
    expect([restore.status, restore.stderr]).toEqual([0, expect.anything()]);
    // A second restore into the same directory refuses: the operator moves the old one aside first.
    expect(spawnSync(restoreScript, [newestSnapshot], { encoding: "utf8" }).status).toBe(1);
    start("etcd-restored", first, restoredDir, `${first.name}=${peerUrl(first.address)}`, "existing");
    await answers(first.address, "the restored etcd to answer");
    const after = etcdctl(first.address, "get", "--prefix", "/keybuzz/");
    console.log(
      `etcd restore: ${before.trim().split("\n").length / 2} keys restored in ${((Date.now() - startedAt) / 1000).toFixed(1)} s; snapshots kept ${kept.length} of 3`,
    );
    expect(after).toBe(before);
    await supervisor.stop("etcd-restored");
  });

  it("restores the snapshot into a new 3-member cluster: one quorum, the same keys on every member", async () => {
    expect(newestSnapshot).not.toBe("");
    const initialCluster = MEMBERS.map((member) => `${member.name}=${peerUrl(member.address)}`).join(",");
    const startedAt = Date.now();
    for (const member of MEMBERS) {
      const script = ownedFile(
        path.join(dir, `keybuzz-etcd-restore-${member.name}`),
        renderEtcdRestoreScript({
          name: member.name,
          initialCluster,
          peerUrl: peerUrl(member.address),
          token: "keybuzz-restored-3",
          dataDir: path.join(dir, `restored-3-${member.name}`),
        }),
        "root",
        0o755,
      );
      const restore = spawnSync(script, [newestSnapshot], { encoding: "utf8", timeout: 120_000 });
      expect([restore.status, restore.stderr]).toEqual([0, expect.anything()]);
    }
    for (const member of MEMBERS)
      start(`etcd-3-${member.name}`, member, path.join(dir, `restored-3-${member.name}`), initialCluster, "existing");
    for (const member of MEMBERS) await answers(member.address, `${member.name} of the restored cluster to answer`);
    const seconds = (Date.now() - startedAt) / 1000;
    const members = etcdctl(ADDRESSES[0], "member", "list");
    expect(members.trim().split("\n")).toHaveLength(3);
    // A write through one member is read from the others (one cluster, not three copies).
    etcdctl(ADDRESSES[0], "put", "/keybuzz/after-restore", "yes");
    for (const address of ADDRESSES) {
      expect(etcdctl(address, "get", "--prefix", "/keybuzz/test/")).toBe(before);
      expect(etcdctl(address, "get", "--print-value-only", "/keybuzz/after-restore").trim()).toBe("yes");
    }
    console.log(
      `etcd restore into 3 members: ${before.trim().split("\n").length / 2} keys on each, cluster answering in ${seconds.toFixed(1)} s`,
    );
  });
});
