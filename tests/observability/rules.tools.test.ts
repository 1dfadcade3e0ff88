import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { parseMonitoringSettings, renderAlertRuleGroups, renderRuleFile, type AlertRule } from "../../components/observability/monitoring";
import { requireTool, run, tempDir } from "../support/tools";

/**
 * Every alert rule against Prometheus's own rule engine: `promtool test rules` (Debian's prometheus
 * package) evaluates the rendered rule file over synthetic series shaped like the exporters' output
 * (metric and label names of the pinned exporters, docs/monitoring.md "Sources") and compares the
 * alerts that fire, with their labels and annotations. Each alert has a case where it fires and one
 * where the same metrics stay quiet.
 */

const settings = parseMonitoringSettings(undefined);
const context = { postgresSynchronousMode: true, proxysqlWriterHostgroup: 10, backedUpSystems: ["postgres", "galera", "etcd"] };
const groups = renderAlertRuleGroups(settings, context);
const rulesByName = new Map<string, AlertRule>(groups.flatMap((group) => group.rules.map((rule) => [rule.alert, rule] as const)));

type Labels = Record<string, string>;

/** A scrape target's labels as the ScrapeConfigs set them (job, instance, cluster, node). */
const target = (job: string, cluster: string, node: string, extra: Labels = {}): Labels => ({
  job,
  instance: `${node}:${job}`,
  cluster,
  node,
  ...extra,
});

const series = (metric: string, labels: Labels, values: string) => ({
  series: `${metric}{${Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(",")}}`,
  values,
});

/** The labels of a target without job/instance (what an aggregation `by (cluster, node)` keeps). */
const only = (labels: Labels, keys: readonly string[]) => Object.fromEntries(keys.map((key) => [key, labels[key]]));

interface Case {
  readonly name: string;
  readonly interval?: string;
  readonly input: ReturnType<typeof series>[];
  /** At `at`, alert `alert` fires with exactly these label sets (rule labels added); [] = quiet. */
  readonly expect: readonly { readonly at: string; readonly alert: string; readonly fired: readonly Labels[] }[];
}

const db = (n: number) => target("patroni", "postgres", `db-0${n}`);
const pg = (n: number) => target("postgres", "postgres", `db-0${n}`);
const etcd = (n: number) => target("etcd", "postgres", `db-0${n}`);
/** kubeadm's etcd on the control planes: the same job, its own cluster label (monitoring's kube-etcd ScrapeConfig). */
const kubeEtcd = (n: number) => target("etcd", "k8s-master", `k8s-master-0${n}`);
const bouncer = (n: number) => target("pgbouncer", "haproxy", `haproxy-0${n}`);
const redis = (n: number) => target("redis", "redis", `redis-0${n}`);
const rabbit = (n: number) => target("rabbitmq", "rabbitmq", `queue-0${n}`);
const maria = (n: number) => target("mysqld", "galera", `maria-0${n}`);
const fs1 = { ...target("node", "postgres", "db-01"), device: "/dev/sdb", fstype: "xfs", mountpoint: "/var/lib/postgresql" };
const tmpfs = { ...target("node", "postgres", "db-01"), device: "tmpfs", fstype: "tmpfs", mountpoint: "/run" };
const redisInfo = (n: number, role: string) => ({ ...redis(n), role, redis_version: "7.2.16", redis_mode: "standalone" });
const proxysql = target("proxysql", "proxysql", "proxysql-01");
/** backup-01's node_exporter: one textfile series per system and type (scripts/pgbackrest/backup-run.sh, scripts/galera-backup/receive.sh, scripts/backup/etcd-snapshot.sh). */
const backup = (system: string, type: string) => ({ ...target("node", "backup", "backup-01"), system, type });

