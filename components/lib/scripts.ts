import * as fs from "fs";
import * as path from "path";
import { shellQuote } from "./remote";

/**
 * How a step's bash body is put together (DESIGN.md, "Layout"): every host script is a file under
 * `scripts/<module>/`; a body is the variables it reads ({@link shellVariables}), the shared
 * helpers it uses (`scripts/common/`), then the module's file. No script body is a TypeScript
 * template string.
 */

/** The project's `scripts/` directory. */
export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "scripts");

/**
 * A host script of a module, e.g. `hostScript("redis", "redis-node.sh")` = scripts/redis/redis-node.sh.
 *
 * @throws Error (ENOENT) when the file does not exist: a bug, the file ships with the program.
 */
export function hostScript(module: string, file: string): string {
  return fs.readFileSync(path.join(SCRIPTS_DIR, module, file), "utf8");
}

/**
 * A shared host helper from `scripts/common/`: `host.sh` (waits, diagnoses, container detection),
 * `apt.sh` (lock retries, cloud-init wait, signing-key check), `sshd.sh`, `xfs-volume.sh`
 * (`kb_xfs_volume`: the one data-volume mount).
 */
export function commonScript(file: string): string {
  return hostScript("common", file);
}

/**
 * The one variable preamble of a step body: one `NAME='value'` line per entry, every value
 * single-quoted ({@link shellQuote}), so a value with spaces or quotes reaches the script intact.
 * Names must be shell identifiers (`KB_NODE_IP`).
 *
 * @throws Error for a name that is not a shell identifier (a bug in the module's render).
 */
export function shellVariables(values: Readonly<Record<string, string | number>>): string {
  return Object.entries(values)
    .map(([name, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`shell variable name "${name}" is not an identifier`);
      return `${name}=${shellQuote(String(value))}`;
    })
    .join("\n");
}

/**
 * A whole step body: the variables, the shared helpers in the order given, then the module's own
 * script file(s). Pure (reads only files that ship with the program).
 */
export function stepBody(
  module: string,
  files: readonly string[],
  options: {
    readonly variables?: Readonly<Record<string, string | number>>;
    readonly common?: readonly string[];
    readonly prefix?: readonly string[];
  } = {},
): string {
  return [
    ...(options.prefix ?? []),
    ...(options.variables && Object.keys(options.variables).length > 0 ? [shellVariables(options.variables)] : []),
    ...(options.common ?? []).map(commonScript),
    ...files.map((file) => hostScript(module, file)),
  ].join("\n");
}
