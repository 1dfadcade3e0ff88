import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as path from "path";
import { lockedImage } from "../../../config";
import { GALERA_SECRET_KEYS } from "../../data/galera/render";
import { DEFAULT_GALERA_SERVER_SETTINGS } from "../../data/galera/settings";
import type { MinioSettings } from "../../data/minio/settings";
import { imagePull } from "../../lib/container";
import { PGBOUNCER_PORT } from "../../data/pgbouncer";
import { DEFAULT_POSTGRES_LAYOUT, POSTGRES_UID } from "../../data/postgres";
import { REDIS_EXPORTER_PASSWORD_KEY } from "../../data/redis/render";
import { DEFAULT_REDIS_DAEMON_SETTINGS } from "../../data/redis/settings";
import { waitsFor, type ModuleArgs, type ModuleOutputs } from "../../lib/contract";
import { remoteStep, type Host, type HostFile } from "../../lib/remote";
import {
  certExpiryFiles,
  EXPORTER_SECRET_KEYS,
  MINIO_METRICS_PATH,
  MINIO_METRICS_SECRET_KEYS,
  MINIO_METRICS_USER,
  minioMetricsFiles,
  minioPrometheusToken,
  mysqldExporter,
  pgbouncerExporter,
  POSTGRES_EXPORTER_ROLE_FILES,
  postgresExporter,
  renderNodeExporterScript,
  renderPostgresExporterRolePgpass,
  renderPostgresExporterRoleScript,
  renderPostgresExporterRoleSql,
  renderMinioMetricsUserScript,
  renderServiceExportersScript,
  redisExporter,
  scramSha256Verifier,
  type ServiceExporter,
} from "./render";
import type { ExportersSettings } from "./settings";

/** One host's exporter step: the exporters' containers and files, their secrets' values. */
function serviceExporters(exporters: readonly ServiceExporter[], secrets: Record<string, pulumi.Input<string>>) {
  return { files: exporters.flatMap((exporter) => exporter.files), script: renderServiceExportersScript(exporters), secrets };
}

/** The exporters' slice of the platform's credentials. */
export interface ExportersSecrets {
  /** `PlatformSecrets.postgres.superuser`: the role step logs in with it to create the exporter's role. */
  readonly postgresSuperuser: pulumi.Input<string>;
  /** `PlatformSecrets.postgres.exporter`: postgres_exporter's password. */
  readonly postgresExporter: pulumi.Input<string>;
  /** `PlatformSecrets.postgres.pgbouncerStats`: pgbouncer_exporter's PgBouncer console user. */
  readonly pgbouncerStats: pulumi.Input<string>;
  /** The platform CA (`Pki.caCertPem`, not secret): the exporters verify their service's TLS with it. */
  readonly caCertPem: pulumi.Input<string>;
  /** `PlatformSecrets.redis.exporter`: redis_exporter's ACL user on Redis and Sentinel. */
  readonly redisExporter: pulumi.Input<string>;
  /** `PlatformSecrets.mariadb.exporter`: mysqld_exporter's MariaDB account. */
  readonly mysqldExporter: pulumi.Input<string>;
  /** `PlatformSecrets.minio.rootPassword`: the MinIO metrics account's step administers IAM with it. */
  readonly minioRootPassword: pulumi.Input<string>;
}

/**
 * Arguments of {@link Exporters}: `hosts` = every server (node_exporter on each; a service's
 * exporter on the hosts of its inventory group); `after.hosts` = each host's verified base OS.
 */
export interface ExportersArgs extends ModuleArgs<ExportersSettings, ExportersSecrets> {
  /**
   * Each service's verification (`PostgresCluster.verified` …): its exporter's steps wait for it,
   * since the exporter logs in to a running service with a role that service must accept.
   */
  readonly services: {
    readonly postgres: pulumi.Resource;
    readonly pgbouncer: pulumi.Resource;
    /** `RedisCluster.verified`: the exporter's ACL user exists once the cluster is verified. */
    readonly redis: pulumi.Resource;
    /** `GaleraCluster.verified`: the exporter's MariaDB account likewise. */
    readonly mariadb: pulumi.Resource;
    /** `MinioCluster.verified`: the metrics account's step needs the cluster's write quorum (IAM is stored in it). */
    readonly minio: pulumi.Resource;
  };
  /** MinIO's root user and S3 port (`keybuzz:minio`): the metrics account's step logs in as root on that port. */
  readonly minio: Pick<MinioSettings, "rootUser" | "apiPort">;
}

