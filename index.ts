/**
 * KeyBuzz platform: one Pulumi program per stack (`prod`, `staging`). Reads and validates the
 * configuration first, then wires the modules in order; every module is a ComponentResource in
 * components/. See README.md and ../shared/DESIGN.md.
 */
import { clusterNodes, loadPlatformConfig, serversOf } from "./config";
import { AdminFirewall } from "./components/infra/firewall";
import { ServerFleet } from "./components/infra/fleet";
import { LoadBalancer } from "./components/infra/load-balancer";
import { PrivateNetwork } from "./components/infra/network";
import { GaleraCluster } from "./components/data/galera";
import { MinioCluster } from "./components/data/minio";
import { HaproxyLayer } from "./components/data/haproxy";
import { PgBouncerLayer } from "./components/data/pgbouncer";
import {
  appConnectionString,
  POSTGRES_HAPROXY_CA_KEY,
  postgresEndpointsOf,
  postgresHaproxyCaFile,
  postgresHaproxyListeners,
  PostgresCluster,
} from "./components/data/postgres";
import { ProxySqlLayer } from "./components/data/proxysql";
import {
  RabbitMqCluster,
  rabbitmqHaproxyListener,
  rabbitmqHealthCheckAuthorization,
  RABBITMQ_HEALTH_AUTH_KEY,
} from "./components/data/rabbitmq";
import { RedisCluster, redisHaproxyListener, REDIS_PASSWORD_KEY } from "./components/data/redis";
import { ClusterAddons } from "./components/k8s/addons";
import { KubernetesCluster } from "./components/k8s/cluster";
import { Exporters } from "./components/observability/exporters";
import { Monitoring } from "./components/observability/monitoring";
import { BaseOs } from "./components/os/base-os";
import { Pki } from "./components/security/pki";
import { PlatformSecrets } from "./components/security/secrets";

// 1. Configuration: everything (inventory, versions, every module's settings) is validated before the first resource is declared.
const { stack, inventory, versions, settings, sshPrivateKey, hcloudToken } = loadPlatformConfig();

// 2. Hetzner infrastructure.
const network = new PrivateNetwork("network", { stack, inventory });
const firewall = new AdminFirewall("firewall", { stack, adminCidrs: inventory.adminCidrs });
const fleet = new ServerFleet("fleet", { stack, inventory, versions, network, firewall, sshPrivateKey });
const loadBalancers = Object.fromEntries(
  inventory.loadBalancers.map((spec) => [spec.name, new LoadBalancer(spec.name, { stack, inventory, spec, network, fleet })]),
);

// 3. Credentials and PKI.
const secrets = new PlatformSecrets("secrets");
const pki = new Pki("pki", { stack, nodes: serversOf(inventory, "postgres") });

// 4. Base OS on every server; each module below starts after its hosts are hardened and verified.
const baseOs = new BaseOs("base-os", { inventory, versions, hosts: fleet.hosts, dependsOn: fleet.attachments });

// 5. Data tier and Kubernetes (modules added here in order).

// Redis + Sentinel, RabbitMQ quorum, MinIO distributed (docs/redis.md, docs/rabbitmq.md, docs/minio.md).
const hostsOf = (group: Parameters<typeof serversOf>[1]) => serversOf(inventory, group).map((server) => fleet.hosts[server.name]);
const redis = new RedisCluster("redis", {
  hosts: hostsOf("redis"),
  versions,
  password: secrets.redis.password,
  sentinelPassword: secrets.redis.sentinel,
  ready: baseOs.ready,
  tuning: settings.redis,
});
const rabbitmq = new RabbitMqCluster("rabbitmq", {
  hosts: hostsOf("rabbitmq"),
  versions,
  password: secrets.rabbitmq.password,
  erlangCookie: secrets.rabbitmq.erlangCookie,
  monitorPassword: secrets.rabbitmq.monitor,
  ready: baseOs.ready,
});
const minio = new MinioCluster("minio", {
  hosts: hostsOf("minio"),
  versions,
  domain: inventory.internalDomain,
  rootPassword: secrets.minio.rootPassword,
  ready: baseOs.ready,
});

