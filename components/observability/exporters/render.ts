import { GALERA_SECRET_KEYS } from "../../data/galera/render";
import { REDIS_EXPORTER_PASSWORD_KEY } from "../../data/redis/render";
import { renderContainerFunctions, type ContainerSpec } from "../../lib/container";
import { secretRef, shellQuote, type HostFile } from "../../lib/remote";
import { hostScript, shellVariables } from "../../lib/scripts";
import { ACCOUNTS } from "../../security/secrets";
import type { ExportersSettings } from "./settings";

/**
 * Pure renders of the exporters module: the service exporters (redis_exporter, mysqld_exporter)
 * on their clusters' hosts, and node_exporter on every server (README of
 * prometheus/node_exporter v1.12.1, "Docker": host network, host PID namespace, the host's root
 * read-only at /host with `--path.rootfs=/host`) and the hourly certificate scan its textfile
 * collector reads (scripts/exporters/cert-expiry.sh).
 */

/** Where the textfile collector's files live on the host (read through the /host mount). */
export const TEXTFILE_DIR = "/var/lib/keybuzz/node-exporter";
/** The certificate scan's output inside {@link TEXTFILE_DIR}. */
export const CERT_EXPIRY_FILE = `${TEXTFILE_DIR}/keybuzz_certificates.prom`;

/**
 * node_exporter's `nofile`: it opens a few /proc and /sys files per collector and closes them after
 * each scrape; 4096 covers several concurrent scrapes (Prometheus HA pairs) with room to spare.
 */
export const NODE_EXPORTER_NOFILE = 4096;

/** The node_exporter container of one server, listening on its private address only. Pure. */
export function nodeExporterContainer(image: string, privateIp: string, settings: ExportersSettings): ContainerSpec {
  return {
    name: "node-exporter",
    image,
    // The image runs as nobody (its Dockerfile's USER); the host's root is read-only.
    options: ["--pid", "host", "-v", "/:/host:ro,rslave"],
    command: [
      "--path.rootfs=/host",
      `--web.listen-address=${privateIp}:${settings.nodeExporterPort}`,
      `--collector.textfile.directory=/host${TEXTFILE_DIR}`,
    ],
    nofile: NODE_EXPORTER_NOFILE,
  };
}

/** The files of the certificate scan: the script, its environment, and its systemd service and timer. Pure. */
export function certExpiryFiles(settings: ExportersSettings): HostFile[] {
  return [
    { path: "/usr/local/lib/keybuzz/cert-expiry.sh", content: hostScript("exporters", "cert-expiry.sh"), mode: "0755" },
    {
      path: "/etc/keybuzz/exporters/cert-expiry.env",
      content: `KB_CERT_EXPIRY_FILE=${CERT_EXPIRY_FILE}\nKB_CERT_DIRS=${settings.certificateDirs.join(" ")}\n`,
    },
    { path: "/etc/systemd/system/keybuzz-cert-expiry.service", content: hostScript("exporters", "keybuzz-cert-expiry.service") },
    { path: "/etc/systemd/system/keybuzz-cert-expiry.timer", content: hostScript("exporters", "keybuzz-cert-expiry.timer") },
  ];
}

/** The node_exporter step's bash body on one server. Pure. */
export function renderNodeExporterScript(image: string, privateIp: string, settings: ExportersSettings): string {
  return [
    renderContainerFunctions(nodeExporterContainer(image, privateIp, settings)),
    shellVariables({ KB_NODE_IP: privateIp, KB_PORT: settings.nodeExporterPort, KB_TEXTFILE_DIR: TEXTFILE_DIR }),
    hostScript("exporters", "node-exporter.sh"),
  ].join("\n");
}

/** Where each service exporter's credentials file lives on its host (root only; Docker reads it as `--env-file`). */
export const EXPORTER_ENV_DIR = "/etc/keybuzz/exporters";

/**
 * `nofile` of redis_exporter and mysqld_exporter: one connection to their service per scrape plus
 * Prometheus's HTTP connections; 1024 would do, 4096 as node_exporter.
 */
export const SERVICE_EXPORTER_NOFILE = NODE_EXPORTER_NOFILE;

