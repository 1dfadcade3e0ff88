import { loadVersions, parseInventory } from "../../config";
import {
  CERT_EXPIRY_FILE,
  MINIO_METRICS_USER,
  minioPrometheusToken,
  mysqldExporter,
  nodeExporterContainer,
  parseExportersSettings,
  pgbouncerExporter,
  postgresExporter,
  postgresExporterContainer,
  postgresExporterFiles,
  redisExporter,
  renderNodeExporterScript,
  renderPostgresExporterRoleSql,
  renderServiceExportersScript,
  scramSha256Verifier,
  type ServiceExporter,
} from "../../components/observability/exporters";
import { containerSpecHash } from "../../components/lib/container";
import { secretKeysIn } from "../../components/lib/remote";
import { runBash } from "../support/bash-fakes";
import { SCRAPE_JOBS } from "../../components/observability/monitoring";
import { exporterPortsOf, exporterUfwRules } from "../../components/os/base-os/render";
import { deployedScrapeJobs } from "../../components/observability/monitoring/component";
import { isSecretValue, mockSecret, MockRun, Registration, reveal, runProgram } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const inventory = parseInventory(rawStackConfig("prod"));
const versions = loadVersions();
const COMMAND = "command:remote:Command";

describe("node_exporter (render)", () => {
  const settings = parseExportersSettings(undefined);

  it("runs the pinned image with the host's PID namespace and root read-only, on the private address only", () => {
    const spec = nodeExporterContainer(versions.images.nodeExporter, "10.0.0.120", settings);
    expect(spec.image).toBe(versions.images.nodeExporter);
    expect(spec.options).toEqual(["--pid", "host", "-v", "/:/host:ro,rslave"]);
    expect(spec.command).toEqual([
      "--path.rootfs=/host",
      "--web.listen-address=10.0.0.120:9100",
      "--collector.textfile.directory=/host/var/lib/keybuzz/node-exporter",
    ]);
    expect(CERT_EXPIRY_FILE.startsWith("/var/lib/keybuzz/node-exporter/")).toBe(true);
  });

  it("the step's body runs the container on host networking and scrapes its own endpoint", () => {
    const script = renderNodeExporterScript(versions.images.nodeExporter, "10.0.0.120", settings);
    expect(script).toContain("--network host");
    expect(script).toContain("KB_NODE_IP='10.0.0.120'");
    expect(script).toContain('curl -fsS --max-time 5 "http://$KB_NODE_IP:$KB_PORT/metrics"');
  });

  it("a certificate directory must be an absolute path", () => {
    expect(() => parseExportersSettings({ certificateDirs: ["etc/x"] })).toThrow(
      /keybuzz:exporters\.certificateDirs\.0|keybuzz:exporters\.certificateDirs\[0\]/,
    );
  });
});

