export * from "./settings";
export * from "./render";
export * from "./component";
