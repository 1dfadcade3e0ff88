import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { ServerSpec } from "../../config";

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
  /** Absolute path on the host, e.g. `/etc/ssh/sshd_config.d/00-keybuzz.conf`. */
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

/** Where a step keeps its full log on the host: root only (directory 0700, files 0600). */
export const STEP_LOG_DIR = "/var/log/keybuzz/steps";
/**
 * Where a step keeps the markers of files it wrote but has not applied yet (root only, one folder
 * per step, removed when the step ends successfully): desired against applied state, so a retry
 * after a failed run still restarts what the file change needs (DESIGN.md, "Day-2 operations").
 */
export const PENDING_DIR = "/var/lib/keybuzz/pending";
/** How many logs of one step a host keeps (the newest); older ones are removed when a run starts. */
export const STEP_LOGS_KEPT = 10;
/** Default bound of a step, minutes: on the host (`timeout`) and as the provider's custom timeouts. */
export const DEFAULT_STEP_TIMEOUT_MINUTES = 20;
/** Seconds between `timeout`'s SIGTERM at the bound and its SIGKILL of whatever is left. */
export const DEFAULT_STEP_KILL_AFTER_SECONDS = 30;

// The provider ignores customTimeouts once a command runs, and on a failure its error text holds all
// of stdout/stderr whatever `logging` says (pulumi-command v1.2.1, provider/pkg/provider/remote/
// commandOutputs.go). So the script runs itself again under coreutils `timeout`, with both streams
// into a root-only log; the provider sees only a short diagnosis, or on success the step's output.
const RUNNER = `# Runs this script again under timeout(1), output into the step's log; replays the output on
# success, prints only a short diagnosis on failure. KB_STEP_LOG_DIR moves the log (tests only).
kb_step_run() {
  local dir=\${KB_STEP_LOG_DIR:-${STEP_LOG_DIR}} started=$SECONDS status=0 old_logs=() umask_before stamp
  local -a self
  if [ -n "\${BASH_EXECUTION_STRING:-}" ]; then
    self=(-c "$BASH_EXECUTION_STRING")
  elif [ -f "$0" ]; then
    self=("$0")
  else
    echo "keybuzz step $kb_step_title: run it with bash -c or from a file" >&2
    exit 2
  fi
  umask_before=$(umask)
  umask 077
  mkdir -p "$dir"
  chmod 0700 "$dir"
  shopt -s nullglob
  old_logs=("$dir/$kb_step_slug".*.log)
  shopt -u nullglob
  # Bounded retention: the names sort by start time; keep the newest ones, this run's included.
  while [ "\${#old_logs[@]}" -ge ${STEP_LOGS_KEPT} ]; do
    rm -f "\${old_logs[0]}" "\${old_logs[0]}".*
    old_logs=("\${old_logs[@]:1}")
  done
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  export KB_STEP_LOG="$dir/$kb_step_slug.$stamp.$$.log" KB_STEP_DIAGNOSIS="$dir/$kb_step_slug.$stamp.$$.log.diagnosis"
  : >"$KB_STEP_LOG"
  : >"$KB_STEP_LOG.stdout"
  : >"$KB_STEP_LOG.stderr"
  : >"$KB_STEP_DIAGNOSIS"
  umask "$umask_before"
  echo "keybuzz step $kb_step_title: bounded to $kb_step_bound_text on the host; log (root only): $KB_STEP_LOG" >&2
  exec 5> >(tee -a "$KB_STEP_LOG" >>"$KB_STEP_LOG.stdout")
  local out_pid=$!
  exec 6> >(tee -a "$KB_STEP_LOG" >>"$KB_STEP_LOG.stderr")
  local err_pid=$!
  timeout --kill-after="$kb_step_kill_after" "$kb_step_bound" bash "\${self[@]}" >&5 2>&6 5>&- 6>&- || status=$?
  exec 5>&- 6>&-
  wait "$out_pid" "$err_pid" || true
  if [ "$status" -eq 0 ]; then
    cat "$KB_STEP_LOG.stdout"
    cat "$KB_STEP_LOG.stderr" >&2
    rm -f "$KB_STEP_LOG.stdout" "$KB_STEP_LOG.stderr" "$KB_STEP_DIAGNOSIS"
    exit 0
  fi
  rm -f "$KB_STEP_LOG.stdout" "$KB_STEP_LOG.stderr"
  {
    if { [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; } && [ $((SECONDS - started)) -ge "$kb_step_bound" ]; then
      echo "keybuzz step $kb_step_title: stopped at its bound of $kb_step_bound_text (the step's timeoutMinutes): TERM, then KILL after $kb_step_kill_after s"
    else
      echo "keybuzz step $kb_step_title: failed with exit status $status"
    fi
    tail -n 10 "$KB_STEP_DIAGNOSIS" | cut -c1-300
    echo "full log (root only): $KB_STEP_LOG"
  } | tee -a "$KB_STEP_LOG" >&2
  rm -f "$KB_STEP_DIAGNOSIS"
  exit "$status"
}
if [ -z "\${KB_STEP_LOG:-}" ]; then
  kb_step_run
fi
# From here on: the step itself, under the bound, its output into the log.
# kb_diagnose MESSAGE: prints MESSAGE on stderr and keeps it for the short diagnosis of a failed
# step (the provider's error text): never put a secret in MESSAGE.
kb_diagnose() {
  local line=\${*//$'\\n'/ }
  echo "$line" >&2
  printf '%s\\n' "\${line:0:300}" >>"$KB_STEP_DIAGNOSIS"
}
# What ended the step: the failing command (its text from this script, never expanded values).
set -E
kb_err_line=0
kb_err_command=
trap 'kb_err_line=$LINENO kb_err_command=$BASH_COMMAND' ERR
kb_step_ended() {
  local status=$1 command=\${2//$'\\n'/ }
  if [ "$status" -eq 0 ]; then
    # The step did everything it had to: what it wrote is applied now (kb_is_changed).
    rm -rf "$kb_pending_dir"
    return 0
  fi
  if [ "$2" = "$kb_err_command" ]; then
    # A function that failed by \`return N\`: bash reports the return, and the line of the call.
    if [[ $command == return* ]] && [ -n "\${BASH_EXECUTION_STRING:-}" ]; then
      command=$(sed -n "\${kb_err_line}p" <<<"$BASH_EXECUTION_STRING")
      command=\${command#"\${command%%[![:space:]]*}"}
    fi
    printf 'failed at line %s: %s\\n' "$kb_err_line" "\${command:0:240}" >>"$KB_STEP_DIAGNOSIS"
  else
    printf 'ended by: %s\\n' "\${command:0:240}" >>"$KB_STEP_DIAGNOSIS"
  fi
}
trap 'kb_step_ended $? "$BASH_COMMAND"' EXIT
# At the bound, timeout(1) sends TERM: name what was running.
kb_step_terminated() {
  local command=\${1//$'\\n'/ }
  printf 'was running: %s\\n' "\${command:0:240}" >>"$KB_STEP_DIAGNOSIS"
  trap - EXIT
  exit 143
}
trap 'kb_step_terminated "$BASH_COMMAND"' TERM`;

