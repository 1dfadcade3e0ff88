import * as yaml from "js-yaml";
import type { MonitoringSettings } from "./settings";

/**
 * Pure renders of the monitoring module: the alert rules (PrometheusRule groups). Every metric a
 * rule reads was checked in its exporter's source at the pinned version (docs/monitoring.md,
 * "Sources"); the rules select each exporter by its scrape job ({@link SCRAPE_JOBS}) and join a
 * service's metrics with the same host's other exporters on the `cluster` and `node` target labels.
 */

/**
 * The scrape job of each exporter: the `job` label of its targets, which the rules select on.
 * One job per exporter kind, whatever the cluster, so a rule covers every cluster of that kind.
 */
export const SCRAPE_JOBS = {
  node: "node",
  postgres: "postgres",
  pgbouncer: "pgbouncer",
  patroni: "patroni",
  etcd: "etcd",
  redis: "redis",
  sentinel: "sentinel",
  rabbitmq: "rabbitmq",
  mysqld: "mysqld",
  proxysql: "proxysql",
  minio: "minio",
  haproxy: "haproxy",
} as const;

/**
 * The `job` of blackbox_exporter's continuous probes of the backend endpoints
 * (components/observability/probes): one `probe_success` series per endpoint, label `endpoint`.
 */
export const BACKEND_PROBE_JOB = "backend-probe";

/** Name of a {@link SCRAPE_JOBS} entry. */
export type ScrapeJob = keyof typeof SCRAPE_JOBS;

/**
 * The certificate expiry metric node_exporter's textfile collector reads on every host
 * (scripts/exporters/cert-expiry.sh writes it: one series per certificate file, label `path`,
 * value = its notAfter as a Unix timestamp).
 */
export const CERTIFICATE_EXPIRY_METRIC = "keybuzz_certificate_expiry_timestamp_seconds";
/**
 * The backups' last-success time, Unix seconds, labels `system` and `type`: written for node_exporter's
 * textfile collector on backup-01 by scripts/pgbackrest/backup-run.sh, scripts/galera-backup/receive.sh
 * and scripts/backup/etcd-snapshot.sh.
 */
export const BACKUP_SUCCESS_METRIC = "keybuzz_backup_last_success_timestamp_seconds";
/** The systems backed up to backup-01 when the stack has one (docs/backups.md); each writes {@link BACKUP_SUCCESS_METRIC}. */
export const BACKED_UP_SYSTEMS = ["postgres", "galera", "etcd"] as const;
/**
 * The systems whose `type` label names a separate backup with its own schedule (etcd: one per
 * cluster, `patroni` and `kubernetes`), so each type must be fresh; a PostgreSQL full or
 * differential backup both count as its newest backup.
 */
const BACKUP_TYPES_SEPARATE = ["etcd"];

/** Alert severity: `critical` pages (service down or about to be), `warning` is for working hours. */
export type Severity = "critical" | "warning";

/** One Prometheus alerting rule, as the PrometheusRule CRD and promtool read it. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  /** How long the condition must hold before the alert fires (Prometheus duration). */
  readonly for?: string;
  readonly labels: { readonly severity: Severity };
  readonly annotations: {
    /** One line: what is wrong. */
    readonly summary: string;
    /** What it means for the platform. */
    readonly meaning: string;
    /** What the on-call engineer does first. */
    readonly response: string;
  };
}

/** A rule group of the PrometheusRule (one per service). */
export interface AlertRuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

/** What the rules need from the other modules' settings (not thresholds: facts of the deployment). */
export interface RuleContext {
  /** Patroni `synchronous_mode` is on (`keybuzz:postgres.synchronousMode`): a missing sync standby is then an alert. */
  readonly postgresSynchronousMode: boolean;
  /** ProxySQL's writer hostgroup (`mysql_galera_hostgroups.writer_hostgroup`, components/data/proxysql.ts). */
  readonly proxysqlWriterHostgroup: number;
  /**
   * The systems whose backups run ({@link BACKED_UP_SYSTEMS} when the inventory has a backup server,
   * else none): their backup and WAL-archiving rules are rendered. Default none.
   */
  readonly backedUpSystems?: readonly string[];
}

const rule = (
  alert: string,
  severity: Severity,
  expr: string,
  duration: string | undefined,
  summary: string,
  meaning: string,
  response: string,
): AlertRule => ({
  alert,
  expr,
  ...(duration ? { for: duration } : {}),
  labels: { severity },
  annotations: { summary, meaning, response },
});

/** `up` of a job's targets. */
const up = (job: ScrapeJob) => `up{job="${SCRAPE_JOBS[job]}"}`;

/** Members of each cluster of a job (every target, reachable or not): the expected cluster size. */
const members = (job: ScrapeJob) => `count by (cluster) (${up(job)})`;

/** The smallest majority of each cluster of a job: `floor(members / 2) + 1`. */
const majority = (job: ScrapeJob) => `(floor(${members(job)} / 2) + 1)`;

/** Jobs whose targets' `up == 0` has a rule of its own (HostDown, RabbitMqNodeDown, GaleraNodeDown, ProxySqlDown), so ExporterDown leaves them out. */
const JOBS_WITH_OWN_DOWN_RULE: ReadonlySet<string> = new Set([
  SCRAPE_JOBS.node,
  SCRAPE_JOBS.rabbitmq,
  SCRAPE_JOBS.mysqld,
  SCRAPE_JOBS.proxysql,
]);

/** Filesystems that hold data (not the kernel's or the container runtime's in-memory ones). */
const DATA_FILESYSTEMS = `job="${SCRAPE_JOBS.node}",fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs"`;

/**
 * The alert rules, one group per service (issue 16 item 3), in the order docs/monitoring.md lists
 * them. Pure.
 */
