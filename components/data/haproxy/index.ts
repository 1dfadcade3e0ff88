/** The shared HAProxy layer (spec 001 module 3): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
/** The contract's listener type, re-exported for the modules that build listeners (`import type { HaproxyListener } from "../haproxy"`). */
export type { HaproxyListener } from "../../lib/contract";
/** The contract's `HaproxyFile` under its former name, for `components/data/postgres/render.ts` until it imports `HaproxyFile`. */
export type { HaproxyFile as HaproxyExtraFile } from "../../lib/contract";