/** One service exporter container on a host and how its step checks it. */
export interface ServiceExporter {
  readonly container: ContainerSpec;
  /** Its credentials file (`--env-file`, mode 0600), holding {@link secretRef} placeholders. */
  readonly envFile: HostFile;
  /** Its metrics URL on the host's private address. */
  readonly url: string;
  /** The unlabelled gauge that is 1 when the exporter reaches its service (`redis_up`, `mysql_up`). */
  readonly upMetric: string;
}

/** The credentials file of a service exporter. Pure. */
function envFile(container: string, variables: Readonly<Record<string, string>>): HostFile {
  const content = Object.entries(variables)
    .map(([name, value]) => `${name}=${value}\n`)
    .join("");
  return { path: `${EXPORTER_ENV_DIR}/${container}.env`, content, mode: "0600" };
}

/**
 * redis_exporter (oliver006/redis_exporter v1.88.0, README flags) in front of the node's Redis
 * (`service: "redis"`) or Sentinel: logs in as the ACL user {@link ACCOUNTS.redisExporter} (its
 * rules: components/data/redis/render.ts), password from `REDIS_PASSWORD` in the env file, and
 * never sends CONFIG (`--config-command=-`: the ACL denies it). The image runs as 59000:59000 (its
 * Dockerfile's USER). Pure.
 */
export function redisExporter(
  image: string,
  privateIp: string,
  service: "redis" | "sentinel",
  servicePort: number,
  settings: ExportersSettings,
): ServiceExporter {
  const name = `${service}-exporter`;
  const port = service === "redis" ? settings.redisExporterPort : settings.sentinelExporterPort;
  const env = envFile(name, { REDIS_PASSWORD: secretRef(REDIS_EXPORTER_PASSWORD_KEY) });
  return {
    container: {
      name,
      image,
      options: ["--env-file", env.path],
      command: [
        `--redis.addr=redis://${privateIp}:${servicePort}`,
        `--redis.user=${ACCOUNTS.redisExporter}`,
        `--web.listen-address=${privateIp}:${port}`,
        "--config-command=-",
      ],
      nofile: SERVICE_EXPORTER_NOFILE,
    },
    envFile: env,
    url: `http://${privateIp}:${port}/metrics`,
    upMetric: "redis_up",
  };
}

/**
 * mysqld_exporter (prometheus/mysqld_exporter v0.20.0, README "General Flags") in front of the
 * node's MariaDB, as {@link ACCOUNTS.mariadbExporter} (`MYSQLD_EXPORTER_PASSWORD` in the env file;
 * its grants: components/data/galera/render.ts). `--collect.global_status` (on by default, named
 * because the Galera rules need it) exports every numeric `SHOW GLOBAL STATUS` value, the
 * `wsrep_*` ones included, as `mysql_global_status_<name>`. The image runs as nobody. Pure.
 */
export function mysqldExporter(image: string, privateIp: string, mysqlPort: number, settings: ExportersSettings): ServiceExporter {
  const name = "mysqld-exporter";
  const env = envFile(name, { MYSQLD_EXPORTER_PASSWORD: secretRef(GALERA_SECRET_KEYS.exporter) });
  return {
    container: {
      name,
      image,
      options: ["--env-file", env.path],
      command: [
        `--mysqld.address=${privateIp}:${mysqlPort}`,
        `--mysqld.username=${ACCOUNTS.mariadbExporter}`,
        `--web.listen-address=${privateIp}:${settings.mysqldExporterPort}`,
        "--collect.global_status",
      ],
      nofile: SERVICE_EXPORTER_NOFILE,
    },
    envFile: env,
    url: `http://${privateIp}:${settings.mysqldExporterPort}/metrics`,
    upMetric: "mysql_up",
  };
}

/**
 * The step body of a host's service exporters (scripts/exporters/service-exporter.sh): each
 * container (re)started when its spec or credentials changed, then its endpoint must report its
 * service up. Pure.
 */
export function renderServiceExportersScript(exporters: readonly ServiceExporter[]): string {
  return [
    ...exporters.map((exporter) => renderContainerFunctions(exporter.container)),
    hostScript("exporters", "service-exporter.sh"),
    ...exporters.map(
      (exporter) =>
        `kb_service_exporter ${[exporter.container.name, exporter.envFile.path, exporter.url, exporter.upMetric].map(shellQuote).join(" ")}`,
    ),
  ].join("\n");
}