export function renderAlertRuleGroups(settings: MonitoringSettings, context: RuleContext): AlertRuleGroup[] {
  const s = settings;
  return [
    {
      name: "keybuzz-hosts",
      rules: [
        rule(
          "HostDown",
          "critical",
          `${up("node")} == 0`,
          "1m",
          "A server's node_exporter has not answered for 1 minute.",
          "The server is down, unreachable on the private network, or its node_exporter stopped; every service on it is likely affected.",
          "Check the server in the Hetzner console (power, network); if it runs, `ssh` in and check `docker ps` for the node-exporter container and UFW.",
        ),
        rule(
          "HostDiskSpaceLow",
          "critical",
          `node_filesystem_avail_bytes{${DATA_FILESYSTEMS}} / node_filesystem_size_bytes{${DATA_FILESYSTEMS}} * 100 < ${s.diskFreePercent} and node_filesystem_readonly{${DATA_FILESYSTEMS}} == 0`,
          "5m",
          `A filesystem has less than ${s.diskFreePercent}% free space.`,
          "A full data volume stops PostgreSQL, MariaDB, RabbitMQ (disk alarm) or MinIO writes; a full root filesystem stops Docker and journald.",
          "Find what grows (`du -xh --max-depth=2 <mountpoint>`): WAL kept by a replication slot, binlogs, container logs; grow the Hetzner volume (then `xfs_growfs`) if the data is legitimate.",
        ),
        rule(
          "HostDiskFillingIn24h",
          "warning",
          `predict_linear(node_filesystem_avail_bytes{${DATA_FILESYSTEMS}}[6h], 24 * 3600) < 0 and node_filesystem_readonly{${DATA_FILESYSTEMS}} == 0`,
          "1h",
          "A filesystem fills within 24 hours at the rate of the last 6 hours.",
          "The filesystem will be full tomorrow if nothing changes.",
          "Find the growth as for HostDiskSpaceLow and plan the cleanup or the volume resize before it pages.",
        ),
        rule(
          "HostInodesLow",
          "critical",
          `node_filesystem_files_free{${DATA_FILESYSTEMS}} / node_filesystem_files{${DATA_FILESYSTEMS}} * 100 < ${s.inodesFreePercent} and node_filesystem_readonly{${DATA_FILESYSTEMS}} == 0`,
          "5m",
          `A filesystem has less than ${s.inodesFreePercent}% free inodes.`,
          "No file can be created once inodes run out, even with free space.",
          "Find the directory with the most files (`find <mountpoint> -xdev -type f | cut -d/ -f2-4 | sort | uniq -c | sort -n | tail`) and remove the stale ones.",
        ),
        rule(
          "HostMemoryPressure",
          "warning",
          `node_memory_MemAvailable_bytes{job="${SCRAPE_JOBS.node}"} / node_memory_MemTotal_bytes{job="${SCRAPE_JOBS.node}"} * 100 < ${s.memoryAvailablePercent}`,
          "5m",
          `A server has less than ${s.memoryAvailablePercent}% of its memory available.`,
          "The kernel's OOM killer is close; it would kill the largest process, usually the database.",
          "Find the consumer (`ps aux --sort=-rss | head`, `docker stats --no-stream`); check Redis maxmemory and PostgreSQL shared_buffers/work_mem against the server type.",
        ),
        rule(
          "HostClockSkew",
          "warning",
          `abs(node_timex_offset_seconds{job="${SCRAPE_JOBS.node}"}) > ${s.clockOffsetSeconds} or node_timex_sync_status{job="${SCRAPE_JOBS.node}"} == 0`,
          "10m",
          `A server's clock is off by more than ${s.clockOffsetSeconds} s or not synchronised.`,
          "etcd leases, Patroni's TTL, TLS validity and log correlation all assume synchronised clocks.",
          "Check `timedatectl` and `chronyc tracking` / `systemctl status systemd-timesyncd` on the host; UDP 123 outbound must be allowed.",
        ),
      ],
    },
    {
      name: "keybuzz-postgres",
      rules: [
        rule(
          "PostgresLeaderChanged",
          "warning",
          `patroni_primary == 1 and on (cluster, node) max_over_time(patroni_replica[10m]) == 1`,
          undefined,
          "A PostgreSQL replica became the Patroni leader in the last 10 minutes.",
          "A failover or switchover happened; clients were cut for its duration and HAProxy now routes writes to the new leader.",
          "Read `patronictl list` and the old leader's Patroni log: planned switchover, crash, or lost lease? Check that the old leader rejoined as a replica (pg_rewind) and that no write was refused.",
        ),
        rule(
          "PostgresNoLeader",
          "critical",
          `sum by (cluster) (patroni_primary) < 1`,
          "1m",
          "No PostgreSQL node holds the Patroni leader lock.",
          "Writes fail: HAProxy's write port has no backend.",
          "`patronictl list`; check etcd (EtcdNoLeader, EtcdQuorumLost) and each node's Patroni log for why no replica was promoted (lag above maximum_lag_on_failover, nofailover tag).",
        ),
        rule(
          "PostgresReplicaMissing",
          "warning",
          `sum by (cluster) (patroni_replica) < ${members("patroni")} - 1`,
          "1m",
          "A PostgreSQL cluster has fewer running replicas than members minus the leader.",
          "Redundancy is reduced: one more failure may leave no candidate for failover or no synchronous standby.",
          "`patronictl list` names the missing member; check its Patroni container and logs; a replaced node is re-cloned by Patroni on start.",
        ),
        rule(
          "PostgresReplicationBroken",
          "critical",
          `patroni_replica == 1 and on (cluster, node) patroni_postgres_streaming == 0`,
          "2m",
          "A PostgreSQL replica is running but not streaming from the leader.",
          "The replica falls behind for ever; it cannot be promoted safely and reads from it are stale.",
          "On the replica: `patronictl list` (state, lag), the PostgreSQL log (WAL removed? authentication? TLS?); `patronictl reinit <cluster> <member>` re-clones it.",
        ),
        rule(
          "PostgresReplicaLag",
          "warning",
          `pg_replication_lag_seconds > ${s.postgresReplicaLagSeconds}`,
          "2m",
          `A PostgreSQL replica replays more than ${s.postgresReplicaLagSeconds} s behind the leader.`,
          "Reads from the replica are stale; past maximum_lag_on_failover it is no longer a failover candidate.",
          "Check the replica's disk and CPU (replay is single-threaded), long queries on it holding replay (`max_standby_streaming_delay`), and the network.",
        ),
        ...(context.postgresSynchronousMode
          ? [
              rule(
                "PostgresSyncStandbyMissing",
                "critical",
                `sum by (cluster) (patroni_sync_standby) < 1 and on (cluster) sum by (cluster) (patroni_primary) == 1`,
                "1m",
                "The PostgreSQL leader has no synchronous standby.",
                "Synchronous mode is not strict: commits are acknowledged without a copy on a standby, so a leader crash now loses them.",
                "`patronictl list`: bring a replica back to streaming (PostgresReplicationBroken, PostgresReplicaMissing); Patroni picks it as sync standby.",
              ),
            ]
          : []),
        rule(
          "PostgresConnectionsNearLimit",
          "warning",
          `sum by (cluster, node) (pg_stat_activity_count) / on (cluster, node) max by (cluster, node) (pg_settings_max_connections) * 100 > ${s.postgresConnectionsPercent}`,
          "5m",
          `A PostgreSQL node uses more than ${s.postgresConnectionsPercent}% of max_connections.`,
          "New connections are refused once the limit is reached.",
          "Find the clients (`SELECT usename, application_name, count(*) FROM pg_stat_activity GROUP BY 1, 2`); route them through PgBouncer (6432) or raise its pool instead of max_connections.",
        ),
        rule(
          "PostgresExporterDown",
          "warning",
          `pg_up == 0`,
          "2m",
          "postgres_exporter cannot connect to its PostgreSQL.",
          "PostgreSQL is down on that node, or the exporter's user or password no longer works.",
          "Check the node in `patronictl list`; if PostgreSQL runs, test the exporter's login and its pg_hba line.",
        ),
      ],
    },
    {
      name: "keybuzz-pgbouncer",
      rules: [
        rule(
          "PgbouncerDown",
          "warning",
          `pgbouncer_up == 0`,
          "1m",
          "pgbouncer_exporter cannot query its PgBouncer's console.",
          "PgBouncer is down on that haproxy node, or its stats_users user no longer logs in; the load balancer's check sends port 6432's clients to the other node.",
          "`docker ps -a` and `docker logs pgbouncer` on the node; check userlist.txt and `stats_users` in /etc/keybuzz/pgbouncer.",
        ),
        rule(
          "PgbouncerClientsWaiting",
          "warning",
          `max by (cluster, node, database) (pgbouncer_pools_client_maxwait_seconds) > ${s.pgbouncerClientWaitSeconds}`,
          "2m",
          `A PgBouncer pool has had a client waiting more than ${s.pgbouncerClientWaitSeconds} s for a server connection.`,
          "The pool is exhausted: queries queue in PgBouncer and the application's requests slow down or time out.",
          "`SHOW POOLS` on the console (port 6432, database pgbouncer): long transactions holding server connections (PostgreSQL's pg_stat_activity), or raise `keybuzz:postgres.pgbouncer.defaultPoolSize` within max_connections.",
        ),
      ],
    },
    {
      name: "keybuzz-etcd",
      rules: [
        rule(
          "EtcdNoLeader",
          "critical",
          `etcd_server_has_leader == 0`,
          "1m",
          "An etcd member has no leader.",
          "On the DB nodes (cluster postgres), Patroni cannot renew its lease through this member; without a leader in the whole cluster, Patroni's failsafe mode holds the primary only while it reaches every member. On the control planes (cluster k8s-master), the Kubernetes API cannot write through this member.",
          "`etcdctl endpoint status --cluster -w table` (with a client certificate of that cluster's CA); check the members' logs for elections and the network between the members.",
        ),
        rule(
          "EtcdQuorumAtRisk",
          "warning",
          `sum by (cluster) (${up("etcd")}) <= ${majority("etcd")}`,
          "1m",
          "etcd has no member to spare: one more loss breaks its quorum.",
          "The next member failure stops etcd, and with it Patroni's leader election (cluster postgres) or the Kubernetes API (cluster k8s-master).",
          "Bring the down member back (`docker ps` on its DB node, or the etcd static Pod on its control plane: `crictl ps`, the kubelet's log); a replaced node rejoins through `member remove/add`.",
        ),
        rule(
          "EtcdQuorumLost",
          "critical",
          `sum by (cluster) (${up("etcd")}) < ${majority("etcd")}`,
          "1m",
          "Fewer than a majority of etcd members are up.",
          "etcd refuses every write: Patroni cannot hold or take the leader lock (cluster postgres), the Kubernetes API serves no write (cluster k8s-master).",
          "Restore members until a majority runs; do not re-create the cluster while one member still has the data.",
        ),
        rule(
          "EtcdLeaderChangesFrequent",
          "warning",
          `increase(etcd_server_leader_changes_seen_total[15m]) > 3`,
          undefined,
          "etcd changed leader more than 3 times in 15 minutes.",
          "Elections are caused by slow disks (fsync), CPU starvation or packet loss; each one delays Patroni's lease renewals or the Kubernetes API's writes.",
          "Check `etcd_disk_wal_fsync_duration_seconds` (the etcd dashboard) and the network between the members; move noisy neighbours off the hosts.",
        ),
      ],
    },
    {
      name: "keybuzz-redis",
      rules: [
        rule(
          "RedisMasterChanged",
          "warning",
          `redis_instance_info{role="master"} and on (cluster, node) max_over_time(redis_instance_info{role="slave"}[10m])`,
          undefined,
          "A Redis replica became master in the last 10 minutes.",
          "Sentinel failed over; clients were cut for its duration and HAProxy now routes to the new master.",
          "Read the Sentinels' logs (+switch-master) for why; check that the old master came back as a replica (`redis-cli info replication`).",
        ),
        rule(
          "RedisMasterCount",
          "critical",
          `(count by (cluster) (redis_instance_info{role="master"}) or ${members("redis")} * 0) != 1`,
          "1m",
          "A Redis cluster has no master, or more than one.",
          "No master: writes fail. Two masters: a split brain, writes to the wrong one are lost when Sentinel reconciles.",
          "`redis-cli -p 26379 sentinel master <name>` on each node: does a majority of Sentinels agree? Restart the stray master's container so it rejoins as a replica.",
        ),
        rule(
          "RedisReplicaMissing",
          "warning",
          `sum by (cluster) (redis_connected_slaves and on (cluster, node) redis_instance_info{role="master"}) < ${members("redis")} - 1`,
          "1m",
          "The Redis master has fewer replicas than the other members of its cluster.",
          "A replica is down or not connected: one more failure leaves no failover candidate.",
          "`redis-cli info replication` on the master names the connected ones; check the missing node's container and its `masterauth`.",
        ),
        rule(
          "RedisNoReplica",
          "critical",
          `sum by (cluster) (redis_connected_slaves and on (cluster, node) redis_instance_info{role="master"}) == 0`,
          "1m",
          "The Redis master has no replica at all.",
          "A crash of the master now loses its data and leaves Sentinel nothing to promote.",
          "Restore a replica first (see RedisReplicaMissing).",
        ),
        rule(
          "RedisMemoryNearMax",
          "warning",
          `redis_memory_used_bytes / redis_memory_max_bytes * 100 > ${s.redisMemoryPercent} and redis_memory_max_bytes > 0`,
          "5m",
          `A Redis node uses more than ${s.redisMemoryPercent}% of its maxmemory.`,
          "At maxmemory Redis evicts keys or refuses writes, depending on maxmemory-policy.",
          "Find the big keys (`redis-cli --bigkeys`), check TTLs; raise `keybuzz:redis.maxmemoryPercent` or the server type.",
        ),
      ],
    },
    {
      name: "keybuzz-rabbitmq",
      rules: [
        rule(
          "RabbitMqNodeDown",
          "critical",
          `${up("rabbitmq")} == 0`,
          "1m",
          "A RabbitMQ node's Prometheus endpoint has not answered for 1 minute.",
          "The node is down; quorum queues with a member there run on the remaining majority.",
          "`docker logs` of the rabbitmq container on the node; `rabbitmq-diagnostics cluster_status` on another node.",
        ),
        rule(
          "RabbitMqPeerUnreachable",
          "warning",
          `rabbitmq_unreachable_cluster_peers_count > 0`,
          "2m",
          "A RabbitMQ node cannot reach one of its cluster peers.",
          "A network partition or a stopped node; queues whose leader is on the far side are unavailable from here.",
          "`rabbitmq-diagnostics cluster_status` on each node; check port 25672 and 4369 between the queue nodes.",
        ),
        rule(
          "RabbitMqQuorumQueueMajorityLost",
          "critical",
          `sum by (cluster) (${up("rabbitmq")}) < ${majority("rabbitmq")}`,
          "1m",
          "Fewer than a majority of RabbitMQ nodes are up.",
          "Every quorum queue has members on all nodes, so none has a majority left: publishes and consumes on them stop.",
          "Restart the down nodes; never `forget_cluster_node` a node that still holds queue data.",
        ),
        rule(
          "RabbitMqMemoryAlarm",
          "critical",
          `rabbitmq_alarms_memory_used_watermark == 1`,
          undefined,
          "A RabbitMQ node is above its memory high watermark.",
          "The node blocks every publishing connection until memory falls.",
          "Find the queues that grow (`rabbitmq-diagnostics memory_breakdown`, unconsumed messages); scale the consumers.",
        ),
        rule(
          "RabbitMqDiskAlarm",
          "critical",
          `rabbitmq_alarms_free_disk_space_watermark == 1`,
          undefined,
          "A RabbitMQ node is below its free disk limit.",
          "The node blocks every publishing connection until disk space returns.",
          "Free disk on the node (see HostDiskSpaceLow) and drain the growing queues.",
        ),
      ],
    },
    {
      name: "keybuzz-galera",
      rules: [
        rule(
          "GaleraNodeDown",
          "critical",
          `mysql_up == 0 or ${up("mysqld")} == 0`,
          "1m",
          "A MariaDB node or its mysqld_exporter does not answer.",
          "The node is out of the Galera cluster; ProxySQL sends its traffic to the others.",
          "`docker logs` of the mariadb container; a node that crashed rejoins by IST or SST on start.",
        ),
        rule(
          "GaleraClusterSizeLow",
          "critical",
          `max by (cluster) (mysql_global_status_wsrep_cluster_size) < ${members("mysqld")}`,
          "1m",
          "The Galera cluster has fewer members than nodes.",
          "A node left the cluster; with one more loss the remaining node is not a primary component and refuses queries.",
          "`SHOW STATUS LIKE 'wsrep_cluster_size'` on each node; restart the missing node's container (it rejoins by IST/SST).",
        ),
        rule(
          "GaleraNodeNotSynced",
          "warning",
          `mysql_global_status_wsrep_local_state != 4`,
          "5m",
          "A Galera node is not in the Synced state (4) for 5 minutes.",
          "The node is joining, donating an SST or desynced; ProxySQL keeps it out of the writer and reader hostgroups.",
          "`SHOW STATUS LIKE 'wsrep_local_state_comment'`: Donor/Joiner for long means a slow SST; check the network and disk.",
        ),
        rule(
          "GaleraFlowControl",
          "warning",
          `rate(mysql_global_status_wsrep_flow_control_paused_ns[5m]) / 1e9 > ${s.galeraFlowControlPausedFraction}`,
          "5m",
          `Galera replication is paused by flow control more than ${s.galeraFlowControlPausedFraction * 100}% of the time.`,
          "A slow node makes the whole cluster wait: every write stalls while it catches up.",
          "Find the node with the longest receive queue (`wsrep_local_recv_queue_avg`); check its disk and CPU.",
        ),
      ],
    },
    {
      name: "keybuzz-proxysql",
      rules: [
        rule(
          "ProxySqlWriterOffline",
          "critical",
          `(sum by (cluster, node) (proxysql_connpool_conns_status{hostgroup="${context.proxysqlWriterHostgroup}"} == bool 1) or sum by (cluster, node) (proxysql_uptime_seconds_total) * 0) < 1`,
          "1m",
          "A ProxySQL has no ONLINE backend in its writer hostgroup.",
          "Writes through this ProxySQL fail (the MariaDB load balancer sends clients to it).",
          "`SELECT hostgroup_id, hostname, status FROM runtime_mysql_servers` on its admin port; check the Galera nodes (GaleraNodeNotSynced) and the monitor user.",
        ),
        rule(
          "ProxySqlDown",
          "critical",
          `${up("proxysql")} == 0`,
          "1m",
          "A ProxySQL's metrics endpoint has not answered for 1 minute.",
          "That ProxySQL is down; the load balancer's health check sends clients to the other one.",
          "`docker logs` of the proxysql container on the node.",
        ),
      ],
    },
    {
      name: "keybuzz-minio",
      rules: [
        rule(
          "MinioNodeOffline",
          "critical",
          `max by (cluster) (minio_cluster_nodes_offline_total) > 0`,
          "5m",
          "A MinIO node is offline.",
          "Erasure coding still serves reads and writes, with less redundancy; another loss may stop writes.",
          "`mc admin info` names the node; check its container and the network on port 9000.",
        ),
        rule(
          "MinioDriveOffline",
          "critical",
          `max by (cluster) (minio_cluster_drive_offline_total) > 0`,
          "5m",
          "A MinIO drive is offline.",
          "Objects on that drive are served from parity; redundancy is reduced until it returns and heals.",
          "`mc admin info` names the drive; check the mount and the disk, then `mc admin heal`.",
        ),
      ],
    },
    {
      name: "keybuzz-haproxy",
      rules: [
        rule(
          "HaproxyBackendDown",
          "critical",
          // `listen stats` (the stats page, components/data/haproxy) has no server: always 0.
          `haproxy_backend_active_servers{proxy!="stats"} == 0`,
          "1m",
          "An HAProxy listener has no server passing its health check.",
          "Clients of that port (PostgreSQL write/read, PgBouncer, Redis, RabbitMQ) get refused connections.",
          "Check the service behind it (its own alerts) and HAProxy's view: `echo 'show servers state' | socat stdio /run/haproxy/admin.sock`.",
        ),
      ],
    },
    ...backupRuleGroups(s, context.backedUpSystems ?? []),
    {
      name: "keybuzz-backends",
      rules: [
        rule(
          "BackendEndpointDown",
          "critical",
          `probe_success{job="${BACKEND_PROBE_JOB}"} == 0`,
          "2m",
          "A backend endpoint the applications use has failed blackbox_exporter's probe from inside the cluster for 2 minutes.",
          "Pods cannot reach that endpoint (label `endpoint`: a load balancer port or a MinIO node): the applications using it fail, whatever the cluster behind it reports.",
          "Read the probe Job's per-endpoint lines (`kubectl -n keybuzz logs job/keybuzz-backend-probe --all-containers`, or re-run it: docs/monitoring.md § Backend probes), then check the load balancer's targets, HAProxy or ProxySQL, and UFW towards the pod CIDR.",
        ),
      ],
    },
    {
      name: "keybuzz-certificates",
      rules: [
        rule(
          "CertificateExpiringSoon",
          "warning",
          `(${CERTIFICATE_EXPIRY_METRIC} - time()) / 86400 < ${s.certificateWarningDays}`,
          undefined,
          `A certificate on a server expires within ${s.certificateWarningDays} days.`,
          "etcd/Patroni mutual TLS or the Kubernetes control plane stops when it expires.",
          "The `path` label names the file: kubeadm's (`kubeadm certs check-expiration`, `kubeadm certs renew`) or the platform PKI's (`pulumi up` re-issues it).",
        ),
        rule(
          "CertificateExpiryCritical",
          "critical",
          `(${CERTIFICATE_EXPIRY_METRIC} - time()) / 86400 < ${s.certificateCriticalDays}`,
          undefined,
          `A certificate on a server expires within ${s.certificateCriticalDays} days.`,
          "An outage of the service using it is days away.",
          "Renew it now (see CertificateExpiringSoon).",
        ),
      ],
    },
    {
      name: "keybuzz-exporters",
      rules: [
        rule(
          "ExporterDown",
          "warning",
          `up{job=~"${Object.values(SCRAPE_JOBS)
            .filter((job) => !JOBS_WITH_OWN_DOWN_RULE.has(job))
            .join("|")}"} == 0`,
          "3m",
          "An exporter has not answered Prometheus for 3 minutes.",
          "That service's alerts are blind on this node.",
          "Check the exporter's container on the node (`docker ps -a`, `docker logs`) and UFW from the Kubernetes nodes.",
        ),
      ],
    },
  ];
}

