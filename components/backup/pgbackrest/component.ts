import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as path from "path";
import { clusterNodes } from "../../../config";
import { CONTAINER_NOFILE } from "../../lib/container";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { Host, HostFile, remoteStep, secretRef, sha256 } from "../../lib/remote";
import { PATRONI_SCOPE } from "../../data/postgres/settings";
import { NodeCertificate } from "../../security/pki";
import {
  BACKUP_RUN_PATH,
  DB_NODE_SERVER_UNIT,
  DEFAULT_DB_NODE_PATHS,
  DEFAULT_REPO_HOST_PATHS,
  PGBACKREST_SECRET_KEYS,
  productionRestoreClusterCommands,
  renderBackupRunScript,
  renderDbNodeConfig,
  renderDbNodeServerUnit,
  renderDbNodeStepBody,
  renderRepoHostConfig,
  renderRepoHostStepBody,
  renderRepoHostUnits,
  renderRestoreClusterScript,
  renderVerifyStepBody,
  RESTORE_CLUSTER_PATH,
} from "./render";
import { PgBackRestSettings } from "./settings";

/** The module's slice of the platform's credentials. */
export interface PgBackRestSecrets {
  /** The platform CA (public) and the certificates of every DB node and of backup-01 (`Pki`). */
  readonly caCertPem: pulumi.Input<string>;
  readonly certificates: Readonly<Record<string, NodeCertificate>>;
  /** S3 access key and secret key of the second repository, when `settings.s3` is set. */
  readonly s3?: { readonly accessKey: pulumi.Input<string>; readonly secretKey: pulumi.Input<string> };
}

/** Arguments of {@link PgBackRest}: `hosts` are the DB nodes (inventory order) then backup-01. */
export interface PgBackRestArgs extends ModuleArgs<PgBackRestSettings, PgBackRestSecrets> {
  /**
   * The tag of the Patroni image the DB nodes built (`patroniImageTag`, components/data/postgres):
   * their pgBackRest TLS server runs from it. Module-specific: the image belongs to the PostgreSQL module.
   */
  readonly patroniImageTag: string;
  /** The postgres uid of the Patroni image (`POSTGRES_UID`). */
  readonly postgresUid: number;
  /** The PostgreSQL module's data volume mount, config directory, PGDATA and WAL directory on the DB nodes (its `DEFAULT_POSTGRES_LAYOUT`). */
  readonly postgresPaths: { readonly volumeMount: string; readonly configDir: string; readonly dataDir: string; readonly walDir: string };
}

/**
 * PostgreSQL backups with pgBackRest (DESIGN.md, "Backups"; docs/backups.md): backup-01 holds the
 * repository (+ an optional encrypted S3 repository), runs pgBackRest's TLS server for the DB
 * nodes' WAL archiving and runs the full and differential backups from systemd timers; every DB
 * node gets pgbackrest.conf (read by the Patroni container's archive_command) and its own TLS
 * server. Order: backup-01's repository, then the DB nodes, then the verification (stanza-create
 * and `pgbackrest check`) on backup-01, which is `verified`.
 */
export class PgBackRest extends pulumi.ComponentResource implements ModuleOutputs {
  public readonly verified: command.remote.Command;

