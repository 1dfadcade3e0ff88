import * as pulumi from "@pulumi/pulumi";
import { lockedImage } from "../../../config";
import { GALERA_SECRET_KEYS } from "../../data/galera/render";
import { DEFAULT_GALERA_SERVER_SETTINGS } from "../../data/galera/settings";
import { REDIS_EXPORTER_PASSWORD_KEY } from "../../data/redis/render";
import { DEFAULT_REDIS_DAEMON_SETTINGS } from "../../data/redis/settings";
import { waitsFor, type ModuleArgs, type ModuleOutputs } from "../../lib/contract";
import { remoteStep, type Host } from "../../lib/remote";
import {
  certExpiryFiles,
  mysqldExporter,
  redisExporter,
  renderNodeExporterScript,
  renderServiceExportersScript,
  type ServiceExporter,
} from "./render";
import type { ExportersSettings } from "./settings";

/** The exporters' credentials: the passwords of their least-privilege service accounts. */
export interface ExportersSecrets {
  /** `PlatformSecrets.redis.exporter`: redis_exporter's ACL user on Redis and Sentinel. */
  readonly redisExporter: pulumi.Input<string>;
  /** `PlatformSecrets.mariadb.exporter`: mysqld_exporter's MariaDB account. */
  readonly mysqldExporter: pulumi.Input<string>;
}

/**
 * Arguments of {@link Exporters}: `hosts` = every server; `after.hosts` each server's verified base
 * OS (node_exporter starts then).
 */
export interface ExportersArgs extends ModuleArgs<ExportersSettings, ExportersSecrets> {
  /**
   * The verification of each cluster whose exporter runs on its hosts, by inventory group (`redis`:
   * `RedisCluster.verified`, `mariadb`: `GaleraCluster.verified`): the exporter's account exists
   * once its cluster is verified, so its step waits for it. A group left out gets no exporter.
   */
  readonly clustersVerified: Readonly<Partial<Record<"redis" | "mariadb", pulumi.Resource>>>;
}

/**
 * The exporters on the servers (`keybuzz:observability:Exporters`, issue 16 item 1): node_exporter
 * and the hourly certificate scan on every server, one step per host after that host's verified
 * base OS; redis_exporter (Redis and Sentinel) on the redis nodes and mysqld_exporter on the
 * MariaDB nodes, one step per host after its cluster's verification. Each step ends by scraping
 * its own endpoints.
 */
export class Exporters extends pulumi.ComponentResource implements ModuleOutputs {
  /** The component itself: depending on it waits for every host's step (each checks its own endpoint). */
  public readonly verified: pulumi.Resource;
  /** Each host's node_exporter step, by host name. */
  public readonly nodeExporters: Readonly<Record<string, pulumi.Resource>>;
  /** Each redis and MariaDB node's service exporter step, by host name. */
  public readonly serviceExporters: Readonly<Record<string, pulumi.Resource>>;

  constructor(name: string, args: ExportersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:observability:Exporters", name, {}, opts);
    const image = args.versions.images.nodeExporter;
    this.nodeExporters = Object.fromEntries(
      args.hosts.map((host) => [
        host.spec.name,
        remoteStep(
          `${host.spec.name}-node-exporter`,
          {
            host,
            files: certExpiryFiles(args.settings),
            script: renderNodeExporterScript(image, host.spec.privateIp, args.settings),
            timeoutMinutes: 10,
          },
          { parent: this, dependsOn: waitsFor(args.after, host.spec.name) },
        ),
      ]),
    );
    const serviceSteps: Record<string, pulumi.Resource> = {};
    const serviceExporterStep = (
      host: Host,
      step: string,
      exporters: readonly ServiceExporter[],
      secrets: Record<string, pulumi.Input<string>>,
      ready: pulumi.Resource,
    ) => {
      serviceSteps[host.spec.name] = remoteStep(
        `${host.spec.name}-${step}`,
        {
          host,
          files: exporters.map((exporter) => exporter.envFile),
          script: renderServiceExportersScript(exporters),
          secrets,
          timeoutMinutes: 10,
        },
        { parent: this, dependsOn: waitsFor(args.after, host.spec.name, ready) },
      );
    };
    const { redis, mariadb } = args.clustersVerified;
    for (const host of args.hosts) {
      const ip = host.spec.privateIp;
      if (host.spec.group === "redis" && redis) {
        const redisImage = lockedImage(args.versions, "redisExporter");
        serviceExporterStep(
          host,
          "redis-exporter",
          [
            redisExporter(redisImage, ip, "redis", DEFAULT_REDIS_DAEMON_SETTINGS.port, args.settings),
            redisExporter(redisImage, ip, "sentinel", DEFAULT_REDIS_DAEMON_SETTINGS.sentinelPort, args.settings),
          ],
          { [REDIS_EXPORTER_PASSWORD_KEY]: args.secrets.redisExporter },
          redis,
        );
      } else if (host.spec.group === "mariadb" && mariadb) {
        const mysqldImage = lockedImage(args.versions, "mysqldExporter");
        serviceExporterStep(
          host,
          "mysqld-exporter",
          [mysqldExporter(mysqldImage, ip, DEFAULT_GALERA_SERVER_SETTINGS.port, args.settings)],
          { [GALERA_SECRET_KEYS.exporter]: args.secrets.mysqldExporter },
          mariadb,
        );
      }
    }
    this.serviceExporters = serviceSteps;
    this.verified = this;
    this.registerOutputs({ verified: this.verified, nodeExporters: this.nodeExporters, serviceExporters: this.serviceExporters });
  }
}