const cases: Case[] = [
  {
    name: "the Galera backups stop: its newest success ages past 26 h, PostgreSQL's stays fresh",
    interval: "4m",
    input: [
      // Sample values are the success time (Unix seconds of the test clock): PostgreSQL's advances, Galera's stays at 0.
      series("keybuzz_backup_last_success_timestamp_seconds", backup("postgres", "diff"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("galera", "full"), "0x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "patroni"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "kubernetes"), "0+240x420"),
    ],
    expect: [
      { at: "25h", alert: "BackupTooOld", fired: [] },
      { at: "27h", alert: "BackupTooOld", fired: [{ system: "galera" }] },
      { at: "27h", alert: "BackupNeverSucceeded", fired: [] },
    ],
  },
  {
    name: "Kubernetes' etcd snapshots stop while Patroni's stay fresh: each etcd cluster is its own backup",
    interval: "4m",
    input: [
      series("keybuzz_backup_last_success_timestamp_seconds", backup("postgres", "diff"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("galera", "full"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "patroni"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "kubernetes"), "0x420"),
    ],
    expect: [
      { at: "25h", alert: "BackupTooOld", fired: [] },
      { at: "27h", alert: "BackupTooOld", fired: [{ system: "etcd", type: "kubernetes" }] },
      { at: "27h", alert: "BackupNeverSucceeded", fired: [] },
    ],
  },
  {
    name: "no Galera backup was ever recorded",
    interval: "4m",
    input: [
      series("keybuzz_backup_last_success_timestamp_seconds", backup("postgres", "full"), "0+240x420"),
      series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "patroni"), "0+240x420"),
    ],
    expect: [
      { at: "25h", alert: "BackupNeverSucceeded", fired: [] },
      { at: "27h", alert: "BackupNeverSucceeded", fired: [{ system: "galera" }] },
    ],
  },
  {
    name: "archive_command keeps failing on the primary",
    input: [
      series("pg_stat_archiver_failed_count", pg(1), "0 0 1 2 3 4 5 6 7 8 9 10"),
      series("pg_stat_archiver_failed_count", pg(2), "3x11"),
    ],
    expect: [
      { at: "3m", alert: "PostgresWalArchivingFailing", fired: [] },
      { at: "10m", alert: "PostgresWalArchivingFailing", fired: [pg(1)] },
    ],
  },
  {
    name: "a host stops answering",
    input: [series("up", target("node", "redis", "redis-01"), "1 1 0 0 0 0"), series("up", target("node", "redis", "redis-02"), "1x5")],
    expect: [
      { at: "1m", alert: "HostDown", fired: [] },
      { at: "5m", alert: "HostDown", fired: [target("node", "redis", "redis-01")] },
    ],
  },
  {
    name: "a data volume fills, tmpfs is ignored",
    input: [
      series("node_filesystem_avail_bytes", fs1, "5x10"),
      series("node_filesystem_size_bytes", fs1, "100x10"),
      series("node_filesystem_readonly", fs1, "0x10"),
      series("node_filesystem_avail_bytes", tmpfs, "1x10"),
      series("node_filesystem_size_bytes", tmpfs, "100x10"),
      series("node_filesystem_readonly", tmpfs, "0x10"),
    ],
    expect: [
      { at: "3m", alert: "HostDiskSpaceLow", fired: [] },
      { at: "10m", alert: "HostDiskSpaceLow", fired: [fs1] },
    ],
  },
  {
    name: "a volume fills within a day while still half empty",
    input: [
      series("node_filesystem_avail_bytes", fs1, "100000-100x600"),
      series("node_filesystem_size_bytes", fs1, "100000x600"),
      series("node_filesystem_readonly", fs1, "0x600"),
    ],
    expect: [
      { at: "8h", alert: "HostDiskFillingIn24h", fired: [fs1] },
      { at: "8h", alert: "HostDiskSpaceLow", fired: [] },
    ],
  },
  {
    name: "a volume with steady usage",
    input: [
      series("node_filesystem_avail_bytes", fs1, "50000x600"),
      series("node_filesystem_size_bytes", fs1, "100000x600"),
      series("node_filesystem_readonly", fs1, "0x600"),
      series("node_filesystem_files_free", fs1, "50000x600"),
      series("node_filesystem_files", fs1, "100000x600"),
    ],
    expect: [
      { at: "8h", alert: "HostDiskFillingIn24h", fired: [] },
      { at: "8h", alert: "HostInodesLow", fired: [] },
    ],
  },
  {
    name: "inodes run out",
    input: [
      series("node_filesystem_files_free", fs1, "500x10"),
      series("node_filesystem_files", fs1, "100000x10"),
      series("node_filesystem_readonly", fs1, "0x10"),
    ],
    expect: [{ at: "10m", alert: "HostInodesLow", fired: [fs1] }],
  },
  {
    name: "memory runs low on one host",
    input: [
      series("node_memory_MemAvailable_bytes", target("node", "redis", "redis-01"), "5x10"),
      series("node_memory_MemTotal_bytes", target("node", "redis", "redis-01"), "100x10"),
      series("node_memory_MemAvailable_bytes", target("node", "redis", "redis-02"), "40x10"),
      series("node_memory_MemTotal_bytes", target("node", "redis", "redis-02"), "100x10"),
    ],
    expect: [{ at: "10m", alert: "HostMemoryPressure", fired: [target("node", "redis", "redis-01")] }],
  },
  {
    name: "a clock drifts, another is unsynchronised, a third is fine",
    input: [
      series("node_timex_offset_seconds", target("node", "galera", "maria-01"), "0.2x15"),
      series("node_timex_sync_status", target("node", "galera", "maria-01"), "1x15"),
      series("node_timex_offset_seconds", target("node", "galera", "maria-02"), "0x15"),
      series("node_timex_sync_status", target("node", "galera", "maria-02"), "0x15"),
      series("node_timex_offset_seconds", target("node", "galera", "maria-03"), "0.001x15"),
      series("node_timex_sync_status", target("node", "galera", "maria-03"), "1x15"),
    ],
    expect: [
      { at: "5m", alert: "HostClockSkew", fired: [] },
      { at: "15m", alert: "HostClockSkew", fired: [target("node", "galera", "maria-01"), target("node", "galera", "maria-02")] },
    ],
  },
  {
    name: "Patroni fails over from db-01 to db-02, then the alert clears",
    input: [
      series("patroni_primary", db(1), "1 1 1 stale"),
      series("patroni_replica", db(1), "0 0 0 stale"),
      series("patroni_primary", db(2), "0 0 0 1x30"),
      series("patroni_replica", db(2), "1 1 1 0x30"),
      series("patroni_primary", db(3), "0x33"),
      series("patroni_replica", db(3), "1x33"),
      series("patroni_sync_standby", db(3), "1x33"),
    ],
    expect: [
      { at: "2m", alert: "PostgresLeaderChanged", fired: [] },
      { at: "4m", alert: "PostgresLeaderChanged", fired: [db(2)] },
      { at: "15m", alert: "PostgresLeaderChanged", fired: [] },
      { at: "4m", alert: "PostgresNoLeader", fired: [] },
    ],
  },
  {
    name: "no PostgreSQL leader",
    input: [1, 2, 3].map((n) => series("patroni_primary", db(n), "0x5")),
    expect: [{ at: "5m", alert: "PostgresNoLeader", fired: [{ cluster: "postgres" }] }],
  },
  {
    name: "a PostgreSQL replica crashes and comes back",
    input: [
      ...[1, 2, 3].map((n) => series("up", db(n), n === 3 ? "1 1 0x10 1x10" : "1x22")),
      series("patroni_primary", db(1), "1x22"),
      series("patroni_replica", db(1), "0x22"),
      series("patroni_replica", db(2), "1x22"),
      series("patroni_replica", db(3), "1 1 stale _x9 1x10"),
      series("patroni_sync_standby", db(2), "1x22"),
    ],
    expect: [
      { at: "1m", alert: "PostgresReplicaMissing", fired: [] },
      { at: "10m", alert: "PostgresReplicaMissing", fired: [{ cluster: "postgres" }] },
      { at: "20m", alert: "PostgresReplicaMissing", fired: [] },
      { at: "10m", alert: "PostgresSyncStandbyMissing", fired: [] },
    ],
  },
  {
    name: "a replica runs but does not stream",
    input: [
      series("patroni_replica", db(2), "1x5"),
      series("patroni_postgres_streaming", db(2), "0x5"),
      series("patroni_replica", db(3), "1x5"),
      series("patroni_postgres_streaming", db(3), "1x5"),
      series("patroni_primary", db(1), "1x5"),
      series("patroni_postgres_streaming", db(1), "0x5"),
    ],
    expect: [{ at: "5m", alert: "PostgresReplicationBroken", fired: [db(2)] }],
  },
  {
    name: "a replica lags",
    input: [series("pg_replication_lag_seconds", pg(2), "60x5"), series("pg_replication_lag_seconds", pg(3), "0x5")],
    expect: [{ at: "5m", alert: "PostgresReplicaLag", fired: [pg(2)] }],
  },
  {
    name: "the leader has no synchronous standby",
    input: [series("patroni_primary", db(1), "1x5"), ...[1, 2, 3].map((n) => series("patroni_sync_standby", db(n), "0x5"))],
    expect: [{ at: "5m", alert: "PostgresSyncStandbyMissing", fired: [{ cluster: "postgres" }] }],
  },
  {
    name: "connections near max_connections on one node",
    input: [
      series("pg_stat_activity_count", { ...pg(1), datname: "keybuzz", state: "active" }, "50x10"),
      series("pg_stat_activity_count", { ...pg(1), datname: "keybuzz", state: "idle" }, "40x10"),
      series("pg_settings_max_connections", pg(1), "100x10"),
      series("pg_stat_activity_count", { ...pg(2), datname: "keybuzz", state: "idle" }, "10x10"),
      series("pg_settings_max_connections", pg(2), "100x10"),
    ],
    expect: [{ at: "10m", alert: "PostgresConnectionsNearLimit", fired: [only(pg(1), ["cluster", "node"])] }],
  },
  {
    name: "postgres_exporter cannot log in",
    input: [series("pg_up", pg(1), "0x5"), series("pg_up", pg(2), "1x5")],
    expect: [{ at: "5m", alert: "PostgresExporterDown", fired: [pg(1)] }],
  },
  {
    name: "PgBouncer's console stops answering on one haproxy node",
    input: [series("pgbouncer_up", bouncer(1), "1 1 0x5"), series("pgbouncer_up", bouncer(2), "1x6")],
    expect: [
      { at: "2m", alert: "PgbouncerDown", fired: [] },
      { at: "5m", alert: "PgbouncerDown", fired: [bouncer(1)] },
    ],
  },
  {
    name: "a PgBouncer pool makes clients wait, another only briefly",
    input: [
      series("pgbouncer_pools_client_maxwait_seconds", { ...bouncer(1), database: "keybuzz", user: "keybuzz" }, "0 12x6"),
      series("pgbouncer_pools_client_maxwait_seconds", { ...bouncer(2), database: "keybuzz", user: "keybuzz" }, "0 8 0x5"),
    ],
    expect: [
      { at: "2m", alert: "PgbouncerClientsWaiting", fired: [] },
      { at: "5m", alert: "PgbouncerClientsWaiting", fired: [{ cluster: "haproxy", node: "haproxy-01", database: "keybuzz" }] },
    ],
  },
  {
    name: "etcd members go down one by one",
    input: [
      series("up", etcd(1), "1x20"),
      series("up", etcd(2), "1x5 0x15"),
      series("up", etcd(3), "1x10 0x10"),
      series("etcd_server_has_leader", etcd(1), "1x10 0x10"),
    ],
    expect: [
      { at: "3m", alert: "EtcdQuorumAtRisk", fired: [] },
      { at: "8m", alert: "EtcdQuorumAtRisk", fired: [{ cluster: "postgres" }] },
      { at: "8m", alert: "EtcdQuorumLost", fired: [] },
      { at: "15m", alert: "EtcdQuorumLost", fired: [{ cluster: "postgres" }] },
      { at: "8m", alert: "EtcdNoLeader", fired: [] },
      { at: "15m", alert: "EtcdNoLeader", fired: [etcd(1)] },
    ],
  },
  {
    name: "a control plane's etcd goes down, then a second: the Kubernetes cluster's alerts, Patroni's etcd stays quiet",
    input: [
      ...[1, 2, 3].flatMap((n) => [series("up", etcd(n), "1x20"), series("etcd_server_has_leader", etcd(n), "1x20")]),
      series("up", kubeEtcd(1), "1x20"),
      series("up", kubeEtcd(2), "1x5 0x15"),
      series("up", kubeEtcd(3), "1x10 0x10"),
      series("etcd_server_has_leader", kubeEtcd(1), "1x10 0x10"),
    ],
    expect: [
      { at: "8m", alert: "EtcdQuorumAtRisk", fired: [{ cluster: "k8s-master" }] },
      { at: "15m", alert: "EtcdQuorumLost", fired: [{ cluster: "k8s-master" }] },
      { at: "15m", alert: "EtcdNoLeader", fired: [kubeEtcd(1)] },
    ],
  },
  {
    name: "etcd elections churn",
    input: [
      series("etcd_server_leader_changes_seen_total", etcd(1), "0+1x20"),
      series("etcd_server_leader_changes_seen_total", etcd(2), "2x20"),
    ],
    expect: [{ at: "16m", alert: "EtcdLeaderChangesFrequent", fired: [etcd(1)] }],
  },
  {
    name: "Sentinel fails over from redis-01 to redis-02, and redis-01 stays down",
    input: [
      ...[1, 2, 3].map((n) => series("up", redis(n), n === 1 ? "1 1 0x30" : "1x32")),
      series("redis_instance_info", redisInfo(1, "master"), "1 1 stale"),
      series("redis_connected_slaves", redis(1), "2 2 stale"),
      series("redis_instance_info", redisInfo(2, "slave"), "1 1 1 stale"),
      series("redis_instance_info", redisInfo(2, "master"), "_ _ _ 1x29"),
      series("redis_connected_slaves", redis(2), "0 0 0 1x29"),
      series("redis_instance_info", redisInfo(3, "slave"), "1x32"),
      series("redis_connected_slaves", redis(3), "0x32"),
    ],
    expect: [
      { at: "1m", alert: "RedisMasterChanged", fired: [] },
      { at: "1m", alert: "RedisReplicaMissing", fired: [] },
      { at: "5m", alert: "RedisMasterChanged", fired: [redisInfo(2, "master")] },
      { at: "5m", alert: "RedisReplicaMissing", fired: [{ cluster: "redis" }] },
      { at: "5m", alert: "RedisNoReplica", fired: [] },
      { at: "5m", alert: "RedisMasterCount", fired: [] },
      { at: "20m", alert: "RedisMasterChanged", fired: [] },
    ],
  },
  {
    name: "Redis without a master, then with two",
    input: [
      ...[1, 2, 3].map((n) => series("up", redis(n), "1x20")),
      series("redis_instance_info", redisInfo(1, "slave"), "1x10 stale"),
      series("redis_instance_info", redisInfo(1, "master"), "_x10 1x9"),
      series("redis_instance_info", redisInfo(2, "slave"), "1x10 stale"),
      series("redis_instance_info", redisInfo(2, "master"), "_x10 1x9"),
      series("redis_instance_info", redisInfo(3, "slave"), "1x20"),
      series("redis_connected_slaves", redis(1), "0x20"),
      series("redis_connected_slaves", redis(2), "0x20"),
    ],
    expect: [
      { at: "5m", alert: "RedisMasterCount", fired: [{ cluster: "redis" }] },
      { at: "15m", alert: "RedisMasterCount", fired: [{ cluster: "redis" }] },
      { at: "15m", alert: "RedisNoReplica", fired: [{ cluster: "redis" }] },
    ],
  },
  {
    name: "Redis memory near maxmemory on one node, none set on another",
    input: [
      series("redis_memory_used_bytes", redis(1), "95x10"),
      series("redis_memory_max_bytes", redis(1), "100x10"),
      series("redis_memory_used_bytes", redis(2), "95x10"),
      series("redis_memory_max_bytes", redis(2), "0x10"),
    ],
    expect: [{ at: "10m", alert: "RedisMemoryNearMax", fired: [redis(1)] }],
  },
  {
    name: "RabbitMQ loses one node, then two",
    input: [
      series("up", rabbit(1), "1x20"),
      series("up", rabbit(2), "0x20"),
      series("up", rabbit(3), "1x10 0x10"),
      series("rabbitmq_unreachable_cluster_peers_count", rabbit(1), "0 1x19"),
      series("rabbitmq_unreachable_cluster_peers_count", rabbit(3), "0x10"),
    ],
    expect: [
      { at: "5m", alert: "RabbitMqNodeDown", fired: [rabbit(2)] },
      { at: "5m", alert: "RabbitMqPeerUnreachable", fired: [rabbit(1)] },
      { at: "5m", alert: "RabbitMqQuorumQueueMajorityLost", fired: [] },
      { at: "15m", alert: "RabbitMqQuorumQueueMajorityLost", fired: [{ cluster: "rabbitmq" }] },
    ],
  },
  {
    name: "RabbitMQ alarms",
    input: [
      series("rabbitmq_alarms_memory_used_watermark", rabbit(1), "0 1 1"),
      series("rabbitmq_alarms_free_disk_space_watermark", rabbit(1), "0 0 1"),
      series("rabbitmq_alarms_memory_used_watermark", rabbit(2), "0 0 0"),
      series("rabbitmq_alarms_free_disk_space_watermark", rabbit(2), "0 0 0"),
    ],
    expect: [
      { at: "0m", alert: "RabbitMqMemoryAlarm", fired: [] },
      { at: "1m", alert: "RabbitMqMemoryAlarm", fired: [rabbit(1)] },
      { at: "1m", alert: "RabbitMqDiskAlarm", fired: [] },
      { at: "2m", alert: "RabbitMqDiskAlarm", fired: [rabbit(1)] },
    ],
  },
  {
    name: "a Galera node leaves",
    input: [
      ...[1, 2, 3].map((n) => series("up", maria(n), "1x10")),
      series("mysql_up", maria(1), "1x10"),
      series("mysql_up", maria(2), "1x10"),
      series("mysql_up", maria(3), "1 1 0x8"),
      series("mysql_global_status_wsrep_cluster_size", maria(1), "3 3 2x8"),
      series("mysql_global_status_wsrep_cluster_size", maria(2), "3 3 2x8"),
      series("mysql_global_status_wsrep_local_state", maria(1), "4x10"),
      series("mysql_global_status_wsrep_local_state", maria(2), "4 4 2x8"),
    ],
    expect: [
      { at: "1m", alert: "GaleraClusterSizeLow", fired: [] },
      { at: "1m", alert: "GaleraNodeDown", fired: [] },
      { at: "5m", alert: "GaleraClusterSizeLow", fired: [{ cluster: "galera" }] },
      { at: "5m", alert: "GaleraNodeDown", fired: [maria(3)] },
      { at: "5m", alert: "GaleraNodeNotSynced", fired: [] },
      { at: "10m", alert: "GaleraNodeNotSynced", fired: [maria(2)] },
    ],
  },
  {
    name: "a Galera exporter is unreachable",
    input: [series("up", maria(1), "0x5"), series("up", maria(2), "1x5")],
    expect: [{ at: "5m", alert: "GaleraNodeDown", fired: [maria(1)] }],
  },
  {
    name: "Galera flow control",
    input: [
      series("mysql_global_status_wsrep_flow_control_paused_ns", maria(1), "0+30000000000x20"),
      series("mysql_global_status_wsrep_flow_control_paused_ns", maria(2), "0+1000000000x20"),
    ],
    expect: [{ at: "15m", alert: "GaleraFlowControl", fired: [maria(1)] }],
  },
  {
    name: "ProxySQL's writer goes offline, then the hostgroup empties, then a writer returns",
    input: [
      series("proxysql_uptime_seconds_total", proxysql, "0+60x20"),
      series("proxysql_connpool_conns_status", { ...proxysql, endpoint: "10.0.0.71:3306", hostgroup: "10" }, "1x4 4x5 stale _x4 1x5"),
      series("proxysql_connpool_conns_status", { ...proxysql, endpoint: "10.0.0.72:3306", hostgroup: "30" }, "1x20"),
    ],
    expect: [
      { at: "3m", alert: "ProxySqlWriterOffline", fired: [] },
      { at: "8m", alert: "ProxySqlWriterOffline", fired: [only(proxysql, ["cluster", "node"])] },
      { at: "13m", alert: "ProxySqlWriterOffline", fired: [only(proxysql, ["cluster", "node"])] },
      { at: "19m", alert: "ProxySqlWriterOffline", fired: [] },
    ],
  },
  {
    name: "ProxySQL down",
    input: [series("up", proxysql, "0x5")],
    expect: [{ at: "5m", alert: "ProxySqlDown", fired: [proxysql] }],
  },
  {
    name: "MinIO loses a drive, then a node",
    input: [1, 2, 3].flatMap((n) => [
      series("minio_cluster_drive_offline_total", target("minio", "minio", `minio-0${n}`), "0 1x15"),
      series("minio_cluster_nodes_offline_total", target("minio", "minio", `minio-0${n}`), "0x7 1x8"),
    ]),
    expect: [
      { at: "3m", alert: "MinioDriveOffline", fired: [] },
      { at: "7m", alert: "MinioDriveOffline", fired: [{ cluster: "minio" }] },
      { at: "7m", alert: "MinioNodeOffline", fired: [] },
      { at: "14m", alert: "MinioNodeOffline", fired: [{ cluster: "minio" }] },
    ],
  },
  {
    name: "an HAProxy listener loses its servers",
    input: [
      series("haproxy_backend_active_servers", { ...target("haproxy", "haproxy", "haproxy-01"), proxy: "postgres-write" }, "1 0x5"),
      series("haproxy_backend_active_servers", { ...target("haproxy", "haproxy", "haproxy-01"), proxy: "redis" }, "1x5"),
      // The stats page's listen section, which has no server (tests/haproxy/haproxy.tools.test.ts).
      series("haproxy_backend_active_servers", { ...target("haproxy", "haproxy", "haproxy-01"), proxy: "stats" }, "0x5"),
    ],
    expect: [
      { at: "1m", alert: "HaproxyBackendDown", fired: [] },
      { at: "5m", alert: "HaproxyBackendDown", fired: [{ ...target("haproxy", "haproxy", "haproxy-01"), proxy: "postgres-write" }] },
    ],
  },
  {
    name: "a backend endpoint fails its blackbox probe, another keeps answering",
    input: [
      series("probe_success", { job: "backend-probe", instance: "10.0.0.10:6432", endpoint: "pgbouncer" }, "1 0x6"),
      series("probe_success", { job: "backend-probe", instance: "10.0.0.10:5432", endpoint: "postgres-write" }, "1x6"),
    ],
    expect: [
      { at: "2m", alert: "BackendEndpointDown", fired: [] },
      { at: "4m", alert: "BackendEndpointDown", fired: [{ job: "backend-probe", instance: "10.0.0.10:6432", endpoint: "pgbouncer" }] },
    ],
  },
  {
    name: "certificates at 100, 10 and 3 days from expiry",
    input: [100, 10, 3].map((days) =>
      series(
        "keybuzz_certificate_expiry_timestamp_seconds",
        { ...target("node", "k8s", "k8s-master-01"), path: `/pki/${days}d.crt` },
        `${days * 86400}x2`,
      ),
    ),
    expect: [
      {
        at: "1m",
        alert: "CertificateExpiringSoon",
        fired: [10, 3].map((days) => ({ ...target("node", "k8s", "k8s-master-01"), path: `/pki/${days}d.crt` })),
      },
      { at: "1m", alert: "CertificateExpiryCritical", fired: [{ ...target("node", "k8s", "k8s-master-01"), path: "/pki/3d.crt" }] },
    ],
  },
  {
    name: "an exporter goes down (a host's own node_exporter is HostDown's)",
    input: [series("up", redis(1), "0x5"), series("up", target("node", "redis", "redis-01"), "0x5"), series("up", redis(2), "1x5")],
    expect: [{ at: "5m", alert: "ExporterDown", fired: [redis(1)] }],
  },
];

/** Every exporter of a healthy platform: one case where no alert fires at all. */
const healthyPlatform: Case = {
  name: "a healthy platform fires nothing",
  input: [
    ...[1, 2, 3].flatMap((n) => [
      series("up", target("node", "postgres", `db-0${n}`), "1x40"),
      series("node_memory_MemAvailable_bytes", target("node", "postgres", `db-0${n}`), "60x40"),
      series("node_memory_MemTotal_bytes", target("node", "postgres", `db-0${n}`), "100x40"),
      series("node_timex_offset_seconds", target("node", "postgres", `db-0${n}`), "0.001x40"),
      series("node_timex_sync_status", target("node", "postgres", `db-0${n}`), "1x40"),
      series("up", db(n), "1x40"),
      series("patroni_primary", db(n), n === 1 ? "1x40" : "0x40"),
      series("patroni_replica", db(n), n === 1 ? "0x40" : "1x40"),
      series("patroni_sync_standby", db(n), n === 2 ? "1x40" : "0x40"),
      series("patroni_postgres_streaming", db(n), n === 1 ? "0x40" : "1x40"),
      series("up", pg(n), "1x40"),
      series("pg_up", pg(n), "1x40"),
      series("pg_replication_lag_seconds", pg(n), "0x40"),
      series("pg_stat_activity_count", { ...pg(n), datname: "keybuzz", state: "idle" }, "20x40"),
      series("pg_settings_max_connections", pg(n), "100x40"),
      series("up", etcd(n), "1x40"),
      series("etcd_server_has_leader", etcd(n), "1x40"),
      series("etcd_server_leader_changes_seen_total", etcd(n), "1x40"),
      series("up", kubeEtcd(n), "1x40"),
      series("etcd_server_has_leader", kubeEtcd(n), "1x40"),
      series("etcd_server_leader_changes_seen_total", kubeEtcd(n), "1x40"),
      series("up", redis(n), "1x40"),
      series("redis_instance_info", redisInfo(n, n === 1 ? "master" : "slave"), "1x40"),
      series("redis_connected_slaves", redis(n), n === 1 ? "2x40" : "0x40"),
      series("redis_memory_used_bytes", redis(n), "30x40"),
      series("redis_memory_max_bytes", redis(n), "100x40"),
      series("up", rabbit(n), "1x40"),
      series("rabbitmq_unreachable_cluster_peers_count", rabbit(n), "0x40"),
      series("rabbitmq_alarms_memory_used_watermark", rabbit(n), "0x40"),
      series("rabbitmq_alarms_free_disk_space_watermark", rabbit(n), "0x40"),
      series("up", maria(n), "1x40"),
      series("mysql_up", maria(n), "1x40"),
      series("mysql_global_status_wsrep_cluster_size", maria(n), "3x40"),
      series("mysql_global_status_wsrep_local_state", maria(n), "4x40"),
      series("mysql_global_status_wsrep_flow_control_paused_ns", maria(n), "0+100000000x40"),
      series("minio_cluster_drive_offline_total", target("minio", "minio", `minio-0${n}`), "0x40"),
      series("minio_cluster_nodes_offline_total", target("minio", "minio", `minio-0${n}`), "0x40"),
    ]),
    series("keybuzz_backup_last_success_timestamp_seconds", backup("postgres", "diff"), "0x40"),
    series("keybuzz_backup_last_success_timestamp_seconds", backup("galera", "full"), "0x40"),
    series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "patroni"), "0x40"),
    series("keybuzz_backup_last_success_timestamp_seconds", backup("etcd", "kubernetes"), "0x40"),
    ...[1, 2, 3].map((n) => series("pg_stat_archiver_failed_count", pg(n), "2x40")),
    series("up", proxysql, "1x40"),
    series("proxysql_uptime_seconds_total", proxysql, "0+60x40"),
    series("proxysql_connpool_conns_status", { ...proxysql, endpoint: "10.0.0.71:3306", hostgroup: "10" }, "1x40"),
    series("haproxy_backend_active_servers", { ...target("haproxy", "haproxy", "haproxy-01"), proxy: "postgres-write" }, "1x40"),
    series(
      "keybuzz_certificate_expiry_timestamp_seconds",
      { ...target("node", "k8s", "k8s-master-01"), path: "/pki/ca.crt" },
      `${365 * 86400}x40`,
    ),
  ],
  expect: groups.flatMap((group) => group.rules.map((rule) => ({ at: "30m", alert: rule.alert, fired: [] }))),
};

