import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { ConfigError, formatZodError } from "../../../config/errors";

/**
 * Settings of the Redis module (spec 001 module 4; DESIGN.md "Redis routing"): the operator's
 * stack config `keybuzz:redis`, validated by `config/` before any resource, and the per-node values
 * redis.conf / sentinel.conf are rendered from.
 */

/**
 * Sentinel failover profiles: `down-after-milliseconds` is how long a master may leave a PING
 * unanswered before a Sentinel calls it subjectively down (Sentinel docs, sentinel.conf), so it is
 * both the detection time of a crash and the longest master stall ridden out without a failover
 * (a little less: Sentinel checks every 100 ms, and a resumed server first answers the PINGs
 * queued during the stall). Crash RTO ≈ down-after − up to 1 s (the PING period) + ~1.5 s of
 * agreement, election and promotion + ≤ 0.75 s of HAProxy checks.
 */
export const SENTINEL_PROFILES = {
  /** Default: crash RTO ≈ 3–4 s; rides out master stalls somewhat shorter than 2 s (issue 18's 1.5 s: measured, docs/redis.md). */
  fast: { downAfterMilliseconds: 2000 },
  /** Spec 001 module 4: crash RTO ≈ 6–7 s; rides out master stalls somewhat shorter than 5 s. */
  standard: { downAfterMilliseconds: 5000 },
} as const;

/** Name of a {@link SENTINEL_PROFILES} entry. */
export type SentinelProfileName = keyof typeof SENTINEL_PROFILES;

/** Operator-tunable settings, stack config `keybuzz:redis` (all optional). */
export interface RedisSettings {
  /** Share of the server's memory given to `maxmemory`, percent (10–90). Default 60: room for the AOF-rewrite fork. */
  readonly maxmemoryPercent: number;
  /** The Sentinel profile ({@link SENTINEL_PROFILES}). Default `fast`. */
  readonly failoverProfile: SentinelProfileName;
  /** Sentinel `down-after-milliseconds`, ms: the profile's unless set explicitly (1000–60000). */
  readonly downAfterMilliseconds: number;
  /** Sentinel `failover-timeout`, ms. Default 60000 (spec 001 module 4). */
  readonly failoverTimeoutMilliseconds: number;
}

const settingsSchema = z
  .strictObject({
    maxmemoryPercent: z.number().int().min(10).max(90).default(60),
    failoverProfile: z.enum(["fast", "standard"]).default("fast"),
    downAfterMilliseconds: z.number().int().min(1000).max(60000).optional(),
    failoverTimeoutMilliseconds: z.number().int().min(10000).max(600000).default(60000),
  })
  .transform((settings): RedisSettings => ({
    ...settings,
    downAfterMilliseconds: settings.downAfterMilliseconds ?? SENTINEL_PROFILES[settings.failoverProfile].downAfterMilliseconds,
  }));

/**
 * Validates the `keybuzz:redis` stack config (undefined = all defaults).
 *
 * @throws {ConfigError} naming the bad key, e.g. `keybuzz:redis.maxmemoryPercent`.
 */
export function parseRedisSettings(raw: unknown): RedisSettings {
  const parsed = settingsSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "keybuzz:redis."));
  return parsed.data;
}

/** The module's credentials (`PlatformSecrets.redis`), every value secret. */
export interface RedisSecrets {
  /** `PlatformSecrets.redis.password`: `requirepass`/`masterauth`, Sentinel's `auth-pass`, HAProxy's AUTH. */
  readonly password: pulumi.Input<string>;
  /** `PlatformSecrets.redis.sentinel`: the Sentinels' own `requirepass` and `sentinel-pass`. */
  readonly sentinelPassword: pulumi.Input<string>;
  /** `PlatformSecrets.redis.exporter`: redis_exporter's ACL user, on Redis and on Sentinel. */
  readonly exporterPassword: pulumi.Input<string>;
}

/** Everything a redis.conf / sentinel.conf depends on besides the node; defaults are production values. */
export interface RedisDaemonSettings {
  /** Redis port. Default 6379. */
  readonly port: number;
  /** Sentinel port. Default 26379. */
  readonly sentinelPort: number;
  /** Name Sentinel monitors the master under. Default `kb-redis-master` (spec 001). */
  readonly masterName: string;
  /** Sentinels that must agree the master is down. Default 2 of 3 (spec 001). */
  readonly quorum: number;
  /** `down-after-milliseconds`, ms. Default 2000 (profile `fast`, {@link SENTINEL_PROFILES}). */
  readonly downAfterMilliseconds: number;
  /** `failover-timeout`, ms. Default 60000. */
  readonly failoverTimeoutMilliseconds: number;
  /** `parallel-syncs`. Default 1. */
  readonly parallelSyncs: number;
  /** `maxmemory`, MB. Production derives it from the server type ({@link maxmemoryMb}). */
  readonly maxmemoryMb: number;
  /** Redis `dir` (AOF and RDB) as the daemon sees it. Default `/data` (the container's volume). */
  readonly dataDir: string;
  /** Sentinel working `dir`. Default `/tmp` (spec 001; Sentinel keeps its state in its config file). */
  readonly sentinelDir: string;
  /** RDB `save` points, [seconds, changes]. Default 900 1 and 300 10 (spec 001). */
  readonly savePoints: readonly (readonly [number, number])[];
}

/** Production defaults of {@link RedisDaemonSettings} (maxmemory is per server type). */
export const DEFAULT_REDIS_DAEMON_SETTINGS: Omit<RedisDaemonSettings, "maxmemoryMb"> = {
  port: 6379,
  sentinelPort: 26379,
  masterName: "kb-redis-master",
  quorum: 2,
  downAfterMilliseconds: SENTINEL_PROFILES.fast.downAfterMilliseconds,
  failoverTimeoutMilliseconds: 60000,
  parallelSyncs: 1,
  dataDir: "/data",
  sentinelDir: "/tmp",
  savePoints: [
    [900, 1],
    [300, 10],
  ],
};

/** `maxmemory` in MB for a server: `percent` of its memory (GB), rounded down. Pure. */
export function maxmemoryMb(memoryGb: number, percent: number): number {
  return Math.floor((memoryGb * 1024 * percent) / 100);
}

/**
 * The daemon settings of a node with `memoryGb` of memory under the operator's `settings`: the
 * production defaults with Sentinel's timings and `maxmemory` from `settings`. Pure.
 */
export function redisDaemonSettings(settings: RedisSettings, memoryGb: number): RedisDaemonSettings {
  return {
    ...DEFAULT_REDIS_DAEMON_SETTINGS,
    downAfterMilliseconds: settings.downAfterMilliseconds,
    failoverTimeoutMilliseconds: settings.failoverTimeoutMilliseconds,
    maxmemoryMb: maxmemoryMb(memoryGb, settings.maxmemoryPercent),
  };
}
