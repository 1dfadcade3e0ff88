import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as path from "path";
import { Inventory, lockedImage, Versions } from "../../../config";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../../lib/remote";
import { ACCOUNTS, PlatformSecrets } from "../../security/secrets";
import { Pki } from "../../security/pki";
import {
  dbNodesOf,
  etcdClusterToken,
  patroniDockerfile,
  patroniImageTag,
  PostgresEndpoints,
  renderDynamicConfig,
  renderEtcdEnv,
  renderPatroniConfig,
  TLS_FILES,
} from "./render";
import {
  APP_DATABASE,
  etcdRunPath,
  patroniStateHelper,
  renderAppSql,
  renderEtcdRunScript,
  renderEtcdLockedImageEnv,
  renderEtcdStepScript,
  renderImageBuildScript,
  renderPatroniStepScript,
  renderVerifyPgpass,
  renderVolumeScript,
} from "./scripts";
import { DEFAULT_POSTGRES_LAYOUT, ETCD_UID, POSTGRES_UID, PostgresLayout, PostgresSettings, SECRET_KEYS } from "./settings";

/** The application's connection string through PgBouncer (secret: it holds the password). */
export function appConnectionString(endpoints: PostgresEndpoints, password: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.interpolate`postgresql://${ACCOUNTS.postgresApp}:${password}@${endpoints.pooled}/${APP_DATABASE}`);
}

/** Arguments of {@link PostgresCluster}. */
export interface PostgresClusterArgs {
  /** Stack name; part of the etcd cluster token. */
  readonly stack: string;
  /** The DB nodes are the `postgres` group, bootstrap node first (spec 001: db-master-01). */
  readonly inventory: Inventory;
  /** `images.etcd`, `images.postgres`, `packages.patroni`, `packages.pgvector` (config/versions.yaml). */
  readonly versions: Versions;
  /** Operator settings (`keybuzz:postgres`, validated in the config pass, config/settings.ts). */
  readonly settings: PostgresSettings;
  /** Hosts by inventory name (`ServerFleet.hosts`). */
  readonly hosts: Readonly<Record<string, Host>>;
  /** XFS data volume per DB node (`ServerFleet.volumes`); its id re-runs the volume step when replaced. */
  readonly volumes: Readonly<Record<string, hcloud.Volume>>;
  /** Verified end of the base OS per host name (`BaseOs.ready`). */
  readonly ready: Readonly<Record<string, pulumi.Resource>>;
  /** Passwords: `postgres.superuser`, `.replication`, `.app`, `.restApi`. */
  readonly secrets: PlatformSecrets;
  /** CA and per-node certificates (etcd peer/client, REST API, PostgreSQL `ssl=on`). */
  readonly pki: Pki;
  /** Default {@link DEFAULT_POSTGRES_LAYOUT} with the inventory's private CIDR. */
  readonly layout?: PostgresLayout;
  /** PostgreSQL node parameters of another module, merged last (the backups' WAL archiving). */
  readonly extraParameters?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * PostgreSQL HA (spec 001 module 3, spec 004): on each DB node the XFS volume, an etcd member
 * (mutual TLS), and Patroni + PostgreSQL 16 + pgvector in a locally built image.
 *
 * Order of steps: volume, etcd and image build per node (etcd members one after the other), then
 * Patroni node by node in inventory order (bootstrap node first, waits to be healthy; each next
 * node waits for the previous one), then the finish steps (a deferred leader restart after a
 * switchover), then the verification on the bootstrap node: exactly 1 leader and N-1 streaming
 * replicas with lag 0, the application database and role, `CREATE EXTENSION vector`.
 */
export class PostgresCluster extends pulumi.ComponentResource {
  /** The verification step: the cluster is healthy and the application database exists. */
  public readonly verified: command.remote.Command;
  /** Application database name and user (not secret). */
  public readonly database: string;
  public readonly user: string;

