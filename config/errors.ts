import { z } from "zod";

/**
 * A stack configuration problem, raised before any resource is declared. The message lists every
 * problem found, one per line, each naming its config key and the fix.
 */
export class ConfigError extends Error {
  /** One line per problem, e.g. `keybuzz:servers[3].privateIp: 10.1.0.5 is outside the subnet …`. */
  public readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid KeyBuzz configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * True for a {@link ConfigError}, also one thrown by another copy of this module (the mock engine
 * loads the program afresh for each run, so `instanceof` would miss it).
 */
export function isConfigError(error: unknown): error is ConfigError {
  return error instanceof Error && error.name === "ConfigError";
}

/**
 * Turns a schema error into one line per issue, prefixed with the `keybuzz:` key path
 * (`keybuzz:servers[2].privateIp: must be an IPv4 address …`). An issue of the object itself (an
 * unknown key, a cross-field rule) names the prefix alone: `keybuzz:redis: Unrecognized key …`.
 */
export function formatZodError(error: z.ZodError, prefix = "keybuzz:"): string[] {
  return error.issues.map((issue) => {
    const path = issue.path
      .map((part, index) => (typeof part === "number" ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`))
      .join("");
    if (path === "") return `${prefix.replace(/[.:]\s*$/, "")}: ${issue.message}`;
    return `${prefix}${path}: ${issue.message}`;
  });
}
