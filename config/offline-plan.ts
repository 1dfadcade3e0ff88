/**
 * How the configuration loader tells the offline plan (Pulumi's mock engine, `npm run plan`, the
 * jest tests) from a real `pulumi preview` / `up`: the mock engine puts a marker on `globalThis`
 * for the duration of one program run. Nothing else sets it: not an environment variable, not a
 * config key, so neither a stray shell export nor a stack file can turn a real run into a plan.
 * A global (under a registered symbol) rather than a module variable, because the mock engine
 * loads the program with a fresh module registry on every run.
 */

/** The marker's key in the global symbol registry. */
const OFFLINE_PLAN_MARKER = Symbol.for("keybuzz:offline-plan");

/** What the mock engine and the loader share while the offline plan runs. */
export interface OfflinePlanRun {
  /** Problems a real run would refuse, accepted by the plan; it prints them as warnings. */
  readonly warnings: string[];
  /**
   * The digest lock this run reads instead of config/lock.ts's `LOCK_FILE`; `null`: none (the
   * preflight's `--write-lock` plans the stack whatever a stale lock says, then replaces it).
   */
  readonly lockFile?: string | null;
}

type MarkedGlobal = typeof globalThis & { [OFFLINE_PLAN_MARKER]?: OfflinePlanRun };

/** The current offline plan run, or undefined in a real Pulumi run. */
export function currentOfflinePlan(): OfflinePlanRun | undefined {
  return (globalThis as MarkedGlobal)[OFFLINE_PLAN_MARKER];
}

/**
 * Marks the program run inside `run` as the offline plan and returns what it recorded. For the
 * mock engine only.
 *
 * @param lockFile see {@link OfflinePlanRun.lockFile}; undefined: the project's lock.
 */
export function asOfflinePlan<T>(run: () => T, lockFile?: string | null): { result: T; plan: OfflinePlanRun } {
  const plan: OfflinePlanRun = { warnings: [], lockFile };
  const marked = globalThis as MarkedGlobal;
  marked[OFFLINE_PLAN_MARKER] = plan;
  try {
    return { result: run(), plan };
  } finally {
    delete marked[OFFLINE_PLAN_MARKER];
  }
}
