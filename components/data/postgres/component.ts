import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as path from "path";
import { clusterNodes, lockedImage } from "../../../config";
import { HaproxyContribution, ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, secretRef, sha256 } from "../../lib/remote";
import { ACCOUNTS } from "../../security/secrets";
import {
  APP_DATABASE,
  etcdClusterToken,
  etcdRunPath,
  patroniDockerfile,
  patroniImageTag,
  patroniStateHelper,
  POSTGRES_HAPROXY_CA_KEY,
  PostgresEndpoints,
  postgresEndpointsAt,
  postgresHaproxyCaFile,
  postgresHaproxyListenersFor,
  renderAccountsSql,
  renderAppSql,
  renderDynamicConfig,
  renderEtcdEnv,
  renderEtcdLockedImageEnv,
  renderEtcdRunScript,
  renderEtcdStepScript,
  renderImageBuildScript,
  renderPatroniConfig,
  renderPatroniStepScript,
  renderVerifyPgpass,
  renderVolumeScript,
  TLS_FILES,
} from "./render";
import { DEFAULT_POSTGRES_LAYOUT, ETCD_UID, POSTGRES_UID, PostgresLayout, PostgresSettings, SECRET_KEYS } from "./settings";

/** The application's connection string through PgBouncer (secret: it holds the password). */
export function appConnectionString(endpoints: PostgresEndpoints, password: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.secret(pulumi.interpolate`postgresql://${ACCOUNTS.postgresApp}:${password}@${endpoints.pooled}/${APP_DATABASE}`);
}

/** PostgreSQL's slice of the platform's credentials (`PlatformSecrets.postgres`), every value secret. */
export interface PostgresSecrets {
  /** Password of the `postgres` superuser (Patroni, the verification step). */
  readonly superuser: pulumi.Input<string>;
  /** Password of the `replicator` role (streaming replication). */
  readonly replication: pulumi.Input<string>;
  /** Password of the application role `keybuzz` (created by the verification step). */
  readonly app: pulumi.Input<string>;
  /** Password of the backend's role `kb_backend`, owner of `keybuzz_backend` (created by the verification step). */
  readonly backend: pulumi.Input<string>;
  /** Basic auth of Patroni's REST API (writes: switchover, restart). */
  readonly restApi: pulumi.Input<string>;
}

/** The TLS material of the DB nodes (`Pki`: its CA and one certificate per DB node). */
export interface PostgresPki {
  /** CA certificate, PEM: etcd, Patroni, PostgreSQL and HAProxy's checks verify against it. */
  readonly caCertPem: pulumi.Input<string>;
  /** Per DB node name: its certificate and (secret) key, PEM; serves etcd peer/client, REST API and `ssl=on`. */
  readonly nodes: Readonly<Record<string, { readonly certPem: pulumi.Input<string>; readonly keyPem: pulumi.Input<string> }>>;
}

/**
 * Arguments of {@link PostgresCluster}: the module contract, with `hosts` = the postgres group in
 * inventory order (bootstrap node first, spec 001: db-master-01), `settings` = `keybuzz:postgres`,
 * `versions` for `images.etcd`, `images.postgres`, `packages.patroni`, `packages.pgvector`, and
 * `after.hosts` = each node's verified base OS. The extras are what the contract's inputs do not
 * carry: the PKI (not a password of `PlatformSecrets`), the data volumes, and two addresses of the
 * inventory's network.
 */
