/**
 * What one failover scenario measured: every system's scenario returns it, the integration tests
 * assert on it (correctness), and `npm run bench:failover` prints it (timings).
 */
export interface FailoverResult {
  /** `redis`, `postgres`, `postgres-switchover`, `galera`, … */
  readonly system: string;
  /** Seconds from the kill (or the switchover request) to the first write acknowledged on the client path. */
  readonly secondsToWriteAgain: number;
  /** Writes acknowledged on the client path during the scenario. */
  readonly acknowledgedWrites: number;
  /** Acknowledged writes missing from the new primary once the old one has rejoined. */
  readonly acknowledgedLost: number;
  /** The node killed (or switched away from). */
  readonly oldPrimary: string;
  /** The node serving writes afterwards. */
  readonly newPrimary: string;
  /** Whether the old node came back and rejoined (as a replica, or as a Synced Galera member), in sync. */
  readonly rejoinedAsReplica: boolean;
  /** How the old node caught up, when the system says (`pg_rewind`, `streaming`, `IST`, `SST`). */
  readonly rejoinedBy?: string;
  /** Why the old node did not rejoin (the last error seen), when it did not. */
  readonly rejoinFailure?: string;
}
