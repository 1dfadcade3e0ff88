/** The cluster add-ons module (spec 001/002 module 9): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