const HELPERS = `# The last command of a pipeline runs in this shell ("... | kb_write PATH"), so what kb_write records
# (kb_changed) is not lost with a subshell.
shopt -s lastpipe
# kb_write PATH MODE OWNER < content: replace PATH atomically unless it already has this content.
# New content leaves a marker (root only) that only a successful end of this step removes, so a
# step that failed after writing a file still applies it on its retry (kb_is_changed).
kb_changed=()
kb_pending_dir=\${KB_STEP_LOG_DIR:+$KB_STEP_LOG_DIR.pending}
kb_pending_dir=\${kb_pending_dir:-${PENDING_DIR}}/$kb_step_slug
kb_pending_marker() {
  local digest
  digest=$(printf '%s' "$1" | sha256sum)
  printf '%s/%s' "$kb_pending_dir" "\${digest%% *}"
}
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
    (umask 077 && mkdir -p "$kb_pending_dir")
    printf '%s\\n' "$path" >"$(kb_pending_marker "$path")"
    mv -f "$tmp" "$path"
    kb_changed+=("$path")
  fi
}
# kb_is_changed PATH: true when PATH has content the step has not applied yet: written with new
# content in this run, or in an earlier run of this step that did not end successfully.
kb_is_changed() {
  local changed
  for changed in "\${kb_changed[@]}"; do
    if [ "$changed" = "$1" ]; then return 0; fi
  done
  [ -e "$(kb_pending_marker "$1")" ]
}
# kb_wait_until [--logs CONTAINER] SECONDS INTERVAL MESSAGE COMMAND [ARGS]: runs COMMAND (output
# discarded) every INTERVAL seconds until it succeeds. After SECONDS it reports MESSAGE (kb_diagnose)
# and returns 1 (which ends the step); with --logs, the container's last 50 log lines go to the
# step's log only (they may hold anything).
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
      if [ -n "$logs" ]; then
        kb_diagnose "$message (waited \${seconds} s; the last 50 lines of container $logs are in the log)"
        { echo "---- docker logs --tail 50 $logs"; docker logs --tail 50 "$logs" 2>&1 || true; echo "---- end of docker logs"; } >>"$KB_STEP_LOG"
      else
        kb_diagnose "$message (waited \${seconds} s)"
      fi
      return 1
    fi
    sleep "$interval"
  done
}`;

