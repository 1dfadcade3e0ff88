/** MariaDB Galera module (spec 001 module 7): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
