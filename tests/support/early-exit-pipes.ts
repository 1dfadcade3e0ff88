import { spawnSync } from "child_process";
import { requireTool } from "./tools";

/**
 * Finds pipes into a reader that may stop before its writer has finished (`grep -q`, `grep -m`,
 * `head`, `awk … exit`, `sed …q`, `read`): under `set -o pipefail` the writer's SIGPIPE (exit 141)
 * fails the pipeline, so such a check fails at random. The script is parsed by the real shell parser
 * of shfmt (`shfmt --to-json`), so quotes, heredocs and comments are never mistaken for pipes.
 */

/** One offending pipe: the line of the reader and the reader's command as written. */
export interface EarlyExitPipe {
  readonly line: number;
  readonly reader: string;
}

/** shfmt's syntax.BinCmdOperator values for `|` and `|&` (checked with shfmt 3.6: `&&` is 10, `||` 11). */
const PIPE_OPERATORS = new Set([12, 13]);

interface Node {
  readonly Type?: string;
  readonly [key: string]: unknown;
}

/** The text of a shfmt Word: literals and quoted literals; anything expanded becomes `$`. */
function wordText(word: unknown): string {
  const parts = ((word as Node | undefined)?.Parts as Node[] | undefined) ?? [];
  return parts
    .map((part) => {
      if (part.Type === "Lit" || part.Type === "SglQuoted") return String(part.Value ?? "");
      if (part.Type === "DblQuoted") return wordText(part);
      return "$";
    })
    .join("");
}

/** True when a command (its words, after any `VAR=value` prefix) may exit before reading all its input. */
export function stopsEarly(words: readonly string[]): boolean {
  const [command = "", ...args] = words;
  const name = command.split("/").pop() ?? "";
  const options = args.filter((arg) => arg.startsWith("-") && !arg.startsWith("--"));
  switch (name) {
    case "grep":
    case "egrep":
    case "fgrep":
      return (
        args.some(
          (arg) => ["--quiet", "--silent", "--files-with-matches", "--files-without-match"].includes(arg) || arg.startsWith("--max-count"),
        ) || options.some((option) => /^-[A-Za-z]*[qmlL]/.test(option))
      );
    case "head":
    case "read":
    case "true":
    case ":":
      return true;
    case "awk":
    case "gawk":
    case "mawk":
      // An `exit` in an END block runs after the whole input was read: only an earlier one stops early.
      return args.some((arg) => /\bexit\b/.test(arg.replace(/\bEND\s*\{[^}]*\}/g, "")));
    case "sed":
      // A `q`/`Q` command: after an address, a `;`, `{` or at the start of a script argument.
      return args.some((arg) => !arg.startsWith("-") && /(^|[;{}\s\d$/])[qQ]\s*\d*\s*(;|}|$)/.test(arg));
    default:
      return false;
  }
}

function walk(node: unknown, found: EarlyExitPipe[]): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child, found);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  const current = node as Node;
  if (current.Type === "BinaryCmd" && PIPE_OPERATORS.has(current.Op as number)) {
    const reader = current.Y as Node;
    const call = reader.Cmd as Node | undefined;
    if (call?.Type === "CallExpr") {
      const words = ((call.Args as unknown[] | undefined) ?? []).map(wordText);
      if (stopsEarly(words)) {
        found.push({ line: Number((reader.Position as Node | undefined)?.Line ?? 0), reader: words.join(" ") });
      }
    }
  }
  for (const value of Object.values(current)) walk(value, found);
}

/**
 * Every pipe into an early-exiting reader in a bash script, in source order.
 *
 * @throws Error when shfmt is missing or cannot parse the script (a syntax error is a finding too).
 */
export function earlyExitPipes(script: string): EarlyExitPipe[] {
  const shfmt = requireTool("shfmt");
  const parsed = spawnSync(shfmt, ["--language-dialect", "bash", "--to-json"], {
    input: script,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  if (parsed.status !== 0) throw new Error(`shfmt cannot parse the script: ${parsed.stderr}`);
  const found: EarlyExitPipe[] = [];
  walk(JSON.parse(parsed.stdout), found);
  return found.sort((a, b) => a.line - b.line);
}
