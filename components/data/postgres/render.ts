import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { ClusterNode, clusterNodes, digestReference, Inventory, lockedImage, serversOf, Versions } from "../../../config";
import { CONTAINER_NOFILE, imagePull, renderLockedImagePull } from "../../lib/container";
import { HaproxyFile, HaproxyListener } from "../../lib/contract";
import { secretRef, sha256 } from "../../lib/remote";
import { commonScript, hostScript, shellVariables, stepBody } from "../../lib/scripts";
import { ACCOUNTS, DATABASES } from "../../security/secrets";
import { HAPROXY_CONTAINER_DIR } from "../haproxy";
import { PGBOUNCER_PORT } from "../pgbouncer/render";
import {
  DEFAULT_POSTGRES_LAYOUT,
  ETCD_UID,
  PATRONI_NAMESPACE,
  PATRONI_SCOPE,
  POSTGRES_UID,
  PostgresLayout,
  PostgresSettings,
  SECRET_KEYS,
  timingOf,
} from "./settings";

/**
 * Pure render functions of the PostgreSQL tier: inputs in, text out, no engine. Step bodies are
 * the scripts of scripts/postgres/ behind their `KB_*` variables (`shellVariables`).
 */

/** A DB node: etcd, Patroni and PostgreSQL bind and advertise its address. */
export type DbNode = ClusterNode;

/** The DB nodes of the inventory, bootstrap node first. */
export function dbNodesOf(inventory: Inventory): DbNode[] {
  return clusterNodes(serversOf(inventory, "postgres"));
}

/** The role pg_rewind connects as (Patroni docs' `rewind_user`); not a superuser. */
export const REWIND_USER = "rewind_user";

/** TLS file names inside {@link PostgresLayout.paths.tlsDir} and the etcd config dir. */
export const TLS_FILES = { ca: "ca.crt", cert: "node.crt", key: "node.key" } as const;

/**
 * Parameters Patroni only takes from the DCS (they must match on every node; Patroni docs,
 * "PostgreSQL parameters controlled by Patroni"). Overrides of these go to the dynamic config.
 */
const DCS_ONLY_PARAMETERS = new Set([
  "max_connections",
  "max_locks_per_transaction",
  "max_worker_processes",
  "max_prepared_transactions",
  "wal_level",
  "track_commit_timestamp",
  "max_wal_senders",
  "max_replication_slots",
  "wal_keep_size",
  "hot_standby",
  "wal_log_hints",
]);

type ParameterValue = string | number | boolean;

/** Cluster-wide parameters: spec 001 `bootstrap.dcs.postgresql.parameters`. */
const SPEC_DCS_PARAMETERS: Record<string, ParameterValue> = {
  max_connections: 200,
  max_worker_processes: 8,
  max_wal_senders: 10,
  wal_level: "replica",
  hot_standby: "on",
  wal_keep_size: "1GB",
  max_replication_slots: 10,
  // pgvector needs no preloading (the spec listed it); pg_stat_statements does.
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.track": "all",
};

/** Node parameters: spec 001 `postgresql.parameters` (minus the DCS-only ones). */
const SPEC_NODE_PARAMETERS: Record<string, ParameterValue> = {
  shared_buffers: "256MB",
  effective_cache_size: "1GB",
  maintenance_work_mem: "64MB",
  checkpoint_completion_target: 0.9,
  wal_buffers: "16MB",
  default_statistics_target: 100,
  random_page_cost: 1.1,
  effective_io_concurrency: 200,
  work_mem: "4MB",
  min_wal_size: "1GB",
  max_wal_size: "4GB",
  max_parallel_workers_per_gather: 4,
  max_parallel_workers: 8,
  max_parallel_maintenance_workers: 4,
};

function splitOverrides(settings: PostgresSettings): { dcs: Record<string, ParameterValue>; node: Record<string, ParameterValue> } {
  const dcs: Record<string, ParameterValue> = {};
  const node: Record<string, ParameterValue> = {};
  for (const [key, value] of Object.entries(settings.parameters)) {
    (DCS_ONLY_PARAMETERS.has(key) ? dcs : node)[key] = value;
  }
  return { dcs, node };
}

