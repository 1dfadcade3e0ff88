import * as fs from "fs";
import * as path from "path";
import { PGBOUNCER_SECRET_KEYS, renderPgbouncerIni, renderPgbouncerUserlist } from "../../components/data/pgbouncer";
import { APPLICATION_DATABASES, PostgresSettings } from "../../components/data/postgres";
import { fillSecrets } from "../../components/lib/remote";
import { PostgresLoopbackCluster } from "../postgres/loopback";
import { testPassword } from "../support/loopback/loopback";
import { assertLoopbackText, ownedDir, ownedFile, waitForPort } from "../support/loopback/supervisor";

const PGBOUNCER = "/usr/sbin/pgbouncer";

/**
 * PgBouncer from the files components/data/pgbouncer renders, in front of the loopback cluster's
 * HAProxy write port, run by Debian's pgbouncer as `postgres` under the cluster's supervisor (so
 * the cluster's stop ends it). It listens on `listenAddress`: the internal load balancer's address
 * of the loopback inventory, the load balancer (a TCP forwarder to haproxy-01/02:6432) folded into
 * it. One line of the rendered ini is dropped: `max_prepared_statements`, which Debian bookworm's
 * PgBouncer 1.18 predates (the image runs packages.pgbouncer, 1.26); node-postgres' unnamed
 * statements do not need it.
 *
 * @param passwords the owners' passwords by secret key (`ApplicationDatabase.secretKey`).
 */
export async function startPgbouncer(
  cluster: PostgresLoopbackCluster,
  settings: PostgresSettings,
  listenAddress: string,
  passwords: Readonly<Record<string, string>>,
): Promise<{ readonly port: number; reconfigure(passwords: Readonly<Record<string, string>>): Promise<void> }> {
  const dir = ownedDir(path.join(cluster.dir, "pgbouncer"), "postgres");
  const ini = renderPgbouncerIni({
    settings: settings.pgbouncer,
    databases: APPLICATION_DATABASES.map(({ database }) => database),
    upstreamHost: cluster.proxy.address,
    upstreamPort: cluster.proxy.writePort,
    listenAddress,
    configDir: dir,
  })
    .split("\n")
    .filter((line) => !line.startsWith("max_prepared_statements"))
    .join("\n");
  assertLoopbackText("pgbouncer.ini", ini);
  const iniFile = ownedFile(path.join(dir, "pgbouncer.ini"), ini, "postgres");
  ownedFile(path.join(dir, "ca.crt"), fs.readFileSync(cluster.caFile, "utf8"), "postgres");
  // pgbouncer_exporter's console user is in the rendered userlist too; nothing here logs in as it.
  const statsPassword = testPassword();
  const writeUserlist = (values: Readonly<Record<string, string>>) =>
    ownedFile(
      path.join(dir, "userlist.txt"),
      fillSecrets(renderPgbouncerUserlist(APPLICATION_DATABASES), { ...values, [PGBOUNCER_SECRET_KEYS.statsPassword]: statsPassword }),
      "postgres",
    );
  writeUserlist(passwords);
  cluster.supervisor.start({
    name: "pgbouncer",
    command: PGBOUNCER,
    args: [iniFile],
    user: "postgres",
    logFile: path.join(cluster.dir, "pgbouncer.log"),
  });
  const port = Number(/^listen_port = (\d+)$/m.exec(ini)?.[1]);
  const listening = async () => {
    if (!(await waitForPort(listenAddress, port, 30_000))) throw new Error(`pgbouncer: ${listenAddress}:${port} not listening`);
  };
  await listening();
  return {
    port,
    // As scripts/pgbouncer/pgbouncer.sh: new files, PgBouncer recreated.
    reconfigure: async (values) => {
      writeUserlist(values);
      await cluster.supervisor.stop("pgbouncer");
      cluster.supervisor.restart("pgbouncer");
      await listening();
    },
  };
}
