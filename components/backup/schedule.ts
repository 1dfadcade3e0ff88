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

/** What {@link renderScheduledBackupUnits} needs of one backup job. */
export interface ScheduledBackup {
  /** The service's description (systemd.unit(5) `Description=`). */
  readonly description: string;
  /** The timer's description. */
  readonly timerDescription: string;
  /** The script the service runs (an absolute path, with its arguments). */
  readonly execStart: string;
  /** The timer's `OnCalendar=` ({@link onCalendar}). */
  readonly schedule: string;
}

/**
 * A backup's systemd units, `<unit>.service` and `<unit>.timer`: a oneshot service (systemd never
 * starts a oneshot twice at once, so runs never overlap) after the network and Docker, and a
 * persistent timer (a run missed while the host was down happens at boot) with up to 60 s of
 * random delay. Pure.
 */
export function renderScheduledBackupUnits(unit: string, backup: ScheduledBackup): Record<string, string> {
  return {
    [`${unit}.service`]: [
      "[Unit]",
      `Description=${backup.description}`,
      "After=network-online.target docker.service",
      "",
      "[Service]",
      "Type=oneshot",
      `ExecStart=${backup.execStart}`,
      "",
    ].join("\n"),
    [`${unit}.timer`]: [
      "[Unit]",
      `Description=${backup.timerDescription}`,
      "",
      "[Timer]",
      `OnCalendar=${backup.schedule}`,
      "Persistent=true",
      "RandomizedDelaySec=60",
      "",
      "[Install]",
      "WantedBy=timers.target",
      "",
    ].join("\n"),
  };
}
