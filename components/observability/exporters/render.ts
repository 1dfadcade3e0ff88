import { renderContainerFunctions, type ContainerSpec } from "../../lib/container";
import type { HostFile } from "../../lib/remote";
import { hostScript, shellVariables } from "../../lib/scripts";
import type { ExportersSettings } from "./settings";

/**
 * Pure renders of the exporters module: node_exporter on every server (README of
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
