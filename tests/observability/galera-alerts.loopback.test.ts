import * as fs from "fs";
import * as path from "path";
import { serversOf } from "../../config";
import { ACCOUNTS } from "../../components/security/secrets";
import { parseExportersSettings } from "../../components/observability/exporters";
import { SCRAPE_JOBS, type ScrapeJobSpec } from "../../components/observability/monitoring";
import { requireTool } from "../support/tools";
import { loopbackInventory } from "../support/loopback/loopback";
import { alertsDir, LoopbackPrometheus } from "../support/loopback/prometheus";
import { clusterForSuite } from "../support/loopback/suite";
import { ownedFile, sleep, Supervisor } from "../support/loopback/supervisor";
import { GaleraLoopbackCluster } from "../galera/loopback";

/**
 * The rendered Galera alert rules evaluated by Debian's real Prometheus, scraping Debian's
 * mysqld_exporter in front of each node of the loopback Galera cluster (tests/galera/loopback.ts),
 * logged in as the rendered `exporter` account, through the rendered scrape targets moved to
 * loopback: while a node is down GaleraClusterSizeLow and GaleraNodeDown fire; both resolve once it
 * rejoins (keybuzz-galera `converge member`, as the deployment's step). Prints the seconds from the
 * crash to each alert and from the rejoin to each resolution. Run isolated: `unshare -n bash -c 'ip
 * link set lo up && npx jest -c jest.integration.config.js tests/observability'`.
 */

const MYSQLD_EXPORTER = "/usr/bin/prometheus-mysqld-exporter";
const EXPORTERS = parseExportersSettings(undefined);
const DOWN_ALERTS = ["GaleraClusterSizeLow", "GaleraNodeDown"] as const;

class AlertsOnGalera {
  readonly supervisor = new Supervisor();
  readonly prometheus: LoopbackPrometheus;

  private constructor(
    readonly galera: GaleraLoopbackCluster,
    readonly dir: string,
  ) {
    this.prometheus = new LoopbackPrometheus(this.supervisor, dir);
  }

  static async start(): Promise<AlertsOnGalera> {
    const galera = await GaleraLoopbackCluster.start();
    const alerts = new AlertsOnGalera(galera, alertsDir());
    try {
      await alerts.boot();
    } catch (error) {
      await alerts.stop();
      throw error;
    }
    return alerts;
  }

  /** mysqld_exporter per node (its account's password in a prometheus-only my.cnf), then Prometheus. */
  private async boot(): Promise<void> {
    for (const node of this.galera.nodes) {
      const cnf = ownedFile(
        path.join(this.dir, `${node.name}-exporter.cnf`),
        `[client]\nuser = ${ACCOUNTS.mariadbExporter}\npassword = ${this.galera.exporterPassword}\nhost = ${node.address}\nport = ${this.galera.server[node.name].port}\n`,
        "prometheus",
      );
      this.supervisor.start({
        name: `${node.name}-mysqld-exporter`,
        command: MYSQLD_EXPORTER,
        args: [`--config.my-cnf=${cnf}`, `--web.listen-address=${node.address}:${EXPORTERS.mysqldExporterPort}`, "--collect.global_status"],
        user: "prometheus",
        logFile: path.join(this.dir, `${node.name}-mysqld-exporter.log`),
      });
    }
    const job: ScrapeJobSpec = {
      job: "mysqld",
      port: EXPORTERS.mysqldExporterPort,
      metricsPath: "/metrics",
      scheme: "http",
      servers: serversOf(loopbackInventory(), "mariadb"),
    };
    await this.prometheus.start([job], `count(mysql_global_status_wsrep_cluster_size{job="${SCRAPE_JOBS.mysqld}"} == 3)`, 3, () =>
      this.supervisor.log(`${this.galera.nodes[0].name}-mysqld-exporter`),
    );
  }

