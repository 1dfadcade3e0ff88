import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  renderAdminConfScript,
  renderCertificateRenewalScript,
  renderInitScript,
  renderJoinCredentialsScript,
} from "../../components/k8s/cluster";
import { renderStepScript } from "../../components/lib/remote";
import { parseInventory, serversOf } from "../../config";
import { shellcheckSteps } from "../support/module-checks";
import { runBash } from "../support/bash-fakes";
import { rawStackConfig } from "../support/stack-config";
import { requireTool, run, selfSignedCertificate, tempDir } from "../support/tools";

/**
 * The day-2 steps of the Kubernetes module (issue 15 item 5), executed: the per-node join
 * credentials against a real etcd cluster (Debian's etcd on loopback; crictl is faked to run
 * etcdctl here), the ClusterConfiguration check of the init step, the certificate renewal's
 * one-at-a-time restart of the static Pods, and the read-only admin.conf step.
 */

const inventory = parseInventory(rawStackConfig("prod"));
const [firstControlPlane, secondControlPlane] = serversOf(inventory, "k8s-master");
const worker = serversOf(inventory, "k8s-worker")[0];

/** A rendered step body, run whole (preamble included) with one variable's value replaced. */
function step(name: string, body: string, replacements: Readonly<Record<string, string>> = {}): string {
  let text = body;
  for (const [variable, value] of Object.entries(replacements)) {
    const pattern = new RegExp(`^${variable}='[^']*'$`, "m");
    if (!pattern.test(text)) throw new Error(`${name}: no ${variable} in the rendered body`);
    text = text.replace(pattern, `${variable}='${value}'`);
  }
  return renderStepScript(name, [], text);
}

describe("the Kubernetes day-2 steps pass shellcheck", () => {
  it("join credentials, admin.conf read, init check and certificate renewal", () => {
    const findings = shellcheckSteps({
      credentials: renderJoinCredentialsScript(secondControlPlane, true),
      adminConf: renderAdminConfScript(),
      init: renderInitScript(),
      renewal: renderCertificateRenewalScript(firstControlPlane, "2027-10"),
    });
    expect(findings).toEqual({ credentials: "", adminConf: "", init: "", renewal: "" });
  });
});

