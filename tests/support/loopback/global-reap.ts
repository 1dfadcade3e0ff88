import { reapLoopbackDaemons } from "./reaper";

/** Jest globalSetup and globalTeardown of the integration suites: no daemon outlives a run. */
export default function reap(): void {
  const killed = reapLoopbackDaemons(true);
  if (killed > 0) console.log(`integration: killed ${killed} leftover loopback daemon process(es)`);
}