/**
 * The age, seconds, of each system's newest successful backup: by system, and by system and type
 * for the systems of {@link BACKUP_TYPES_SEPARATE}. Pure.
 */
function newestBackupAge(systems: readonly string[]): string[] {
  const bySystem = systems.filter((system) => !BACKUP_TYPES_SEPARATE.includes(system));
  const byType = systems.filter((system) => BACKUP_TYPES_SEPARATE.includes(system));
  const age = (by: string, names: readonly string[]) => `time() - max by (${by}) (${BACKUP_SUCCESS_METRIC}{system=~"${names.join("|")}"})`;
  return [...(bySystem.length > 0 ? [age("system", bySystem)] : []), ...(byType.length > 0 ? [age("system, type", byType)] : [])];
}

/**
 * The backups' rules (issue 17 item 6), when `systems` is not empty: a system's newest successful
 * backup is older than its daily schedule allows, or none was ever recorded; PostgreSQL's
 * archive_command fails (postgres_exporter's `pg_stat_archiver_failed_count`, the counter of
 * pg_stat_archiver, collector/pg_stat_archiver.go). Pure.
 */
function backupRuleGroups(s: MonitoringSettings, systems: readonly string[]): AlertRuleGroup[] {
  if (systems.length === 0) return [];
  const maxAge = s.backupMaxAgeHours;
  return [
    {
      name: "keybuzz-backups",
      rules: [
        rule(
          "BackupTooOld",
          "critical",
          newestBackupAge(systems)
            .map((age) => `${age} > ${maxAge} * 3600`)
            .join(" or "),
          "15m",
          `The newest successful backup of a system is older than ${maxAge} h (its schedule is daily).`,
          "A restore would lose everything written since that backup (PostgreSQL: back to its WAL archive, which may still be current).",
          "On backup-01 (PostgreSQL; etcd: `keybuzz-etcd-snapshot-<type>`) or the Galera backup node: `systemctl status` and `journalctl -u` of the backup's service (docs/backups.md), then run it by hand.",
        ),
        rule(
          "BackupNeverSucceeded",
          "warning",
          systems.map((system) => `absent(${BACKUP_SUCCESS_METRIC}{system="${system}"})`).join(" or "),
          `${maxAge}h`,
          `No successful backup of a system has been recorded for ${maxAge} h.`,
          "The first backup after a deployment has not happened, or backup-01's node_exporter does not see its files.",
          "Check the backup's timer (`systemctl list-timers 'keybuzz-*'`) and the .prom files in node_exporter's textfile directory on backup-01.",
        ),
        ...(systems.includes("postgres")
          ? [
              rule(
                "PostgresWalArchivingFailing",
                "critical",
                `increase(pg_stat_archiver_failed_count[10m]) > 0`,
                "5m",
                "PostgreSQL's archive_command (pgBackRest archive-push) keeps failing.",
                "WAL piles up in pg_wal (the disk fills) and point-in-time recovery stops at the last archived segment.",
                "On the primary: pgBackRest's log in /opt/keybuzz/postgres/pgbackrest/log; `pgbackrest check` on backup-01 (TLS server up, certificates valid).",
              ),
            ]
          : []),
      ],
    },
  ];
}