export interface PostgresClusterArgs extends ModuleArgs<PostgresSettings, PostgresSecrets> {
  /** CA and per-node certificates (etcd peer/client, REST API, PostgreSQL `ssl=on`); `Pki`. */
  readonly pki: PostgresPki;
  /** XFS data volume per DB node (`ServerFleet.volumes`); its id re-runs the volume step when the volume is replaced. */
  readonly volumes: Readonly<Record<string, { readonly id: pulumi.Input<string> }>>;
  /** CIDR clients may connect from (pg_hba `hostssl all all`): the private network, `keybuzz:network.ipRange`. */
  readonly clientCidr: string;
  /** Private IP of the internal load balancer in front of the haproxy group (spec: 10.0.0.10; `postgresLoadBalancerIp`). */
  readonly loadBalancerIp: string;
  /** PostgreSQL node parameters of another module, merged last (the backups' WAL archiving, `pgbackrestPatroniParameters`). */
  readonly extraParameters?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * PostgreSQL HA (`keybuzz:data:PostgresCluster`; spec 001 module 3, spec 004): on each DB node the
 * XFS volume, an etcd member (mutual TLS), and Patroni + PostgreSQL 16 + pgvector in a locally
 * built image; its listeners behind the shared HAProxy.
 *
 * Order of steps: volume, etcd and image build per node (etcd members one after the other; an
 * emptied member of a formed cluster replaces its stale registration and joins again), then the
 * accounts steps node by node (the leader's applies rotated passwords of Patroni's roles), then
 * Patroni node by node in inventory order (bootstrap node first, waits to be healthy; each next
 * node waits for the previous one), then the finish steps (a deferred leader restart after a
 * switchover), then the verification on the bootstrap node: exactly 1 leader and N-1 streaming
 * replicas with lag 0, the application databases and their owners (`keybuzz`, `keybuzz_backend`),
 * `CREATE EXTENSION vector`.
 */
export class PostgresCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** The verification step: the cluster is healthy and the application database exists. */
  public readonly verified: command.remote.Command;
  /** Its write and read listeners, the CA file their checks verify the REST API with, and that CA. */
  public readonly haproxy: HaproxyContribution;
  /** Client endpoints on the internal load balancer: write (leader), read (replicas), pooled (PgBouncer). */
  public readonly endpoints: PostgresEndpoints;
  /** The application's URL through PgBouncer (secret). */
  public readonly appConnectionString: pulumi.Output<string>;
  /** Application database name and user (not secret). */
  public readonly database: string;
  public readonly user: string;

