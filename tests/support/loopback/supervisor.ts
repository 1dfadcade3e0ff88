import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";

/**
 * Starts the real Debian daemons of a loopback cluster, each as its own Debian user, and stops
 * every one of them at the end, also when a test fails (the suites' afterAll); if the run itself
 * dies, the reaper (support/reaper.ts) kills what is left.
 */

/** Throws unless `address` is in 127.0.0.0/8: the suites never contact anything else. */
export function assertLoopback(address: string): void {
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)) throw new Error(`integration: ${address} is not a loopback address (127.0.0.0/8)`);
}

/**
 * Throws unless every IPv4 address in a rendered file is in 127.0.0.0/8: checked before a daemon
 * is started on it, so a render that ignored the loopback inventory never reaches the network.
 */
export function assertLoopbackText(file: string, content: string): void {
  for (const address of content.match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? []) {
    try {
      assertLoopback(address);
    } catch {
      throw new Error(`integration: ${file} names ${address}, not a loopback address; refusing to start a daemon on it`);
    }
  }
}

/** uid/gid of a local user from /etc/passwd (the Debian package creates it). */
export function userIds(user: string): { uid: number; gid: number } {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  if (!line) throw new Error(`integration: user ${user} does not exist (is its Debian package installed?)`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Creates `dir` (and parents) owned by `user`, mode 0700 unless given. */
export function ownedDir(dir: string, user: string, mode = 0o700): string {
  fs.mkdirSync(dir, { recursive: true, mode });
  const { uid, gid } = userIds(user);
  fs.chownSync(dir, uid, gid);
  fs.chmodSync(dir, mode);
  return dir;
}

/** Writes `content` to `file` owned by `user` with `mode`. */
export function ownedFile(file: string, content: string, user: string, mode = 0o600): string {
  fs.writeFileSync(file, content, { mode });
  const { uid, gid } = userIds(user);
  fs.chownSync(file, uid, gid);
  fs.chmodSync(file, mode);
  return file;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when `promise` settles within `ms`, false otherwise; leaves no timer behind. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined/false, for at
 * most `timeoutMs`; then throws naming `what` and the last error seen. A probe that never settles
 * (a client stuck on a half-open connection) is abandoned at the deadline.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let attempt = 0; attempt < Math.ceil(timeoutMs / intervalMs) + 1; attempt++) {
    let timer: NodeJS.Timeout | undefined;
    const bound = Math.max(deadline - Date.now(), intervalMs);
    const abandoned = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the probe was still running after ${bound} ms`)), bound);
    });
    try {
      const value = await Promise.race([probe(), abandoned]);
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      lastError = error;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const detail = lastError instanceof Error ? `: ${lastError.message}` : "";
  throw new Error(`integration: timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

/** Resolves true when a TCP connection to `address:port` opens within `timeoutMs`. */
export function portOpen(address: string, port: number, timeoutMs = 500): Promise<boolean> {
  assertLoopback(address);
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Waits until `address:port` accepts connections (bounded). */
export function waitForPort(address: string, port: number, timeoutMs = 30_000): Promise<boolean> {
  return waitFor(`${address}:${port} to accept connections`, () => portOpen(address, port), timeoutMs);
}

/** How to run one daemon. */
export interface DaemonSpec {
  /** Unique name in the supervisor, e.g. `redis-01`. */
  readonly name: string;
  /** Absolute path of the Debian binary. */
  readonly command: string;
  readonly args: readonly string[];
  /** Debian user the daemon runs as; root when omitted (for daemons that drop privileges themselves). */
  readonly user?: string;
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
}

interface Running {
  readonly spec: DaemonSpec;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/** Starts daemons (each in its own process group) and stops them all. */
export class Supervisor {
  private readonly running = new Map<string, Running>();
  private readonly specs = new Map<string, DaemonSpec>();

  /** Starts `spec` (a stopped daemon of the same name may be started again). */
  start(spec: DaemonSpec): void {
    if (this.isRunning(spec.name)) throw new Error(`integration: ${spec.name} is already running`);
    const log = fs.openSync(spec.logFile, "a");
    const ids = spec.user ? userIds(spec.user) : undefined;
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", ...spec.env },
      stdio: ["ignore", log, log],
      detached: true,
      uid: ids?.uid,
      gid: ids?.gid,
    });
    fs.closeSync(log);
    const exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    this.running.set(spec.name, { spec, child, exited });
    this.specs.set(spec.name, spec);
  }

  /** Starts again a daemon started earlier, with the same spec. */
  restart(name: string): void {
    const spec = this.specs.get(name);
    if (!spec) throw new Error(`integration: ${name} was never started`);
    this.start(spec);
  }

  /** Whether the daemon `name` was started and has not exited. */
  isRunning(name: string): boolean {
    const entry = this.running.get(name);
    return entry !== undefined && entry.child.exitCode === null && entry.child.signalCode === null;
  }

  /** The pid of the running daemon `name` (its process group leader), if it runs. */
  pid(name: string): number | undefined {
    return this.isRunning(name) ? this.running.get(name)?.child.pid : undefined;
  }

  /** The daemon's log so far (for failure messages). */
  log(name: string, lastLines = 40): string {
    const spec = this.specs.get(name);
    if (!spec || !fs.existsSync(spec.logFile)) return "";
    return fs.readFileSync(spec.logFile, "utf8").split("\n").slice(-lastLines).join("\n");
  }

  /** Sends `signal` to the daemon's process group and waits (bounded) for it to exit; SIGKILL after `graceMs`. */
  async stop(name: string, signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000): Promise<void> {
    const entry = this.running.get(name);
    if (!entry) return;
    this.running.delete(name);
    const pid = entry.child.pid;
    if (pid === undefined || entry.child.exitCode !== null || entry.child.signalCode !== null) return;
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-pid, sig);
      } catch {
        // already gone
      }
    };
    signalGroup(signal);
    if (!(await settlesWithin(entry.exited, graceMs))) {
      signalGroup("SIGKILL");
      await settlesWithin(entry.exited, 5_000);
    }
  }

  /**
   * Sends `signal` to the running daemon's process group and returns at once (SIGSTOP/SIGCONT: a
   * frozen node). Throws when the daemon is not running.
   */
  signal(name: string, signal: NodeJS.Signals): void {
    const pid = this.running.get(name)?.child.pid;
    if (pid === undefined || !this.isRunning(name)) throw new Error(`integration: ${name} is not running`);
    process.kill(-pid, signal);
  }

  /** SIGKILL: the crash of a node. */
  kill(name: string): Promise<void> {
    return this.stop(name, "SIGKILL");
  }

  /** Stops every daemon still running, in reverse start order. */
  async stopAll(): Promise<void> {
    for (const name of [...this.running.keys()].reverse()) await this.stop(name);
  }
}
