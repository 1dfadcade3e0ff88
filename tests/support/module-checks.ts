/** Checks a module's tests share: shellcheck of its rendered steps, its settings' refusals, a one-shot wait. */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderStepScript } from "../../components/lib/remote";
import { isConfigError } from "../../config";
import { requireTool, tempDir } from "./tools";

/**
 * `kb_wait_until` that tries its command once: runs a host script's failure path without the
 * step's wait budget (the real helper is in components/lib/remote.ts's step preamble).
 */
export const WAIT_UNTIL_ONCE = 'kb_wait_until() { local message=$3; shift 3; "$@" || { kb_diagnose "$message"; return 1; }; }';

/**
 * What shellcheck (`-s bash`) says of each step body, rendered as a whole step the way
 * `remoteStep` sends it: an empty string per name when it has nothing to say.
 *
 * @throws Error when shellcheck is not installed (tests/support/packages.txt).
 */
export function shellcheckSteps(bodies: Readonly<Record<string, string>>): Record<string, string> {
  const shellcheck = requireTool("shellcheck");
  const dir = tempDir("shellcheck");
  try {
    return Object.fromEntries(
      Object.entries(bodies).map(([name, body]) => {
        const file = path.join(dir, `${name}.sh`);
        fs.writeFileSync(file, renderStepScript(name, [], body));
        return [name, spawnSync(shellcheck, ["-s", "bash", file], { encoding: "utf8" }).stdout];
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The problems of the ConfigError `parse` throws.
 *
 * @throws Error when `parse` returns, or rethrows what is not a ConfigError.
 */
export function configProblems(parse: () => unknown): readonly string[] {
  try {
    parse();
  } catch (error) {
    if (isConfigError(error)) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError, but the configuration was accepted");
}