/**
 * The exporters on the servers (`keybuzz:observability:Exporters`, issue 16 item 1): node_exporter
 * and the hourly certificate scan on every server, one step per host after that host's verified
 * base OS; postgres_exporter on each DB node after its role step on the leader; pgbouncer_exporter
 * on each haproxy node after PgBouncer; redis_exporter (Redis and Sentinel) on the redis nodes and
 * mysqld_exporter on the MariaDB nodes after their cluster's verification. Each exporter's step ends
 * by scraping its own endpoint.
 */
export class Exporters extends pulumi.ComponentResource implements ModuleOutputs {
  /** The component itself: depending on it waits for every host's step (each checks its own endpoint). */
  public readonly verified: pulumi.Resource;
  /** Each host's node_exporter step, by host name. */
  public readonly nodeExporters: Readonly<Record<string, pulumi.Resource>>;
  /** Each DB node's postgres_exporter step, by host name. */
  public readonly postgresExporters: Readonly<Record<string, pulumi.Resource>>;
  /** Each haproxy node's pgbouncer_exporter step, by host name. */
  public readonly pgbouncerExporters: Readonly<Record<string, pulumi.Resource>>;
  /** Each redis node's redis_exporter step (Redis and Sentinel), by host name. */
  public readonly redisExporters: Readonly<Record<string, pulumi.Resource>>;
  /** Each MariaDB node's mysqld_exporter step, by host name. */
  public readonly mysqldExporters: Readonly<Record<string, pulumi.Resource>>;
  /** MinIO's metrics account step (on the first MinIO node), when the inventory has MinIO. */
  public readonly minioMetricsAccount?: pulumi.Resource;
  /**
   * The bearer token Prometheus sends to MinIO's metrics endpoints ({@link minioPrometheusToken} of
   * the metrics account; secret), empty without MinIO. The same on every run: it changes only with
   * the account's secret key (`pulumi up --replace` of `<name>-minio-metrics-secret-key` rotates both).
   */
  public readonly minioMetricsToken: pulumi.Output<string>;

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
    this.postgresExporters = this.postgresExporterSteps(name, args);
    const pgbouncerImage = lockedImage(args.versions, "pgbouncerExporter");
    this.pgbouncerExporters = this.exporterSteps(
      args,
      "haproxy",
      "pgbouncer-exporter",
      (host) =>
        serviceExporters([pgbouncerExporter(pgbouncerImage, { privateIp: host.spec.privateIp, pgbouncerPort: PGBOUNCER_PORT })], {
          [EXPORTER_SECRET_KEYS.pgbouncerStats]: args.secrets.pgbouncerStats,
        }),
      args.services.pgbouncer,
    );
    const redisImage = lockedImage(args.versions, "redisExporter");
    this.redisExporters = this.exporterSteps(
      args,
      "redis",
      "redis-exporter",
      (host) =>
        serviceExporters(
          [
            redisExporter(redisImage, host.spec.privateIp, "redis", DEFAULT_REDIS_DAEMON_SETTINGS.port, args.settings),
            redisExporter(redisImage, host.spec.privateIp, "sentinel", DEFAULT_REDIS_DAEMON_SETTINGS.sentinelPort, args.settings),
          ],
          { [REDIS_EXPORTER_PASSWORD_KEY]: args.secrets.redisExporter },
        ),
      args.services.redis,
    );
    const mysqldImage = lockedImage(args.versions, "mysqldExporter");
    this.mysqldExporters = this.exporterSteps(
      args,
      "mariadb",
      "mysqld-exporter",
      (host) =>
        serviceExporters([mysqldExporter(mysqldImage, host.spec.privateIp, DEFAULT_GALERA_SERVER_SETTINGS.port, args.settings)], {
          [GALERA_SECRET_KEYS.exporter]: args.secrets.mysqldExporter,
        }),
      args.services.mariadb,
    );
    const minio = this.minioMetricsAccountStep(name, args);
    this.minioMetricsAccount = minio?.step;
    this.minioMetricsToken = minio?.token ?? pulumi.secret(pulumi.output(""));
    this.verified = this;
    this.registerOutputs({
      verified: this.verified,
      nodeExporters: this.nodeExporters,
      postgresExporters: this.postgresExporters,
      pgbouncerExporters: this.pgbouncerExporters,
      redisExporters: this.redisExporters,
      mysqldExporters: this.mysqldExporters,
      minioMetricsAccount: this.minioMetricsAccount,
      minioMetricsToken: this.minioMetricsToken,
    });
  }

  /**
   * MinIO's metrics account on the first MinIO node, after the cluster's verification: its secret
   * key (32 alphanumerics, like PlatformSecrets') and the bearer token signed with it, which the
   * step checks against the cluster metrics endpoint.
   */
  private minioMetricsAccountStep(name: string, args: ExportersArgs): { step: pulumi.Resource; token: pulumi.Output<string> } | undefined {
    const host = args.hosts.find((candidate) => candidate.spec.group === "minio");
    if (!host) return undefined;
    const secretKey = new random.RandomPassword(`${name}-minio-metrics-secret-key`, { length: 32, special: false }, { parent: this })
      .result;
    const token = pulumi.secret(secretKey.apply((key) => minioPrometheusToken(MINIO_METRICS_USER, key)));
    const address = `${host.spec.privateIp}:${args.minio.apiPort}`;
    const step = remoteStep(
      `${host.spec.name}-minio-metrics-account`,
      {
        host,
        files: minioMetricsFiles(address, args.minio.rootUser),
        script: renderMinioMetricsUserScript(imagePull(lockedImage(args.versions, "minio")).run, `http://${address}${MINIO_METRICS_PATH}`),
        secrets: {
          [MINIO_METRICS_SECRET_KEYS.rootPassword]: args.secrets.minioRootPassword,
          [MINIO_METRICS_SECRET_KEYS.secretKey]: secretKey,
          [MINIO_METRICS_SECRET_KEYS.token]: token,
        },
        timeoutMinutes: 10,
      },
      { parent: this, dependsOn: waitsFor(args.after, host.spec.name, args.services.minio) },
    );
    return { step, token };
  }

  /** The exporter role's step on the leader (run from the first DB node), then postgres_exporter on each DB node. */
  private postgresExporterSteps(name: string, args: ExportersArgs): Record<string, pulumi.Resource> {
    const dbHosts = args.hosts.filter((host) => host.spec.group === "postgres");
    if (dbHosts.length === 0) return {};
    const { paths, ports } = DEFAULT_POSTGRES_LAYOUT;
    // A random salt kept in state (24 alphanumerics, ~143 bits): the verifier, hence the role step,
    // changes only with the password.
    const salt = new random.RandomPassword(`${name}-postgres-exporter-salt`, { length: 24, special: false }, { parent: this }).result;
    const verifier = pulumi.secret(
      pulumi
        .all([args.secrets.postgresExporter, salt])
        .apply(([password, seed]) => scramSha256Verifier(password, Buffer.from(seed).toString("base64"))),
    );
    const owner = `${POSTGRES_UID}:${POSTGRES_UID}`;
    const role = remoteStep(
      `${dbHosts[0].spec.name}-postgres-exporter-role`,
      {
        host: dbHosts[0],
        files: [
          {
            path: path.posix.join(paths.configDir, POSTGRES_EXPORTER_ROLE_FILES.sql),
            content: renderPostgresExporterRoleSql(),
            mode: "0600",
            owner,
          },
          {
            path: path.posix.join(paths.configDir, POSTGRES_EXPORTER_ROLE_FILES.pgpass),
            content: renderPostgresExporterRolePgpass(),
            mode: "0600",
            owner,
          },
        ],
        script: renderPostgresExporterRoleScript({
          addresses: dbHosts.map((host) => host.spec.privateIp),
          port: ports.postgres,
          configDir: paths.configDir,
          tlsDir: paths.tlsDir,
        }),
        secrets: {
          [EXPORTER_SECRET_KEYS.postgresExporterVerifier]: verifier,
          [EXPORTER_SECRET_KEYS.postgresSuperuser]: args.secrets.postgresSuperuser,
        },
        timeoutMinutes: 5,
      },
      { parent: this, dependsOn: [args.services.postgres] },
    );
    const image = lockedImage(args.versions, "postgresExporter");
    return this.exporterSteps(
      args,
      "postgres",
      "postgres-exporter",
      (host) =>
        serviceExporters([postgresExporter(image, { privateIp: host.spec.privateIp, postgresPort: ports.postgres })], {
          [EXPORTER_SECRET_KEYS.postgresExporter]: args.secrets.postgresExporter,
          [EXPORTER_SECRET_KEYS.caCert]: args.secrets.caCertPem,
        }),
      role,
    );
  }

  /** One exporter step (`<host>-<suffix>`) per host of an inventory group, after that host's base OS and `service`. */
  private exporterSteps(
    args: ExportersArgs,
    group: string,
    suffix: string,
    step: (host: Host) => { files: HostFile[]; script: string; secrets: Record<string, pulumi.Input<string>> },
    service: pulumi.Resource,
  ): Record<string, pulumi.Resource> {
    return Object.fromEntries(
      args.hosts
        .filter((host) => host.spec.group === group)
        .map((host) => [
          host.spec.name,
          remoteStep(
            `${host.spec.name}-${suffix}`,
            { host, ...step(host), timeoutMinutes: 10 },
            { parent: this, dependsOn: waitsFor(args.after, host.spec.name, service) },
          ),
        ]),
    );
  }
}