/** How long a step may run on its host (coreutils `timeout`). */
export interface StepBound {
  /** Bound of the whole step, minutes (fractions allowed); default {@link DEFAULT_STEP_TIMEOUT_MINUTES}. */
  readonly timeoutMinutes?: number;
  /** Seconds from the bound's SIGTERM to SIGKILL; default {@link DEFAULT_STEP_KILL_AFTER_SECONDS}. */
  readonly killAfterSeconds?: number;
}

/** "20 min" for whole minutes, else "75 s". */
function formatSeconds(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

/**
 * Renders the whole script of a step: strict bash; a runner that re-runs the script under
 * `timeout` (bounded by `bound`) with its output in a root-only log under {@link STEP_LOG_DIR},
 * replayed on success and replaced by a short diagnosis on failure (step, exit status, failing
 * command, `kb_wait_until`/`kb_diagnose` messages, the log's path); then the file writes
 * (plain files inline as quoted heredocs, secret-bearing files read as base64 lines from stdin,
 * in order), then `body`. Pure: the same inputs give the same text, which is what re-runs a step
 * when it changes.
 *
 * @param title names the step and its host in every message, e.g. `redis-01-redis on redis-01`.
 * @throws Error when `body` holds a secret placeholder (secrets go through files only), or a file
 *   path is not absolute, or a file contains the heredoc terminator line, or the bound is not positive.
 */
export function renderStepScript(title: string, files: readonly HostFile[], body: string, bound: StepBound = {}): string {
  if (secretKeysIn(body).length > 0) {
    throw new Error(`step "${title}": the script body holds a secret placeholder; write the secret to a root-only file instead`);
  }
  const timeoutMinutes = bound.timeoutMinutes ?? DEFAULT_STEP_TIMEOUT_MINUTES;
  const killAfterSeconds = bound.killAfterSeconds ?? DEFAULT_STEP_KILL_AFTER_SECONDS;
  const boundSeconds = Math.max(1, Math.round(timeoutMinutes * 60));
  if (!(timeoutMinutes > 0) || !Number.isInteger(killAfterSeconds) || killAfterSeconds < 1) {
    throw new Error(`step "${title}": the bound must be a positive number of minutes and killAfterSeconds a positive integer`);
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
    `kb_step_title=${shellQuote(title)}`,
    `kb_step_slug=${title.replace(/[^A-Za-z0-9_-]+/g, "-")}`,
    `kb_step_bound=${boundSeconds}`,
    `kb_step_bound_text=${shellQuote(formatSeconds(boundSeconds))}`,
    `kb_step_kill_after=${killAfterSeconds}`,
    RUNNER,
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
  /**
   * Upper bound of the step, minutes; default 20. Enforced on the host (`timeout`, then SIGKILL
   * after {@link DEFAULT_STEP_KILL_AFTER_SECONDS}); also the provider's create/update timeouts.
   */
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
  const timeoutMinutes = args.timeoutMinutes ?? DEFAULT_STEP_TIMEOUT_MINUTES;
  const script = renderStepScript(`${name} on ${args.host.spec.name}`, files, args.script, { timeoutMinutes });
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
  const timeout = `${timeoutMinutes}m`;
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