// PostgreSQL HA: etcd + Patroni on the DB nodes, then the shared HAProxy and PgBouncer on haproxy-01/02 (docs/postgres.md).
const postgres = new PostgresCluster("postgres", {
  stack,
  inventory,
  versions,
  settings: settings.postgres,
  hosts: fleet.hosts,
  volumes: fleet.volumes,
  ready: baseOs.ready,
  secrets,
  pki,
});
const haproxy = new HaproxyLayer("haproxy", {
  hosts: hostsOf("haproxy"),
  listeners: [
    ...postgresHaproxyListeners(inventory, settings.postgres),
    redisHaproxyListener(clusterNodes(serversOf(inventory, "redis"))),
    rabbitmqHaproxyListener(clusterNodes(serversOf(inventory, "rabbitmq"))),
  ],
  secrets: {
    [POSTGRES_HAPROXY_CA_KEY]: pki.caCertPem,
    [REDIS_PASSWORD_KEY]: secrets.redis.password,
    [RABBITMQ_HEALTH_AUTH_KEY]: rabbitmqHealthCheckAuthorization(secrets.rabbitmq.monitor),
  },
  extraFiles: [postgresHaproxyCaFile()],
  versions,
  ready: baseOs.ready,
  dependsOn: [postgres.verified, redis.ready, rabbitmq.ready],
});
// End-to-end: Redis and AMQP answer through the internal load balancer once HAProxy is up.
const internalLb = inventory.loadBalancers.find((lb) => lb.services.some((service) => service.listenPort === 6379));
if (internalLb) {
  const lbReady = [loadBalancers[internalLb.name], ...Object.values(haproxy.ready)];
  redis.checkThroughLoadBalancer(internalLb.privateIp, 6379, lbReady);
  rabbitmq.checkThroughLoadBalancer(internalLb.privateIp, 5672, lbReady);
}
new PgBouncerLayer("pgbouncer", {
  hosts: hostsOf("haproxy"),
  settings: settings.postgres,
  versions,
  appPassword: secrets.postgres.app,
  caCertPem: pki.caCertPem,
  ready: haproxy.ready,
});

// MariaDB Galera, bootstrapped once, behind ProxySQL and the LB 10.0.0.20:3306 (docs/galera.md, docs/proxysql.md).
const galera = new GaleraCluster("galera", {
  inventory,
  versions,
  hosts: fleet.hosts,
  volumes: fleet.volumes,
  ready: baseOs.ready,
  passwords: secrets.mariadb,
  settings: settings.galera,
});
new ProxySqlLayer("proxysql", {
  inventory,
  versions,
  hosts: fleet.hosts,
  ready: baseOs.ready,
  galeraNodes: galera.nodes,
  galeraReady: galera.verified,
  passwords: { admin: secrets.proxysql.admin, app: secrets.mariadb.app, monitor: secrets.mariadb.monitor },
});

// Kubernetes (kubeadm HA, then Calico, CSI, monitoring, ingress; docs/kubernetes.md).
const kubernetes = new KubernetesCluster("k8s", {
  inventory,
  versions,
  hosts: fleet.hosts,
  baseReady: baseOs.ready,
  kubeadm: secrets.kubeadm,
  settings: settings.k8s,
  apiLoadBalancer: loadBalancers[inventory.kubernetes.apiLoadBalancer],
});
const addons = new ClusterAddons("k8s-addons", {
  inventory,
  versions,
  cluster: kubernetes,
  settings: settings.k8s,
  grafanaAdminPassword: secrets.grafana.admin,
  hcloudToken,
  credentials: {
    postgresPassword: secrets.postgres.app,
    redisPassword: secrets.redis.password,
    rabbitmqPassword: secrets.rabbitmq.password,
    mariadbPassword: secrets.mariadb.app,
    minioPassword: secrets.minio.rootPassword,
  },
});

// 6. Observability (docs/monitoring.md): node_exporter on every server; scraping, alert rules, dashboards and metrics-server in the cluster.
const everyHost = inventory.servers.map((server) => fleet.hosts[server.name]);
new Exporters("exporters", { hosts: everyHost, versions, settings: settings.exporters, secrets: {}, after: { hosts: baseOs.ready } });
new Monitoring("monitoring", {
  hosts: everyHost,
  versions,
  settings: settings.monitoring,
  secrets: { caCertPem: pki.caCertPem },
  after: { all: [addons.releases.kubePrometheusStack] },
  provider: kubernetes.provider,
  nodeExporterPort: settings.exporters.nodeExporterPort,
  postgresSynchronousMode: settings.postgres.synchronousMode,
});

export const caCertificate = pki.caCertPem;
export const servers = inventory.servers.map((server) => ({ name: server.name, privateIp: server.privateIp, group: server.group }));
export const publicIps = fleet.publicIps;
/** admin.conf for operators (`pulumi stack output --show-secrets kubeconfig`); secret. */
export const kubeconfig = kubernetes.kubeconfig;
export const s3Endpoint = minio.s3Endpoint;
/** PostgreSQL: write (leader), read (replicas), pooled (PgBouncer) on the internal LB. */
export const postgresEndpoints = postgresEndpointsOf(inventory);
/** The application's PostgreSQL URL through PgBouncer; secret. */
export const postgresAppConnectionString = appConnectionString(postgresEndpointsOf(inventory), secrets.postgres.app);
export const redisSentinels = redis.sentinelEndpoints;
export const rabbitmqManagement = rabbitmq.managementEndpoints;
export const loadBalancerIps = Object.fromEntries(Object.entries(loadBalancers).map(([name, lb]) => [name, lb.privateIp]));