/** The rule groups as a Prometheus rule file (what `promtool check rules` / `test rules` read). Pure. */
export function renderRuleFile(groups: readonly AlertRuleGroup[]): string {
  return yaml.dump({ groups }, { lineWidth: -1, noRefs: true });
}

/** A scraped server as the scrape configs see it (an inventory entry). */
export interface ScrapedServer {
  /** Inventory name, the `node` label. */
  readonly name: string;
  /** Private address the exporter listens on. */
  readonly privateIp: string;
  /** The server's group (`postgres`, `redis`, …), the `cluster` label. */
  readonly group: string;
  /** The spec's ROLE column (`db`, `lb`, `k8s`, …), the {@link SERVER_ROLE_LABEL} label. */
  readonly role: string;
}

/**
 * The target label of the server's inventory ROLE. Not `role`: redis_exporter's
 * `redis_instance_info` carries the Redis `role` (master/slave), which a target label of the same
 * name would override (Prometheus renames the scraped one `exported_role`), blinding the Redis rules
 * (found by tests/observability/alerts.loopback.test.ts).
 */
export const SERVER_ROLE_LABEL = "server_role";

/** How Prometheus reaches one exporter kind: port, path, scheme, and the servers that run it. */
export interface ScrapeJobSpec {
  readonly job: ScrapeJob;
  /**
   * The ScrapeConfig's own name (object `keybuzz-<name>`) when two specs share a job label:
   * Kubernetes' etcd and Patroni's are both job `etcd`, so the etcd rules cover both clusters
   * (`cluster` tells them apart). Default the job label.
   */
  readonly name?: string;
  readonly port: number;
  readonly metricsPath: string;
  readonly scheme: "http" | "https";
  /** https only: the ConfigMap key holding the CA that signed the exporter's certificate. */
  readonly caConfigMapKey?: string;
  /**
   * https only: the keys of the scrape Secret holding the client certificate and its key that
   * Prometheus presents (the server requires a client certificate: Patroni's etcd).
   */
  readonly clientCert?: { readonly certKey: string; readonly keyKey: string };
  /** The key of the scrape Secret holding the bearer token Prometheus sends (`Authorization: Bearer`; MinIO). */
  readonly bearerTokenKey?: string;
  /**
   * The port is also the service's own (Patroni's REST API, which HAProxy's checks reach): UFW
   * leaves it to the module's rules instead of limiting it to the Kubernetes nodes.
   */
  readonly servicePort?: boolean;
  readonly servers: readonly ScrapedServer[];
}

