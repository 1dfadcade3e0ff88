/** PostgreSQL HA module (spec 001 module 3, spec 004): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
