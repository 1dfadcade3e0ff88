/**
 * KeyBuzz platform: one Pulumi program per stack (`prod`, `staging`). Reads and validates the
 * configuration first, then wires the modules in order; every module is a ComponentResource in
 * components/. See README.md and ../shared/DESIGN.md.
 */
import { loadPlatformConfig, serversOf } from "./config";
import { EtcdBackup } from "./components/backup/etcd";
import { GaleraBackup } from "./components/backup/galera";
import { backupHostsOf, PgBackRest, pgBackRestPatroniParameters } from "./components/backup/pgbackrest";
import { AdminFirewall } from "./components/infra/firewall";
import { ServerFleet } from "./components/infra/fleet";
import { ingressCertificate, isIngressLoadBalancer, LoadBalancer } from "./components/infra/load-balancer";
import { PrivateNetwork } from "./components/infra/network";
import { GaleraCluster, galeraHostSettings } from "./components/data/galera";
import { MinioCluster } from "./components/data/minio";
import { HaproxyLayer } from "./components/data/haproxy";
import { PgBouncerLayer } from "./components/data/pgbouncer";
import {
  DEFAULT_POSTGRES_LAYOUT,
  patroniImageTag,
  POSTGRES_UID,
  PostgresCluster,
  postgresLoadBalancerIp,
} from "./components/data/postgres";
import { ProxySqlLayer } from "./components/data/proxysql";
import { RabbitMqCluster } from "./components/data/rabbitmq";
import { RedisCluster } from "./components/data/redis";
import { ClusterAddons, INGRESS_HEALTH_CHECK, INGRESS_PORTS } from "./components/k8s/addons";
import { KubernetesCluster } from "./components/k8s/cluster";
import { Exporters } from "./components/observability/exporters";
import { deployedScrapeJobs, Monitoring } from "./components/observability/monitoring";
import { BackendProbes, probeLoadBalancers } from "./components/observability/probes";
import { BaseOs } from "./components/os/base-os";
import { Pki } from "./components/security/pki";
import { PlatformSecrets } from "./components/security/secrets";

// 1. Configuration: everything (inventory, versions, every module's settings) is validated before the first resource is declared.
const { stack, inventory, versions, settings, sshPrivateKey, hcloudToken, backupS3Credentials } = loadPlatformConfig();

// 2. Hetzner infrastructure.
const network = new PrivateNetwork("network", { stack, inventory });
const firewall = new AdminFirewall("firewall", { stack, adminCidrs: inventory.adminCidrs });
const fleet = new ServerFleet("fleet", { stack, inventory, versions, network, firewall, sshPrivateKey });
// The public ingress LBs check the ingress controller's /healthz and, with keybuzz:k8s.ingressDomains, terminate TLS with a
// Hetzner managed certificate (docs/ingress.md).
const certificate = settings.k8s.ingressDomains.length > 0 ? ingressCertificate(stack, settings.k8s.ingressDomains) : undefined;
const loadBalancers = Object.fromEntries(
  inventory.loadBalancers.map((spec) => {
    const ingress = isIngressLoadBalancer(spec);
    const tls = ingress && certificate ? { certificateId: certificate.id.apply(Number), httpPort: INGRESS_PORTS[0] } : undefined;
    const httpHealthCheck = ingress ? INGRESS_HEALTH_CHECK : undefined;
    return [spec.name, new LoadBalancer(spec.name, { stack, inventory, spec, network, fleet, httpHealthCheck, tls })];
  }),
);

// 3. Credentials and PKI.
const secrets = new PlatformSecrets("secrets");
const pki = new Pki("pki", { stack, nodes: serversOf(inventory, "postgres") });
// Backups exist when the inventory has a backup server (docs/backups.md); then every DB node archives its WAL.
const backupHosts = backupHostsOf(inventory);

// 4. Base OS on every server; each module below starts after its hosts are hardened and verified.
const everyHost = inventory.servers.map((server) => fleet.hosts[server.name]);
const baseOs = new BaseOs("base-os", {
  hosts: everyHost,
  versions,
  settings: settings.baseOs,
  secrets: {},
  after: { hosts: fleet.attachments },
  inventory,
  scrapeJobs: deployedScrapeJobs(inventory.servers, settings.exporters, settings.minio.apiPort),
});

// 5. Data tier and Kubernetes (modules added here in order).

// Redis + Sentinel, RabbitMQ quorum, MinIO distributed (docs/redis.md, docs/rabbitmq.md, docs/minio.md).
const hostsOf = (group: Parameters<typeof serversOf>[1]) => serversOf(inventory, group).map((server) => fleet.hosts[server.name]);
const redis = new RedisCluster("redis", {
  hosts: hostsOf("redis"),
  versions,
  settings: settings.redis,
  secrets: { password: secrets.redis.password, sentinelPassword: secrets.redis.sentinel, exporterPassword: secrets.redis.exporter },
  after: { hosts: baseOs.verifiedByHost },
});
const rabbitmq = new RabbitMqCluster("rabbitmq", {
  hosts: hostsOf("rabbitmq"),
  versions,
  settings: settings.rabbitmq,
  secrets: { password: secrets.rabbitmq.password, erlangCookie: secrets.rabbitmq.erlangCookie, monitorPassword: secrets.rabbitmq.monitor },
  after: { hosts: baseOs.verifiedByHost },
});
// MinIO's S3 endpoint is the internal LB in front of the shared HAProxy, like PostgreSQL's (docs/minio.md).
const minio = new MinioCluster("minio", {
  hosts: hostsOf("minio"),
  versions,
  settings: settings.minio,
  secrets: { rootPassword: secrets.minio.rootPassword, appSecretKey: secrets.minio.appSecretKey },
  after: { hosts: baseOs.verifiedByHost },
  domain: inventory.internalDomain,
  volumes: fleet.volumes,
  loadBalancerIp: postgresLoadBalancerIp(inventory),
});

