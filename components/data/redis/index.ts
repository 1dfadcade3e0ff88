/** Redis + Sentinel module (spec 001 module 4, spec 003): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
