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
  /**
   * Seconds from the new primary's promotion (Patroni answering 200 on `/primary`, Redis reporting
   * `role:master`; polled every 100 ms) to HAProxy's stats showing it UP, for the systems behind HAProxy.
   */
  readonly secondsFromPromotionToRouted?: number;
  /** PostgreSQL crash: whether the etcd leader was the crashed node's member (etcd then restarts every lease at its full TTL). */
  readonly crashedEtcdLeader?: boolean;
}

/**
 * What one stall scenario measured: processes frozen (SIGSTOP) for a while and resumed (SIGCONT)
 * while a client writes, then watched for as long as a failover they caused could take to show.
 */
export interface StallResult {
  /** `postgres-node-stall`, `postgres-etcd-stall`, `redis-stall`. */
  readonly system: string;
  /** What was frozen, e.g. `db-master-01: patroni, postgres, etcd`. */
  readonly frozen: string;
  /** Seconds between SIGSTOP and SIGCONT, as measured. */
  readonly stalledSeconds: number;
  /** Seconds watched from the SIGSTOP on. */
  readonly watchedSeconds: number;
  /** The primary before the stall, and at the end of the watch. */
  readonly primaryBefore: string;
  readonly primaryAfter: string;
  /** Whether another node became primary at any time during the watch: a false failover. */
  readonly failedOver: boolean;
  /** Whether HAProxy's stats ever showed the primary not UP during the watch (its sessions were then cut). */
  readonly proxyMarkedPrimaryDown: boolean;
  /** The longest time without an acknowledged write during the watch, seconds. */
  readonly longestWritePauseSeconds: number;
  readonly acknowledgedWrites: number;
  /** Acknowledged writes missing from the primary at the end. */
  readonly acknowledgedLost: number;
}

/**
 * The longest interval in [from, to] without an acknowledgement, ms: from `from` to the first
 * acknowledgement, between consecutive ones, and from the last one to `to`. `times` are ms epochs
 * in any order; those outside [from, to] are ignored. Pure.
 */
export function longestPause(times: readonly number[], from: number, to: number): number {
  const inside = times.filter((time) => time >= from && time <= to).sort((a, b) => a - b);
  const points = [from, ...inside, to];
  let longest = 0;
  for (let index = 1; index < points.length; index++) longest = Math.max(longest, points[index] - points[index - 1]);
  return longest;
}

/**
 * What one node-replacement scenario measured (issue 15: a node killed, its data wiped, its step
 * run again); `npm run bench:failover` prints it as JSON.
 */
export interface ReplaceNodeResult {
  /** `redis`, `galera`, … */
  readonly system: string;
  readonly scenario: "replace-node";
  /** The node replaced. */
  readonly replaced: string;
  /** Seconds from the kill to the first write acknowledged on the client path. */
  readonly secondsToWriteAgain: number;
  readonly acknowledgedWrites: number;
  /** Acknowledged writes missing afterwards (on the primary, or on any Galera node). */
  readonly acknowledgedLost: number;
  /** Whether the replaced node came back in the cluster (a linked replica, a Synced member), in sync. */
  readonly rejoined: boolean;
  /** How it caught up, when the system says (`SST`, `full resync`). */
  readonly rejoinedBy?: string;
  /** Seconds the node's step took, from its start to its end. */
  readonly stepSeconds: number;
  /** Why it did not rejoin (the last error seen), when it did not. */
  readonly rejoinFailure?: string;
}