describe("join credentials of a replaced node, against a real 3-member etcd", () => {
  const etcd = requireTool("etcd");
  const etcdctl = requireTool("etcdctl");
  const base = 24000 + (process.pid % 1000) * 6;
  const members = [1, 2, 3].map((index) => ({
    name: `cp${index}`,
    client: `http://127.0.97.${index}:${base + index}`,
    peer: `http://127.0.97.${index}:${base + 3 + index}`,
    dataDir: "",
    process: undefined as ChildProcess | undefined,
  }));
  const cluster = members.map((member) => `${member.name}=${member.peer}`).join(",");
  let dir: string;
  let calls: string;

  const ctl = (...args: string[]) => run(etcdctl, [`--endpoints=${members[0].client}`, "--command-timeout=5s", ...args]);
  const memberLines = () => ctl("member", "list", "-w", "simple").stdout.trim().split("\n");

  /** Fakes: crictl runs etcdctl here, with the test's endpoint for 127.0.0.1 and without kubeadm's client certificates. */
  const fakes = () => ({
    crictl: [
      'case "$1" in',
      "  ps) echo etcd-container-id ;;",
      "  exec)",
      "    shift 2",
      "    args=()",
      '    for arg in "$@"; do',
      '      case "$arg" in',
      "        --cacert=*|--cert=*|--key=*) ;;",
      `        --endpoints=https://127.0.0.1:2379) args+=("--endpoints=${members[0].client}") ;;`,
      '        *) args+=("$arg") ;;',
      "      esac",
      "    done",
      '    exec "${args[@]}" ;;',
      "esac",
    ].join("\n"),
    kubectl: `echo "kubectl $*" >>"${calls}"; cat >>"${calls}"`,
    kubeadm: `echo "kubeadm $*" >>"${calls}"`,
  });
  /** The token manifest the step re-applies (the rendered one has the same `expiration` placeholder). */
  const tokenManifest = () => {
    const file = path.join(dir, "bootstrap-token.yaml");
    fs.writeFileSync(file, 'stringData:\n  expiration: "__EXPIRATION__"\n');
    return file;
  };
  const credentials = (node: typeof secondControlPlane, controlPlane: boolean, peerUrl: string) =>
    runBash(
      step("join credentials test", renderJoinCredentialsScript(node, controlPlane), {
        KB_PEER_URL: peerUrl,
        KB_TOKEN_MANIFEST: tokenManifest(),
      }),
      fakes(),
    );

  const start = (member: (typeof members)[number], state: "new" | "existing") => {
    member.process = spawn(
      etcd,
      [
        `--name=${member.name}`,
        `--data-dir=${member.dataDir}`,
        `--listen-client-urls=${member.client}`,
        `--advertise-client-urls=${member.client}`,
        `--listen-peer-urls=${member.peer}`,
        `--initial-advertise-peer-urls=${member.peer}`,
        `--initial-cluster=${cluster}`,
        `--initial-cluster-state=${state}`,
        "--listen-metrics-urls=",
      ],
      { stdio: "ignore" },
    );
  };

  beforeAll(async () => {
    dir = tempDir("k8s-etcd-members");
    calls = path.join(dir, "calls");
    for (const member of members) {
      member.dataDir = path.join(dir, member.name);
      start(member, "new");
    }
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const health = run(etcdctl, [`--endpoints=${members.map((member) => member.client).join(",")}`, "endpoint", "health"]);
      if (health.status === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error("the loopback etcd cluster did not become healthy in 60 s");
  }, 90_000);

  afterAll(async () => {
    for (const member of members) {
      if (member.process && member.process.exitCode === null) {
        member.process.kill("SIGTERM");
        await new Promise((resolve) => member.process!.once("exit", resolve));
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("keeps a healthy member: re-running the step on a joined node removes nothing", () => {
    const result = credentials(secondControlPlane, true, members[1].peer);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`etcd member cp2 (${members[1].peer}) is healthy; kept`);
    expect(memberLines()).toHaveLength(3);
    // The token is re-applied with a fresh expiration, and the certificates uploaded for the control plane.
    const log = fs.readFileSync(calls, "utf8");
    expect(log).toMatch(/kubectl apply -f -\n[\s\S]*expiration: "?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    expect(log).toContain("kubeadm init phase upload-certs --upload-certs");
  });

  it("removes a member added by a join that failed before it started (no name, no client URL)", async () => {
    const peer = `http://127.0.97.4:${base + 7}`;
    // etcd refuses a new member ("unhealthy cluster") until its members have been connected a few seconds.
    let added = ctl("member", "add", "cp4", `--peer-urls=${peer}`);
    for (let attempt = 0; attempt < 30 && added.stderr.includes("unhealthy cluster"); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      added = ctl("member", "add", "cp4", `--peer-urls=${peer}`);
    }
    expect([
      added.status,
      added.stderr
        .split("\n")
        .filter((line) => line.startsWith("Error"))
        .join(" "),
    ]).toEqual([0, ""]);
    const result = credentials(secondControlPlane, true, peer);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`at ${peer} removed`);
    expect(memberLines()).toHaveLength(3);
  }, 60_000);

  it("removes the stale member of a server recreated empty, so the same peer URL can join again", async () => {
    const replaced = members[2];
    replaced.process!.kill("SIGKILL");
    await new Promise((resolve) => replaced.process!.once("exit", resolve));
    fs.rmSync(replaced.dataDir, { recursive: true, force: true });
    // What kubeadm join does first, refused while the old member is there (its peer URL is taken,
    // and a fourth member with one of three down would leave no majority).
    expect(ctl("member", "add", "cp3", `--peer-urls=${replaced.peer}`).status).not.toBe(0);

    const result = credentials(secondControlPlane, true, replaced.peer);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`stale etcd member [0-9a-f]+ \\(cp3\\) at ${replaced.peer.replace(/\./g, "\\.")} removed`));
    expect(memberLines().map((line) => line.split(", ")[2])).toEqual(expect.arrayContaining(["cp1", "cp2"]));
    expect(memberLines()).toHaveLength(2);

    // The replaced node now joins under its old name and address, and the cluster is whole again.
    expect(ctl("member", "add", "cp3", `--peer-urls=${replaced.peer}`).status).toBe(0);
    start(replaced, "existing");
    const deadline = Date.now() + 60_000;
    let health = run(etcdctl, [`--endpoints=${replaced.client}`, "endpoint", "health"]);
    while (health.status !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      health = run(etcdctl, [`--endpoints=${replaced.client}`, "endpoint", "health"]);
    }
    expect(health.status).toBe(0);
    expect(memberLines().filter((line) => line.includes(", started, "))).toHaveLength(3);
  }, 90_000);

  it("leaves etcd alone for a worker: only the token is refreshed", () => {
    fs.writeFileSync(calls, "");
    const result = runBash(
      step("join credentials test", renderJoinCredentialsScript(worker, false), { KB_TOKEN_MANIFEST: tokenManifest() }),
      {
        crictl: 'echo "crictl must not run for a worker" >&2; exit 1',
        kubectl: `echo "kubectl $*" >>"${calls}"; cat >/dev/null`,
        kubeadm: `echo "kubeadm $*" >>"${calls}"`,
      },
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`bootstrap token valid until`);
    expect(fs.readFileSync(calls, "utf8").trim()).toBe("kubectl apply -f -");
  });
});

describe("the init step on an initialised control plane", () => {
  const initStep = (dir: string) =>
    step("init test", renderInitScript(), {
      KB_CONFIG: path.join(dir, "kubeadm-init.yaml"),
      KB_CLUSTER_CONFIG: path.join(dir, "kubeadm-cluster.yaml"),
      KB_APPLIED_CLUSTER_CONFIG: path.join(dir, "kubeadm-cluster.applied.yaml"),
      KB_ADMIN_CONF: path.join(dir, "admin.conf"),
    });
  const tools = { kubeadm: 'echo "kubeadm must not run on an initialised node" >&2; exit 1', kubectl: "exit 0" };
  const initialised = (rendered: string, applied?: string) => {
    const dir = tempDir("k8s-init");
    fs.writeFileSync(path.join(dir, "admin.conf"), "apiVersion: v1\n");
    fs.writeFileSync(path.join(dir, "kubeadm-cluster.yaml"), rendered);
    if (applied !== undefined) fs.writeFileSync(path.join(dir, "kubeadm-cluster.applied.yaml"), applied);
    return dir;
  };

  it("records the ClusterConfiguration of a cluster initialised before the check existed", () => {
    const dir = initialised("networking:\n  podSubnet: 10.244.0.0/16\n");
    const result = runBash(initStep(dir), tools);
    expect(result.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "kubeadm-cluster.applied.yaml"), "utf8")).toContain("10.244.0.0/16");
    expect(fs.statSync(path.join(dir, "kubeadm-cluster.applied.yaml")).mode & 0o777).toBe(0o600);
  });

  it("passes when the rendered ClusterConfiguration is the applied one", () => {
    const same = "networking:\n  podSubnet: 10.244.0.0/16\n";
    const result = runBash(initStep(initialised(same, same)), tools);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("ClusterConfiguration unchanged; kubeadm init skipped");
  });

  it("fails loudly on a ClusterConfiguration changed after init, which kubeadm would ignore", () => {
    const dir = initialised("apiServer:\n  certSANs: [10.0.0.30, k8s-api.example]\n", "apiServer:\n  certSANs: [10.0.0.30]\n");
    const result = runBash(initStep(dir), tools);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(
      'the ClusterConfiguration changed after kubeadm init, which kubeadm would ignore; apply it as docs/kubernetes.md "Changing the ClusterConfiguration" says',
    );
    // The difference is in the step's log, not in what the provider shows.
    expect(result.stderr).not.toContain("k8s-api.example");
    const log = result.stderr.match(/full log \(root only\): (\S+)/)?.[1];
    expect(fs.readFileSync(log!, "utf8")).toContain("+  certSANs: [10.0.0.30, k8s-api.example]");
  });
});

