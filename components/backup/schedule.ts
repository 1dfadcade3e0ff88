import { z } from "zod";

/**
 * A systemd calendar event (`OnCalendar=`, systemd.time(7) "Calendar Events"), e.g.
 * `Sun *-*-* 01:00:00`: the schedules of every backup module. Only the characters systemd's syntax
 * uses, one line; `systemd-analyze calendar` is the full check (tests/backup/pgbackrest.tools.test.ts
 * runs it on the defaults).
 */
export const onCalendar = z
  .string()
  .min(1)
  .regex(/^[A-Za-z0-9*.,:/~ +-]+$/, "a systemd OnCalendar expression (systemd.time(7)), e.g. 'Sun *-*-* 01:00:00'");
