import { isConfigError, parseInventory, ServerGroup, serversOf } from "../../config";
import { parseExportersSettings } from "../../components/observability/exporters";
import { deployedScrapeJobs } from "../../components/observability/monitoring";
import {
  baseOsFiles,
  exporterPortsOf,
  OLD_SSHD_DROP_IN,
  parseBaseOsSettings,
  renderBaseOsScript,
  renderDockerDaemonJson,
  renderFail2banJail,
  renderHostsBlock,
  renderJournaldLimits,
  renderSshdDropIn,
  renderSysctl,
  renderVerifyScript,
  SSHD_DROP_IN,
  ufwRulesFor,
  upstreamRelease,
} from "../../components/os/base-os";
import { loadVersions } from "../../config";
import { runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";

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

const scrapeJobs = deployedScrapeJobs(inventory.servers, parseExportersSettings(undefined));

describe("base OS render functions", () => {
  it.each(Object.entries(SPEC_000_PORTS))("UFW opens spec 000's ports for %s, and documents every addition", (group, ports) => {
    const rules = ufwRulesFor(group as ServerGroup, "10.0.0.0/16", ["192.0.2.10/32"]);
    const opened = rules.map((rule) => `${rule.port}/${rule.proto}`);
    expect(opened.slice(0, ports.length)).toEqual(ports);
    for (const extra of rules.slice(ports.length)) expect(extra.purpose).toMatch(/addition/);
  });

  it("opens every role port to the private network only; 6443 also to the admin CIDRs", () => {
    const admins = ["192.0.2.10/32", "198.51.100.0/28"];
    for (const group of Object.keys(SPEC_000_PORTS) as ServerGroup[]) {
      for (const rule of ufwRulesFor(group, "10.0.0.0/16", admins)) {
        expect(rule.from).toBeDefined();
        if (rule.from !== "10.0.0.0/16")
          expect({ port: rule.port, admin: admins.includes(rule.from ?? "") }).toEqual({ port: "6443", admin: true });
      }
    }
    const apiSources = ufwRulesFor("k8s-master", "10.0.0.0/16", admins)
      .filter((rule) => rule.port === "6443")
      .map((rule) => rule.from);
    expect(apiSources).toEqual(["10.0.0.0/16", ...admins]);
  });

  it("renders the Kubernetes nodes' UFW rules with a source on every line (no port open to any source)", () => {
    for (const [name, group] of [
      ["k8s-master-01", "k8s-master"],
      ["k8s-worker-01", "k8s-worker"],
    ] as const) {
      const script = renderBaseOsScript(name, group, inventory, versions, exporterPortsOf(name, scrapeJobs));
      const rules = /^KB_UFW_RULES='([^']*)'$/m.exec(script)?.[1].split("\n") ?? [];
      expect(rules.length).toBeGreaterThan(2);
      for (const rule of rules) expect(rule).toMatch(/^(deny:)?\d+(:\d+)?\/tcp@\d+\.\d+\.\d+\.\d+\/\d+$/);
      for (const port of ["10250", "2379:2380", "30000:32767", "10257", "10259"]) {
        for (const rule of rules.filter((line) => line.startsWith(`${port}/`)))
          expect(rule).toBe(`${port}/tcp@${inventory.network.ipRange}`);
      }
    }
  });

  it("puts each server's own UFW rules into its script: exporter ports for the Kubernetes nodes and pods only, then the role's", () => {
    const script = renderBaseOsScript("redis-01", "redis", inventory, versions, exporterPortsOf("redis-01", scrapeJobs));
    const kubernetesNodes = [...serversOf(inventory, "k8s-master"), ...serversOf(inventory, "k8s-worker")].map(
      (server) => `${server.privateIp}/32`,
    );
    expect(kubernetesNodes).toHaveLength(8);
    const exporterRules = (port: number) => [
      ...[...kubernetesNodes, inventory.kubernetes.podCidr].map((source) => `${port}/tcp@${source}`),
      `deny:${port}/tcp@10.0.0.0/16`,
    ];
    // node_exporter, redis_exporter in front of Redis and of Sentinel: the ports of the scrape jobs.
    const expected = [
      ...exporterRules(9100),
      ...exporterRules(9121),
      ...exporterRules(9122),
      "6379/tcp@10.0.0.0/16",
      "26379/tcp@10.0.0.0/16",
    ];
    expect(script).toContain(`KB_UFW_RULES='${expected.join("\n")}'`);
    expect(script).toContain("KB_UFW_ROUTED='deny'");
    const worker = renderBaseOsScript("k8s-worker-01", "k8s-worker", inventory, versions, []);
    expect(worker).toContain("KB_UFW_ROUTED='allow'");
    expect(worker).toContain(`KB_POD_CIDR='${inventory.kubernetes.podCidr}'`);
    expect(script).toContain("KB_POD_CIDR=''");
  });

  it("pins Docker CE and containerd from versions.yaml (the default source)", () => {
    const script = renderBaseOsScript("db-master-01", "postgres", inventory, versions, []);
    expect(versions.docker.source).toBe("docker-ce");
    expect(script).toContain("KB_DOCKER_SOURCE='docker-ce'");
    expect(script).toContain("KB_DOCKER_PACKAGE='docker-ce'\nKB_DOCKER_CLI_PACKAGE='docker-ce-cli'\nKB_CONTAINERD_PACKAGE='containerd.io'");
    expect(script).toContain(`KB_DOCKER_VERSION='${versions.docker.engine}'`);
    expect(script).toContain(`KB_CONTAINERD_VERSION='${versions.docker.containerd}'`);
    expect(upstreamRelease("5:27.5.1-1~ubuntu.24.04~noble")).toBe("27.5.1");
    expect(upstreamRelease("27.5.1-0ubuntu3~24.04.2")).toBe("27.5.1");
    expect(upstreamRelease("26.1.5+dfsg1-9+b9")).toBe("26.1.5");
    expect(() => upstreamRelease("latest")).toThrow(/no x.y.z release/);
  });

  it("installs the distribution's docker.io and containerd when versions.yaml says source: distribution", () => {
    const distribution = {
      ...versions,
      docker: { source: "distribution" as const, engine: "26.1.5+dfsg1-9+b9", containerd: "1.7.24~ds1-6+b4" },
    };
    const script = renderBaseOsScript("db-master-01", "postgres", inventory, distribution, []);
    expect(script).toContain("KB_DOCKER_SOURCE='distribution'");
    expect(script).toContain("KB_DOCKER_PACKAGE='docker.io'\nKB_DOCKER_CLI_PACKAGE=''\nKB_CONTAINERD_PACKAGE='containerd'");
    expect(script).toContain("KB_DOCKER_VERSION='26.1.5+dfsg1-9+b9'");
    const verify = renderVerifyScript("db-master-01", distribution);
    expect(verify).toContain("KB_DOCKER_PACKAGE='docker.io'\nKB_DOCKER_VERSION='26.1.5+dfsg1-9+b9'\nKB_DOCKER_RELEASE='26.1.5'");
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
      "live-restore": true,
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

describe("base OS settings (keybuzz:baseOs)", () => {
  const defaults = parseBaseOsSettings(undefined);

  it("defaults to spec 000's journald limits and the SSH jail's values", () => {
    expect(renderJournaldLimits(defaults)).toBe("[Journal]\nSystemMaxUse=200M\nSystemKeepFree=100M\n");
    const jail = renderFail2banJail(["192.0.2.10/32"], "10.0.0.0/16", defaults);
    expect(jail).toContain("maxretry = 5\nfindtime = 10m\nbantime = 1h\n");
    expect(jail).toContain("ignoreip = 127.0.0.1/8 ::1 10.0.0.0/16 192.0.2.10/32\n");
  });

  it("renders what the operator sets, keeping the other defaults", () => {
    const settings = parseBaseOsSettings({ fail2ban: { banTime: "1d" }, journald: { systemMaxUse: "1G" } });
    expect(settings).toEqual({
      fail2ban: { maxRetry: 5, findTime: "10m", banTime: "1d" },
      journald: { systemMaxUse: "1G", systemKeepFree: "100M" },
    });
    const files = Object.fromEntries(baseOsFiles(inventory, settings).map((file) => [file.path, file.content]));
    expect(files["/etc/fail2ban/jail.d/keybuzz.conf"]).toMatch(/^bantime = 1d$/m);
    expect(files["/etc/systemd/journald.conf.d/limit.conf"]).toMatch(/^SystemMaxUse=1G$/m);
  });

  it.each([
    [{ fail2ban: { banTime: "one hour" } }, /keybuzz:baseOs\.fail2ban\.banTime: must be a fail2ban duration/],
    [{ journald: { systemKeepFree: "100MB" } }, /keybuzz:baseOs\.journald\.systemKeepFree: must be a journald size/],
    [{ fail2ban: { maxRetry: 0 } }, /keybuzz:baseOs\.fail2ban\.maxRetry: /],
    [{ sshd: {} }, /keybuzz:baseOs.*Unrecognized key: "sshd"/],
  ])("names the bad key of %j", (raw, message) => {
    expect(() => parseBaseOsSettings(raw)).toThrow(message);
  });

  it("is validated in the config pass, before any resource", async () => {
    const { error, registrations } = await runFailingProgram("prod", {
      "keybuzz:baseOs": JSON.stringify({ journald: { systemMaxUse: "lots" } }),
    });
    expect(isConfigError(error)).toBe(true);
    expect((error as { problems: string[] }).problems).toEqual([expect.stringMatching(/^keybuzz:baseOs\.journald\.systemMaxUse: /)]);
    expect(registrations).toHaveLength(0);
  });

  it("reaches every server's base OS step", async () => {
    const run = await runProgram("prod", { "keybuzz:baseOs": JSON.stringify({ fail2ban: { maxRetry: 3 } }) });
    for (const server of inventory.servers) {
      const step = run.steps.find((candidate) => candidate.step === `${server.name}-base-os`);
      const jail = step?.files.find((file) => file.path === "/etc/fail2ban/jail.d/keybuzz.conf");
      expect([server.name, jail?.content]).toEqual([server.name, expect.stringMatching(/^maxretry = 3$/m)]);
    }
  });
});

describe("base OS steps (mock engine)", () => {
  it("hardens then verifies every server, each verification after its hardening", async () => {
    const run = await runProgram("prod");
    for (const server of inventory.servers) {
      // Each server's hardening waits for its own private network attachment (after.hosts); the
      // server itself is the connection's.
      const apply = run.registrations.find((candidate) => candidate.name === `${server.name}-base-os`);
      // ... and, after the first of its group, the verification of the previous one (the roll).
      const group = inventory.servers.filter((candidate) => candidate.group === server.group);
      const previous = group[group.indexOf(server) - 1];
      expect([...(apply?.dependsOn ?? [])].sort()).toEqual(
        [server.name, `${server.name}-private`, ...(previous ? [`${previous.name}-base-os-verify`] : [])].sort(),
      );
      const verify = run.registrations.find((candidate) => candidate.name === `${server.name}-base-os-verify`);
      expect([...(verify?.dependsOn ?? [])].sort()).toEqual([server.name, `${server.name}-base-os`]);
    }
    for (const server of inventory.servers) {
      const apply = run.steps.findIndex((step) => step.step === `${server.name}-base-os`);
      const verify = run.steps.findIndex((step) => step.step === `${server.name}-base-os-verify`);
      expect(apply).toBeGreaterThanOrEqual(0);
      expect(verify).toBeGreaterThan(apply);
      expect(run.steps[verify].script).toContain(
        "for test in docker_pinned swap_off ufw_active dns_fixed ssh_hardened timezone_paris ntp_active sysctl_applied",
      );
      expect(run.steps[apply].script).toContain(`KB_DOCKER_SOURCE='${versions.docker.source}'`);
      const daemonJson = run.steps[apply].files.find((file) => file.path === "/etc/docker/daemon.json");
      expect(JSON.parse(daemonJson?.content ?? "{}")["live-restore"]).toBe(true);
      const paths = run.steps[apply].files.map((file) => file.path);
      expect(paths).toContain(SSHD_DROP_IN);
      expect(paths).not.toContain(OLD_SSHD_DROP_IN);
      // The shared apt helpers are in the step, before the base OS script that uses them.
      expect(run.steps[apply].script.indexOf("kb_apt_get() {")).toBeGreaterThan(0);
      expect(run.steps[apply].script.indexOf("kb_apt_get() {")).toBeLessThan(run.steps[apply].script.indexOf("kb_apt_get update"));
    }
  });
});
