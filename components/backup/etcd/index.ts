export * from "./component";
export * from "./render";
export * from "./settings";