// PostgreSQL HA: etcd + Patroni on the DB nodes, then the shared HAProxy and PgBouncer on haproxy-01/02 (docs/postgres.md).
const postgres = new PostgresCluster("postgres", {
  hosts: hostsOf("postgres"),
  versions,
  settings: settings.postgres,
  secrets: secrets.postgres,
  after: { hosts: baseOs.verifiedByHost },
  pki,
  volumes: fleet.volumes,
  clientCidr: inventory.network.ipRange,
  loadBalancerIp: postgresLoadBalancerIp(inventory),
  extraParameters: backupHosts ? pgBackRestPatroniParameters(settings.backup.postgres) : undefined,
});
// The shared HAProxy (docs/haproxy.md) serves every module's contribution and declares their checks through the internal LB.
const haproxyLb = inventory.loadBalancers.find((lb) => lb.targetGroup === "haproxy");
const haproxy = new HaproxyLayer("haproxy", {
  hosts: hostsOf("haproxy"),
  versions,
  settings: settings.haproxy,
  secrets: {},
  after: { hosts: baseOs.verifiedByHost },
  contributions: [postgres.haproxy, redis.haproxy, rabbitmq.haproxy, minio.haproxy],
  loadBalancer: haproxyLb && { address: haproxyLb.privateIp, ready: loadBalancers[haproxyLb.name] },
});
const pgbouncer = new PgBouncerLayer("pgbouncer", {
  hosts: hostsOf("haproxy"),
  versions,
  settings: settings.postgres.pgbouncer,
  secrets: { app: secrets.postgres.app, backend: secrets.postgres.backend, stats: secrets.postgres.pgbouncerStats },
  after: { hosts: haproxy.verifiedByHost },
  caCertPem: pki.caCertPem,
});

// MariaDB Galera, bootstrapped once, behind ProxySQL and the LB 10.0.0.20:3306 (docs/galera.md, docs/proxysql.md).
const galera = new GaleraCluster("galera", {
  hosts: hostsOf("mariadb"),
  versions,
  settings: settings.galera,
  secrets: secrets.mariadb,
  after: { hosts: baseOs.verifiedByHost },
  volumes: fleet.volumes,
});
const proxysql = new ProxySqlLayer("proxysql", {
  hosts: hostsOf("proxysql"),
  versions,
  settings: settings.proxysql,
  secrets: { admin: secrets.proxysql.admin, app: secrets.mariadb.app, monitor: secrets.mariadb.monitor },
  after: { hosts: baseOs.verifiedByHost, all: [galera.verified] },
  galeraNodes: galera.nodes,
});

// Backups on backup-01 (docs/backups.md): pgBackRest for PostgreSQL, once the cluster is verified.
// backup-01's certificate of the platform CA: pgBackRest's TLS and backup-01's client identity for Patroni's etcd.
const backupCertificates = Object.fromEntries(serversOf(inventory, "backup").map((server) => [server.name, pki.issue(server)]));
if (backupHosts) {
  new PgBackRest("pgbackrest", {
    hosts: [...hostsOf("postgres"), ...hostsOf("backup")],
    versions,
    settings: settings.backup.postgres,
    secrets: {
      caCertPem: pki.caCertPem,
      certificates: { ...pki.nodes, ...backupCertificates },
      s3: backupS3Credentials,
    },
    after: { hosts: baseOs.verifiedByHost, all: [postgres.verified] },
    patroniImageTag: patroniImageTag(versions),
    postgresUid: POSTGRES_UID,
    postgresPaths: DEFAULT_POSTGRES_LAYOUT.paths,
  });
  // MariaDB Galera: a daily mariadb-backup from one desynced node, streamed over SSH to backup-01.
  new GaleraBackup("galera-backup", {
    hosts: [...hostsOf("mariadb"), ...hostsOf("backup")],
    versions,
    settings: settings.backup.galera,
    secrets: {},
    after: { hosts: baseOs.verifiedByHost, all: [galera.verified] },
    galeraHost: galeraHostSettings(settings.galera),
  });
}

