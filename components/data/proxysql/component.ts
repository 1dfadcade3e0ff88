import * as pulumi from "@pulumi/pulumi";
import { lockedImage } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { remoteStep, sha256 } from "../../lib/remote";
import { DEFAULT_GALERA_ACCOUNTS, GaleraNode } from "../galera";
import {
  galeraBackends,
  mariadbServerVersion,
  PROXYSQL_SECRET_KEYS,
  proxySqlNodeFiles,
  renderProxySqlCnf,
  renderProxySqlNodeStep,
  renderProxySqlVerifyStep,
} from "./render";
import { DEFAULT_PROXYSQL_CNF_SETTINGS, DEFAULT_PROXYSQL_HOST_SETTINGS, ProxySqlCnfSettings, ProxySqlSettings } from "./settings";

/** ProxySQL's slice of the platform's credentials: its admin (`PlatformSecrets.proxysql.admin`), the app user and the monitor user (`PlatformSecrets.mariadb`). */
export interface ProxySqlSecrets {
  readonly admin: pulumi.Input<string>;
  readonly app: pulumi.Input<string>;
  readonly monitor: pulumi.Input<string>;
}

/** Arguments of {@link ProxySqlLayer}: the module contract, plus the Galera nodes behind it. */
export interface ProxySqlLayerArgs extends ModuleArgs<ProxySqlSettings, ProxySqlSecrets> {
  /**
   * The Galera nodes (`GaleraCluster.nodes`), inventory order: the first is the preferred writer.
   * `after.all` holds `GaleraCluster.verified` (accounts exist, cluster healthy).
   */
  readonly galeraNodes: readonly GaleraNode[];
}

/**
 * ProxySQL (`keybuzz:data:ProxySqlLayer`) on every node of the proxysql group, one node at a time:
 * deploy, then verify through that node before the next one changes. The load balancer
 * 10.0.0.20:3306 (components/infra) checks TCP 3306 on each node.
 */
export class ProxySqlLayer extends pulumi.ComponentResource implements ModuleOutputs {
  /** The last node's verification, after every node's: one writer, a write and a read through each node. */
  public readonly verified: pulumi.Resource;

  constructor(name: string, args: ProxySqlLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:ProxySqlLayer", name, {}, opts);
    const host = DEFAULT_PROXYSQL_HOST_SETTINGS;
    const settings: ProxySqlCnfSettings = { ...DEFAULT_PROXYSQL_CNF_SETTINGS, ...args.settings };
    const cnf = renderProxySqlCnf({
      backends: galeraBackends(args.galeraNodes),
      serverVersion: mariadbServerVersion(args.versions.images.mariadb),
      settings,
    });
    const files = proxySqlNodeFiles(cnf, settings, host);
    const secrets = {
      [PROXYSQL_SECRET_KEYS.admin]: args.secrets.admin,
      [PROXYSQL_SECRET_KEYS.app]: args.secrets.app,
      [PROXYSQL_SECRET_KEYS.monitor]: args.secrets.monitor,
    };
    const script = renderProxySqlNodeStep(lockedImage(args.versions, "proxysql"), host);
    const fingerprint = sha256(script + files.map((file) => file.content).join(""));
    let previous: pulumi.Resource | undefined;
    for (const node of args.hosts) {
      const deploy = remoteStep(
        `${name}-${node.spec.name}`,
        { host: node, files, script, secrets, timeoutMinutes: 15 },
        { parent: this, dependsOn: waitsFor(args.after, node.spec.name, previous) },
      );
      previous = remoteStep(
        `${name}-${node.spec.name}-verify`,
        {
          host: node,
          script: renderProxySqlVerifyStep({
            clientImage: lockedImage(args.versions, "mariadb"),
            hostName: node.spec.name,
            appDatabase: DEFAULT_GALERA_ACCOUNTS.appDatabase,
            settings,
            host,
          }),
          timeoutMinutes: 10,
          triggers: [fingerprint],
        },
        { parent: this, dependsOn: [deploy] },
      );
    }
    // config/ requires at least one proxysql server (keybuzz:servers), so the loop ran.
    this.verified = previous as pulumi.Resource;
    this.registerOutputs({ verified: this.verified });
  }
}
