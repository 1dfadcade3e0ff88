import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { lockedImage } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { HostFile, remoteStep, secretRef } from "../../lib/remote";
import { APPLICATION_DATABASES, SECRET_KEYS } from "../postgres";
import {
  PGBOUNCER_HOST_DIR,
  PGBOUNCER_SECRET_KEYS,
  PGBOUNCER_UID,
  renderedPgbouncerNofile,
  renderPgbouncerIni,
  renderPgbouncerStepScript,
  renderPgbouncerUserlist,
} from "./render";
import { PgbouncerSettings } from "./settings";

/** PgBouncer's slice of the platform's credentials (`PlatformSecrets.postgres`). */
export interface PgbouncerSecrets {
  /** The product database owner's password (`PlatformSecrets.postgres.app`): userlist.txt. */
  readonly app: pulumi.Input<string>;
  /** The backend's `kb_backend` password (`PlatformSecrets.postgres.backend`): userlist.txt. */
  readonly backend: pulumi.Input<string>;
  /** pgbouncer_exporter's console user's password (`PlatformSecrets.postgres.pgbouncerStats`): userlist.txt. */
  readonly stats: pulumi.Input<string>;
}

/**
 * Arguments of {@link PgBouncerLayer}: the module contract, with `hosts` = the haproxy group in
 * inventory order (changes roll in this order), `settings` = `keybuzz:postgres.pgbouncer`,
 * `versions` for `images.pgbouncer` and the release it must run (`packages.pgbouncer`), and
 * `after.hosts` = each host's HAProxy step (PgBouncer's upstream is the local HAProxy write port).
 */
export interface PgBouncerLayerArgs extends ModuleArgs<PgbouncerSettings, PgbouncerSecrets> {
  /** CA of the DB nodes' certificates (`Pki.caCertPem`): PgBouncer verifies PostgreSQL's TLS against it. */
  readonly caCertPem: pulumi.Input<string>;
}

/**
 * PgBouncer on haproxy-01/02 (`keybuzz:data:PgBouncerLayer`; spec 001 module 3, "PgBouncer"): port
 * 6432, transaction pooling, upstream the local HAProxy write port (so it always reaches the
 * current leader), SCRAM for the owners of the application databases (`keybuzz`, `keybuzz_backend`). One host after the other. Its own component
 * beside the HAProxy layer: it is a PostgreSQL-only service, while HAProxy is shared with Redis and
 * RabbitMQ.
 */
export class PgBouncerLayer extends pulumi.ComponentResource implements ModuleOutputs {
  /** The last host's step: PgBouncer runs the pinned release and listens on every host. */
  public readonly verified: command.remote.Command;

  constructor(name: string, args: PgBouncerLayerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:data:PgBouncerLayer", name, {}, opts);
    const owner = `${PGBOUNCER_UID}:${PGBOUNCER_UID}`;
    const ini = renderPgbouncerIni({ settings: args.settings, databases: APPLICATION_DATABASES.map(({ database }) => database) });
    const userlist = renderPgbouncerUserlist(APPLICATION_DATABASES);
    const files: HostFile[] = [
      { path: `${PGBOUNCER_HOST_DIR}/pgbouncer.ini`, content: ini, owner },
      { path: `${PGBOUNCER_HOST_DIR}/userlist.txt`, content: userlist, mode: "0600", owner },
      { path: `${PGBOUNCER_HOST_DIR}/ca.crt`, content: secretRef(PGBOUNCER_SECRET_KEYS.caCert), mode: "0600", owner },
    ];
    const script = renderPgbouncerStepScript(
      lockedImage(args.versions, "pgbouncer"),
      args.versions.packages.pgbouncer,
      renderedPgbouncerNofile(args.settings, ini, userlist),
    );
    const secrets = {
      [SECRET_KEYS.app]: args.secrets.app,
      [SECRET_KEYS.backend]: args.secrets.backend,
      [PGBOUNCER_SECRET_KEYS.statsPassword]: args.secrets.stats,
      [PGBOUNCER_SECRET_KEYS.caCert]: args.caCertPem,
    };
    let previous: command.remote.Command | undefined;
    for (const host of args.hosts) {
      previous = remoteStep(
        `${host.spec.name}-pgbouncer`,
        { host, files, script, secrets, timeoutMinutes: 10 },
        { parent: this, dependsOn: waitsFor(args.after, host.spec.name, previous) },
      );
    }
    if (!previous) throw new Error(`PgBouncerLayer ${name}: no hosts (config/ guarantees the haproxy group)`);
    this.verified = previous;
    this.registerOutputs({ verified: this.verified });
  }
}