/** The promtool test file of {@link cases}: exp_alerts carry each rule's labels and annotations. */
function promtoolTests(ruleFile: string): string {
  return yaml.dump(
    {
      rule_files: [ruleFile],
      evaluation_interval: "1m",
      tests: [...cases, healthyPlatform].map((testCase) => ({
        name: testCase.name,
        interval: testCase.interval ?? "1m",
        input_series: testCase.input,
        alert_rule_test: testCase.expect.map(({ at, alert, fired }) => {
          const rule = rulesByName.get(alert);
          if (!rule) throw new Error(`case "${testCase.name}" expects ${alert}, which no group renders`);
          return {
            eval_time: at,
            alertname: alert,
            exp_alerts: fired.map((labels) => ({ exp_labels: { ...labels, ...rule.labels }, exp_annotations: rule.annotations })),
          };
        }),
      })),
    },
    { lineWidth: -1, noRefs: true },
  );
}

describe("alert rules (promtool)", () => {
  const promtool = requireTool("promtool");
  const dir = tempDir("rules");
  const ruleFile = path.join(dir, "keybuzz.rules.yaml");
  fs.writeFileSync(ruleFile, renderRuleFile(groups));

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("the rendered rule file passes promtool check rules", () => {
    const result = run(promtool, ["check", "rules", ruleFile]);
    expect(result.stderr + result.stdout).toContain("SUCCESS");
    expect(result.status).toBe(0);
  });

  it("every rule has a case where it fires and one where it stays quiet", () => {
    const all = [...cases, healthyPlatform];
    const fires = new Set(all.flatMap((testCase) => testCase.expect.filter((e) => e.fired.length > 0).map((e) => e.alert)));
    const quiet = new Set(all.flatMap((testCase) => testCase.expect.filter((e) => e.fired.length === 0).map((e) => e.alert)));
    const names = [...rulesByName.keys()];
    expect(names.filter((name) => !fires.has(name))).toEqual([]);
    expect(names.filter((name) => !quiet.has(name))).toEqual([]);
  });

  it("promtool test rules: every case fires exactly the expected alerts", () => {
    const testFile = path.join(dir, "keybuzz.rules.test.yaml");
    fs.writeFileSync(testFile, promtoolTests(path.basename(ruleFile)));
    const result = run(promtool, ["test", "rules", testFile], { cwd: dir });
    expect(result.stdout + result.stderr).toContain("SUCCESS");
    expect(result.status).toBe(0);
  });
});