describe("service exporters (render)", () => {
  const settings = parseExportersSettings(undefined);
  const redis = redisExporter("quay.io/oliver006/redis_exporter:v1.88.0", "10.0.0.123", "redis", 6379, settings);
  const sentinel = redisExporter("quay.io/oliver006/redis_exporter:v1.88.0", "10.0.0.123", "sentinel", 26379, settings);
  const mysqld = mysqldExporter("quay.io/prometheus/mysqld-exporter:v0.20.0", "10.0.0.170", 3306, settings);

  it("redis_exporter logs in as the ACL user, never sends CONFIG, listens on the private address only", () => {
    expect(redis.container.command).toEqual([
      "--redis.addr=redis://10.0.0.123:6379",
      "--redis.user=exporter",
      "--web.listen-address=10.0.0.123:9121",
      "--config-command=-",
    ]);
    expect(sentinel.container.name).toBe("sentinel-exporter");
    expect(sentinel.container.command.slice(0, 1)).toEqual(["--redis.addr=redis://10.0.0.123:26379"]);
    expect(sentinel.url).toBe("http://10.0.0.123:9122/metrics");
  });

  it("mysqld_exporter reads its own node's global status (wsrep_*) as the exporter account", () => {
    expect(mysqld.container.command).toEqual([
      "--mysqld.address=10.0.0.170:3306",
      "--mysqld.username=exporter",
      "--web.listen-address=10.0.0.170:9104",
      "--collect.global_status",
    ]);
    expect(mysqld.upMetric).toBe("mysql_up");
  });

  it("passwords reach the containers only through root-only env files holding placeholders", () => {
    for (const exporter of [redis, sentinel, mysqld]) {
      expect(exporter.files).toHaveLength(1);
      const [env] = exporter.files;
      expect(exporter.container.options).toEqual(["--env-file", env.path]);
      expect(env.mode).toBe("0600");
      expect(secretKeysIn(env.content)).toHaveLength(1);
      expect(secretKeysIn(exporter.container.command.join(" "))).toEqual([]);
    }
    expect(redis.files[0].content).toBe("REDIS_PASSWORD={{secret:redis-exporter-password}}\n");
    expect(mysqld.files[0].content).toBe("MYSQLD_EXPORTER_PASSWORD={{secret:mariadb-exporter}}\n");
  });

  // The step body with a fake docker (the container state) and a fake curl (the exporter's answer).
  const step = (state: "current" | "missing", metrics: string, changed: string[] = [], exporter: ServiceExporter = redis) =>
    runBash(
      `kb_is_changed() { [[ " ${changed.join(" ")} " == *" $1 "* ]]; }\nkb_wait_until() { shift 2; shift 3; "$@"; }\n${renderServiceExportersScript([exporter])}`,
      {
        docker: `case "$1 $2" in "inspect -f") if [ "${state}" = missing ]; then exit 1; fi; case "$3" in *Running*) echo true ;; *) echo '${containerSpecHash(exporter.container)}' ;; esac ;; *) echo "docker $*" >&2 ;; esac`,
        curl: `cat <<'METRICS'\n${metrics}\nMETRICS`,
      },
    );

  it("starts a missing container and passes once the exporter reports its service up", () => {
    const result = step("missing", "# HELP redis_up\nredis_up 1");
    expect(result.stdout).toContain("redis-exporter: (re)starting (missing)");
    expect(result.stderr).toMatch(/docker run -d --name redis-exporter .*--env-file \/etc\/keybuzz\/exporters\/redis-exporter.env/);
    expect(result.stdout).toContain("redis-exporter: serving http://10.0.0.123:9121/metrics (redis_up 1)");
    expect(result.status).toBe(0);
  });

  it("recreates a current container only when one of its credentials files was rewritten", () => {
    const postgres = postgresExporter(versions.images.postgresExporter, { privateIp: "10.0.0.120", postgresPort: 5432 });
    const unchanged = step("current", "pg_up 1", [], postgres);
    expect(unchanged.status).toBe(0);
    expect(unchanged.stdout).not.toContain("(re)starting");
    expect(unchanged.stdout).toContain("postgres-exporter: serving http://10.0.0.120:9187/metrics (pg_up 1)");
    const rotated = step("current", "pg_up 1", ["/etc/keybuzz/exporters/postgres/password"], postgres);
    expect(rotated.stdout).toContain("postgres-exporter: (re)starting (current)");
    expect(rotated.stderr).toMatch(/docker run -d --name postgres-exporter /);
    const pgbouncer = pgbouncerExporter(versions.images.pgbouncerExporter, { privateIp: "10.0.0.11", pgbouncerPort: 6432 });
    expect(step("current", "pgbouncer_up 0", [], pgbouncer).status).not.toBe(0);
  });

  it("fails when the exporter cannot reach its service (redis_up 0)", () => {
    const result = step("missing", "redis_up 0");
    expect(result.status).not.toBe(0);
    expect(result.stdout).not.toContain("serving");
  });
});