describe("the certificate renewal step", () => {
  /** A control plane's files: the manifests the fake kubelet runs, an API server certificate openssl reads. */
  const controlPlane = () => {
    const root = tempDir("k8s-renewal");
    fs.mkdirSync(path.join(root, "manifests"));
    fs.mkdirSync(path.join(root, "pki"));
    for (const component of ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
      fs.writeFileSync(path.join(root, "manifests", `${component}.yaml`), `kind: Pod # ${component}\n`);
    }
    selfSignedCertificate({
      certFile: path.join(root, "pki", "apiserver.crt"),
      keyFile: path.join(root, "pki", "apiserver.key"),
      commonName: "kube-apiserver",
      days: 20,
    });
    return root;
  };
  /**
   * kubelet stand-in: a static Pod's container runs while its manifest is in manifests/; every
   * crictl call records which manifests are away, so the test sees how many were down at once.
   */
  const fakes = (root: string, apiReady: boolean) => ({
    crictl: [
      `away=$(cd "${root}/manifests-paused" 2>/dev/null && ls 2>/dev/null | tr '\\n' ' ' || true)`,
      `echo "away: $away" >>"${root}/crictl.log"`,
      "name=${3#^}; name=${name%$}",
      `if [ -f "${root}/manifests/\${name}.yaml" ]; then echo "id-\${name}"; fi`,
    ].join("\n"),
    kubectl: apiReady ? `echo "kubectl $*" >>"${root}/kubectl.log"` : "exit 1",
    kubeadm: [
      `echo "kubeadm $*" >>"${root}/kubeadm.log"`,
      // What renewal does to the serving certificate: a new one, valid one year.
      `openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=kube-apiserver -keyout "${root}/pki/apiserver.key" -out "${root}/pki/apiserver.crt" 2>/dev/null`,
    ].join("\n"),
  });
  const renewal = (root: string) =>
    step("renewal test", renderCertificateRenewalScript(firstControlPlane, "2027-10"), { KB_KUBERNETES_DIR: root }).replace(
      /kb_wait_until (\d+) (\d+)/g,
      "kb_wait_until 10 1",
    );

  it("renews, then restarts etcd, the API server, the controller manager and the scheduler one at a time", () => {
    const root = controlPlane();
    const result = runBash(renewal(root), fakes(root, true));
    expect(result.status).toBe(0);
    expect(fs.readFileSync(path.join(root, "kubeadm.log"), "utf8").trim()).toBe("kubeadm certs renew all");
    expect(result.stdout).toMatch(/k8s-master-01: certificates renewed \(2027-10\); API server certificate .+ -> .+/);
    expect(result.stdout.match(/k8s-master-01: (\S+) restarted/g)).toEqual([
      "k8s-master-01: etcd restarted",
      "k8s-master-01: kube-apiserver restarted",
      "k8s-master-01: kube-controller-manager restarted",
      "k8s-master-01: kube-scheduler restarted",
    ]);
    const away = fs.readFileSync(path.join(root, "crictl.log"), "utf8").trim().split("\n");
    expect(Math.max(...away.map((line) => line.replace("away:", "").trim().split(/\s+/).filter(Boolean).length))).toBe(1);
    expect(fs.readdirSync(path.join(root, "manifests")).sort()).toHaveLength(4);
    expect(fs.existsSync(path.join(root, "manifests-paused"))).toBe(false);
    // Its own API server is asked directly after each restart, not only through the load balancer.
    expect(fs.readFileSync(path.join(root, "kubectl.log"), "utf8")).toContain("kubectl --server=https://127.0.0.1:6443 get --raw=/readyz");
  });

  it("renews nothing while the Kubernetes API is not ready", () => {
    const root = controlPlane();
    const result = runBash(renewal(root), fakes(root, false));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("the Kubernetes API is not ready before renewing k8s-master-01's certificates");
    expect(fs.existsSync(path.join(root, "kubeadm.log"))).toBe(false);
  });
});

describe("the admin.conf read step", () => {
  it("prints admin.conf and nothing else on stdout", () => {
    const dir = tempDir("k8s-admin-conf");
    const conf = "apiVersion: v1\nkind: Config\nclusters: []\n";
    fs.writeFileSync(path.join(dir, "admin.conf"), conf);
    const result = runBash(step("admin-conf test", renderAdminConfScript(), { KB_ADMIN_CONF: path.join(dir, "admin.conf") }));
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(conf);
  });

  it("fails with a clear reason on a node that was never initialised", () => {
    const dir = tempDir("k8s-admin-conf");
    const result = runBash(step("admin-conf test", renderAdminConfScript(), { KB_ADMIN_CONF: path.join(dir, "admin.conf") }));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("admin.conf is missing: the cluster is not initialised on this node");
  });
});