  constructor(name: string, args: PostgresClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:PostgresCluster", name, {}, opts);
    const layout: PostgresLayout = { ...DEFAULT_POSTGRES_LAYOUT, clientCidr: args.clientCidr };
    const { paths } = layout;
    const members = clusterNodes(args.hosts.map((host) => host.spec));
    const hostOf = Object.fromEntries(args.hosts.map((host) => [host.spec.name, host]));
    const dockerfile = patroniDockerfile();
    const imageTag = patroniImageTag(args.versions, dockerfile);
    const stack = pulumi.getStack();
    const pg = args.secrets;
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
      const host = hostOf[node.name];
      const volume = args.volumes[node.name];
      volumeSteps[node.name] = remoteStep(
        `${node.name}-pg-volume`,
        { host, script: renderVolumeScript(layout), timeoutMinutes: 10, triggers: volume ? [volume.id] : [] },
        { parent: this, dependsOn: waitsFor(args.after, node.name) },
      );
      imageSteps[node.name] = remoteStep(
        `${node.name}-patroni-image`,
        {
          host,
          files: [{ path: path.posix.join(paths.configDir, "build", "Dockerfile"), content: dockerfile }],
          script: renderImageBuildScript(args.versions, imageTag, layout),
          timeoutMinutes: 30,
        },
        { parent: this, dependsOn: waitsFor(args.after, node.name) },
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
                  content: renderEtcdEnv(node, members, stack, layout) + renderEtcdLockedImageEnv(args.versions),
                },
                { path: etcdRunPath(layout), content: renderEtcdRunScript(node, members, args.versions, layout), mode: "0755" },
                ...tlsFiles(path.posix.join(paths.etcdConfigDir, "tls"), ETCD_UID),
              ],
              script: renderEtcdStepScript(layout, lockedImage(args.versions, "etcd")),
              secrets: tlsSecrets(node.name),
              timeoutMinutes: 10,
            },
            { parent: this, dependsOn: waitsFor(args.after, node.name, previous) },
          ),
        );
      }
    }

    // 2. A rotated password of Patroni's accounts, applied on the leader before any member restarts
    // with the new patroni.yml (Patroni sets them only at bootstrap); only the leader's step acts.
    const accountPasswords = {
      [SECRET_KEYS.superuser]: pg.superuser,
      [SECRET_KEYS.replication]: pg.replication,
      [SECRET_KEYS.rewind]: rewindPassword,
    };
    const accountSteps: command.remote.Command[] = [];
    for (const node of members) {
      const previous = accountSteps[accountSteps.length - 1];
      accountSteps.push(
        remoteStep(
          `${node.name}-postgres-accounts`,
          {
            host: hostOf[node.name],
            files: [{ path: path.posix.join(paths.configDir, "accounts.sql"), content: renderAccountsSql(), mode: "0600", owner }],
            script: renderPatroniStepScript("accounts", node, members, args.settings, imageTag, layout),
            secrets: accountPasswords,
            timeoutMinutes: 5,
          },
          { parent: this, dependsOn: [...etcdSteps, ...waitsFor(args.after, node.name, previous)] },
        ),
      );
    }

    // 3. Patroni node by node: bootstrap node first, each next node after the previous is healthy.
    const nodeSteps: command.remote.Command[] = [];
    const fingerprints: string[] = [];
    for (const node of members) {
      const host = hostOf[node.name];
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
            dependsOn: [volumeSteps[node.name], imageSteps[node.name], ...etcdSteps, previous ?? accountSteps[accountSteps.length - 1]],
          },
        ),
      );
    }

    // 4. Finish a deferred leader restart (switchover first), node by node, after every node step.
    const changeFingerprint = sha256(fingerprints.join(""));
    let last: command.remote.Command = nodeSteps[nodeSteps.length - 1];
    for (const node of members) {
      last = remoteStep(
        `${node.name}-patroni-finish`,
        {
          host: hostOf[node.name],
          script: renderPatroniStepScript("finish", node, members, args.settings, imageTag, layout),
          timeoutMinutes: 30,
          triggers: [changeFingerprint],
        },
        { parent: this, dependsOn: [last] },
      );
    }

    // 5. Verification on the bootstrap node.
    const bootstrap = members[0];
    this.verified = remoteStep(
      `${bootstrap.name}-postgres-verify`,
      {
        host: hostOf[bootstrap.name],
        files: [
          { path: path.posix.join(paths.configDir, "verify.pgpass"), content: renderVerifyPgpass(), mode: "0600", owner },
          { path: path.posix.join(paths.configDir, "app.sql"), content: renderAppSql(), mode: "0600", owner },
        ],
        script: renderPatroniStepScript("verify", bootstrap, members, args.settings, imageTag, layout),
        secrets: { [SECRET_KEYS.superuser]: pg.superuser, [SECRET_KEYS.app]: pg.app, [SECRET_KEYS.backend]: pg.backend },
        timeoutMinutes: 20,
        triggers: [changeFingerprint, etcdClusterToken(stack)],
      },
      { parent: this, dependsOn: [last] },
    );
    this.haproxy = {
      listeners: postgresHaproxyListenersFor(members, args.settings, { layout }),
      files: [postgresHaproxyCaFile()],
      secrets: { [POSTGRES_HAPROXY_CA_KEY]: args.pki.caCertPem },
      verified: this.verified,
    };
    this.endpoints = postgresEndpointsAt(args.loadBalancerIp);
    this.appConnectionString = appConnectionString(this.endpoints, pg.app);
    this.database = APP_DATABASE;
    this.user = ACCOUNTS.postgresApp;
    this.registerOutputs({
      verified: this.verified,
      haproxy: this.haproxy,
      endpoints: this.endpoints,
      appConnectionString: this.appConnectionString,
      database: this.database,
      user: this.user,
    });
  }
}
