/** Monitoring module (issue 16): alert rules, scrape configs, dashboards for kube-prometheus-stack. */
export * from "./settings";
export * from "./render";
export * from "./component";