  async stop(): Promise<void> {
    await this.supervisor.stopAll();
    await this.galera.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("Galera alert rules on loopback (Debian prometheus + mysqld_exporter, rendered rules and targets)", () => {
  const live = clusterForSuite(
    ["mariadbd", "mariadb", "mariadb-install-db", "mariabackup", "socat", "setpriv", "unshare", "prometheus", "prometheus-mysqld-exporter"],
    () => {
      requireTool("libgalera_smm.so", ["/usr/lib/galera"]);
      return AlertsOnGalera.start();
    },
  );

  it("a healthy cluster fires no Galera alert, and the exporter account reads every default collector", async () => {
    await sleep(5_000);
    for (const alert of [...DOWN_ALERTS, "GaleraNodeNotSynced", "GaleraFlowControl"]) {
      expect(await live().prometheus.firing(alert)).toEqual([]);
    }
    // Every node Synced (4), and every collector the exporter runs succeeds with the account's grants.
    expect(await live().prometheus.query(`count(mysql_global_status_wsrep_local_state{job="mysqld"} == 4)`)).toBe(3);
    // (mysqld_exporter 0.14, collector/exporter.go: a collector's error counts in scrape_errors_total and sets last_scrape_error.)
    expect(await live().prometheus.query(`count(mysql_exporter_last_scrape_error{job="mysqld"} == 0)`)).toBe(3);
    expect(await live().prometheus.query(`count(mysql_exporter_scrape_errors_total{job="mysqld"} > 0)`)).toBeUndefined();
  }, 60_000);

  it("a node crashes: GaleraClusterSizeLow and GaleraNodeDown fire, and resolve once it rejoins", async () => {
    const { galera, prometheus } = live();
    const victim = galera.nodes[2];
    await galera.kill(victim);
    const crashedAt = Date.now();
    const exprs = ['max by (cluster) (mysql_global_status_wsrep_cluster_size{job="mysqld"})', 'mysql_up{job="mysqld"}', "ALERTS"];
    const firedAfter: Record<string, number> = {};
    await Promise.all(
      DOWN_ALERTS.map(async (alert) => {
        firedAfter[alert] = await prometheus.secondsUntil(
          `${alert} to fire`,
          crashedAt,
          alert,
          (firing) => firing.length > 0,
          180_000,
          exprs,
        );
      }),
    );
    expect((await prometheus.firing("GaleraClusterSizeLow")).map((alert) => alert.labels)).toEqual([
      expect.objectContaining({ alertname: "GaleraClusterSizeLow", cluster: "mariadb", severity: "critical" }),
    ]);
    expect((await prometheus.firing("GaleraNodeDown")).map((alert) => alert.labels.node)).toEqual([victim.name]);

    // Watched while the node rejoins, so a resolution before it is Synced is timed too.
    const rejoinAt = Date.now();
    const resolvedAfter: Record<string, number> = {};
    const resolving = Promise.all(
      DOWN_ALERTS.map(async (alert) => {
        resolvedAfter[alert] = await prometheus.secondsUntil(
          `${alert} to resolve`,
          rejoinAt,
          alert,
          (firing) => firing.length === 0,
          300_000,
          exprs,
        );
      }),
    );
    await galera.helper(victim, ["converge", "member"], 200_000);
    await galera.waitSynced(galera.nodes, galera.nodes.length, 60_000);
    const syncedAfter = (Date.now() - rejoinAt) / 1000;
    await resolving;
    // "Node not Synced" needs 5 minutes of a Joiner/Donor state: an IST rejoin of a loopback node is far shorter.
    const notSynced = await prometheus.firing("GaleraNodeNotSynced");
    for (const alert of DOWN_ALERTS) {
      console.log(
        `alerts: ${alert} fired ${firedAfter[alert].toFixed(1)} s after ${victim.name}'s crash (rule: for 1m), resolved ${resolvedAfter[alert].toFixed(1)} s after its restart (Synced after ${syncedAfter.toFixed(1)} s)`,
      );
    }
    console.log(`alerts: GaleraNodeNotSynced ${notSynced.length > 0 ? "fired" : "did not fire (rule: for 5m; the rejoin was shorter)"}`);
  }, 600_000);
});
