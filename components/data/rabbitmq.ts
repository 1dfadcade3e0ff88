import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ClusterNode, clusterNodes, lockedImage, Versions } from "../../config";
import { ACCOUNTS } from "../security/secrets";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../lib/remote";
import { CONTAINER_NOFILE, renderContainerFunctions } from "../lib/container";
import type { HaproxyListener } from "./haproxy";

/**
 * RabbitMQ quorum cluster (spec 001 module 5 and design section D; DESIGN.md): 3 nodes in pinned
 * containers on the host network, `classic_config` peer discovery, quorum queues by default,
 * HAProxy round robin across the nodes with a management-API health check.
 */

/** Placeholder key of the default (administrator) user's password. */
export const RABBITMQ_PASSWORD_KEY = "rabbitmq-password";
/** Placeholder key of the Erlang cookie. */
export const ERLANG_COOKIE_KEY = "rabbitmq-erlang-cookie";
/** Placeholder key of the health-check user's password. */
export const RABBITMQ_MONITOR_PASSWORD_KEY = "rabbitmq-monitor-password";
/** Placeholder key of HAProxy's `Authorization` header value (base64 of `user:password`). */
export const RABBITMQ_HEALTH_AUTH_KEY = "rabbitmq-health-auth";
/** The user HAProxy's health check logs in as: `monitoring` tag only, no vhost permissions. */
export const RABBITMQ_MONITOR_USER = "keybuzz-monitor";
/** uid:gid of the `rabbitmq` user of the official image. */
export const RABBITMQ_IMAGE_OWNER = "999:999";

/** One RabbitMQ node: its Erlang node is `rabbit@<name>`; the listeners bind its address. */
export type RabbitMqNode = ClusterNode;

/** Ports and names of a RabbitMQ node; defaults are production. */
export interface RabbitMqSettings {
  /** AMQP port. Default 5672. */
  readonly amqpPort: number;
  /** Management API / UI port. Default 15672 (spec 001). */
  readonly managementPort: number;
  /** Prometheus metrics port. Default 15692 (rabbitmq_prometheus). */
  readonly prometheusPort: number;
  /** `cluster_name`. Default `keybuzz`. */
  readonly clusterName: string;
  /** The default user created on first boot (administrator). Default `ACCOUNTS.rabbitmqUser`. */
  readonly defaultUser: string;
}

/** Production defaults of {@link RabbitMqSettings}. */
export const DEFAULT_RABBITMQ_SETTINGS: RabbitMqSettings = {
  amqpPort: 5672,
  managementPort: 15672,
  prometheusPort: 15692,
  clusterName: "keybuzz",
  defaultUser: ACCOUNTS.rabbitmqUser,
};

/** The Erlang node name of an inventory node. */
export function erlangNodeName(node: RabbitMqNode): string {
  return `rabbit@${node.name}`;
}

/**
 * Renders rabbitmq.conf for one node: `classic_config` peer discovery listing every node,
 * `default_queue_type = quorum` (3.13.3+), listeners on the node's address, the default user from
 * secrets. No `loopback_users.guest = false` (spec 001): with a default user set, no `guest`
 * account is created, and none may log in remotely. Pure.
 */
export function renderRabbitMqConf(
  node: RabbitMqNode,
  nodes: readonly RabbitMqNode[],
  settings: RabbitMqSettings = DEFAULT_RABBITMQ_SETTINGS,
): string {
  return [
    `# Managed by KeyBuzz (components/data/rabbitmq.ts) for ${node.name}.`,
    `cluster_name = ${settings.clusterName}`,
    "cluster_formation.peer_discovery_backend = classic_config",
    ...nodes.map((peer, index) => `cluster_formation.classic_config.nodes.${index + 1} = ${erlangNodeName(peer)}`),
    // Quorum queues need a majority; pause the minority side of a partition instead of diverging.
    "cluster_partition_handling = pause_minority",
    "default_queue_type = quorum",
    `listeners.tcp.1 = ${node.address}:${settings.amqpPort}`,
    `management.tcp.ip = ${node.address}`,
    `management.tcp.port = ${settings.managementPort}`,
    `prometheus.tcp.ip = ${node.address}`,
    `prometheus.tcp.port = ${settings.prometheusPort}`,
    `default_user = ${settings.defaultUser}`,
    `default_pass = ${secretRef(RABBITMQ_PASSWORD_KEY)}`,
    "default_user_tags.administrator = true",
    "default_permissions.configure = .*",
    "default_permissions.read = .*",
    "default_permissions.write = .*",
    "vm_memory_high_watermark.relative = 0.6",
    "disk_free_limit.absolute = 2GB",
    "log.console = true",
    "log.console.level = info",
    "log.file = false",
    "",
  ].join("\n");
}