// Kubernetes (kubeadm HA, then Calico, CSI, monitoring, ingress; docs/kubernetes.md).
const kubernetesHosts = [...hostsOf("k8s-master"), ...hostsOf("k8s-worker")];
const kubernetes = new KubernetesCluster("k8s", {
  hosts: kubernetesHosts,
  versions,
  settings: settings.k8s,
  secrets: secrets.kubeadm,
  after: { hosts: baseOs.verifiedByHost },
  inventory,
  apiLoadBalancer: loadBalancers[inventory.kubernetes.apiLoadBalancer],
});
// etcd snapshots of Patroni's etcd (with dcs etcd3) and Kubernetes' to backup-01, once both clusters are verified.
if (backupHosts) {
  new EtcdBackup("etcd-backup", {
    hosts: [...(settings.postgres.dcs === "etcd3" ? hostsOf("postgres") : []), ...hostsOf("k8s-master"), ...hostsOf("backup")],
    versions,
    settings: settings.backup.etcd,
    secrets: { platformCaCertPem: pki.caCertPem, backupHostCertificate: backupCertificates[backupHosts.repoHost.name] },
    after: { hosts: baseOs.verifiedByHost, all: [postgres.verified, kubernetes.verified] },
    patroniEtcdClientPort: DEFAULT_POSTGRES_LAYOUT.ports.etcdClient,
    kubernetesCertificateRenewal: settings.k8s.certificateRenewal,
  });
}
const addons = new ClusterAddons("k8s-addons", {
  hosts: kubernetesHosts,
  versions,
  settings: settings.k8s,
  secrets: {
    grafanaAdmin: secrets.grafana.admin,
    hcloudToken,
    backend: {
      postgresBackend: secrets.postgres.backend,
      postgresProduct: secrets.postgres.app,
      redis: secrets.redis.password,
      rabbitmq: secrets.rabbitmq.password,
      minioApp: secrets.minio.appSecretKey,
      mariadb: secrets.mariadb.app,
    },
    caCertPem: pki.caCertPem,
  },
  after: { all: [kubernetes.verified] },
  provider: kubernetes.provider,
  inventory,
});

// 6. Observability (docs/monitoring.md): node_exporter on every server, the service exporters on their clusters; scraping, alert rules, dashboards and metrics-server in the cluster.
const exporters = new Exporters("exporters", {
  hosts: everyHost,
  versions,
  settings: settings.exporters,
  secrets: {
    postgresSuperuser: secrets.postgres.superuser,
    postgresExporter: secrets.postgres.exporter,
    pgbouncerStats: secrets.postgres.pgbouncerStats,
    caCertPem: pki.caCertPem,
    redisExporter: secrets.redis.exporter,
    mysqldExporter: secrets.mariadb.exporter,
    minioRootPassword: secrets.minio.rootPassword,
  },
  after: { hosts: baseOs.verifiedByHost },
  services: {
    postgres: postgres.verified,
    pgbouncer: pgbouncer.verified,
    redis: redis.verified,
    mariadb: galera.verified,
    minio: minio.verified,
  },
  minio: settings.minio,
});
new Monitoring("monitoring", {
  hosts: everyHost,
  versions,
  settings: settings.monitoring,
  secrets: { caCertPem: pki.caCertPem, etcdClient: pki.issueClient("prometheus"), minioMetricsToken: exporters.minioMetricsToken },
  after: { all: [addons.releases.kubePrometheusStack] },
  provider: kubernetes.provider,
  exporters: settings.exporters,
  postgresSynchronousMode: settings.postgres.synchronousMode,
  minioApiPort: settings.minio.apiPort,
});
// The deploy's final verification: a Job in `keybuzz` reaches every backend with the application's ConfigMap and Secret,
// once the add-ons, every data cluster and proxy layer, and the load balancers stand; blackbox_exporter probes them continuously.
new BackendProbes("probes", {
  hosts: [],
  versions,
  settings: settings.probes,
  secrets: {},
  after: {
    all: [
      addons.verified,
      postgres.verified,
      haproxy.verified,
      pgbouncer.verified,
      redis.verified,
      rabbitmq.verified,
      minio.verified,
      galera.verified,
      proxysql.verified,
      ...Object.values(probeLoadBalancers(inventory)).map((lb) => loadBalancers[lb.name]),
    ],
  },
  provider: kubernetes.provider,
  inventory,
  minioPort: settings.minio.apiPort,
});

export const caCertificate = pki.caCertPem;
export const servers = inventory.servers.map((server) => ({ name: server.name, privateIp: server.privateIp, group: server.group }));
export const publicIps = fleet.publicIps;
/** admin.conf for operators (`pulumi stack output --show-secrets kubeconfig`); secret. */
export const kubeconfig = kubernetes.kubeconfig;
/** MinIO's HA S3 endpoint on the internal LB (prod `http://10.0.0.10:9000`). */
export const s3Endpoint = minio.s3Endpoint;
/** PostgreSQL: write (leader), read (replicas), pooled (PgBouncer) on the internal LB. */
export const postgresEndpoints = postgres.endpoints;
/** The application's PostgreSQL URL through PgBouncer; secret. */
export const postgresAppConnectionString = postgres.appConnectionString;
export const redisSentinels = redis.sentinelEndpoints;
export const rabbitmqManagement = rabbitmq.managementEndpoints;
export const loadBalancerIps = Object.fromEntries(Object.entries(loadBalancers).map(([name, lb]) => [name, lb.privateIp]));
