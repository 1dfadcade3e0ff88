import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import type { ServerSpec } from "../../config";
import { renderEtcdMetricsPatch } from "../../components/k8s/cluster/render";
import { parseExportersSettings } from "../../components/observability/exporters";
import { SCRAPE_JOBS, scrapeConfigName } from "../../components/observability/monitoring";
import { deployedScrapeJobs } from "../../components/observability/monitoring/component";
import { clusterDir, loopbackInventory } from "../support/loopback/loopback";
import { alertsDir, LoopbackPrometheus } from "../support/loopback/prometheus";
import { clusterForSuite } from "../support/loopback/suite";
import { sleep, Supervisor, waitFor } from "../support/loopback/supervisor";

/**
 * kubeadm's etcd as the platform scrapes it: three Debian etcd members on the loopback control
 * planes' addresses, each serving metrics on the `--listen-metrics-urls` the rendered kubeadm patch
 * gives it (components/k8s/cluster `renderEtcdMetricsPatch`), scraped by Debian's Prometheus through
 * the rendered `kube-etcd` ScrapeConfig (job `etcd`, cluster `k8s-master`) and evaluated with the
 * rendered rules. A member killed fires EtcdQuorumAtRisk for that cluster; it resolves after the
 * restart. Prints the seconds. Run isolated:
 * `unshare -n bash -c 'ip link set lo up && npx jest -c jest.integration.config.js tests/observability'`.
 */

const ETCD = "/usr/bin/etcd";

class KubeEtcdOnLoopback {
  private constructor(
    readonly supervisor: Supervisor,
    readonly dir: string,
    /** The loopback inventory's control planes. */
    readonly members: readonly ServerSpec[],
    readonly prometheus: LoopbackPrometheus,
    private readonly prometheusDir: string,
  ) {}

  static async start(): Promise<KubeEtcdOnLoopback> {
    const supervisor = new Supervisor();
    const dir = clusterDir("kube-etcd");
    const prometheusDir = alertsDir();
    try {
      const servers = loopbackInventory().servers;
      const job = deployedScrapeJobs(servers, parseExportersSettings(undefined)).find(
        (candidate) => scrapeConfigName(candidate) === "kube-etcd",
      )!;
      const members = servers.filter((server) => job.servers.includes(server));
      const cluster = new KubeEtcdOnLoopback(supervisor, dir, members, new LoopbackPrometheus(supervisor, prometheusDir), prometheusDir);
      for (const member of members) cluster.startMember(member, "new");
      await cluster.prometheus.start(
        [job],
        `count(etcd_server_has_leader{job="${SCRAPE_JOBS.etcd}", cluster="k8s-master"} == 1)`,
        members.length,
        () => members.map((member) => supervisor.log(member.name)).join("\n"),
      );
      return cluster;
    } catch (error) {
      await supervisor.stopAll();
      throw error;
    }
  }

  /** A member with kubeadm's client/peer layout on its address (plain http here: kubeadm's TLS is not under test) and the rendered metrics URLs. */
  startMember(member: ServerSpec, state: "new" | "existing"): void {
    const patch = yaml.load(renderEtcdMetricsPatch(member)) as { value: string }[];
    // Every loopback member shares 127.0.0.1: the patch's 127.0.0.1 URL (for kubeadm's probes on a
    // node's own loopback) would clash, so only the private-address URL Prometheus scrapes is kept.
    const metricsUrls = patch[0].value
      .replace(/^--listen-metrics-urls=/, "")
      .split(",")
      .filter((url) => !url.startsWith("http://127.0.0.1:"));
    const peer = (address: string) => `http://${address}:2380`;
    this.supervisor.start({
      name: member.name,
      command: ETCD,
      args: [
        `--name=${member.name}`,
        `--data-dir=${path.join(this.dir, member.name)}`,
        `--listen-client-urls=http://${member.privateIp}:2379`,
        `--advertise-client-urls=http://${member.privateIp}:2379`,
        `--listen-peer-urls=${peer(member.privateIp)}`,
        `--initial-advertise-peer-urls=${peer(member.privateIp)}`,
        `--initial-cluster=${this.members.map((other) => `${other.name}=${peer(other.privateIp)}`).join(",")}`,
        `--initial-cluster-state=${state}`,
        `--listen-metrics-urls=${metricsUrls.join(",")}`,
      ],
      logFile: path.join(this.dir, `${member.name}.log`),
    });
  }

  async stop(): Promise<void> {
    await this.supervisor.stopAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.rmSync(this.prometheusDir, { recursive: true, force: true });
  }
}

describe("kubeadm's etcd alert rules on loopback (Debian etcd + prometheus, the rendered metrics URLs, kube-etcd job and rules)", () => {
  const live = clusterForSuite(["etcd", "prometheus"], () => KubeEtcdOnLoopback.start());
  const ETCD_ALERTS = ["EtcdNoLeader", "EtcdQuorumAtRisk", "EtcdQuorumLost"];

  it("every member is scraped on its private address with the inventory labels, and a healthy cluster fires no etcd alert", async () => {
    await sleep(3_000);
    for (const member of live().members) {
      expect(await live().prometheus.query(`up{job="etcd", cluster="k8s-master", node="${member.name}", server_role="k8s"}`)).toBe(1);
    }
    expect(await live().prometheus.query(`sum(etcd_server_is_leader{cluster="k8s-master"})`)).toBe(1);
    for (const alert of ETCD_ALERTS) expect(await live().prometheus.firing(alert)).toEqual([]);
  }, 60_000);

  it("a member is killed: EtcdQuorumAtRisk fires for cluster k8s-master, and resolves after its restart", async () => {
    const member = live().members[2];
    await live().supervisor.kill(member.name);
    const downAt = Date.now();
    const firedAfter = await live().prometheus.secondsUntil(
      "EtcdQuorumAtRisk to fire",
      downAt,
      "EtcdQuorumAtRisk",
      (firing) => firing.length > 0,
      180_000,
      [`sum by (cluster) (up{job="etcd"})`, "ALERTS"],
    );
    expect((await live().prometheus.firing("EtcdQuorumAtRisk")).map((alert) => alert.labels)).toEqual([
      expect.objectContaining({ cluster: "k8s-master", severity: "warning" }),
    ]);
    expect(await live().prometheus.firing("EtcdQuorumLost")).toEqual([]);
    live().startMember(member, "existing");
    const backAt = Date.now();
    await waitFor(
      "the member to be scraped again",
      async () => (await live().prometheus.query(`up{node="${member.name}"}`)) === 1,
      60_000,
      250,
    );
    const resolvedAfter = await live().prometheus.secondsUntil(
      "EtcdQuorumAtRisk to resolve",
      backAt,
      "EtcdQuorumAtRisk",
      (firing) => firing.length === 0,
      120_000,
    );
    console.log(
      `alerts: kubeadm's etcd: EtcdQuorumAtRisk fired ${firedAfter.toFixed(1)} s after a member's crash (rule: for 1m), resolved ${resolvedAfter.toFixed(1)} s after its restart`,
    );
  }, 400_000);
});
