/** PgBouncer on the haproxy hosts (spec 001 module 3, "PgBouncer"): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