/**
 * The cluster-wide (DCS) configuration: Patroni's `bootstrap.dcs` at first start, and what the
 * node step applies afterwards with `patronictl edit-config --apply` (bootstrap.dcs is read once).
 */
export function renderDynamicConfigObject(settings: PostgresSettings): Record<string, unknown> {
  const timing = timingOf(settings);
  return {
    ttl: timing.ttl,
    loop_wait: timing.loopWait,
    retry_timeout: timing.retryTimeout,
    // Patroni's default 300 s keeps a crashed primary's node waiting 5 minutes before failover.
    primary_start_timeout: timing.primaryStartTimeout,
    maximum_lag_on_failover: settings.maximumLagOnFailoverBytes,
    // The primary keeps running through a DCS outage while it still reaches every member.
    failsafe_mode: true,
    synchronous_mode: settings.synchronousMode,
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: { ...SPEC_DCS_PARAMETERS, ...splitOverrides(settings).dcs },
    },
  };
}

/** dynamic.yml, the file form of {@link renderDynamicConfigObject}. */
export function renderDynamicConfig(settings: PostgresSettings): string {
  return `# Rendered by KeyBuzz: Patroni dynamic (DCS) configuration, applied with patronictl edit-config.\n${yaml.dump(renderDynamicConfigObject(settings), { lineWidth: -1 })}`;
}