/**
 * Renders enabled_plugins: management and Prometheus. Spec 001 also listed
 * `rabbitmq_peer_discovery_classic_config`, which is not a plugin (classic_config is built into
 * the broker). Pure.
 */
export function renderEnabledPlugins(): string {
  return "[rabbitmq_management,rabbitmq_prometheus].\n";
}

/** HAProxy's `Authorization: Basic` value for the health-check user, from its password (secret). */
export function rabbitmqHealthCheckAuthorization(monitorPassword: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(
    pulumi.output(monitorPassword).apply((monitor) => Buffer.from(`${RABBITMQ_MONITOR_USER}:${monitor}`).toString("base64")),
  );
}

/** Options of {@link rabbitmqHaproxyListener}. */
export interface RabbitMqListenerOptions {
  /** AMQP port (bound by HAProxy and on the nodes). Default 5672. */
  readonly amqpPort?: number;
  /** Management port the health check calls. Default 15672. */
  readonly managementPort?: number;
}

/**
 * The HAProxy listen section for AMQP: round robin across every node (spec 001 design D), each
 * health-checked through the management API's port-listener check for the AMQP port (HTTP 200 only
 * when that listener is up), with the monitoring user's Basic auth as a placeholder.
 */
export function rabbitmqHaproxyListener(nodes: readonly RabbitMqNode[], options: RabbitMqListenerOptions = {}): HaproxyListener {
  const amqpPort = options.amqpPort ?? DEFAULT_RABBITMQ_SETTINGS.amqpPort;
  const managementPort = options.managementPort ?? DEFAULT_RABBITMQ_SETTINGS.managementPort;
  return {
    name: "rabbitmq",
    port: amqpPort,
    lines: [
      "mode tcp",
      "balance roundrobin",
      "option httpchk",
      `http-check send meth GET uri /api/health/checks/port-listener/${amqpPort} ver HTTP/1.1 hdr Host localhost hdr Authorization "Basic ${secretRef(RABBITMQ_HEALTH_AUTH_KEY)}"`,
      "http-check expect status 200",
      `default-server inter 2s fall 3 rise 2 port ${managementPort} on-marked-down shutdown-sessions`,
      ...nodes.map((node) => `server ${node.name} ${node.address}:${amqpPort} check`),
    ],
  };
}

/** Host paths of the RabbitMQ module; defaults are production (spec 001: /opt/keybuzz/rabbitmq). */
export interface RabbitMqHostPaths {
  /** Mounted as /var/lib/rabbitmq (mnesia/khepri, quorum logs, the Erlang cookie). */
  readonly dataDir: string;
  /** Mounted read-only as /etc/rabbitmq (rabbitmq.conf, enabled_plugins). */
  readonly configDir: string;
  /** Root-only password files the step reads (never the command line). */
  readonly managedDir: string;
}

/** Production host paths. */
export const RABBITMQ_HOST_PATHS: RabbitMqHostPaths = {
  dataDir: "/opt/keybuzz/rabbitmq/data",
  configDir: "/opt/keybuzz/rabbitmq/config",
  managedDir: "/etc/keybuzz/rabbitmq",
};

const SCRIPTS = path.join(__dirname, "..", "..", "scripts", "rabbitmq");

