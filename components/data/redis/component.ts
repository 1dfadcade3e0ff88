import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { clusterNodes, lockedImage } from "../../../config";
import { HaproxyContribution, ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, sha256 } from "../../lib/remote";
import {
  REDIS_EXPORTER_PASSWORD_KEY,
  REDIS_HOST_PATHS,
  REDIS_PASSWORD_KEY,
  redisHaproxyListener,
  renderRedisConf,
  renderRedisEndpointCheckScript,
  renderRedisNodeScript,
  renderRedisPasswordFinishScript,
  renderRedisSysctl,
  renderRedisVerifyScript,
  renderSentinelConf,
  SENTINEL_PASSWORD_KEY,
} from "./render";
import { DEFAULT_REDIS_DAEMON_SETTINGS, redisDaemonSettings, RedisSecrets, RedisSettings } from "./settings";

/**
 * Arguments of {@link RedisCluster}: the module contract. `hosts` is the redis group in inventory
 * order (spec 001 module 4: redis-01..03), the first the bootstrap master; `versions.images.redis`
 * is the image; `settings` is the validated `keybuzz:redis`; `secrets` the Redis and Sentinel
 * passwords; `after.hosts` each node's verified base OS.
 */
export type RedisClusterArgs = ModuleArgs<RedisSettings, RedisSecrets>;

/**
 * Redis + Sentinel on the redis group (`keybuzz:data:RedisCluster`; spec 001 module 4, spec 003,
 * DESIGN.md "Redis routing"). Nodes go one at a time in inventory order (redis-01 first, as
 * master; the others join as its replicas). A later change restarts the replicas in their node
 * steps, one at a time; whichever node is master when its node step runs is left running, and its
 * master-roll step (after every node step) hands the role over through Sentinel, then restarts it:
 * the master restarts last, with one switchover. Ends with a verification step: one master
 * agreed by every Sentinel, all replicas online, a write read back on every node. Its HAProxy
 * contribution routes clients to the master only, checks a write through the load balancer, and
 * ends a password rotation once HAProxy has the new password (docs/redis.md, "Password rotation").
 */
