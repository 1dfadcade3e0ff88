import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * The last line of defence against leaked daemons. Every loopback cluster lives in a directory
 * `<tmpdir>/keybuzz-it-*` ({@link clusterDirPrefix}), and every process the suites start names it
 * in its command line or its environment (config file, data dir, `ETCD_DATA_DIR`, …) — PostgreSQL
 * postmasters that Patroni detaches into their own session included. {@link reapLoopbackDaemons}
 * SIGKILLs every such process. Jest's globalSetup (leftovers of an interrupted run) and
 * globalTeardown (this run) call it, and so does bench-failover on exit and on signals: an `exit`
 * hook inside a jest test file never fires, because jest gives each test file its own `process`.
 */

/** Path prefix of every loopback cluster directory. */
export function clusterDirPrefix(): string {
  return path.join(os.tmpdir(), "keybuzz-it-");
}

/** Whether process `pid` names a loopback cluster directory in its command line or environment. */
function belongsToLoopbackCluster(pid: number, prefix: string): boolean {
  for (const file of ["cmdline", "environ"]) {
    try {
      if (fs.readFileSync(`/proc/${pid}/${file}`, "latin1").includes(prefix)) return true;
    } catch {
      // gone, or not ours to read
    }
  }
  return false;
}

/**
 * SIGKILLs every process of a loopback cluster (three passes, for processes forked meanwhile) and,
 * with `removeDirs`, deletes the cluster directories. Returns how many processes were killed.
 */
export function reapLoopbackDaemons(removeDirs = false): number {
  const prefix = clusterDirPrefix();
  let killed = 0;
  for (let pass = 0; pass < 3; pass++) {
    const victims = fs
      .readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number)
      .filter((pid) => pid !== process.pid && belongsToLoopbackCluster(pid, prefix));
    if (victims.length === 0) break;
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
        killed += 1;
      } catch {
        // already gone
      }
    }
  }
  if (removeDirs) {
    for (const entry of fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith(path.basename(prefix)))) {
      fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
    }
  }
  return killed;
}
