/** ProxySQL module (spec 001 module 8), in front of Galera: settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
