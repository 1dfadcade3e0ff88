import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { clusterNodes, lockedImage } from "../../../config";
import type { HaproxyContribution, ModuleArgs, ModuleOutputs } from "../../lib/contract";
import { waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, sha256 } from "../../lib/remote";
import {
  MINIO_APP_SECRET_KEY,
  MINIO_HOST_PATHS,
  MINIO_LISTENER,
  MINIO_ROOT_PASSWORD_KEY,
  MinioLayout,
  MinioNode,
  minioBucketFiles,
  minioConsoleUrl,
  minioHaproxyListener,
  minioS3Endpoint,
  renderMinioBucketScript,
  renderMinioEndpointCheckScript,
  renderMinioEnv,
  renderMinioNodeScript,
  renderMinioVerifyScript,
  renderMinioVolumeScript,
} from "./render";
import type { MinioSettings } from "./settings";

/** The MinIO module's slice of `PlatformSecrets` (every value secret). */
export interface MinioSecrets {
  /** `PlatformSecrets.minio.rootPassword` (`MINIO_ROOT_PASSWORD`). */
  readonly rootPassword: pulumi.Input<string>;
  /** `PlatformSecrets.minio.appSecretKey`: secret key of the application's user `ACCOUNTS.minioAppUser`. */
  readonly appSecretKey: pulumi.Input<string>;
}

/**
 * Arguments of {@link MinioCluster}: the module contract, plus the domain of the node host names,
 * the nodes' data volumes and the address of the HA S3 endpoint. `hosts` is the minio group in
 * inventory order (minio-01..03, consecutive names, checked by config/); `versions.images.minio`
 * is the pinned release; `after.hosts` holds each host's verified base OS.
 */
export interface MinioClusterArgs extends ModuleArgs<MinioSettings, MinioSecrets> {
  /**
   * Domain of the node host names: the inventory's `internalDomain` (the base OS maps
   * `minio-0N.<domain>` in the managed /etc/hosts). Not a module setting, so an extra argument.
   */
  readonly domain: string;
  /**
   * XFS data volume of each node, by inventory name (`ServerFleet.volumes`; config/ gives every
   * minio node one). Its id re-runs the node's volume step when the volume is replaced.
   */
  readonly volumes: Readonly<Record<string, { readonly id: pulumi.Input<string> }>>;
  /**
   * Private IP of the internal load balancer in front of the shared HAProxy (prod 10.0.0.10,
   * `postgresLoadBalancerIp(inventory)`): the HA S3 endpoint is this address on the API port.
   */
  readonly loadBalancerIp: string;
}

/**
 * MinIO distributed on the minio group (`keybuzz:data:MinioCluster`). Each node mounts its data
 * volume, then the node steps run one after the other (a restart waits for the cluster's write
 * quorum before the next node moves; a new image is only pulled there), then the binary steps run
 * on every node at once and restart the nodes whose image changed together; the bucket step on the first node creates the application's
 * bucket, policy and user; the verification step then requires `/minio/health/cluster` = 200 on
 * every node. Its HAProxy contribution is the S3 listener behind the internal load balancer (the
 * HA S3 endpoint) and the end-to-end check through it.
 */
