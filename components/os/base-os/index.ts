/** Base OS & security module (spec 000): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