/** The name of a job's ScrapeConfig ({@link ScrapeJobSpec.name}, else its job label). Pure. */
export function scrapeConfigName(job: ScrapeJobSpec): string {
  return job.name ?? SCRAPE_JOBS[job.job];
}

/**
 * The ScrapeConfig objects' specs (prometheus-operator v0.85.0, `monitoring.coreos.com/v1alpha1`
 * ScrapeConfigSpec: `jobName` (the `job` label, set by relabelling: the operator names the
 * Prometheus job itself, so two objects may share it), `staticConfigs[].targets/labels`,
 * `metricsPath`, `scheme`, `tlsConfig` (SafeTLSConfig: `ca.configMap`, `cert.secret`,
 * `keySecret`), `authorization` (SafeAuthorization: `type`, `credentials`)): one per job, one
 * static group per server with its `cluster`, {@link SERVER_ROLE_LABEL} and `node` labels, on the
 * server's private address. Pure.
 *
 * @param caConfigMap name of the ConfigMap (in the ScrapeConfig's namespace) that holds the CA keys.
 * @param secret name of the Secret (same namespace) that holds the client certificates and tokens.
 */
export function renderScrapeConfigSpecs(jobs: readonly ScrapeJobSpec[], caConfigMap: string, secret: string): Record<string, unknown>[] {
  return jobs
    .filter((job) => job.servers.length > 0)
    .map((job) => {
      const fromSecret = (key: string) => ({ name: secret, key });
      const tlsConfig = {
        ...(job.caConfigMapKey ? { ca: { configMap: { name: caConfigMap, key: job.caConfigMapKey } } } : {}),
        ...(job.clientCert ? { cert: { secret: fromSecret(job.clientCert.certKey) }, keySecret: fromSecret(job.clientCert.keyKey) } : {}),
      };
      return {
        jobName: SCRAPE_JOBS[job.job],
        metricsPath: job.metricsPath,
        scheme: job.scheme.toUpperCase(),
        ...(Object.keys(tlsConfig).length > 0 ? { tlsConfig } : {}),
        ...(job.bearerTokenKey ? { authorization: { type: "Bearer", credentials: fromSecret(job.bearerTokenKey) } } : {}),
        staticConfigs: job.servers.map((server) => ({
          targets: [`${server.privateIp}:${job.port}`],
          labels: { cluster: server.group, [SERVER_ROLE_LABEL]: server.role, node: server.name },
        })),
      };
    });
}