  constructor(name: string, args: PgBackRestArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:backup:PgBackRest", name, {}, opts);
    const repoHostEntry = args.hosts.find((host) => host.spec.group === "backup");
    const dbHosts = args.hosts.filter((host) => host.spec.group === "postgres");
    if (!repoHostEntry || dbHosts.length === 0)
      throw new Error(`PgBackRest ${name}: needs the backup host and the DB nodes (a wiring bug)`);
    const [repoHost] = clusterNodes([repoHostEntry.spec]);
    const members = clusterNodes(dbHosts.map((host) => host.spec));
    const { settings } = args;
    const dbPaths = DEFAULT_DB_NODE_PATHS;
    const repoPaths = DEFAULT_REPO_HOST_PATHS;

    const s3Secrets: Record<string, pulumi.Input<string>> = {};
    if (settings.s3) {
      if (!args.secrets.s3) throw new Error(`PgBackRest ${name}: settings.s3 is set but no S3 credentials were passed (a wiring bug)`);
      // The repository's encryption key: only pgBackRest uses it, so it is generated here.
      const cipherPass = new random.RandomPassword(`${name}-cipher-pass`, { length: 48, special: false }, { parent: this }).result;
      Object.assign(s3Secrets, {
        [PGBACKREST_SECRET_KEYS.s3Key]: args.secrets.s3.accessKey,
        [PGBACKREST_SECRET_KEYS.s3KeySecret]: args.secrets.s3.secretKey,
        [PGBACKREST_SECRET_KEYS.cipherPass]: cipherPass,
      });
    }
    const tlsOf = (host: Host, tls: { ca: string; cert: string; key: string }, owner: string) => {
      const certificate = args.secrets.certificates[host.spec.name];
      if (!certificate) throw new Error(`PgBackRest ${name}: no certificate for ${host.spec.name} (a wiring bug)`);
      const files: HostFile[] = [
        { path: tls.ca, content: secretRef(PGBACKREST_SECRET_KEYS.caCert), mode: "0600", owner },
        { path: tls.cert, content: secretRef(PGBACKREST_SECRET_KEYS.nodeCert), mode: "0600", owner },
        { path: tls.key, content: secretRef(PGBACKREST_SECRET_KEYS.nodeKey), mode: "0600", owner },
      ];
      const secrets = {
        [PGBACKREST_SECRET_KEYS.caCert]: args.secrets.caCertPem,
        [PGBACKREST_SECRET_KEYS.nodeCert]: certificate.certPem,
        [PGBACKREST_SECRET_KEYS.nodeKey]: certificate.keyPem,
      };
      return { files, secrets };
    };

    // 1. backup-01: pgBackRest, the repository, its TLS server and the timers.
    const units = renderRepoHostUnits(settings, repoPaths);
    const repoTls = tlsOf(repoHostEntry, repoPaths.tls, "postgres:postgres");
    const repoConfig = renderRepoHostConfig({
      repoHost,
      members: members.map((node) => ({ node, paths: dbPaths })),
      settings,
      paths: repoPaths,
    });
    const repoStep = remoteStep(
      `${repoHost.name}-pgbackrest`,
      {
        host: repoHostEntry,
        files: [
          {
            path: repoPaths.configFile,
            content: repoConfig,
            mode: "0640",
            owner: "root:postgres",
          },
          ...repoTls.files,
          { path: BACKUP_RUN_PATH, content: renderBackupRunScript(settings, repoPaths), mode: "0755" },
          ...Object.entries(units.files).map(([file, content]) => ({ path: path.posix.join("/etc/systemd/system", file), content })),
        ],
        script: renderRepoHostStepBody(repoHost, settings, args.versions, repoPaths),
        secrets: { ...repoTls.secrets, ...s3Secrets },
        timeoutMinutes: 15,
      },
      { parent: this, dependsOn: waitsFor(args.after, repoHost.name) },
    );

    // 2. Every DB node: pgbackrest.conf for archive_command, its TLS server, and the in-cluster restore script.
    const restoreClusterScript = renderRestoreClusterScript({
      settings,
      scope: PATRONI_SCOPE,
      paths: args.postgresPaths,
      owner: `${args.postgresUid}:${args.postgresUid}`,
      pgbackrestConfig: dbPaths.configFile,
      commands: productionRestoreClusterCommands(args.patroniImageTag, args.postgresPaths, args.postgresUid, CONTAINER_NOFILE.patroni),
    });
    const nodeSteps = dbHosts.map((host, index) => {
      const node = members[index];
      return remoteStep(
        `${node.name}-pgbackrest`,
        {
          host,
          files: [
            {
              path: dbPaths.configFile,
              content: renderDbNodeConfig({ node, repoHost, settings, paths: dbPaths }),
              mode: "0600",
              owner: `${args.postgresUid}:${args.postgresUid}`,
            },
            {
              path: path.posix.join("/etc/systemd/system", DB_NODE_SERVER_UNIT),
              content: renderDbNodeServerUnit(
                args.patroniImageTag,
                args.postgresPaths.volumeMount,
                args.postgresPaths.configDir,
                dbPaths.configFile,
                args.postgresUid,
              ),
            },
            { path: RESTORE_CLUSTER_PATH, content: restoreClusterScript, mode: "0755" },
          ],
          script: renderDbNodeStepBody(node, settings, args.patroniImageTag, args.postgresUid, dbPaths),
          // The TLS files are the Patroni node's own (same paths, written by the PostgreSQL module).
          secrets: s3Secrets,
          timeoutMinutes: 10,
        },
        { parent: this, dependsOn: waitsFor(args.after, node.name, repoStep) },
      );
    });

    // 3. Verification on backup-01: stanza-create + check (WAL archiving works end to end).
    this.verified = remoteStep(
      `${repoHost.name}-pgbackrest-verify`,
      {
        host: repoHostEntry,
        script: renderVerifyStepBody(settings, repoPaths),
        timeoutMinutes: 10,
        // Re-checked whenever either side's configuration changes.
        triggers: [sha256(repoConfig + members.map((node) => renderDbNodeConfig({ node, repoHost, settings, paths: dbPaths })).join(""))],
      },
      { parent: this, dependsOn: [repoStep, ...nodeSteps] },
    );
    this.registerOutputs({ verified: this.verified });
  }
}
