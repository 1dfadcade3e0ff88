/** The shared HAProxy layer (spec 001 module 3): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
