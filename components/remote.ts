import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { ServerSpec } from "../config";

/**
 * The one place that builds `remote.Command`s (DESIGN.md, "Remote steps"): every step on a host
 * goes through {@link remoteStep}, which applies the safe defaults so modules do not repeat them.
 */

/** A server as the remote steps see it: its inventory entry, the Hetzner resource, how to log in. */
export interface Host {
  readonly spec: ServerSpec;
  /** The Hetzner server; steps are `deletedWith` it, so `pulumi destroy` never runs them. */
  readonly server: hcloud.Server;
  /** SSH as root to the public IPv4 (opened to the admin CIDRs only), with retries while it boots. */
  readonly connection: command.types.input.remote.ConnectionArgs;
}

/** A file a step writes on its host. */
export interface HostFile {
  /** Absolute path on the host, e.g. `/etc/ssh/sshd_config.d/99-keybuzz.conf`. */
  readonly path: string;
  /**
   * Rendered text. Secret values appear only as {@link secretRef} placeholders; the step replaces
   * them at the last moment and sends the file through stdin, never in the visible command.
   */
  readonly content: string;
  /** Octal mode; default `0644`, forced to `0600` or stricter when the file holds a secret. */
  readonly mode?: string;
  /** `user:group` (names or numeric ids); default `root:root`. */
  readonly owner?: string;
}

/** Placeholder for the secret `key` of a step's `secrets` inside a rendered file. */
export function secretRef(key: string): string {
  return `{{secret:${key}}}`;
}

const SECRET_PLACEHOLDER = /\{\{secret:([A-Za-z0-9_-]+)\}\}/g;
const HEREDOC_END = "KEYBUZZ_EOF";

/** Keys of the secret placeholders used in a rendered text, in order of first use. */
export function secretKeysIn(text: string): string[] {
  return [...new Set([...text.matchAll(SECRET_PLACEHOLDER)].map((match) => match[1]))];
}

/** Replaces every {@link secretRef} placeholder with its value. @throws Error for a key without value. */
export function fillSecrets(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(SECRET_PLACEHOLDER, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`no value for secret placeholder "${key}"`);
    return value;
  });
}

/** sha256 of a text, hex; used as the visible fingerprint of secret-bearing files. */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function withFinalNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}

const HELPERS = `# kb_write PATH MODE OWNER < content: replace PATH atomically unless it already has this content.
kb_changed=()
kb_write() {
  local path=$1 mode=$2 owner=$3 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
    kb_changed+=("$path")
  fi
}
# kb_is_changed PATH: true when this run wrote PATH with new content.
kb_is_changed() {
  local changed
  for changed in "\${kb_changed[@]}"; do
    if [ "$changed" = "$1" ]; then return 0; fi
  done
  return 1
}
# kb_wait_until [--logs CONTAINER] SECONDS INTERVAL MESSAGE COMMAND [ARGS]: runs COMMAND (output
# discarded) every INTERVAL seconds until it succeeds. After SECONDS it prints MESSAGE and, with
# --logs, the container's last 50 log lines on stderr, and returns 1 (which ends the step).
kb_wait_until() {
  local logs=""
  if [ "$1" = --logs ]; then
    logs=$2
    shift 2
  fi
  local seconds=$1 interval=$2 message=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$message (waited \${seconds} s)" >&2
      if [ -n "$logs" ]; then docker logs --tail 50 "$logs" >&2 || true; fi
      return 1
    fi
    sleep "$interval"
  done
}`;

/**
 * Renders the whole script of a step: strict bash, the file writes (plain files inline as quoted
 * heredocs, secret-bearing files read as base64 lines from stdin, in order), then `body`.
 * Pure: the same inputs give the same text, which is what re-runs a step when it changes.
 *
 * @throws Error when `body` holds a secret placeholder (secrets go through files only), or a file
 *   path is not absolute, or a file contains the heredoc terminator line.
 */