  constructor(name: string, args: PostgresClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:PostgresCluster", name, {}, opts);
    const layout = args.layout ?? { ...DEFAULT_POSTGRES_LAYOUT, clientCidr: args.inventory.network.ipRange };
    const { paths } = layout;
    const members = dbNodesOf(args.inventory);
    if (members.length < 3) throw new Error(`PostgresCluster ${name}: needs at least 3 postgres nodes, got ${members.length}`);
    const dockerfile = patroniDockerfile();
    const imageTag = patroniImageTag(args.versions, dockerfile);
    const hostOf = (node: string): Host => {
      const host = args.hosts[node];
      if (!host) throw new Error(`PostgresCluster ${name}: no host ${node}`);
      return host;
    };
    const readyOf = (node: string): pulumi.Resource => {
      const ready = args.ready[node];
      if (!ready) throw new Error(`PostgresCluster ${name}: no base OS readiness for ${node}`);
      return ready;
    };
    const pg = args.secrets.postgres;
    // The pg_rewind role's password: only Patroni uses it, so it is generated here.
    const rewindPassword = new random.RandomPassword(`${name}-rewind`, { length: 32, special: false }, { parent: this }).result;
    const passwords = {
      [SECRET_KEYS.rewind]: rewindPassword,
      [SECRET_KEYS.superuser]: pg.superuser,
      [SECRET_KEYS.replication]: pg.replication,
      [SECRET_KEYS.restApi]: pg.restApi,
    };
    const tlsSecrets = (node: string) => {
      const certificate = args.pki.nodes[node];
      if (!certificate) throw new Error(`PostgresCluster ${name}: no certificate for ${node}`);
      return {
        [SECRET_KEYS.caCert]: args.pki.caCertPem,
        [SECRET_KEYS.nodeCert]: certificate.certPem,
        [SECRET_KEYS.nodeKey]: certificate.keyPem,
      };
    };
    const tlsFiles = (dir: string, uid: number): HostFile[] => [
      { path: path.posix.join(dir, TLS_FILES.ca), content: secretRef(SECRET_KEYS.caCert), mode: "0600", owner: `${uid}:${uid}` },
      { path: path.posix.join(dir, TLS_FILES.cert), content: secretRef(SECRET_KEYS.nodeCert), mode: "0600", owner: `${uid}:${uid}` },
      { path: path.posix.join(dir, TLS_FILES.key), content: secretRef(SECRET_KEYS.nodeKey), mode: "0600", owner: `${uid}:${uid}` },
    ];
    const owner = `${POSTGRES_UID}:${POSTGRES_UID}`;

    // 1. Per node, independent of the others: volume, image, etcd (members in sequence).
    const volumeSteps: Record<string, command.remote.Command> = {};
    const imageSteps: Record<string, command.remote.Command> = {};
    const etcdSteps: command.remote.Command[] = [];
    for (const node of members) {
      const host = hostOf(node.name);
      const volume = args.volumes[node.name];
      volumeSteps[node.name] = remoteStep(
        `${node.name}-pg-volume`,
        { host, script: renderVolumeScript(layout), timeoutMinutes: 10, triggers: volume ? [volume.id] : [] },
        { parent: this, dependsOn: [readyOf(node.name)] },
      );
      imageSteps[node.name] = remoteStep(
        `${node.name}-patroni-image`,
        {
          host,
          files: [{ path: path.posix.join(paths.configDir, "build", "Dockerfile"), content: dockerfile }],
          script: renderImageBuildScript(args.versions, imageTag, layout),
          timeoutMinutes: 30,
        },
        { parent: this, dependsOn: [readyOf(node.name)] },
      );
      if (args.settings.dcs === "etcd3") {
        const previous = etcdSteps[etcdSteps.length - 1];
        etcdSteps.push(
          remoteStep(
            `${node.name}-etcd`,
            {
              host,
              files: [
                {
                  path: path.posix.join(paths.etcdConfigDir, "etcd.env"),
                  content: renderEtcdEnv(node, members, args.stack, layout) + renderEtcdLockedImageEnv(args.versions),
                },
                { path: etcdRunPath(layout), content: renderEtcdRunScript(node, members, args.versions, layout), mode: "0755" },
                ...tlsFiles(path.posix.join(paths.etcdConfigDir, "tls"), ETCD_UID),
              ],
              script: renderEtcdStepScript(layout, lockedImage(args.versions, "etcd")),
              secrets: tlsSecrets(node.name),
              timeoutMinutes: 10,
            },
            { parent: this, dependsOn: [readyOf(node.name), ...(previous ? [previous] : [])] },
          ),
        );
      }
    }

    // 2. Patroni node by node: bootstrap node first, each next node after the previous is healthy.
    const nodeSteps: command.remote.Command[] = [];
    const fingerprints: string[] = [];
    for (const node of members) {
      const host = hostOf(node.name);
      const files: HostFile[] = [
        {
          path: path.posix.join(paths.configDir, "patroni.yml"),
          content: renderPatroniConfig({ node, members, settings: args.settings, layout, extraParameters: args.extraParameters }),
          mode: "0600",
          owner,
        },
        { path: path.posix.join(paths.configDir, "dynamic.yml"), content: renderDynamicConfig(args.settings), mode: "0644", owner },
        { path: path.posix.join(paths.configDir, "patroni_state.py"), content: patroniStateHelper(), mode: "0755" },
        ...tlsFiles(paths.tlsDir, POSTGRES_UID),
      ];
      const script = renderPatroniStepScript("node", node, members, args.settings, imageTag, layout);
      fingerprints.push(sha256(script + files.map((file) => file.content).join("")));
      const previous = nodeSteps[nodeSteps.length - 1];
      nodeSteps.push(
        remoteStep(
          `${node.name}-patroni`,
          { host, files, script, secrets: { ...passwords, ...tlsSecrets(node.name) }, timeoutMinutes: 30, triggers: [imageTag] },
          {
            parent: this,
            dependsOn: [volumeSteps[node.name], imageSteps[node.name], ...etcdSteps, ...(previous ? [previous] : [])],
          },
        ),
      );
    }

    // 3. Finish a deferred leader restart (switchover first), node by node, after every node step.
    const changeFingerprint = sha256(fingerprints.join(""));
    let last: command.remote.Command = nodeSteps[nodeSteps.length - 1];
    for (const node of members) {
      last = remoteStep(
        `${node.name}-patroni-finish`,
        {
          host: hostOf(node.name),
          script: renderPatroniStepScript("finish", node, members, args.settings, imageTag, layout),
          timeoutMinutes: 30,
          triggers: [changeFingerprint],
        },
        { parent: this, dependsOn: [last] },
      );
    }

    // 4. Verification on the bootstrap node.
    const bootstrap = members[0];
    this.verified = remoteStep(
      `${bootstrap.name}-postgres-verify`,
      {
        host: hostOf(bootstrap.name),
        files: [
          { path: path.posix.join(paths.configDir, "verify.pgpass"), content: renderVerifyPgpass(), mode: "0600", owner },
          { path: path.posix.join(paths.configDir, "app.sql"), content: renderAppSql(), mode: "0600", owner },
        ],
        script: renderPatroniStepScript("verify", bootstrap, members, args.settings, imageTag, layout),
        secrets: { [SECRET_KEYS.superuser]: pg.superuser, [SECRET_KEYS.app]: pg.app },
        timeoutMinutes: 20,
        triggers: [changeFingerprint, etcdClusterToken(args.stack)],
      },
      { parent: this, dependsOn: [last] },
    );
    this.database = APP_DATABASE;
    this.user = ACCOUNTS.postgresApp;
    this.registerOutputs({ database: this.database, user: this.user });
  }
}
