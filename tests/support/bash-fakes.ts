import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { tempDir } from "./tools";

/**
 * Runs host-script code in real bash the way a step does (`set -euo pipefail`), with fake commands
 * first on PATH: each fake is a small bash script written to a fresh directory.
 */

/** A fake command: its name on PATH and its bash body. */
export type Fakes = Readonly<Record<string, string>>;

/** A directory holding one executable bash script per fake; put it first on PATH. */
export function fakeBin(fakes: Fakes): string {
  const dir = tempDir("fakes");
  for (const [name, body] of Object.entries(fakes)) {
    fs.writeFileSync(path.join(dir, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
  }
  return dir;
}

/**
 * What every run gets unless a test fakes it otherwise: the host is a VM, as a Hetzner server is
 * (this test machine may itself be a container), and `kb_diagnose` — the step preamble's function
 * (components/lib/remote.ts), which shadows this stand-in wherever a whole step is run — reports on stderr.
 */
const HOST_DEFAULTS: Fakes = {
  "systemd-detect-virt": "echo none\nexit 1",
  kb_diagnose: 'echo "$*" >&2',
};

/**
 * Runs `script` with `bash -c` under `set -euo pipefail`, the fakes first on PATH (over
 * {@link HOST_DEFAULTS}).
 *
 * @param env extra environment variables (PATH is set here).
 */
export function runBash(script: string, fakes: Fakes = {}, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const bin = fakeBin({ ...HOST_DEFAULTS, ...fakes });
  return spawnSync("bash", ["-c", `set -euo pipefail\n${script}`], {
    encoding: "utf8",
    timeout: 60_000,
    // A step's log goes to a scratch directory, never to this machine's /var/log/keybuzz.
    env: { ...process.env, KB_STEP_LOG_DIR: path.join(bin, "step-logs"), ...env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` },
  });
}