/**
 * Metrics the dashboards may query, by the job that produces them, each name read in the
 * exporter's source at the pinned version: node_exporter v1.12.1 (collector/*.go), postgres_exporter
 * v0.20.1 (collector/*.go, exporter/postgres_exporter.go), pgbouncer_exporter v0.12.1 (collector.go), Patroni 4.0.10
 * (patroni/api.py `do_GET_metrics`), RabbitMQ 3.13.7 (deps/rabbitmq_prometheus collectors), etcd
 * v3.5.33 (server/etcdserver/metrics.go, server/wal/metrics.go, server/mvcc/metrics.go; kubeadm's
 * 3.5 etcd serves the same), MinIO RELEASE.2025-09-07T16-13-09Z (cmd/metrics-v2.go, the cluster
 * groups: `getNodeHealthMetrics`, `getClusterStorageMetrics`).
 * `up` comes from Prometheus itself for every job.
 */
export const DASHBOARD_METRICS: Readonly<Partial<Record<ScrapeJob, readonly string[]>>> = {
  node: [
    "node_cpu_seconds_total",
    "node_load1",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_timex_offset_seconds",
  ],
  postgres: ["pg_up", "pg_stat_activity_count", "pg_settings_max_connections", "pg_replication_lag_seconds"],
  pgbouncer: [
    "pgbouncer_pools_client_active_connections",
    "pgbouncer_pools_client_waiting_connections",
    "pgbouncer_pools_server_active_connections",
  ],
  patroni: [
    "patroni_primary",
    "patroni_replica",
    "patroni_sync_standby",
    "patroni_postgres_timeline",
    "patroni_xlog_location",
    "patroni_xlog_replayed_location",
  ],
  rabbitmq: [
    "rabbitmq_queue_messages_ready",
    "rabbitmq_connections",
    "rabbitmq_unreachable_cluster_peers_count",
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
  ],
  etcd: [
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_failed_total",
    "etcd_disk_wal_fsync_duration_seconds_bucket",
    "etcd_mvcc_db_total_size_in_bytes",
  ],
  minio: [
    "minio_cluster_nodes_online_total",
    "minio_cluster_nodes_offline_total",
    "minio_cluster_drive_online_total",
    "minio_cluster_drive_offline_total",
    "minio_cluster_capacity_usable_total_bytes",
    "minio_cluster_capacity_usable_free_bytes",
  ],
};