export class MinioCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** The verification step. */
  public readonly verified: command.remote.Command;
  /** The HA S3 endpoint, `http://<internal load balancer>:<apiPort>` (prod `http://10.0.0.10:9000`; issue 19). */
  public readonly s3Endpoint: string;
  /** The console of the first node. */
  public readonly consoleUrl: string;
  /** Per node, the binary step: restarts the node on a changed image, with every other node at once. */
  public readonly binarySteps: readonly command.remote.Command[];
  /** The bucket step: the application's bucket, policy and user exist. */
  public readonly bucket: command.remote.Command;
  /** What the shared HAProxy serves for MinIO (the S3 listener), and the check through the load balancer. */
  public readonly haproxy: HaproxyContribution;

  constructor(name: string, args: MinioClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:MinioCluster", name, {}, opts);
    const nodes: MinioNode[] = clusterNodes(args.hosts.map((host) => host.spec));
    const layout: MinioLayout = { ...args.settings, domain: args.domain };
    const image = lockedImage(args.versions, "minio");
    const steps: command.remote.Command[] = [];
    const fingerprints: string[] = [];
    const envFile: HostFile = { path: MINIO_HOST_PATHS.envFile, content: renderMinioEnv(nodes, layout), mode: "0600" };
    const volumeScript = renderMinioVolumeScript();
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const volumeStep = remoteStep(
        `${node.name}-minio-volume`,
        { host, script: volumeScript, timeoutMinutes: 10, triggers: [args.volumes[node.name].id] },
        { parent: this, dependsOn: waitsFor(args.after, node.name) },
      );
      const files: HostFile[] = [envFile];
      const script = renderMinioNodeScript(node, image, args.settings);
      fingerprints.push(sha256(script + files[0].content));
      steps.push(
        remoteStep(
          `${node.name}-minio`,
          { host, files, script, secrets: { [MINIO_ROOT_PASSWORD_KEY]: args.secrets.rootPassword }, timeoutMinutes: 15 },
          { parent: this, dependsOn: waitsFor(args.after, node.name, volumeStep, steps.at(-1)) },
        ),
      );
    });
    // After every node step, on every node at once (no step waits for another): the nodes whose
    // image changed restart together (MinIO's rule for a binary change, docs/minio.md).
    const binarySteps = args.hosts.map((host, index) => {
      const script = renderMinioNodeScript(nodes[index], image, args.settings, undefined, "binary");
      fingerprints.push(sha256(script));
      return remoteStep(
        `${nodes[index].name}-minio-binary`,
        { host, script, timeoutMinutes: 15 },
        { parent: this, dependsOn: [...waitsFor(args.after, nodes[index].name), ...steps] },
      );
    });
    this.binarySteps = binarySteps;
    const bucketFiles = minioBucketFiles(nodes[0], args.settings);
    const bucketScript = renderMinioBucketScript(nodes[0], image, args.settings);
    this.bucket = remoteStep(
      `${name}-bucket`,
      {
        host: args.hosts[0],
        files: bucketFiles,
        script: bucketScript,
        secrets: { [MINIO_ROOT_PASSWORD_KEY]: args.secrets.rootPassword, [MINIO_APP_SECRET_KEY]: args.secrets.appSecretKey },
        timeoutMinutes: 10,
      },
      { parent: this, dependsOn: [...steps, ...binarySteps] },
    );
    fingerprints.push(sha256(bucketScript + bucketFiles.map((file) => file.content).join("")));
    const verifyScript = renderMinioVerifyScript(nodes, args.settings);
    this.verified = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 10, triggers: [sha256(fingerprints.join("") + verifyScript)] },
      { parent: this, dependsOn: [...steps, ...binarySteps, this.bucket] },
    );
    this.s3Endpoint = minioS3Endpoint(args.loadBalancerIp, args.settings);
    this.consoleUrl = minioConsoleUrl(nodes, layout);
    this.haproxy = {
      listeners: [minioHaproxyListener(nodes, args.settings)],
      endpointChecks: [
        {
          name: `${args.hosts[0].spec.name}-minio-endpoint-check`,
          host: args.hosts[0],
          listener: MINIO_LISTENER,
          script: renderMinioEndpointCheckScript,
          triggers: [sha256(fingerprints.join(""))],
        },
      ],
      verified: this.verified,
    };
    this.registerOutputs({
      verified: this.verified,
      s3Endpoint: this.s3Endpoint,
      consoleUrl: this.consoleUrl,
      bucket: this.bucket,
      binarySteps: this.binarySteps,
      // The contribution without its check's host (it holds the SSH connection): what is served, and for what.
      haproxy: {
        listeners: this.haproxy.listeners,
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