/** `pg_hba` lines: TLS only; replication between the DB nodes; clients from the private network. */
export function renderPgHba(members: readonly DbNode[], layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string[] {
  const replication = ACCOUNTS.postgresReplication;
  const replicationSources = layout.replicationSourceCidrs ?? members.map((member) => `${member.address}/32`);
  return [
    // Operators inside the container (`docker exec -u postgres patroni psql`), and Patroni itself.
    `local all ${ACCOUNTS.postgresSuperuser} peer`,
    "local all all scram-sha-256",
    ...replicationSources.map((cidr) => `hostssl replication ${replication} ${cidr} scram-sha-256`),
    `hostssl all all 127.0.0.1/32 scram-sha-256`,
    `hostssl all all ${layout.clientCidr} scram-sha-256`,
  ];
}

/** Inputs of {@link renderPatroniConfig}. */
export interface PatroniRenderInput {
  /** The node rendered. */
  readonly node: DbNode;
  /** Every DB node (DCS peers, replication sources), bootstrap node first. */
  readonly members: readonly DbNode[];
  readonly settings: PostgresSettings;
  /** Default {@link DEFAULT_POSTGRES_LAYOUT}. */
  readonly layout?: PostgresLayout;
  /** Node parameters merged last (the backup module's WAL archiving: `pgBackRestPatroniParameters`). */
  readonly extraParameters?: Readonly<Record<string, ParameterValue>>;
}

/**
 * patroni.yml of one node. Passwords are secretRef() placeholders; TLS paths point into
 * `layout.paths.tlsDir`. Spec 001 (bootstrap, parameters) + spec 004 (TLS, etcd3, data checksums).
 */
export function renderPatroniConfigObject(input: PatroniRenderInput): Record<string, unknown> {
  const layout = input.layout ?? DEFAULT_POSTGRES_LAYOUT;
  const { ports, paths } = layout;
  const { node, members, settings } = input;
  const tls = (file: string) => path.posix.join(paths.tlsDir, file);
  const dcs =
    settings.dcs === "etcd3"
      ? {
          etcd3: {
            hosts: members.map((member) => `${member.address}:${ports.etcdClient}`),
            protocol: "https",
            cacert: tls(TLS_FILES.ca),
            cert: tls(TLS_FILES.cert),
            key: tls(TLS_FILES.key),
          },
        }
      : {
          raft: {
            data_dir: paths.raftDir,
            self_addr: `${node.address}:${ports.raft}`,
            partner_addrs: members.filter((member) => member.name !== node.name).map((member) => `${member.address}:${ports.raft}`),
          },
        };
  return {
    scope: PATRONI_SCOPE,
    namespace: PATRONI_NAMESPACE,
    name: node.name,
    log: { level: "INFO" },
    restapi: {
      listen: `${node.address}:${ports.restApi}`,
      connect_address: `${node.address}:${ports.restApi}`,
      certfile: tls(TLS_FILES.cert),
      keyfile: tls(TLS_FILES.key),
      cafile: tls(TLS_FILES.ca),
      // Client certificates are checked when presented (patronictl, peers); HAProxy's checks need none.
      verify_client: "optional",
      authentication: { username: ACCOUNTS.patroniRestApi, password: secretRef(SECRET_KEYS.restApi) },
    },
    ctl: { cacert: tls(TLS_FILES.ca), certfile: tls(TLS_FILES.cert), keyfile: tls(TLS_FILES.key) },
    ...dcs,
    bootstrap: {
      dcs: renderDynamicConfigObject(settings),
      // Deprecated place of the same lines; kept because Debian bookworm's Patroni 3.0.2 validator requires it.
      pg_hba: renderPgHba(members, layout),
      initdb: [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums", { waldir: paths.walDir }],
    },
    postgresql: {
      listen: `${node.address}:${ports.postgres}`,
      connect_address: `${node.address}:${ports.postgres}`,
      data_dir: paths.dataDir,
      bin_dir: paths.binDir,
      pgpass: paths.pgpass,
      use_unix_socket: true,
      authentication: {
        superuser: { username: ACCOUNTS.postgresSuperuser, password: secretRef(SECRET_KEYS.superuser) },
        replication: {
          username: ACCOUNTS.postgresReplication,
          password: secretRef(SECRET_KEYS.replication),
          sslmode: "verify-ca",
          sslrootcert: tls(TLS_FILES.ca),
        },
        // pg_rewind runs as this non-superuser role (Patroni creates it with the needed grants).
        rewind: { username: REWIND_USER, password: secretRef(SECRET_KEYS.rewind) },
      },
      // Replicas put their WAL beside PGDATA on the volume too, like the bootstrap node's initdb.
      basebackup: [{ waldir: paths.walDir }, { checkpoint: "fast" }],
      pg_hba: renderPgHba(members, layout),
      parameters: {
        ssl: "on",
        ssl_cert_file: tls(TLS_FILES.cert),
        ssl_key_file: tls(TLS_FILES.key),
        ssl_ca_file: tls(TLS_FILES.ca),
        password_encryption: "scram-sha-256",
        unix_socket_directories: paths.socketDir,
        ...SPEC_NODE_PARAMETERS,
        ...splitOverrides(settings).node,
        ...input.extraParameters,
      },
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
}

/** patroni.yml text of one node (see {@link renderPatroniConfigObject}). */
export function renderPatroniConfig(input: PatroniRenderInput): string {
  return `# Rendered by KeyBuzz (components/data/postgres). Do not edit on the host.\n${yaml.dump(renderPatroniConfigObject(input), { lineWidth: -1 })}`;
}

/** The etcd cluster token: members of another cluster (e.g. a staging copy) never join this one. */
export function etcdClusterToken(stack: string): string {
  return `keybuzz-${stack}-postgres`;
}

/**
 * The etcd member's settings as a `docker --env-file` (no quotes): mutual TLS for peers and
 * clients (spec 004). `ETCD_INITIAL_CLUSTER_STATE` is deliberately absent: the run script sets it
 * (`new` only before the cluster first formed, `existing` afterwards, spec 004's pitfall).
 */
export function renderEtcdEnv(
  node: DbNode,
  members: readonly DbNode[],
  stack: string,
  layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT,
): string {
  const { ports, paths } = layout;
  const tls = (file: string) => path.posix.join(paths.etcdConfigDir, "tls", file);
  const entries: [string, string][] = [
    ["ETCD_NAME", node.name],
    ["ETCD_DATA_DIR", paths.etcdDataDir],
    ["ETCD_INITIAL_CLUSTER", members.map((member) => `${member.name}=https://${member.address}:${ports.etcdPeer}`).join(",")],
    ["ETCD_INITIAL_CLUSTER_TOKEN", etcdClusterToken(stack)],
    ["ETCD_INITIAL_ADVERTISE_PEER_URLS", `https://${node.address}:${ports.etcdPeer}`],
    ["ETCD_LISTEN_PEER_URLS", `https://${node.address}:${ports.etcdPeer}`],
    ["ETCD_LISTEN_CLIENT_URLS", `https://${node.address}:${ports.etcdClient}`],
    ["ETCD_ADVERTISE_CLIENT_URLS", `https://${node.address}:${ports.etcdClient}`],
    ["ETCD_CLIENT_CERT_AUTH", "true"],
    ["ETCD_TRUSTED_CA_FILE", tls(TLS_FILES.ca)],
    ["ETCD_CERT_FILE", tls(TLS_FILES.cert)],
    ["ETCD_KEY_FILE", tls(TLS_FILES.key)],
    ["ETCD_PEER_CLIENT_CERT_AUTH", "true"],
    ["ETCD_PEER_TRUSTED_CA_FILE", tls(TLS_FILES.ca)],
    ["ETCD_PEER_CERT_FILE", tls(TLS_FILES.cert)],
    ["ETCD_PEER_KEY_FILE", tls(TLS_FILES.key)],
    // Patroni writes little; keep one hour of history and a small backend.
    ["ETCD_AUTO_COMPACTION_MODE", "periodic"],
    ["ETCD_AUTO_COMPACTION_RETENTION", "1h"],
    ["ETCD_LOG_LEVEL", "warn"],
  ];
  return `# Rendered by KeyBuzz: etcd member ${node.name} (docker --env-file).\n${entries.map(([key, value]) => `${key}=${value}`).join("\n")}\n`;
}

/** Where HAProxy finds the CA that signed the Patroni REST API certificates (inside its container). */
export const HAPROXY_POSTGRES_CA = `${HAPROXY_CONTAINER_DIR}/postgres-ca.crt`;

/**
 * HAProxy health-check timing (HAProxy configuration manual, "inter"/"fastinter"/"downinter"): an
 * UP server is checked every 500 ms, a DOWN one every 500 ms, and one in transition every 250 ms.
 * So a new leader is routed to within `downinter + fastinter` = 0.75 s of Patroni answering 200 on
 * `/primary`, and a demoted or dead leader is out within `inter + fastinter` = 0.75 s, its sessions
 * cut at that moment (`on-marked-down shutdown-sessions`) so clients reconnect to the new leader.
 * `fall 2` keeps a single slow check (the 3 s `timeout check` of a frozen node) from cutting them.
 */
export const HAPROXY_CHECK_TIMING = "inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2";

/** Ports HAProxy binds for PostgreSQL, and the load balancer forwards (spec 001: write 5432 → leader, read 5433 → replicas). */
export const POSTGRES_HAPROXY_PORTS = { write: 5432, read: 5433 } as const;

/** Options of {@link postgresHaproxyListenersFor}. */
export interface PostgresListenerOptions {
  /** Default {@link DEFAULT_POSTGRES_LAYOUT} (ports 5432 and 8008). */
  readonly layout?: PostgresLayout;
  /** CA file as HAProxy sees it; default {@link HAPROXY_POSTGRES_CA}. */
  readonly caFile?: string;
  /** Ports bound by HAProxy; default write 5432, read 5433. */
  readonly writePort?: number;
  readonly readPort?: number;
}

/** The write (leader) and read (replicas) listeners for the given DB nodes. */
export function postgresHaproxyListenersFor(
  members: readonly DbNode[],
  settings: PostgresSettings,
  options: PostgresListenerOptions = {},
): HaproxyListener[] {
  const layout = options.layout ?? DEFAULT_POSTGRES_LAYOUT;
  const caFile = options.caFile ?? HAPROXY_POSTGRES_CA;
  const defaults = `default-server ${HAPROXY_CHECK_TIMING} on-marked-down shutdown-sessions check-ssl verify required ca-file ${caFile} port ${layout.ports.restApi}`;
  const servers = members.map((member) => `server ${member.name} ${member.address}:${layout.ports.postgres} check`);
  const common = ["mode tcp", "option tcplog"];
  return [
    {
      name: "postgres-write",
      port: options.writePort ?? POSTGRES_HAPROXY_PORTS.write,
      // Patroni answers 200 on /primary only on the leader (spec 004 §9).
      lines: [...common, "option httpchk OPTIONS /primary", "http-check expect status 200", defaults, ...servers],
    },
    {
      name: "postgres-read",
      port: options.readPort ?? POSTGRES_HAPROXY_PORTS.read,
      // 200 only on a running replica at most readMaxLagBytes behind the leader.
      lines: [
        ...common,
        "balance roundrobin",
        `option httpchk OPTIONS /replica?lag=${settings.readMaxLagBytes}`,
        "http-check expect status 200",
        defaults,
        ...servers,
      ],
    },
  ];
}

/** The PostgreSQL listeners of the shared HAProxy (5432 write → leader, 5433 read → replicas). */
export function postgresHaproxyListeners(
  inventory: Inventory,
  settings: PostgresSettings,
  options: PostgresListenerOptions = {},
): HaproxyListener[] {
  return postgresHaproxyListenersFor(dbNodesOf(inventory), settings, {
    ...options,
    layout: options.layout ?? { ...DEFAULT_POSTGRES_LAYOUT, clientCidr: inventory.network.ipRange },
  });
}

/** scripts/patroni/Dockerfile, as committed. */
export const PATRONI_DOCKERFILE = path.join(__dirname, "..", "..", "..", "scripts", "patroni", "Dockerfile");

/** The Dockerfile text the DB hosts build from. */
export function patroniDockerfile(): string {
  return fs.readFileSync(PATRONI_DOCKERFILE, "utf8");
}

/** Build arguments of the Patroni image, from config/versions.yaml and its digest lock. */
export function patroniBuildArgs(versions: Versions): Record<string, string> {
  return {
    // Locked: `FROM postgres@sha256:…`, and the digest enters the tag's hash, so a new one rebuilds.
    POSTGRES_IMAGE: versions.digests?.postgres
      ? digestReference(versions.images.postgres, versions.digests.postgres)
      : versions.images.postgres,
    PATRONI_VERSION: versions.packages.patroni,
    PGVECTOR_VERSION: versions.packages.pgvector,
    PGBACKREST_VERSION: versions.packages.pgbackrest,
  };
}

/**
 * Tag of the locally built Patroni image: versions plus a hash of the Dockerfile and the build
 * arguments, so a host rebuilds exactly when one of them changes.
 */
export function patroniImageTag(versions: Versions, dockerfile: string = patroniDockerfile()): string {
  const args = patroniBuildArgs(versions);
  const postgresTag = versions.images.postgres.split(":").pop() ?? "unknown";
  const digest = sha256(dockerfile + JSON.stringify(args)).slice(0, 12);
  return `keybuzz/patroni:${postgresTag}-patroni${versions.packages.patroni}-${digest}`;
}

/** Secret key of the CA file the HAProxy layer places beside haproxy.cfg. */
export const POSTGRES_HAPROXY_CA_KEY = "postgres-ca";

/** The CA file HAProxy verifies the Patroni REST API with ({@link HAPROXY_POSTGRES_CA}). */
export function postgresHaproxyCaFile(): HaproxyFile {
  return { name: path.posix.basename(HAPROXY_POSTGRES_CA), content: secretRef(POSTGRES_HAPROXY_CA_KEY) };
}

/** Client endpoints of the tier, on the internal load balancer in front of haproxy-01/02. */
export interface PostgresEndpoints {
  /** Leader, `host:port` (5432). */
  readonly write: string;
  /** Replicas (5433). */
  readonly read: string;
  /** PgBouncer (6432), transaction pooling. */
  readonly pooled: string;
}

/**
 * Private IP of the internal load balancer whose targets are the haproxy group (spec: 10.0.0.10):
 * where clients reach PostgreSQL and PgBouncer.
 *
 * @throws Error when no load balancer targets the haproxy group (config/ reports that first:
 *   `moduleInventoryProblems`).
 */
export function postgresLoadBalancerIp(inventory: Inventory): string {
  const lb = inventory.loadBalancers.find((candidate) => candidate.targetGroup === "haproxy");
  if (!lb) throw new Error("postgres: no load balancer targets the haproxy group (keybuzz:loadBalancers)");
  return lb.privateIp;
}

/** The client endpoints on the load balancer at `address` (write 5432, read 5433, PgBouncer 6432). */
export function postgresEndpointsAt(address: string): PostgresEndpoints {
  return {
    write: `${address}:${POSTGRES_HAPROXY_PORTS.write}`,
    read: `${address}:${POSTGRES_HAPROXY_PORTS.read}`,
    pooled: `${address}:${PGBOUNCER_PORT}`,
  };
}

/** Seconds a node step waits for its member to be healthy (a replica's first clone included). */
export const PATRONI_WAIT_SECONDS = 900;

/** Path of the etcd run script on the host. */
export function etcdRunPath(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  return path.posix.join(layout.paths.etcdConfigDir, "run.sh");
}

/**
 * Body of the volume step: the node's XFS volume mounted (`kb_xfs_volume`, scripts/common/
 * xfs-volume.sh: fstab, noatime), then scripts/postgres/volume.sh: PGDATA and WAL dirs 700.
 */
export function renderVolumeScript(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  const { paths } = layout;
  return stepBody("postgres", ["volume.sh"], {
    variables: { KB_VOLUME_MOUNT: paths.volumeMount, KB_DATA_DIR: paths.dataDir, KB_WAL_DIR: paths.walDir, KB_POSTGRES_UID: POSTGRES_UID },
    common: ["xfs-volume.sh"],
  });
}

/**
 * The etcd run script installed on the host (`run.sh start | wait-cluster SECONDS`), with its
 * settings baked in: the image, the data and config dirs, this member's name, peer URL and client
 * endpoint, every member's endpoint; and the shared membership helpers (scripts/common/
 * etcd-member.sh) with which an emptied member replaces its stale registration and joins again.
 */
export function renderEtcdRunScript(
  node: DbNode,
  members: readonly DbNode[],
  versions: Versions,
  layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT,
): string {
  const { ports, paths } = layout;
  const variables = shellVariables({
    KB_ETCD_IMAGE: imagePull(lockedImage(versions, "etcd")).run,
    KB_ETCD_NOFILE: CONTAINER_NOFILE.etcd,
    KB_ETCD_UID: ETCD_UID,
    KB_ETCD_DATA_DIR: paths.etcdDataDir,
    KB_ETCD_CONFIG_DIR: paths.etcdConfigDir,
    KB_ETCD_NAME: node.name,
    KB_ETCD_PEER_URL: `https://${node.address}:${ports.etcdPeer}`,
    KB_ETCD_ENDPOINT: `https://${node.address}:${ports.etcdClient}`,
    KB_ETCD_ENDPOINTS: members.map((member) => `https://${member.address}:${ports.etcdClient}`).join(","),
  });
  return `#!/usr/bin/env bash\n${variables}\n${commonScript("etcd-member.sh").trim()}\n${hostScript("postgres", "etcd-run.sh").trim()}\n`;
}

/**
 * Body of the etcd step (scripts/postgres/etcd.sh): start (or update) the member; a formed
 * cluster's member waits for health.
 *
 * @param etcdImage `lockedImage(versions, "etcd")`: when locked, the step first pulls the digest and
 *   points the tag run.sh runs at it.
 */
export function renderEtcdStepScript(layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT, etcdImage = ""): string {
  const lockedPull = renderLockedImagePull(etcdImage).trimEnd();
  return stepBody("postgres", ["etcd.sh"], { prefix: lockedPull ? [lockedPull] : [], variables: { KB_ETCD_RUN: etcdRunPath(layout) } });
}

/**
 * Line appended to etcd.env when the digest lock pins etcd: run.sh hashes etcd.env into the
 * container's `keybuzz.spec` label, so a new digest re-creates the member (one at a time, as any
 * change); the container's environment names the digest it runs. etcd reads only `ETCD_*` variables.
 */
export function renderEtcdLockedImageEnv(versions: Versions): string {
  const { pull, run } = imagePull(lockedImage(versions, "etcd"));
  return pull === run ? "" : `KEYBUZZ_ETCD_IMAGE=${pull}\n`;
}

/**
 * Body of the image step (scripts/postgres/patroni-image.sh): build the Patroni image unless this
 * exact tag exists, with {@link patroniBuildArgs} as `NAME=value` words in `KB_BUILD_ARGS`.
 *
 * @throws Error when a build argument's value holds whitespace (a bug: pins are single words).
 */
export function renderImageBuildScript(versions: Versions, imageTag: string, layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT): string {
  const buildArgs = Object.entries(patroniBuildArgs(versions)).map(([key, value]) => {
    if (/\s/.test(value)) throw new Error(`Patroni build argument ${key}: "${value}" holds whitespace`);
    return `${key}=${value}`;
  });
  return stepBody("postgres", ["patroni-image.sh"], {
    variables: {
      KB_IMAGE_TAG: imageTag,
      KB_BUILD_ARGS: buildArgs.join(" "),
      KB_BUILD_CONTEXT: path.posix.join(layout.paths.configDir, "build"),
    },
  });
}

/** Every `KB_*` variable a Patroni step may read; each step gets those its scripts name. */
function patroniVariables(
  node: DbNode,
  members: readonly DbNode[],
  settings: PostgresSettings,
  imageTag: string,
  layout: PostgresLayout,
): Record<string, string | number> {
  const { ports, paths } = layout;
  return {
    KB_NODE: node.name,
    KB_ADDRESS: node.address,
    KB_REST_PORT: ports.restApi,
    KB_POSTGRES_PORT: ports.postgres,
    KB_SCOPE: PATRONI_SCOPE,
    KB_DCS: settings.dcs,
    KB_IMAGE_TAG: imageTag,
    KB_PATRONI_NOFILE: CONTAINER_NOFILE.patroni,
    KB_CONFIG_DIR: paths.configDir,
    KB_TLS_DIR: paths.tlsDir,
    KB_SOCKET_DIR: paths.socketDir,
    KB_VOLUME_MOUNT: paths.volumeMount,
    KB_RAFT_DIR: paths.raftDir,
    KB_POSTGRES_UID: POSTGRES_UID,
    KB_ETCD_RUN: etcdRunPath(layout),
    KB_LOOP_WAIT: timingOf(settings).loopWait,
    KB_WAIT_SECONDS: PATRONI_WAIT_SECONDS,
    KB_REPLICAS: members.length - 1,
    KB_PENDING_MARKER: path.posix.join(paths.configDir, "restart-pending"),
  };
}

/** The Patroni steps and the script in scripts/postgres/ each one ends with (after patroni-lib.sh). */
const PATRONI_STEP_SCRIPTS = {
  /** A node's accounts step: a rotated password of Patroni's accounts applied on the leader, before any node step. */
  accounts: "accounts.sh",
  /** A node's Patroni step: bootstrap or rolling change. */
  node: "patroni-node.sh",
  /** A node's finish step: the deferred leader restart after a switchover. */
  finish: "patroni-finish.sh",
  /** The verification step (run on the bootstrap node). */
  verify: "verify.sh",
} as const;

/** One of {@link PATRONI_STEP_SCRIPTS}. */
export type PatroniStep = keyof typeof PATRONI_STEP_SCRIPTS;

/**
 * Body of a Patroni step on `node`: the `KB_*` variables that patroni-lib.sh and the step's own
 * script read (so shellcheck's unused-variable check holds for each step), then those two files.
 */
export function renderPatroniStepScript(
  step: PatroniStep,
  node: DbNode,
  members: readonly DbNode[],
  settings: PostgresSettings,
  imageTag: string,
  layout: PostgresLayout = DEFAULT_POSTGRES_LAYOUT,
): string {
  const files = ["patroni-lib.sh", PATRONI_STEP_SCRIPTS[step]];
  const text = files.map((file) => hostScript("postgres", file)).join("\n");
  // Named anywhere counts: `$((KB_LOOP_WAIT + 2))` reads a variable without a `$`.
  const read = Object.entries(patroniVariables(node, members, settings, imageTag, layout)).filter(([name]) =>
    new RegExp(`\\b${name}\\b`).test(text),
  );
  return stepBody("postgres", files, { variables: Object.fromEntries(read) });
}

/** The REST API state helper the steps call (host python3). */
export function patroniStateHelper(): string {
  return hostScript("postgres", "patroni_state.py");
}

/** Name of the application database (and of its owner role, {@link ACCOUNTS.postgresApp}). */
export const APP_DATABASE = DATABASES.product;
/** Name of the backend's own database (Prisma's), owned by {@link ACCOUNTS.postgresBackend} (issue 19). */
export const BACKEND_DATABASE = DATABASES.backend;

/** An application database, its owner role (the only non-superuser that may connect) and the placeholder of its password. */
export interface ApplicationDatabase {
  readonly database: string;
  readonly owner: string;
  readonly secretKey: string;
}

/**
 * The application databases the verification step keeps: the product database `keybuzz` (pgvector)
 * and the backend's `keybuzz_backend` (issue 19, "Databases and users"), each with its own owner.
 */
export const APPLICATION_DATABASES: readonly ApplicationDatabase[] = [
  { database: APP_DATABASE, owner: ACCOUNTS.postgresApp, secretKey: SECRET_KEYS.app },
  { database: BACKEND_DATABASE, owner: ACCOUNTS.postgresBackend, secretKey: SECRET_KEYS.backend },
];

/**
 * SQL of the application roles and databases, idempotent: each role created when missing and its
 * password set on every run (a rotated password re-applies), each database created when missing,
 * its owner corrected, and PUBLIC's default CONNECT/TEMPORARY revoked (PostgreSQL docs, "Privileges":
 * PUBLIC gets CONNECT and TEMPORARY on databases by default), so a role reaches only its own database.
 */
export function renderDatabasesSql(databases: readonly ApplicationDatabase[] = APPLICATION_DATABASES): string {
  return databases
    .map(
      ({
        database,
        owner,
        secretKey,
      }) => `SELECT format('CREATE ROLE %I LOGIN', '${owner}') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${owner}') \\gexec
ALTER ROLE ${owner} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${secretRef(secretKey)}';
SELECT format('CREATE DATABASE %I OWNER %I', '${database}', '${owner}') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${database}') \\gexec
ALTER DATABASE ${database} OWNER TO ${owner};
REVOKE ALL ON DATABASE ${database} FROM PUBLIC;
`,
    )
    .join("");
}

/** SQL of the product database's extensions (pgvector, `packages.pgvector` in the Patroni image), with a check that vector works. */
export function renderExtensionsSql(): string {
  return `\\connect ${APP_DATABASE}
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector AS vector_works;
`;
}

/**
 * SQL run on the leader by the verification step (app.sql): the application roles and databases
 * ({@link renderDatabasesSql}), then the extensions of the product database ({@link renderExtensionsSql}).
 */
export function renderAppSql(): string {
  return `-- Rendered by KeyBuzz: idempotent application roles and databases.\n${renderDatabasesSql()}${renderExtensionsSql()}`;
}

/**
 * accounts.sql, run by the accounts step on the leader: the passwords of the roles Patroni
 * connects as (superuser, replication, pg_rewind), which Patroni itself sets only at bootstrap
 * (Patroni 4.0.10, `Bootstrap.post_bootstrap`). As Patroni's `create_or_update_role`: statement
 * logging and pg_stat_statements' utility tracking off, the commit local (it does not wait for
 * the synchronous standby).
 */
export function renderAccountsSql(): string {
  const roles: [string, string][] = [
    [ACCOUNTS.postgresSuperuser, SECRET_KEYS.superuser],
    [ACCOUNTS.postgresReplication, SECRET_KEYS.replication],
    [REWIND_USER, SECRET_KEYS.rewind],
  ];
  return [
    "-- Rendered by KeyBuzz: the passwords of Patroni's accounts (applied on the leader).",
    "SET log_statement TO none;",
    "SET log_min_duration_statement TO -1;",
    "SET log_min_error_statement TO 'log';",
    "SET pg_stat_statements.track_utility TO off;",
    "SET synchronous_commit TO local;",
    ...roles.map(([role, key]) => `ALTER ROLE ${role} WITH PASSWORD '${secretRef(key)}';`),
    "",
  ].join("\n");
}

/** pgpass of the verification step: the superuser, every host. */
export function renderVerifyPgpass(): string {
  return `*:*:*:${ACCOUNTS.postgresSuperuser}:${secretRef(SECRET_KEYS.superuser)}\n`;
}