/** One panel: a title and its PromQL queries (legend from the `node` label). */
interface PanelSpec {
  readonly title: string;
  readonly queries: readonly string[];
  readonly unit?: string;
}

/** The Grafana datasource variable every panel reads (`${datasource}`), so a dashboard works on any Prometheus. */
export const DATASOURCE_VARIABLE = "datasource";

function dashboard(uid: string, title: string, panels: readonly PanelSpec[]): Record<string, unknown> {
  const datasource = { type: "prometheus", uid: `\${${DATASOURCE_VARIABLE}}` };
  return {
    uid,
    title,
    tags: ["keybuzz"],
    schemaVersion: 39,
    time: { from: "now-6h", to: "now" },
    refresh: "30s",
    templating: {
      list: [{ name: DATASOURCE_VARIABLE, label: "Data source", type: "datasource", query: "prometheus", current: {}, hide: 0 }],
    },
    panels: panels.map((panel, index) => ({
      id: index + 1,
      type: "timeseries",
      title: panel.title,
      datasource,
      gridPos: { h: 8, w: 12, x: (index % 2) * 12, y: Math.floor(index / 2) * 8 },
      fieldConfig: { defaults: { unit: panel.unit ?? "short" }, overrides: [] },
      targets: panel.queries.map((expr, query) => ({
        refId: String.fromCharCode(65 + query),
        datasource,
        expr,
        legendFormat: "{{node}}",
      })),
    })),
  };
}

