/** Backend probes (issue 16 item 6): the deploy's probe Job and blackbox_exporter's continuous probes. */
export * from "./settings";
export * from "./render";
export * from "./component";
