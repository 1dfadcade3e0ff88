import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_ETCD_BACKUP_SETTINGS,
  pemCertificates,
  renderClusterSnapshotScript,
  renderEtcdBackupStepBody,
} from "../../components/backup/etcd";
import { renderEtcdClientCertScript } from "../../components/k8s/cluster/render";
import { renderStepScript } from "../../components/lib/remote";
import { runBash } from "../support/bash-fakes";
import { shellcheckSteps } from "../support/module-checks";
import { requireTool, tempDir } from "../support/tools";

const IMAGE = "quay.io/coreos/etcd:v3.5.33";

/** The rendered body with some of its `KB_*='…'` lines replaced (test paths), as a whole step. */
function step(name: string, body: string, replacements: Readonly<Record<string, string>>): string {
  let text = body;
  for (const [variable, value] of Object.entries(replacements)) {
    const pattern = new RegExp(`^${variable}='[^']*'$`, "m");
    if (!pattern.test(text)) throw new Error(`${name}: no ${variable} in the rendered body`);
    text = text.replace(pattern, `${variable}='${value}'`);
  }
  return renderStepScript(name, [], text);
}

function openssl(args: readonly string[], input?: string): string {
  const result = spawnSync("openssl", args, { encoding: "utf8", input });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

describe("etcd backup steps and scripts pass shellcheck", () => {
  it("backup-01's step, a snapshot script, the control plane's signing step", () => {
    const findings = shellcheckSteps({
      backupStep: renderEtcdBackupStepBody(["patroni", "kubernetes"], IMAGE),
      snapshot: renderClusterSnapshotScript(
        { name: "kubernetes", members: [{ name: "k8s-master-01", address: "10.0.0.100" }], clientPort: 2379 },
        DEFAULT_ETCD_BACKUP_SETTINGS,
        IMAGE,
      ),
      sign: renderEtcdClientCertScript("/etc/kubernetes/keybuzz/etcd-backup-client.csr", 365),
    });
    expect(findings).toEqual({ backupStep: "", snapshot: "", sign: "" });
  });

  it("the default schedule is a calendar event systemd accepts", () => {
    const analyze = requireTool("systemd-analyze");
    const result = spawnSync(analyze, ["calendar", DEFAULT_ETCD_BACKUP_SETTINGS.schedule], { encoding: "utf8" });
    expect([result.status, result.stderr]).toEqual([0, ""]);
    expect(result.stdout).toMatch(/Normalized form: \*-\*-\* 00\/6:20:00/);
  });
});

describe("the control plane's signing step (scripts/k8s/etcd-client-cert.sh, real openssl)", () => {
  /** A CA like kubeadm's etcd CA and backup-01's request, as Pulumi makes them (ECDSA P-256). */
  function kubeadmEtcdPki() {
    requireTool("openssl");
    const dir = tempDir("etcd-client-cert");
    const pki = path.join(dir, "pki", "etcd");
    fs.mkdirSync(pki, { recursive: true });
    const caKey = path.join(pki, "ca.key");
    const caCert = path.join(pki, "ca.crt");
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey]);
    openssl(["req", "-x509", "-new", "-key", caKey, "-sha256", "-days", "3650", "-subj", "/CN=etcd-ca", "-out", caCert]);
    const clientKey = path.join(dir, "client.key");
    const csr = path.join(dir, "client.csr");
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", clientKey]);
    openssl(["req", "-new", "-key", clientKey, "-subj", "/O=KeyBuzz/CN=keybuzz-etcd-backup", "-out", csr]);
    const script = step("etcd client cert", renderEtcdClientCertScript(csr, 365), { KB_CA_CERT: caCert, KB_CA_KEY: caKey });
    return { dir, pki, caCert, csr, script };
  }

  it("prints a client certificate of the etcd CA for the request, then the CA; writes nothing next to the CA", () => {
    const { dir, pki, caCert, script } = kubeadmEtcdPki();
    const result = runBash(script);
    expect([result.status, result.stderr]).toEqual([0, expect.stringContaining("etcd backup client certificate issued")]);
    const [client, ca] = pemCertificates(result.stdout);
    expect(ca).toBe(fs.readFileSync(caCert, "utf8"));
    expect(result.stdout).not.toMatch(/PRIVATE KEY/);
    const clientFile = path.join(dir, "issued.crt");
    fs.writeFileSync(clientFile, client);
    expect(openssl(["verify", "-CAfile", caCert, "-purpose", "sslclient", clientFile]).trim()).toBe(`${clientFile}: OK`);
    const text = openssl(["x509", "-noout", "-text", "-in", clientFile]);
    expect(text).toMatch(/Subject: O\s?=\s?KeyBuzz, CN\s?=\s?keybuzz-etcd-backup/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\n/);
    expect(text).toMatch(/CA:FALSE/);
    // 365 days (± the second the step took).
    const notAfter = Date.parse(openssl(["x509", "-noout", "-enddate", "-in", clientFile]).replace("notAfter=", "").trim());
    expect(Math.abs(notAfter - Date.now() - 365 * 86_400_000)).toBeLessThan(120_000);
    expect(fs.readdirSync(pki).sort()).toEqual(["ca.crt", "ca.key"]);
  });

  it("fails with a clear reason on a node without kubeadm's etcd CA", () => {
    const { dir, csr } = kubeadmEtcdPki();
    const script = step("etcd client cert", renderEtcdClientCertScript(csr, 365), {
      KB_CA_CERT: path.join(dir, "missing", "ca.crt"),
      KB_CA_KEY: path.join(dir, "missing", "ca.key"),
    });
    const result = runBash(script);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("the cluster is not initialised on this node");
  });
});
