import { parseInventory, ServerGroup } from "../config";
import {
  renderBaseOsScript,
  renderDockerDaemonJson,
  renderHostsBlock,
  renderSshdDropIn,
  renderSysctl,
  ufwRulesFor,
  upstreamRelease,
} from "../components/os/base-os";
import { loadVersions } from "../config";
import { runProgram } from "../scripts/lib/mock-engine";
import { rawStackConfig } from "./support/stack-config";

const inventory = parseInventory(rawStackConfig("prod"));
const versions = loadVersions();

/** Spec 000 §7 "Ouverture des ports par rôle", adapted to K8s: the ports each role opens. */
const SPEC_000_PORTS: Partial<Record<ServerGroup, string[]>> = {
  postgres: ["5432/tcp", "6432/tcp"],
  mariadb: ["3306/tcp"],
  redis: ["6379/tcp", "26379/tcp"],
  rabbitmq: ["5672/tcp", "15672/tcp"],
  minio: ["9000/tcp", "9001/tcp"],
  "k8s-master": ["6443/tcp", "10250/tcp", "2379:2380/tcp", "10259/tcp", "10257/tcp"],
  "k8s-worker": ["10250/tcp", "30000:32767/tcp"],
  haproxy: ["5432/tcp", "5672/tcp", "6379/tcp"],
};

describe("base OS render functions", () => {
  it.each(Object.entries(SPEC_000_PORTS))("UFW opens spec 000's ports for %s, and documents every addition", (group, ports) => {
    const rules = ufwRulesFor(group as ServerGroup, "10.0.0.0/16");
    const opened = rules.map((rule) => `${rule.port}/${rule.proto}`);
    expect(opened.slice(0, ports.length)).toEqual(ports);
    for (const extra of rules.slice(ports.length)) expect(extra.purpose).toMatch(/addition/);
  });

  it("restricts database ports to the private network", () => {
    for (const group of ["postgres", "mariadb", "redis", "rabbitmq", "minio", "haproxy", "proxysql"] as ServerGroup[]) {
      for (const rule of ufwRulesFor(group, "10.0.0.0/16")) expect(rule.from).toBe("10.0.0.0/16");
    }
  });

  it("puts each server's own UFW rules into its script", () => {
    const script = renderBaseOsScript("redis-01", "redis", inventory, versions);
    expect(script).toContain("KB_UFW_RULES='6379/tcp@10.0.0.0/16\n26379/tcp@10.0.0.0/16'");
    expect(script).toContain("KB_UFW_ROUTED='deny'");
    const worker = renderBaseOsScript("k8s-worker-01", "k8s-worker", inventory, versions);
    expect(worker).toContain("KB_UFW_ROUTED='allow'");
    expect(worker).toContain(`KB_POD_CIDR='${inventory.kubernetes.podCidr}'`);
    expect(script).toContain("KB_POD_CIDR=''");
  });

  it("pins Docker CE and containerd from versions.yaml", () => {
    const script = renderBaseOsScript("db-master-01", "postgres", inventory, versions);
    expect(script).toContain(`KB_DOCKER_VERSION='${versions.docker.engine}'`);
    expect(script).toContain(`KB_CONTAINERD_VERSION='${versions.docker.containerd}'`);
    expect(upstreamRelease("5:27.5.1-1~ubuntu.24.04~noble")).toBe("27.5.1");
  });

  it("writes spec 000's kernel, SSH and Docker settings", () => {
    expect(renderSysctl()).toContain("net.core.somaxconn = 65535");
    expect(renderSysctl()).toContain("vm.swappiness = 10");
    expect(renderSshdDropIn()).toMatch(/^PasswordAuthentication no$/m);
    expect(renderSshdDropIn()).toMatch(/^PermitRootLogin prohibit-password$/m);
    expect(JSON.parse(renderDockerDaemonJson())).toMatchObject({
      "exec-opts": ["native.cgroupdriver=systemd"],
      "storage-driver": "overlay2",
      mtu: 1450,
    });
  });

  it("maps every inventory name and the MinIO aliases in the hosts block", () => {
    const block = renderHostsBlock(inventory);
    for (const server of inventory.servers)
      expect(block).toMatch(new RegExp(`^${server.privateIp.replace(/\./g, "\\.")} ${server.name}\\b`, "m"));
    expect(block).toMatch(/^10\.0\.0\.134 minio-01 minio-01\.keybuzz\.io s3\.keybuzz\.io$/m);
    expect(block).toMatch(/^10\.0\.0\.131 minio-02 minio-02\.keybuzz\.io$/m);
  });
});

describe("base OS steps (mock engine)", () => {
  it("hardens then verifies every server, each verification after its hardening", async () => {
    const run = await runProgram("prod");
    for (const server of inventory.servers) {
      const apply = run.steps.findIndex((step) => step.step === `${server.name}-base-os`);
      const verify = run.steps.findIndex((step) => step.step === `${server.name}-base-os-verify`);
      expect(apply).toBeGreaterThanOrEqual(0);
      expect(verify).toBeGreaterThan(apply);
      expect(run.steps[verify].script).toContain(
        "for test in docker_pinned swap_off ufw_active dns_fixed ssh_hardened timezone_paris ntp_active sysctl_applied",
      );
      expect(run.steps[apply].files.map((file) => file.path)).toContain("/etc/ssh/sshd_config.d/99-keybuzz.conf");
    }
  });
});