describe("postgres_exporter (render)", () => {
  it("connects to its own node's PostgreSQL over TLS verified against the CA, the password read from a file", () => {
    const spec = postgresExporterContainer(versions.images.postgresExporter, { privateIp: "10.0.0.120", postgresPort: 5432 });
    const env = spec.options.filter((_, index) => spec.options[index - 1] === "-e");
    expect(env).toEqual([
      "DATA_SOURCE_URI=10.0.0.120:5432/postgres?sslmode=verify-ca&sslrootcert=/etc/keybuzz/exporters/postgres/ca.crt",
      "DATA_SOURCE_USER=kb_exporter",
      "DATA_SOURCE_PASS_FILE=/etc/keybuzz/exporters/postgres/password",
    ]);
    expect(spec.options.join(" ")).not.toMatch(/DATA_SOURCE_PASS=|DATA_SOURCE_NAME=/);
    expect(spec.command).toEqual(["--web.listen-address=10.0.0.120:9187"]);
    expect(postgresExporterFiles().map((file) => [file.path, file.mode, file.owner])).toEqual([
      ["/etc/keybuzz/exporters/postgres/password", "0400", "65534:65534"],
      ["/etc/keybuzz/exporters/postgres/ca.crt", "0400", "65534:65534"],
    ]);
  });

  it("the role is a LOGIN member of pg_monitor only; PostgreSQL receives its SCRAM verifier, never the password", () => {
    const sql = renderPostgresExporterRoleSql();
    expect(sql).toContain("GRANT pg_monitor TO kb_exporter;");
    expect(sql).toMatch(
      /ALTER ROLE kb_exporter WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS .*PASSWORD '\{\{secret:postgres-exporter-verifier\}\}'/,
    );
    const verifier = scramSha256Verifier("pencil", Buffer.from("0123456789abcdef").toString("base64"));
    expect(verifier).toMatch(/^SCRAM-SHA-256\$4096:MDEyMzQ1Njc4OWFiY2RlZg==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    expect(verifier).not.toContain("pencil");
    expect(scramSha256Verifier("pencil2", Buffer.from("0123456789abcdef").toString("base64"))).not.toBe(verifier);
  });
});

describe("observability in the prod plan (mock engine)", () => {
  let run: MockRun;
  beforeAll(async () => {
    run = await runProgram("prod");
  });
  const ofType = (type: string) => run.registrations.filter((registration) => registration.type === type);
  const named = (type: string, name: string): Registration => {
    const found = ofType(type).find((candidate) => candidate.name === name);
    if (!found) throw new Error(`no ${type} named ${name}`);
    return found;
  };

  it("every server gets a node_exporter step after its verified base OS", () => {
    for (const server of inventory.servers) {
      const step = named(COMMAND, `${server.name}-node-exporter`);
      expect(step.dependsOn).toContain(`${server.name}-base-os-verify`);
      expect(step.parent).toContain("keybuzz:observability:Exporters");
    }
    expect(ofType(COMMAND).filter((step) => step.name.endsWith("-node-exporter"))).toHaveLength(inventory.servers.length);
  });

  it("every redis node gets redis_exporter (Redis, Sentinel) and every MariaDB node mysqld_exporter, after their cluster is verified", () => {
    for (const [group, step, verified] of [
      ["redis", "redis-exporter", "redis-verify"],
      ["mariadb", "mysqld-exporter", "galera-maria-03-verify"],
    ] as const) {
      const hosts = inventory.servers.filter((server) => server.group === group);
      expect(hosts.length).toBe(3);
      for (const server of hosts) {
        const registration = named(COMMAND, `${server.name}-${step}`);
        expect(registration.dependsOn).toEqual(expect.arrayContaining([`${server.name}-base-os-verify`, verified]));
        expect(registration.parent).toContain("keybuzz:observability:Exporters");
      }
    }
    expect(ofType(COMMAND).filter((step) => /-(redis|mysqld)-exporter$/.test(step.name))).toHaveLength(6);
  });

  it("postgres_exporter on each DB node after its role step on db-master-01, which waits for the PostgreSQL verification", () => {
    const dbNodes = inventory.servers.filter((server) => server.group === "postgres");
    const role = named(COMMAND, `${dbNodes[0].name}-postgres-exporter-role`);
    expect(role.dependsOn).toContain(`${dbNodes[0].name}-postgres-verify`);
    for (const server of dbNodes) {
      const step = named(COMMAND, `${server.name}-postgres-exporter`);
      expect(step.dependsOn).toEqual(expect.arrayContaining([`${server.name}-base-os-verify`, role.name]));
      expect(step.parent).toContain("keybuzz:observability:Exporters");
    }
    expect(ofType(COMMAND).filter((step) => step.name.endsWith("-postgres-exporter"))).toHaveLength(dbNodes.length);
    const scrape = reveal(
      named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", `monitoring-scrape-${SCRAPE_JOBS.postgres}`).inputs,
    ) as Doc;
    expect(scrape.spec.staticConfigs.map((group: Doc) => group.targets[0])).toEqual(dbNodes.map((server) => `${server.privateIp}:9187`));
  });

  it("pgbouncer_exporter on each haproxy node after PgBouncer, its password only in a pgpass file", () => {
    const haproxyNodes = inventory.servers.filter((server) => server.group === "haproxy");
    for (const server of haproxyNodes) {
      const step = named(COMMAND, `${server.name}-pgbouncer-exporter`);
      expect(step.dependsOn).toEqual(
        expect.arrayContaining([`${server.name}-base-os-verify`, `${haproxyNodes[haproxyNodes.length - 1].name}-pgbouncer`]),
      );
      const create = String(reveal(step.inputs.create));
      expect(create).toContain(
        `--pgBouncer.connectionString=postgres://kb_pgbouncer_stats@127.0.0.1:6432/pgbouncer?sslmode=disable&passfile=`,
      );
      expect(create).not.toContain("mock-secret-secrets-pgbouncer-stats");
    }
    const scrape = reveal(
      named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", `monitoring-scrape-${SCRAPE_JOBS.pgbouncer}`).inputs,
    ) as Doc;
    expect(scrape.spec.staticConfigs.map((group: Doc) => group.targets[0])).toEqual(
      haproxyNodes.map((server) => `${server.privateIp}:9127`),
    );
  });

  it("ScrapeConfigs target every server's private address, labelled with cluster, server_role and node", () => {
    const scrape = (job: string) =>
      reveal(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", `monitoring-scrape-${job}`).inputs) as Doc;
    const node = scrape(SCRAPE_JOBS.node);
    expect(node.metadata).toEqual({ name: "keybuzz-node", namespace: "monitoring" });
    expect(node.spec.jobName).toBe("node");
    expect(node.spec.staticConfigs).toEqual(
      inventory.servers.map((server) => ({
        targets: [`${server.privateIp}:9100`],
        labels: { cluster: server.group, server_role: server.role, node: server.name },
      })),
    );
    const patroni = scrape(SCRAPE_JOBS.patroni);
    expect(patroni.spec.scheme).toBe("HTTPS");
    expect(patroni.spec.tlsConfig).toEqual({ ca: { configMap: { name: "keybuzz-scrape-ca", key: "platform-ca.crt" } } });
    expect(patroni.spec.staticConfigs.map((group: Doc) => group.labels.node)).toEqual(
      inventory.servers.filter((server) => server.group === "postgres").map((server) => server.name),
    );
    expect(scrape(SCRAPE_JOBS.rabbitmq).spec.staticConfigs.map((group: Doc) => group.targets[0])).toEqual(
      inventory.servers.filter((server) => server.group === "rabbitmq").map((server) => `${server.privateIp}:15692`),
    );
    const targets = (job: string) => scrape(job).spec.staticConfigs.map((group: Doc) => group.targets[0]);
    const addresses = (group: string, port: number) =>
      inventory.servers.filter((server) => server.group === group).map((server) => `${server.privateIp}:${port}`);
    expect(targets(SCRAPE_JOBS.redis)).toEqual(addresses("redis", 9121));
    expect(targets(SCRAPE_JOBS.sentinel)).toEqual(addresses("redis", 9122));
    expect(targets(SCRAPE_JOBS.mysqld)).toEqual(addresses("mariadb", 9104));
    expect(targets(SCRAPE_JOBS.haproxy)).toEqual(addresses("haproxy", 8405));
    expect(targets(SCRAPE_JOBS.proxysql)).toEqual(addresses("proxysql", 6070));
  });

  it("Patroni's etcd is scraped over mutual TLS: the platform CA and Prometheus's client certificate from the scrape Secret", () => {
    const scrape = reveal(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", "monitoring-scrape-etcd").inputs) as Doc;
    expect(scrape.metadata).toEqual({ name: "keybuzz-etcd", namespace: "monitoring" });
    expect(scrape.spec).toMatchObject({ jobName: "etcd", scheme: "HTTPS", metricsPath: "/metrics" });
    expect(scrape.spec.tlsConfig).toEqual({
      ca: { configMap: { name: "keybuzz-scrape-ca", key: "platform-ca.crt" } },
      cert: { secret: { name: "keybuzz-scrape-credentials", key: "etcd-client.crt" } },
      keySecret: { name: "keybuzz-scrape-credentials", key: "etcd-client.key" },
    });
    const dbNodes = inventory.servers.filter((server) => server.group === "postgres");
    expect(scrape.spec.staticConfigs).toEqual(
      dbNodes.map((server) => ({
        targets: [`${server.privateIp}:2379`],
        labels: { cluster: "postgres", server_role: server.role, node: server.name },
      })),
    );
    // The client certificate: the platform CA's, client_auth only, no SAN.
    const cert = reveal(named("tls:index/locallySignedCert:LocallySignedCert", "pki-client-prometheus").inputs) as Doc;
    expect(cert.allowedUses).toEqual(["digital_signature", "key_encipherment", "client_auth"]);
    const request = reveal(named("tls:index/certRequest:CertRequest", "pki-client-prometheus").inputs) as Doc;
    expect(request).toMatchObject({ subject: { commonName: "prometheus" }, dnsNames: [], ipAddresses: [] });
  });

  it("kubeadm's etcd is job etcd too, on the control planes' private :2381, and the chart's own kube-etcd scrape is off", () => {
    const scrape = reveal(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", "monitoring-scrape-kube-etcd").inputs) as Doc;
    expect(scrape.metadata).toEqual({ name: "keybuzz-kube-etcd", namespace: "monitoring" });
    expect(scrape.spec).toMatchObject({ jobName: "etcd", scheme: "HTTP", metricsPath: "/metrics" });
    expect(scrape.spec.tlsConfig).toBeUndefined();
    expect(scrape.spec.staticConfigs).toEqual(
      inventory.servers
        .filter((server) => server.group === "k8s-master")
        .map((server) => ({
          targets: [`${server.privateIp}:2381`],
          labels: { cluster: "k8s-master", server_role: server.role, node: server.name },
        })),
    );
    const values = (reveal(named("kubernetes:helm.sh/v3:Release", "k8s-addons-kube-prometheus-stack").inputs) as Doc).values;
    expect(values.kubeEtcd).toEqual({ enabled: false });
  });

  it("UFW opens kubeadm's etcd metrics port to the Kubernetes nodes and pod CIDR only; etcd's and MinIO's service ports keep their rules", () => {
    const jobs = deployedScrapeJobs(inventory.servers, parseExportersSettings(undefined));
    const master = inventory.servers.find((server) => server.group === "k8s-master");
    const db = inventory.servers.find((server) => server.group === "postgres");
    const minio = inventory.servers.find((server) => server.group === "minio");
    expect(exporterPortsOf(master!.name, jobs)).toEqual([2381, 9100]);
    expect(exporterPortsOf(db!.name, jobs)).not.toContain(2379);
    expect(exporterPortsOf(minio!.name, jobs)).toEqual([9100]);
    const rules = exporterUfwRules([2381], inventory);
    const k8sNodes = inventory.servers.filter((server) => server.group.startsWith("k8s-")).map((server) => `${server.privateIp}/32`);
    expect(rules.filter((rule) => !rule.action).map((rule) => rule.from)).toEqual([...k8sNodes, inventory.kubernetes.podCidr]);
    expect(rules.at(-1)).toMatchObject({ action: "deny", port: "2381", from: inventory.network.ipRange });
    const masterBaseOs = String(reveal(named(COMMAND, `${master!.name}-base-os`).inputs.create));
    expect(masterBaseOs).toContain(`2381/tcp@${inventory.kubernetes.podCidr}`);
    expect(masterBaseOs).toContain(`deny:2381/tcp@${inventory.network.ipRange}`);
  });

  it("MinIO's metrics account is made on the first MinIO node after the cluster's verification, and Prometheus sends its token", () => {
    const minioNodes = inventory.servers.filter((server) => server.group === "minio");
    const step = named(COMMAND, `${minioNodes[0].name}-minio-metrics-account`);
    expect(step.dependsOn).toEqual(expect.arrayContaining([`${minioNodes[0].name}-base-os-verify`, "minio-verify"]));
    expect(step.parent).toContain("keybuzz:observability:Exporters");
    const create = String(reveal(step.inputs.create));
    expect(create).toContain(`KB_METRICS_URL=`);
    expect(create).toContain(`http://${minioNodes[0].privateIp}:9000/minio/v2/metrics/cluster`);
    expect(create).not.toContain("mock-secret-");
    expect(isSecretValue(step.inputs.stdin)).toBe(true);
    const scrape = reveal(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", "monitoring-scrape-minio").inputs) as Doc;
    expect(scrape.spec).toMatchObject({
      jobName: "minio",
      scheme: "HTTP",
      metricsPath: "/minio/v2/metrics/cluster",
      authorization: { type: "Bearer", credentials: { name: "keybuzz-scrape-credentials", key: "minio-token" } },
    });
    expect(scrape.spec.staticConfigs.map((group: Doc) => group.targets[0])).toEqual(minioNodes.map((server) => `${server.privateIp}:9000`));
    expect(named("kubernetes:monitoring.coreos.com/v1alpha1:ScrapeConfig", "monitoring-scrape-minio").dependsOn).toContain(
      "monitoring-scrape-credentials",
    );
  });

  it("the scrape Secret holds Prometheus's etcd client key pair and MinIO's token, as Pulumi secrets", () => {
    const secret = named("kubernetes:core/v1:Secret", "monitoring-scrape-credentials");
    expect(isSecretValue(secret.inputs.stringData)).toBe(true);
    const data = (reveal(secret.inputs) as Doc).stringData;
    expect(Object.keys(data).sort()).toEqual(["etcd-client.crt", "etcd-client.key", "minio-token"]);
    expect(data["etcd-client.key"]).toContain(mockSecret("pki-client-prometheus"));
    // The token of the account's generated secret key: the same on every run.
    expect(data["minio-token"]).toBe(minioPrometheusToken(MINIO_METRICS_USER, mockSecret("exporters-minio-metrics-secret-key")));
  });

  it("the PrometheusRule, the dashboards and metrics-server wait for kube-prometheus-stack", () => {
    const rules = named("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "monitoring-rules");
    expect(rules.dependsOn).toContain("k8s-addons-kube-prometheus-stack");
    const groups = (reveal(rules.inputs) as Doc).spec.groups.map((group: Doc) => group.name);
    expect(groups).toContain("keybuzz-postgres");
    const dashboards = ofType("kubernetes:core/v1:ConfigMap").filter((map) => map.name.startsWith("monitoring-dashboard-"));
    expect(dashboards.map((map) => (reveal(map.inputs) as Doc).metadata.labels)).toEqual(
      dashboards.map(() => ({ grafana_dashboard: "1" })),
    );
    expect(dashboards.length).toBeGreaterThanOrEqual(6);
    const metricsServer = reveal(named("kubernetes:helm.sh/v3:Release", "monitoring-metrics-server").inputs) as Doc;
    expect(metricsServer).toMatchObject({
      chart: "metrics-server",
      version: versions.charts.metricsServer.version,
      namespace: "kube-system",
    });
  });

  it("kube-prometheus-stack selects every ScrapeConfig and PrometheusRule", () => {
    const values = (reveal(named("kubernetes:helm.sh/v3:Release", "k8s-addons-kube-prometheus-stack").inputs) as Doc).values;
    expect(values.prometheus.prometheusSpec).toMatchObject({
      scrapeConfigSelectorNilUsesHelmValues: false,
      ruleSelectorNilUsesHelmValues: false,
    });
  });
});
