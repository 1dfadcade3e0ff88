import { z } from "zod";

/**
 * PgBouncer's operator settings: its pools (spec 001 module 3, "PgBouncer"). They stay where the
 * stack files have always put them, `keybuzz:postgres.pgbouncer`: PgBouncer pools the PostgreSQL
 * cluster's connections and has no other setting, and a top-level `keybuzz:pgbouncer` key would
 * make every existing stack file wrong. So the schema lives here and `keybuzz:postgres`'s schema
 * embeds it (components/data/postgres/settings.ts); `parsePostgresSettings` validates it, naming
 * `keybuzz:postgres.pgbouncer.<field>`.
 */

/** Schema of `keybuzz:postgres.pgbouncer` (all keys optional). */
export const pgbouncerSettingsSchema = z
  .strictObject({
    /** `max_client_conn`: client connections PgBouncer accepts (spec 001: 1000). */
    maxClientConn: z.number().int().positive().default(1000),
    /** `default_pool_size`: server connections per database and user (spec 001: 25). */
    defaultPoolSize: z.number().int().positive().default(25),
    /** `reserve_pool_size`: extra server connections for a pool whose clients wait (spec 001: 5). */
    reservePoolSize: z.number().int().nonnegative().default(5),
    /** Prepared statements tracked per server connection in transaction mode (PgBouncer ≥ 1.21). */
    maxPreparedStatements: z.number().int().nonnegative().default(200),
  })
  .default({ maxClientConn: 1000, defaultPoolSize: 25, reservePoolSize: 5, maxPreparedStatements: 200 });

/** Validated `keybuzz:postgres.pgbouncer`. */
export type PgbouncerSettings = z.infer<typeof pgbouncerSettingsSchema>;