/**
 * The Grafana dashboards, by file name (one ConfigMap each for Grafana's sidecar): a platform
 * overview and one per service with an exporter deployed. Pure.
 */
export function renderDashboards(): Record<string, Record<string, unknown>> {
  return {
    "keybuzz-overview.json": dashboard("keybuzz-overview", "KeyBuzz / Overview", [
      { title: "Targets down, by job", queries: ["count by (job) (up == 0)"] },
      { title: "PostgreSQL leader (per node)", queries: ["patroni_primary"] },
      { title: "Memory available %", queries: ["node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100"], unit: "percent" },
      { title: "RabbitMQ unreachable peers", queries: ["rabbitmq_unreachable_cluster_peers_count"] },
    ]),
    "keybuzz-hosts.json": dashboard("keybuzz-hosts", "KeyBuzz / Hosts", [
      { title: "CPU busy %", queries: ['100 - avg by (node) (rate(node_cpu_seconds_total{mode="idle"}[5m])) * 100'], unit: "percent" },
      { title: "Load (1 min)", queries: ["node_load1"] },
      { title: "Memory available %", queries: ["node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100"], unit: "percent" },
      {
        title: "Filesystem free %",
        queries: ['node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay"} * 100'],
        unit: "percent",
      },
      {
        title: "Network bytes/s",
        queries: ['rate(node_network_receive_bytes_total{device!="lo"}[5m])', 'rate(node_network_transmit_bytes_total{device!="lo"}[5m])'],
        unit: "Bps",
      },
      { title: "Clock offset", queries: ["node_timex_offset_seconds"], unit: "s" },
    ]),
    "keybuzz-postgres.json": dashboard("keybuzz-postgres", "KeyBuzz / PostgreSQL (Patroni)", [
      { title: "Leader", queries: ["patroni_primary"] },
      { title: "Replicas and sync standby", queries: ["patroni_replica", "patroni_sync_standby"] },
      { title: "Timeline (rises at each promotion)", queries: ["patroni_postgres_timeline"] },
      {
        title: "Replay lag behind the leader (bytes)",
        queries: ["scalar(max(patroni_xlog_location)) - patroni_xlog_replayed_location and on (cluster, node) patroni_replica == 1"],
        unit: "bytes",
      },
      { title: "Replay lag (postgres_exporter)", queries: ["pg_replication_lag_seconds"], unit: "s" },
      {
        title: "Connections % of max_connections",
        queries: [
          "sum by (cluster, node) (pg_stat_activity_count) / on (cluster, node) max by (cluster, node) (pg_settings_max_connections) * 100",
        ],
        unit: "percent",
      },
      {
        title: "PgBouncer clients active / waiting",
        queries: [
          "sum by (node) (pgbouncer_pools_client_active_connections)",
          "sum by (node) (pgbouncer_pools_client_waiting_connections)",
        ],
      },
      { title: "PgBouncer server connections active", queries: ["sum by (node) (pgbouncer_pools_server_active_connections)"] },
    ]),
    "keybuzz-rabbitmq.json": dashboard("keybuzz-rabbitmq", "KeyBuzz / RabbitMQ", [
      { title: "Messages ready", queries: ["sum by (node) (rabbitmq_queue_messages_ready)"] },
      { title: "Connections", queries: ["sum by (node) (rabbitmq_connections)"] },
      { title: "Unreachable peers", queries: ["rabbitmq_unreachable_cluster_peers_count"] },
      { title: "Alarms", queries: ["rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark"] },
    ]),
    // Both etcd clusters (job etcd): Patroni's (cluster postgres) and Kubernetes' (cluster k8s-master).
    "keybuzz-etcd.json": dashboard("keybuzz-etcd", "KeyBuzz / etcd", [
      { title: "Members with a leader, by cluster", queries: ["sum by (cluster) (etcd_server_has_leader)"] },
      { title: "Leader (per member)", queries: ["etcd_server_is_leader"] },
      { title: "Leader changes (1 h)", queries: ["increase(etcd_server_leader_changes_seen_total[1h])"] },
      { title: "Failed proposals /s", queries: ["rate(etcd_server_proposals_failed_total[5m])"] },
      {
        title: "WAL fsync p99",
        queries: ["histogram_quantile(0.99, sum by (cluster, node, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))"],
        unit: "s",
      },
      { title: "Database size", queries: ["etcd_mvcc_db_total_size_in_bytes"], unit: "bytes" },
    ]),
    // The cluster metrics are the whole cluster's view from each node: max by cluster.
    "keybuzz-minio.json": dashboard("keybuzz-minio", "KeyBuzz / MinIO", [
      {
        title: "Nodes online / offline",
        queries: ["max by (cluster) (minio_cluster_nodes_online_total)", "max by (cluster) (minio_cluster_nodes_offline_total)"],
      },
      {
        title: "Drives online / offline",
        queries: ["max by (cluster) (minio_cluster_drive_online_total)", "max by (cluster) (minio_cluster_drive_offline_total)"],
      },
      {
        title: "Usable capacity free %",
        queries: [
          "max by (cluster) (minio_cluster_capacity_usable_free_bytes) / max by (cluster) (minio_cluster_capacity_usable_total_bytes) * 100",
        ],
        unit: "percent",
      },
      { title: "Nodes answering Prometheus", queries: ['sum by (cluster) (up{job="minio"})'] },
    ]),
  };
}
