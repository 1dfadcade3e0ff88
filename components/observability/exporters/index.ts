/** Exporters module (issue 16 item 1): node_exporter and the certificate scan on every server. */
export * from "./settings";
export * from "./render";
export * from "./component";
