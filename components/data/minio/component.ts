import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { clusterNodes, lockedImage } from "../../../config";
import type { ModuleArgs, ModuleOutputs } from "../../lib/contract";
import { waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, sha256 } from "../../lib/remote";
import {
  MINIO_HOST_PATHS,
  MINIO_ROOT_PASSWORD_KEY,
  MinioLayout,
  MinioNode,
  minioConsoleUrl,
  minioS3Endpoint,
  renderMinioEnv,
  renderMinioNodeScript,
  renderMinioVerifyScript,
} from "./render";
import type { MinioSettings } from "./settings";

/** The MinIO module's slice of `PlatformSecrets` (every value secret). */
export interface MinioSecrets {
  /** `PlatformSecrets.minio.rootPassword` (`MINIO_ROOT_PASSWORD`). */
  readonly rootPassword: pulumi.Input<string>;
}

/**
 * Arguments of {@link MinioCluster}: the module contract, plus the domain of the node host names.
 * `hosts` is the minio group in inventory order (minio-01..03, consecutive names, checked by
 * config/); `versions.images.minio` is the pinned release; `after.hosts` holds each host's verified
 * base OS.
 */
export interface MinioClusterArgs extends ModuleArgs<MinioSettings, MinioSecrets> {
  /**
   * Domain of the node host names and of `s3.<domain>`: the inventory's `internalDomain` (the base
   * OS maps `minio-0N.<domain>` in the managed /etc/hosts). Not a module setting, so an extra argument.
   */
  readonly domain: string;
}

/**
 * MinIO distributed on the minio group (`keybuzz:data:MinioCluster`). Node steps run one after the
 * other (a restart waits for the cluster's write quorum before the next node moves); the
 * verification step then requires `/minio/health/cluster` = 200 on every node.
 */
export class MinioCluster extends pulumi.ComponentResource implements ModuleOutputs {
  /** The verification step. */
  public readonly verified: command.remote.Command;
  /** The S3 endpoint, `http://s3.<domain>:<apiPort>` (spec 001 design B: minio-01 through /etc/hosts). */
  public readonly s3Endpoint: string;
  /** The console of the first node. */
  public readonly consoleUrl: string;

  constructor(name: string, args: MinioClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:MinioCluster", name, {}, opts);
    const nodes: MinioNode[] = clusterNodes(args.hosts.map((host) => host.spec));
    const layout: MinioLayout = { ...args.settings, domain: args.domain };
    const image = lockedImage(args.versions, "minio");
    const steps: command.remote.Command[] = [];
    const fingerprints: string[] = [];
    const envFile: HostFile = { path: MINIO_HOST_PATHS.envFile, content: renderMinioEnv(nodes, layout), mode: "0600" };
    args.hosts.forEach((host, index) => {
      const node = nodes[index];
      const files: HostFile[] = [envFile];
      const script = renderMinioNodeScript(node, image, args.settings);
      fingerprints.push(sha256(script + files[0].content));
      steps.push(
        remoteStep(
          `${node.name}-minio`,
          { host, files, script, secrets: { [MINIO_ROOT_PASSWORD_KEY]: args.secrets.rootPassword }, timeoutMinutes: 15 },
          { parent: this, dependsOn: waitsFor(args.after, node.name, steps.at(-1)) },
        ),
      );
    });
    const verifyScript = renderMinioVerifyScript(nodes, args.settings);
    this.verified = remoteStep(
      `${name}-verify`,
      { host: args.hosts[0], script: verifyScript, timeoutMinutes: 10, triggers: [sha256(fingerprints.join("") + verifyScript)] },
      { parent: this, dependsOn: steps },
    );
    this.s3Endpoint = minioS3Endpoint(layout);
    this.consoleUrl = minioConsoleUrl(nodes, layout);
    this.registerOutputs({ verified: this.verified, s3Endpoint: this.s3Endpoint, consoleUrl: this.consoleUrl });
  }
}