export function renderStepScript(title: string, files: readonly HostFile[], body: string): string {
  if (secretKeysIn(body).length > 0) {
    throw new Error(`step "${title}": the script body holds a secret placeholder; write the secret to a root-only file instead`);
  }
  const writes = files.map((file) => {
    if (!file.path.startsWith("/")) throw new Error(`step "${title}": ${file.path} is not an absolute path`);
    const content = withFinalNewline(file.content);
    const owner = file.owner ?? "root:root";
    if (secretKeysIn(content).length > 0) {
      const mode = file.mode && /^0?[0-7]00$/.test(file.mode) ? file.mode : "0600";
      return `# ${file.path}: holds secrets, template sha256 ${sha256(content)}\nIFS= read -r kb_line\nprintf '%s' "$kb_line" | base64 -d | kb_write ${file.path} ${mode} ${owner}`;
    }
    if (content.split("\n").includes(HEREDOC_END)) {
      throw new Error(`step "${title}": ${file.path} contains the line ${HEREDOC_END}`);
    }
    return `kb_write ${file.path} ${file.mode ?? "0644"} ${owner} <<'${HEREDOC_END}'\n${content}${HEREDOC_END}`;
  });
  return [
    "#!/usr/bin/env bash",
    `# KeyBuzz step: ${title}`,
    "set -euo pipefail",
    "export DEBIAN_FRONTEND=noninteractive",
    HELPERS,
    ...writes,
    "# nothing below reads the secrets channel",
    "exec 0</dev/null",
    body.trim(),
    "",
  ].join("\n");
}

/** What a step lands on its host, kept for the offline plan's `--out` and for review. */
export interface PlannedStep {
  readonly host: string;
  readonly step: string;
  readonly script: string;
  readonly files: readonly HostFile[];
}

/** Every step declared in this process, in declaration order (read by `npm run plan`). */
export const plannedSteps: PlannedStep[] = [];

/** Arguments of {@link remoteStep}. */
export interface RemoteStepArgs {
  /** Host the step runs on, as root. */
  readonly host: Host;
  /** Files written before `script` runs. */
  readonly files?: readonly HostFile[];
  /** Bash body (idempotent: a re-run on a converged host changes nothing). */
  readonly script: string;
  /** Values of the {@link secretRef} placeholders used in `files`, by key. */
  readonly secrets?: Readonly<Record<string, pulumi.Input<string>>>;
  /** Upper bound for create/update, minutes; default 20. */
  readonly timeoutMinutes?: number;
  /** Extra inputs whose change re-runs the step (never secret values). */
  readonly triggers?: pulumi.Input<unknown>[];
}

/**
 * Declares one step on a host: a `remote.Command` with the project's safe defaults —
 * secrets only through stdin (and only as whole files), `logging: "none"` and secret
 * stdout/stderr when secrets are near, no previous output in the environment, `deletedWith` the
 * server, create/update timeouts, and a re-run whenever the rendered script or a template changes.
 *
 * @param name resource name, unique in the stack (e.g. `redis-01-redis`).
 * @param opts `parent` and `dependsOn` of the step; `deletedWith` and timeouts are set here.
 * @throws Error when a placeholder has no value in `secrets` (a programming error, at declaration time).
 */
export function remoteStep(name: string, args: RemoteStepArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
  const files = args.files ?? [];
  const script = renderStepScript(`${name} on ${args.host.spec.name}`, files, args.script);
  const secretFiles = files.filter((file) => secretKeysIn(file.content).length > 0);
  const neededKeys = [...new Set(secretFiles.flatMap((file) => secretKeysIn(file.content)))];
  const secrets = args.secrets ?? {};
  const missing = neededKeys.filter((key) => secrets[key] === undefined);
  if (missing.length > 0) throw new Error(`step ${name}: no value given for secret placeholder(s) ${missing.join(", ")}`);
  plannedSteps.push({ host: args.host.spec.name, step: name, script, files });

  const stdin =
    secretFiles.length === 0
      ? undefined
      : pulumi.secret(
          pulumi
            .all(Object.fromEntries(neededKeys.map((key) => [key, secrets[key]])))
            .apply(
              (values) =>
                secretFiles.map((file) => Buffer.from(fillSecrets(withFinalNewline(file.content), values)).toString("base64")).join("\n") +
                "\n",
            ),
        );
  const timeout = `${args.timeoutMinutes ?? 20}m`;
  return new command.remote.Command(
    name,
    {
      connection: args.host.connection,
      create: `bash -c ${shellQuote(script)}`,
      stdin,
      logging: secretFiles.length > 0 ? "none" : "stdoutAndStderr",
      addPreviousOutputInEnv: false,
      triggers: args.triggers,
    },
    {
      ...opts,
      deletedWith: args.host.server,
      additionalSecretOutputs: ["stdout", "stderr"],
      customTimeouts: { create: timeout, update: timeout },
    },
  );
}

/** Single-quotes a text for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
