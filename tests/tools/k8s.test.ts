import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { caCertHashFromKubeconfig, renderContainerdConfig } from "../../components/k8s/render";
import { MockRun, runProgram } from "../../scripts/lib/mock-engine";
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
        const kinds = (yaml.loadAll(file.content) as { apiVersion: string; kind: string }[]).map((doc) => `${doc.apiVersion}/${doc.kind}`);
        expect([step.step, kinds]).toEqual([step.step, expected[path.basename(file.path)]]);
        const target = path.join(dir, `${step.step}-${path.basename(file.path)}`);
        fs.writeFileSync(target, file.content);
        written.push(target);
      }
    }
    // init + credentials on the first control plane, 7 joins.
    expect(written.length).toBe(10);
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
    expect(files.length).toBe(8 + 1 + 1 + 7 + 1);
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
});
