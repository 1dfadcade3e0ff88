import * as pulumi from "@pulumi/pulumi";
import { waitsFor, type ModuleArgs, type ModuleOutputs } from "../../lib/contract";
import { remoteStep } from "../../lib/remote";
import { certExpiryFiles, renderNodeExporterScript } from "./render";
import type { ExportersSettings } from "./settings";

/** Arguments of {@link Exporters}: `hosts` = every server; no secrets (node_exporter needs none). */
export type ExportersArgs = ModuleArgs<ExportersSettings, Record<string, never>>;

/**
 * The exporters on the servers (`keybuzz:observability:Exporters`, issue 16 item 1): node_exporter
 * and the hourly certificate scan on every server, one step per host after that host's verified
 * base OS; each step ends by scraping its own endpoint.
 */
export class Exporters extends pulumi.ComponentResource implements ModuleOutputs {
  /** The component itself: depending on it waits for every host's step (each checks its own endpoint). */
  public readonly verified: pulumi.Resource;
  /** Each host's node_exporter step, by host name. */
  public readonly nodeExporters: Readonly<Record<string, pulumi.Resource>>;

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
    this.verified = this;
    this.registerOutputs({ verified: this.verified, nodeExporters: this.nodeExporters });
  }
}
