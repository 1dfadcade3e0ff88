import type { ClusterNode } from "../../../config/inventory";
import { CONTAINER_NOFILE, renderContainerFunctions } from "../../lib/container";
import type { HaproxyListener } from "../../lib/contract";
import { HostFile, secretRef } from "../../lib/remote";
import { stepBody } from "../../lib/scripts";
import { DEFAULT_RABBITMQ_SETTINGS, RabbitMqSettings } from "./settings";

/**
 * The RabbitMQ module's pure render functions (spec 001 module 5 and design section D; DESIGN.md):
 * inventory nodes, the image and the settings in, rabbitmq.conf, enabled_plugins, the HAProxy
 * listener and the step bodies (scripts/rabbitmq/) out.
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
/** Name of the HAProxy listen section for AMQP (and of the listener the endpoint check goes through). */
export const RABBITMQ_LISTENER = "rabbitmq";

/**
 * One RabbitMQ node: its Erlang node is `rabbit@<name>`; the listeners bind its address.
 * `erlangName` overrides the Erlang node name: the loopback suite runs three nodes under one epmd,
 * which needs a distinct name part per node (tests/rabbitmq/loopback.ts). Servers never set it.
 */
export type RabbitMqNode = ClusterNode & { readonly erlangName?: string };

/** The Erlang node name of an inventory node (`rabbit@<name>` unless it sets `erlangName`). */
export function erlangNodeName(node: RabbitMqNode): string {
  return node.erlangName ?? `rabbit@${node.name}`;
}

/**
 * Seconds a RabbitMQ node gets to stop after SIGTERM before Docker kills it (the container's
 * `stopGraceSeconds`, components/lib/container.ts). In a container, rabbitmq-server passes SIGTERM
 * on to the Erlang VM, whose handler stops RabbitMQ in order, as `rabbitmqctl stop` does
 * (sbin/rabbitmq-server, "useful in the case of Docker"; rabbit_prelaunch_sighandler.erl): client
 * connections close, the node's quorum queue members stop (leaders move to the other nodes), the
 * message store is flushed. The value is systemd's default stop timeout (90 s), under which the
 * distribution's own unit (Debian's rabbitmq-server.service sets no `TimeoutStopSec`) stops the
 * broker; an assumption for the servers, not measured there (the loopback suite's stop takes a few
 * seconds).
 */
export const RABBITMQ_STOP_GRACE_SECONDS = 90;

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
    // The file's path in this header predates the module folder; it stays as it is, because any
    // change of rabbitmq.conf recreates every node's container (one at a time).
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

/**
 * The HAProxy listen section for AMQP: round robin across every node (spec 001 design D), each
 * health-checked through the management API's port-listener check for the AMQP port (HTTP 200 only
 * when that listener is up), with the monitoring user's Basic auth as a placeholder. Pure.
 */
export function rabbitmqHaproxyListener(
  nodes: readonly RabbitMqNode[],
  settings: Pick<RabbitMqSettings, "amqpPort" | "managementPort"> = DEFAULT_RABBITMQ_SETTINGS,
): HaproxyListener {
  const { amqpPort, managementPort } = settings;
  return {
    name: RABBITMQ_LISTENER,
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
  const containerFunctions = renderContainerFunctions({
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
    stopGraceSeconds: RABBITMQ_STOP_GRACE_SECONDS,
  });
  return stepBody("rabbitmq", ["rabbitmq-node.sh"], {
    prefix: [containerFunctions],
    variables: {
      KB_NODE: erlangNodeName(node),
      KB_SEED_NODE: erlangNodeName(nodes[0]),
      KB_PEER_NODES: nodes
        .filter((peer) => peer.name !== node.name)
        .map(erlangNodeName)
        .join(" "),
      KB_NODE_COUNT: nodes.length,
      KB_OWNER: RABBITMQ_IMAGE_OWNER,
      KB_DATA_DIR: paths.dataDir,
      KB_CONFIG_DIR: paths.configDir,
      KB_MANAGED_DIR: paths.managedDir,
      KB_ADMIN_USER: settings.defaultUser,
      KB_MONITOR_USER: RABBITMQ_MONITOR_USER,
    },
  });
}

/** The verification step's bash body (scripts/rabbitmq/verify.sh), run on `node`. Pure. */
export function renderRabbitMqVerifyScript(
  node: RabbitMqNode,
  nodeCount: number,
  settings: RabbitMqSettings = DEFAULT_RABBITMQ_SETTINGS,
  paths: RabbitMqHostPaths = RABBITMQ_HOST_PATHS,
): string {
  return stepBody("rabbitmq", ["verify.sh"], {
    variables: {
      KB_NODE_COUNT: nodeCount,
      KB_NODE_IP: node.address,
      KB_MANAGEMENT_PORT: settings.managementPort,
      KB_ADMIN_USER: settings.defaultUser,
      KB_MANAGED_DIR: paths.managedDir,
    },
  });
}

/**
 * The bash body that checks AMQP through the load balancer at `address:port`
 * (scripts/rabbitmq/endpoint-check.sh): the protocol header gets a `Connection.Start` method frame
 * back. Pure.
 */
export function renderRabbitMqEndpointCheckScript(address: string, port: number): string {
  return stepBody("rabbitmq", ["endpoint-check.sh"], { variables: { KB_LB_ADDRESS: address, KB_LB_PORT: port } });
}

/** Management API endpoints, `http://<node address>:<managementPort>`. Pure. */
export function rabbitMqManagementEndpoints(
  nodes: readonly RabbitMqNode[],
  settings: Pick<RabbitMqSettings, "managementPort"> = DEFAULT_RABBITMQ_SETTINGS,
): string[] {
  return nodes.map((node) => `http://${node.address}:${settings.managementPort}`);
}
