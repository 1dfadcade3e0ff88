import { spawn } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import {
  caCertHashFromKubeconfig,
  K8S_APT_KEY_FINGERPRINT,
  K8S_APT_KEYRING,
  renderContainerdConfig,
  renderEtcdMetricsPatch,
  renderPrepareScript,
} from "../../components/k8s/cluster";
import { renderStepScript } from "../../components/lib/remote";
import { loadVersions, parseInventory, serversOf } from "../../config";
import { MockRun, runProgram } from "../../scripts/lib/mock-engine";
import { runBash } from "../support/bash-fakes";
import { FAKE_CURL_SERVING_KB_TEST_KEY, testKeyMaker } from "../support/gpg";
import { rawStackConfig } from "../support/stack-config";
import { requireTool, run, tempDir } from "../support/tools";

let plan: MockRun;
beforeAll(async () => {
  plan = await runProgram("prod");
});

const k8sSteps = () => plan.steps.filter((step) => step.step.includes("-k8s-"));

describe("real tools on the rendered Kubernetes files", () => {
  it("yamllint accepts every rendered kubeadm file, each with the expected apiVersion/kind", () => {
    const yamllint = requireTool("yamllint");
    const dir = tempDir("kubeadm");
    const expected: Record<string, string[]> = {
      "kubeadm-cluster.yaml": ["kubeadm.k8s.io/v1beta4/ClusterConfiguration"],
      "kubeadm-init.yaml": [
        "kubeadm.k8s.io/v1beta4/InitConfiguration",
        "kubeadm.k8s.io/v1beta4/ClusterConfiguration",
        "kubelet.config.k8s.io/v1beta1/KubeletConfiguration",
        "kubeproxy.config.k8s.io/v1alpha1/KubeProxyConfiguration",
      ],
      "kubeadm-join.yaml": ["kubeadm.k8s.io/v1beta4/JoinConfiguration"],
      "bootstrap-token.yaml": ["v1/Secret"],
    };
    const written: string[] = [];
    for (const step of k8sSteps()) {
      for (const file of step.files.filter((candidate) => candidate.path.startsWith("/etc/kubernetes/keybuzz/"))) {
        if (path.basename(file.path) === "etcd+json.yaml") {
          // A kubeadm patch: a JSON patch (RFC 6902), one list of operations.
          expect((yaml.load(file.content) as { op: string }[]).map((operation) => operation.op)).toEqual(["add"]);
        } else {
          const kinds = (yaml.loadAll(file.content) as { apiVersion: string; kind: string }[]).map(
            (doc) => `${doc.apiVersion}/${doc.kind}`,
          );
          expect([step.step, kinds]).toEqual([step.step, expected[path.basename(file.path)]]);
        }
        const target = path.join(dir, `${step.step}-${path.basename(file.path)}`);
        fs.writeFileSync(target, file.content);
        written.push(target);
      }
    }
    // init (its config, its ClusterConfiguration alone), 7 join credentials on the first control plane
    // (the token, plus the init config for the 2 control planes), 7 joins, the 3 control planes' etcd patches.
    expect(written.length).toBe(2 + (7 + 2) + 7 + 3);
    const lint = run(yamllint, ["--strict", "-d", "{extends: relaxed, rules: {line-length: disable}}", ...written]);
    expect(lint.stdout).toBe("");
    expect(lint.status).toBe(0);
  });

  it("containerd loads the rendered config.toml with the CRI plugin on and runc under systemd cgroups", () => {
    const containerd = requireTool("containerd");
    const dir = tempDir("containerd");
    const config = path.join(dir, "config.toml");
    fs.writeFileSync(config, renderContainerdConfig());
    const dump = run(containerd, ["--config", config, "config", "dump"]);
    expect(dump.status).toBe(0);
    expect(dump.stdout).toMatch(/^disabled_plugins = \[\]$/m);
    expect(dump.stdout).toMatch(
      /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.runc\.options\][^[]*SystemdCgroup = true/,
    );
    expect(dump.stdout).toContain('sandbox_image = "registry.k8s.io/pause:3.10"');
    // The check is real: a broken file is refused.
    fs.writeFileSync(config, `${renderContainerdConfig()}[plugins\n`);
    expect(run(containerd, ["--config", config, "config", "dump"]).status).not.toBe(0);
  });

  it("shellcheck passes every rendered Kubernetes step script", () => {
    const shellcheck = requireTool("shellcheck");
    const dir = tempDir("k8s-steps");
    const files = k8sSteps().map((step) => {
      const file = path.join(dir, `${step.step}.sh`);
      fs.writeFileSync(file, step.script);
      return file;
    });
    // prepare ×8, init, admin.conf read, join credentials ×7, joins ×7, verify.
    expect(files.length).toBe(8 + 1 + 1 + 7 + 7 + 1);
    const result = run(shellcheck, ["--shell=bash", ...files]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  it("computes the CA hash exactly as kubeadm documents it with openssl", () => {
    const openssl = requireTool("openssl");
    const dir = tempDir("ca");
    const key = path.join(dir, "ca.key");
    const cert = path.join(dir, "ca.crt");
    expect(run(openssl, ["genrsa", "-out", key, "2048"]).status).toBe(0);
    expect(run(openssl, ["req", "-x509", "-new", "-key", key, "-subj", "/CN=kubernetes", "-days", "1", "-out", cert]).status).toBe(0);
    const pem = fs.readFileSync(cert, "utf8");
    const kubeconfig = `clusters:\n- cluster:\n    certificate-authority-data: ${Buffer.from(pem).toString("base64")}\n    server: https://10.0.0.30:6443\n`;
    const pubkey = run(openssl, ["x509", "-pubkey", "-noout", "-in", cert]).stdout;
    const der = path.join(dir, "pub.der");
    expect(run(openssl, ["pkey", "-pubin", "-outform", "der", "-out", der], { input: pubkey }).status).toBe(0);
    const digest = run(openssl, ["dgst", "-sha256", "-hex", der]).stdout.trim().split(" ").pop();
    expect(caCertHashFromKubeconfig(kubeconfig)).toBe(`sha256:${digest}`);
  });

  describe("the node preparation step and the pkgs.k8s.io key (real gpg, fake curl and node tools)", () => {
    const makeKey = testKeyMaker();
    const servedKey = makeKey("Test stand-in for the pkgs.k8s.io key <k8s@keybuzz.invalid>");
    const versions = loadVersions();
    const packageVersion = `${versions.kubernetes.version}-${versions.kubernetes.packageRevision}`;
    // The node's tools, converged: packages at the pinned version, containerd's CRI answering.
    const nodeTools = {
      curl: FAKE_CURL_SERVING_KB_TEST_KEY,
      modprobe: "exit 0",
      sysctl: "echo 1",
      "dpkg-query": `echo -n '${packageVersion}'`,
      "apt-mark": "exit 0",
      systemctl: "exit 0",
      crictl: 'case "$*" in *go-template*) echo true ;; esac',
      kubeadm: `echo v${versions.kubernetes.version}`,
    };
    /** The rendered prepare script (keyring in a temp dir), expecting `fingerprint`, inside the step preamble. */
    const prepareStep = (fingerprint: string, keyring: string) =>
      renderStepScript(
        "k8s-prepare test",
        [],
        renderPrepareScript(versions)
          .replace(`KB_K8S_KEY_FINGERPRINT='${K8S_APT_KEY_FINGERPRINT}'`, `KB_K8S_KEY_FINGERPRINT='${fingerprint}'`)
          .replace(`KB_K8S_KEYRING='${K8S_APT_KEYRING}'`, `KB_K8S_KEYRING='${keyring}'`),
      );

    it("refuses a Release.key whose fingerprint is not the pinned one, before apt trusts it", () => {
      const keyring = path.join(tempDir("k8s-keyring"), "kubernetes-apt-keyring.gpg");
      const result = runBash(prepareStep(K8S_APT_KEY_FINGERPRINT, keyring), nodeTools, { KB_TEST_KEY: servedKey.file });
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(
        `https://pkgs.k8s.io/core:/stable:/v1.33/deb/Release.key has the fingerprint(s) '${servedKey.fingerprint}', expected ${K8S_APT_KEY_FINGERPRINT}; refusing it`,
      );
      expect(fs.existsSync(keyring)).toBe(false);
      expect(result.stdout).not.toContain("node prepared");
    });

    it("installs the key with the expected fingerprint on every run (refreshed, not only the first time), then proceeds", () => {
      const keyring = path.join(tempDir("k8s-keyring"), "kubernetes-apt-keyring.gpg");
      fs.writeFileSync(keyring, "an expired copy from an earlier run");
      const result = runBash(prepareStep(servedKey.fingerprint, keyring), nodeTools, { KB_TEST_KEY: servedKey.file });
      // A step's only word on stderr when it succeeds: where its log is (components/lib/remote.ts).
      expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^keybuzz step k8s-prepare test: .* log \(root only\): /)]);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain(`node prepared: kubeadm v${versions.kubernetes.version}`);
      const shown = run(requireTool("gpg"), ["--homedir", tempDir("gpg-show"), "--batch", "--show-keys", "--with-colons", keyring]);
      expect(shown.stdout).toContain(`fpr:::::::::${servedKey.fingerprint}:`);
    });
  });

  it("etcd with kubeadm's own metrics flag followed by the rendered patch serves metrics on localhost and the private IP only", async () => {
    // Debian's etcd on loopback stands in for the control plane: 127.0.99.1 plays 127.0.0.1 and
    // 127.0.99.7 the node's private IP (ports moved off 2381 so no other test's etcd is in the way).
    const etcd = requireTool("etcd");
    const controlPlane = serversOf(parseInventory(rawStackConfig("prod")), "k8s-master")[0];
    const patch = yaml.load(renderEtcdMetricsPatch({ ...controlPlane, privateIp: "127.0.99.7" })) as { value: string }[];
    const port = 23000 + (process.pid % 1000) * 3;
    const moved = (flag: string) => flag.replace(/127\.0\.0\.1/g, "127.0.99.1").replace(/:2381\b/g, `:${port + 2}`);
    const dir = tempDir("etcd-metrics");
    const command = [
      "--name=cp",
      `--data-dir=${dir}/data`,
      `--listen-client-urls=http://127.0.99.1:${port}`,
      `--advertise-client-urls=http://127.0.99.1:${port}`,
      `--listen-peer-urls=http://127.0.99.1:${port + 1}`,
      `--initial-advertise-peer-urls=http://127.0.99.1:${port + 1}`,
      `--initial-cluster=cp=http://127.0.99.1:${port + 1}`,
      // kubeadm's default (phases/etcd/local.go), then what the JSON patch appends.
      moved("--listen-metrics-urls=http://127.0.0.1:2381"),
      ...patch.map((operation) => moved(operation.value)),
    ];
    const child = spawn(etcd, command, { stdio: "ignore" });
    const get = (host: string) =>
      run(requireTool("curl"), ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", `http://${host}:${port + 2}/metrics`])
        .stdout;
    try {
      const deadline = Date.now() + 30_000;
      while (get("127.0.99.1") !== "200" && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(get("127.0.99.1")).toBe("200");
      expect(get("127.0.99.7")).toBe("200");
      // Not bound to every address: another local address gets no answer.
      expect(get("127.0.99.9")).toBe("000");
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
  });
});