export class RedisCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** The verification step; what depends on a healthy Redis waits for it. */
  public readonly verified: command.remote.Command;
  /** Per host: the node's step (Redis + Sentinel up, replica linked; a serving master's restart deferred). */
  public readonly nodeSteps: Readonly<Record<string, command.remote.Command>>;
  /** Per host: the step after every node step that hands over and restarts a deferred master (else does nothing). */
  public readonly masterRollSteps: Readonly<Record<string, command.remote.Command>>;
  /** Sentinel endpoints `ip:26379`, for Sentinel-aware clients. */
  public readonly sentinelEndpoints: readonly string[];
  /** The `listen redis` section, its AUTH secret and the end-to-end check, for `HaproxyLayer`. */
  public readonly haproxy: HaproxyContribution;

  constructor(name: string, args: RedisClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:RedisCluster", name, {}, opts);
    const nodes = clusterNodes(args.hosts.map((host) => host.spec));
    const image = args.versions.images.redis;
    const secrets = {
      [REDIS_PASSWORD_KEY]: args.secrets.password,
      [SENTINEL_PASSWORD_KEY]: args.secrets.sentinelPassword,
      [REDIS_EXPORTER_PASSWORD_KEY]: args.secrets.exporterPassword,
    };
    // Changes with either password, so a rotation re-runs the steps that read the managed files but
    // land none (the master roll, the verification, the rotation's finish); a digest, kept secret.
    const passwords = pulumi.secret(
      pulumi.all([args.secrets.password, args.secrets.sentinelPassword]).apply(([redis, sentinel]) => sha256(`${redis}\n${sentinel}`)),
    );
    const nodeSteps: Record<string, command.remote.Command> = {};
    const fingerprints: string[] = [];
    const rollScripts: string[] = [];
    let previous: pulumi.Resource | undefined;
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const settings = redisDaemonSettings(args.settings, host.spec.memoryGb);
      const files: HostFile[] = [
        { path: `${REDIS_HOST_PATHS.managedDir}/redis.conf`, content: renderRedisConf(node, settings), mode: "0600" },
        {
          path: `${REDIS_HOST_PATHS.managedDir}/sentinel.conf`,
          content: renderSentinelConf(node, nodes[0].address, settings),
          mode: "0600",
        },
        { path: REDIS_HOST_PATHS.sysctlFile, content: renderRedisSysctl() },
      ];
      const script = renderRedisNodeScript(node, nodes, lockedImage(args.versions, "redis"), settings);
      fingerprints.push(sha256(script + files.map((file) => file.content).join("")));
      rollScripts.push(renderRedisNodeScript(node, nodes, lockedImage(args.versions, "redis"), settings, "master-roll"));
      const step = remoteStep(
        `${node.name}-redis`,
        { host, files, script, secrets, timeoutMinutes: 15 },
        { parent: this, dependsOn: waitsFor(args.after, node.name, previous) },
      );
      nodeSteps[node.name] = step;
      previous = step;
    });
    // One at a time after every node step; a node's roll re-runs whenever its node step does.
    const masterRollSteps: Record<string, command.remote.Command> = {};
    args.hosts.forEach((host, index) => {
      const step = remoteStep(
        `${nodes[index].name}-redis-master-roll`,
        { host, script: rollScripts[index], timeoutMinutes: 10, triggers: [fingerprints[index], passwords] },
        { parent: this, dependsOn: [...Object.values(nodeSteps), ...Object.values(masterRollSteps)] },
      );
      masterRollSteps[nodes[index].name] = step;
    });
    const verifyScript = renderRedisVerifyScript(nodes, image, { ...DEFAULT_REDIS_DAEMON_SETTINGS, maxmemoryMb: 0 });
    this.verified = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 5, triggers: [sha256(fingerprints.join("") + verifyScript), passwords] },
      { parent: this, dependsOn: [...Object.values(nodeSteps), ...Object.values(masterRollSteps)] },
    );
    this.nodeSteps = nodeSteps;
    this.masterRollSteps = masterRollSteps;
    this.sentinelEndpoints = nodes.map((node) => `${node.address}:${DEFAULT_REDIS_DAEMON_SETTINGS.sentinelPort}`);
    const listener = redisHaproxyListener(nodes);
    const finishScript = renderRedisPasswordFinishScript(nodes, image, { ...DEFAULT_REDIS_DAEMON_SETTINGS, maxmemoryMb: 0 });
    this.haproxy = {
      listeners: [listener],
      secrets: { [REDIS_PASSWORD_KEY]: args.secrets.password },
      endpointChecks: [
        {
          name: `${nodes[0].name}-redis-endpoint-check`,
          host: args.hosts[0],
          listener: listener.name,
          script: (address, port) => renderRedisEndpointCheckScript(address, port, image),
          triggers: [sha256(fingerprints.join(""))],
          formerParent: this,
        },
        {
          // Not a client of the load balancer: declared here because it must run once HAProxy checks
          // with the new password (after HAProxy on every host), which is when a rotation may drop the old one.
          name: `${nodes[0].name}-redis-password-finish`,
          host: args.hosts[0],
          listener: listener.name,
          script: () => finishScript,
          // Its own value, not the endpoint check's: Pulumi holds this whole list as secret (one element is).
          triggers: [sha256(fingerprints.join("") + finishScript), passwords],
        },
      ],
      verified: this.verified,
    };
    this.registerOutputs({
      verified: this.verified,
      nodeSteps: this.nodeSteps,
      masterRollSteps: this.masterRollSteps,
      sentinelEndpoints: this.sentinelEndpoints,
      haproxy: this.haproxy,
    });
  }
}
