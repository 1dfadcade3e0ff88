/** MinIO distributed module (spec 001 design section B, spec 003; docs/minio.md): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
