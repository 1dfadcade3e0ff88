import { spawn } from "child_process";

/**
 * OpenSSH client calls from inside the tier's network namespace (`ip netns exec`), as root, with
 * the run's own key and known_hosts file: the way `pulumi up` reaches a server, minus the cloud.
 */

/** Where and how the runner logs in. */
export interface SshContext {
  /** Network namespace holding the test network (scripts/hosts/hosts.sh). */
  readonly netns: string;
  /** Private key file of the run (generated fresh, never committed). */
  readonly keyFile: string;
  /** known_hosts of the run: host keys are new each run and pinned on first use. */
  readonly knownHosts: string;
}

/** Result of one remote command. */
export interface SshResult {
  /** Exit status; null when the command was killed at its timeout. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** Wall time, milliseconds. */
  readonly millis: number;
}

/** Options of {@link ssh}. */
export interface SshOptions {
  /** Source address of the connection (`ssh -b`): the admin or a private address. */
  readonly from: string;
  /** Bytes written to the command's stdin (then closed). */
  readonly stdin?: string;
  /** Kill the client after this many seconds. */
  readonly timeoutSeconds: number;
  /** Login name; default root. */
  readonly user?: string;
  /** Key file instead of the run's (e.g. a key the host does not know, for fail2ban). */
  readonly keyFile?: string;
}

/**
 * Runs `command` on `address` over SSH and resolves with its result (never rejects on a non-zero
 * exit: the caller decides).
 */
export function ssh(context: SshContext, address: string, command: string, options: SshOptions): Promise<SshResult> {
  const args = [
    "netns",
    "exec",
    context.netns,
    "ssh",
    "-i",
    options.keyFile ?? context.keyFile,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    `UserKnownHostsFile=${context.knownHosts}`,
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-b",
    options.from,
    `${options.user ?? "root"}@${address}`,
    command,
  ];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("ip", args, { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutSeconds * 1000);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        code: timedOut ? null : code,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        timedOut,
        millis: Date.now() - started,
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.stdin ?? "");
  });
}