function shellAssignments(values: Record<string, string | number>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key}='${String(value)}'`)
    .join("\n");
}

/** The files the node step writes: config, plugins, Erlang cookie (0400), password files. Pure. */
export function rabbitMqNodeFiles(
  node: RabbitMqNode,
  nodes: readonly RabbitMqNode[],
  settings: RabbitMqSettings = DEFAULT_RABBITMQ_SETTINGS,
  paths: RabbitMqHostPaths = RABBITMQ_HOST_PATHS,
): HostFile[] {
  return [
    {
      path: `${paths.configDir}/rabbitmq.conf`,
      content: renderRabbitMqConf(node, nodes, settings),
      mode: "0600",
      owner: RABBITMQ_IMAGE_OWNER,
    },
    { path: `${paths.configDir}/enabled_plugins`, content: renderEnabledPlugins(), mode: "0644", owner: RABBITMQ_IMAGE_OWNER },
    { path: `${paths.dataDir}/.erlang.cookie`, content: secretRef(ERLANG_COOKIE_KEY), mode: "0400", owner: RABBITMQ_IMAGE_OWNER },
    { path: `${paths.managedDir}/admin-password`, content: secretRef(RABBITMQ_PASSWORD_KEY), mode: "0600" },
    { path: `${paths.managedDir}/monitor-password`, content: secretRef(RABBITMQ_MONITOR_PASSWORD_KEY), mode: "0600" },
  ];
}

/** The node step's bash body: container functions, variables, scripts/rabbitmq/rabbitmq-node.sh. Pure. */
export function renderRabbitMqNodeScript(
  node: RabbitMqNode,
  nodes: readonly RabbitMqNode[],
  image: string,
  settings: RabbitMqSettings = DEFAULT_RABBITMQ_SETTINGS,
  paths: RabbitMqHostPaths = RABBITMQ_HOST_PATHS,
): string {
  return [
    renderContainerFunctions({
      name: "rabbitmq",
      image,
      options: [
        // The node name is the inventory name, resolved by every node through the managed /etc/hosts.
        "-e",
        `RABBITMQ_NODENAME=${erlangNodeName(node)}`,
        "-v",
        `${paths.dataDir}:/var/lib/rabbitmq`,
        "-v",
        `${paths.configDir}:/etc/rabbitmq:ro`,
      ],
      command: [],
      nofile: CONTAINER_NOFILE.rabbitmq,
    }),
    shellAssignments({
      KB_NODE: erlangNodeName(node),
      KB_SEED_NODE: erlangNodeName(nodes[0]),
      KB_NODE_COUNT: nodes.length,
      KB_OWNER: RABBITMQ_IMAGE_OWNER,
      KB_DATA_DIR: paths.dataDir,
      KB_CONFIG_DIR: paths.configDir,
      KB_MANAGED_DIR: paths.managedDir,
      KB_ADMIN_USER: settings.defaultUser,
      KB_MONITOR_USER: RABBITMQ_MONITOR_USER,
    }),
    fs.readFileSync(path.join(SCRIPTS, "rabbitmq-node.sh"), "utf8"),
  ].join("\n");
}

/** The verification step's bash body (scripts/rabbitmq/verify.sh), run on `node`. Pure. */
export function renderRabbitMqVerifyScript(
  node: RabbitMqNode,
  nodeCount: number,
  settings: RabbitMqSettings = DEFAULT_RABBITMQ_SETTINGS,
  paths: RabbitMqHostPaths = RABBITMQ_HOST_PATHS,
): string {
  return [
    shellAssignments({
      KB_NODE_COUNT: nodeCount,
      KB_NODE_IP: node.address,
      KB_MANAGEMENT_PORT: settings.managementPort,
      KB_ADMIN_USER: settings.defaultUser,
      KB_MANAGED_DIR: paths.managedDir,
    }),
    fs.readFileSync(path.join(SCRIPTS, "verify.sh"), "utf8"),
  ].join("\n");
}

/**
 * The bash body that checks AMQP through the load balancer: the protocol header gets a
 * `Connection.Start` method frame back (type 1, channel 0, class 10, method 10). Pure.
 */
export function renderRabbitMqEndpointCheckScript(address: string, port: number): string {
  return `probe() {
  # shellcheck disable=SC2016 # $1/$2 belong to the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "AMQP\\x00\\x00\\x09\\x01" >&3; head -c 11 <&3' probe ${address} ${port} 2>/dev/null | od -An -tx1 | tr -d ' \\n'
}
connection_start() { [[ "$(probe || true)" =~ ^010000[0-9a-f]{8}000a000a$ ]]; }
kb_wait_until 120 2 "rabbitmq endpoint: no AMQP Connection.Start through ${address}:${port}" connection_start
echo "rabbitmq endpoint: AMQP answers through ${address}:${port}"`;
}

/** Arguments of {@link RabbitMqCluster}. */
export interface RabbitMqClusterArgs {
  /** The rabbitmq group's hosts in inventory order (queue-01..03); the first is the seed node. */
  readonly hosts: readonly Host[];
  /** Pinned versions; uses `images.rabbitmq` (3.13.x ≥ 3.13.3 for `default_queue_type`). */
  readonly versions: Versions;
  /** `PlatformSecrets.rabbitmq.password`: the default (administrator) user's password. */
  readonly password: pulumi.Input<string>;
  /** `PlatformSecrets.rabbitmq.erlangCookie`: the same on every node. */
  readonly erlangCookie: pulumi.Input<string>;
  /** `PlatformSecrets.rabbitmq.monitor`: password of the health-check user HAProxy logs in as. */
  readonly monitorPassword: pulumi.Input<string>;
  /** Verified end of the base OS per host name (`BaseOs.ready`). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
}

/**
 * RabbitMQ on the rabbitmq group (`keybuzz:data:RabbitMqCluster`). Nodes start one at a time in
 * inventory order, each joining the seed's cluster before the next starts; a later change rolls
 * the same way, each restart gated by `check_if_node_is_quorum_critical`. Ends with a
 * verification step: every node running, no partitions, a quorum queue with a member per node.
 */
export class RabbitMqCluster extends pulumi.ComponentResource {
  /** The verification step. */
  public readonly ready: command.remote.Command;
  /** Per host: the node's step (running, in the cluster, accounts in place). */
  public readonly nodeSteps: Readonly<Record<string, command.remote.Command>>;
  /** Management API endpoints `http://ip:15672`. */
  public readonly managementEndpoints: readonly string[];
  private readonly hosts: readonly Host[];
  private readonly fingerprint: string;

  constructor(name: string, args: RabbitMqClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:RabbitMqCluster", name, {}, opts);
    if (args.hosts.length === 0) throw new Error(`RabbitMqCluster ${name}: no hosts`);
    const nodes = clusterNodes(args.hosts.map((host) => host.spec));
    const image = lockedImage(args.versions, "rabbitmq");
    const secrets = {
      [RABBITMQ_PASSWORD_KEY]: args.password,
      [ERLANG_COOKIE_KEY]: args.erlangCookie,
      [RABBITMQ_MONITOR_PASSWORD_KEY]: args.monitorPassword,
    };
    const nodeSteps: Record<string, command.remote.Command> = {};
    const fingerprints: string[] = [];
    let previous: pulumi.Resource | undefined;
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const baseReady = args.ready[node.name];
      if (!baseReady) throw new Error(`RabbitMqCluster ${name}: no base OS readiness for ${node.name}`);
      const files = rabbitMqNodeFiles(node, nodes);
      const script = renderRabbitMqNodeScript(node, nodes, image);
      fingerprints.push(sha256(script + files.map((file) => file.content).join("")));
      const step = remoteStep(
        `${node.name}-rabbitmq`,
        { host, files, script, secrets, timeoutMinutes: 20 },
        // One node at a time: joins on first deployment, rolling restarts afterwards.
        { parent: this, dependsOn: [baseReady, ...(previous ? [previous] : [])] },
      );
      nodeSteps[node.name] = step;
      previous = step;
    });
    const verifyScript = renderRabbitMqVerifyScript(nodes[0], nodes.length);
    this.fingerprint = sha256(fingerprints.join(""));
    this.ready = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 10, triggers: [sha256(this.fingerprint + verifyScript)] },
      { parent: this, dependsOn: Object.values(nodeSteps) },
    );
    this.nodeSteps = nodeSteps;
    this.managementEndpoints = nodes.map((node) => `http://${node.address}:${DEFAULT_RABBITMQ_SETTINGS.managementPort}`);
    this.hosts = args.hosts;
    this.registerOutputs({ managementEndpoints: this.managementEndpoints });
  }

  /** Declares the end-to-end AMQP check through `address:port`, after the HAProxy layer is ready. */
  public checkThroughLoadBalancer(address: string, port: number, after: readonly pulumi.Resource[]): command.remote.Command {
    return remoteStep(
      `${this.hosts[0].spec.name}-rabbitmq-endpoint-check`,
      { host: this.hosts[0], script: renderRabbitMqEndpointCheckScript(address, port), timeoutMinutes: 5, triggers: [this.fingerprint] },
      { parent: this, dependsOn: [this.ready, ...after] },
    );
  }
}
