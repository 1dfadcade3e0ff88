import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { clusterNodes, lockedImage } from "../../../config";
import type { HaproxyContribution, ModuleArgs, ModuleOutputs } from "../../lib/contract";
import { waitsFor } from "../../lib/contract";
import { remoteStep, sha256 } from "../../lib/remote";
import {
  ERLANG_COOKIE_KEY,
  RABBITMQ_HEALTH_AUTH_KEY,
  RABBITMQ_LISTENER,
  RABBITMQ_MONITOR_PASSWORD_KEY,
  RABBITMQ_MONITOR_USER,
  RABBITMQ_PASSWORD_KEY,
  rabbitmqHaproxyListener,
  rabbitMqManagementEndpoints,
  rabbitMqNodeFiles,
  renderRabbitMqEndpointCheckScript,
  renderRabbitMqNodeScript,
  renderRabbitMqVerifyScript,
} from "./render";
import type { RabbitMqSettings } from "./settings";

/** The RabbitMQ module's slice of `PlatformSecrets` (every value secret). */
export interface RabbitMqSecrets {
  /** `PlatformSecrets.rabbitmq.password`: the default (administrator) user's password. */
  readonly password: pulumi.Input<string>;
  /** `PlatformSecrets.rabbitmq.erlangCookie`: the same on every node. */
  readonly erlangCookie: pulumi.Input<string>;
  /** `PlatformSecrets.rabbitmq.monitor`: password of the health-check user HAProxy logs in as. */
  readonly monitorPassword: pulumi.Input<string>;
}

/**
 * Arguments of {@link RabbitMqCluster}: the module contract. `hosts` is the rabbitmq group in
 * inventory order (queue-01..03; the first is the seed node); `versions.images.rabbitmq` is 3.13.x
 * ≥ 3.13.3 (for `default_queue_type`); `after.hosts` holds each host's verified base OS.
 */
export type RabbitMqClusterArgs = ModuleArgs<RabbitMqSettings, RabbitMqSecrets>;

/** HAProxy's `Authorization: Basic` value for the health-check user, from its password (secret). */
export function rabbitmqHealthCheckAuthorization(monitorPassword: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(
    pulumi.output(monitorPassword).apply((monitor) => Buffer.from(`${RABBITMQ_MONITOR_USER}:${monitor}`).toString("base64")),
  );
}

/**
 * RabbitMQ on the rabbitmq group (`keybuzz:data:RabbitMqCluster`). Nodes start one at a time in
 * inventory order, each joining the seed's cluster before the next starts; a later change rolls
 * the same way, each restart gated by `check_if_node_is_quorum_critical`. Ends with a
 * verification step: every node running, no partitions, a quorum queue with a member per node.
 * Its HAProxy contribution carries the AMQP listener, the health check's credentials and the
 * end-to-end AMQP check through the load balancer.
 */
export class RabbitMqCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** The verification step. */
  public readonly verified: command.remote.Command;
  /** Per host: the node's step (running, in the cluster, accounts in place). */
  public readonly nodeSteps: Readonly<Record<string, command.remote.Command>>;
  /** Management API endpoints `http://ip:<managementPort>` (private network only). */
  public readonly managementEndpoints: readonly string[];
  /** What the shared HAProxy serves for RabbitMQ, and the AMQP check through the load balancer. */
  public readonly haproxy: HaproxyContribution;

  constructor(name: string, args: RabbitMqClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:RabbitMqCluster", name, {}, opts);
    const { hosts, settings } = args;
    const nodes = clusterNodes(hosts.map((host) => host.spec));
    const image = lockedImage(args.versions, "rabbitmq");
    const secrets = {
      [RABBITMQ_PASSWORD_KEY]: args.secrets.password,
      [ERLANG_COOKIE_KEY]: args.secrets.erlangCookie,
      [RABBITMQ_MONITOR_PASSWORD_KEY]: args.secrets.monitorPassword,
    };
    const nodeSteps: Record<string, command.remote.Command> = {};
    const fingerprints: string[] = [];
    let previous: pulumi.Resource | undefined;
    hosts.forEach((host, index) => {
      const node = nodes[index];
      const files = rabbitMqNodeFiles(node, nodes, settings);
      const script = renderRabbitMqNodeScript(node, nodes, image, settings);
      fingerprints.push(sha256(script + files.map((file) => file.content).join("")));
      const step = remoteStep(
        `${node.name}-rabbitmq`,
        { host, files, script, secrets, timeoutMinutes: 20 },
        // One node at a time: joins on first deployment, rolling restarts afterwards.
        { parent: this, dependsOn: waitsFor(args.after, node.name, previous) },
      );
      nodeSteps[node.name] = step;
      previous = step;
    });
    const verifyScript = renderRabbitMqVerifyScript(nodes[0], nodes.length, settings);
    const fingerprint = sha256(fingerprints.join(""));
    this.verified = remoteStep(
      `${name}-verify`,
      { host: hosts[0], script: verifyScript, timeoutMinutes: 10, triggers: [sha256(fingerprint + verifyScript)] },
      { parent: this, dependsOn: Object.values(nodeSteps) },
    );
    this.nodeSteps = nodeSteps;
    this.managementEndpoints = rabbitMqManagementEndpoints(nodes, settings);
    this.haproxy = {
      listeners: [rabbitmqHaproxyListener(nodes, settings)],
      secrets: { [RABBITMQ_HEALTH_AUTH_KEY]: rabbitmqHealthCheckAuthorization(args.secrets.monitorPassword) },
      endpointChecks: [
        {
          name: `${hosts[0].spec.name}-rabbitmq-endpoint-check`,
          host: hosts[0],
          listener: RABBITMQ_LISTENER,
          script: renderRabbitMqEndpointCheckScript,
          triggers: [fingerprint],
          formerParent: this,
        },
      ],
      verified: this.verified,
    };
    this.registerOutputs({
      verified: this.verified,
      nodeSteps: this.nodeSteps,
      managementEndpoints: this.managementEndpoints,
      // The contribution without its checks' hosts (they hold the SSH connection): what is served, and for what.
      haproxy: {
        listeners: this.haproxy.listeners,
        secrets: this.haproxy.secrets,
        endpointChecks: this.haproxy.endpointChecks?.map((check) => ({
          name: check.name,
          host: check.host.spec.name,
          listener: check.listener,
        })),
        verified: this.haproxy.verified,
      },
    });
  }
}
