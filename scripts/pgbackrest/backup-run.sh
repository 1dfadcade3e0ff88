# keybuzz-pgbackrest-backup TYPE (full | diff | incr): one pgBackRest backup of the stanza, run by
# the systemd timers on the repository host. One lock for every type (flock, waits up to 6 h), so
# a full and a differential never overlap; pgBackRest's stanza lock is the last guard. On success,
# the time is written for node_exporter's textfile collector (the "backup too old" alert).
type=${1:-}
case "$type" in
  full | diff | incr) ;;
  *)
    echo "usage: keybuzz-pgbackrest-backup full|diff|incr" >&2
    exit 2
    ;;
esac
exec 9>>"$KB_LOCK_FILE"
if ! flock -w 21600 9; then
  echo "pgbackrest backup: another backup held $KB_LOCK_FILE for 6 hours; $type backup not taken" >&2
  exit 75
fi
started=$(date +%s)
pgbackrest --config="$KB_PGBACKREST_CONFIG" --stanza="$KB_STANZA" --type="$type" backup
finished=$(date +%s)
# repo-host.sh created this file for postgres (the directory is root's): rewritten in place with one
# write, so node_exporter reads the old or the new content.
metric=$KB_TEXTFILE_DIR/keybuzz-backup-postgres-$type.prom
if [ -w "$metric" ]; then
  content=$(printf '%s\n' "# HELP keybuzz_backup_last_success_timestamp_seconds End of the last successful backup, Unix time." \
    "# TYPE keybuzz_backup_last_success_timestamp_seconds gauge" \
    "keybuzz_backup_last_success_timestamp_seconds{system=\"postgres\",type=\"$type\"} $finished" \
    "# HELP keybuzz_backup_last_duration_seconds Duration of the last successful backup." \
    "# TYPE keybuzz_backup_last_duration_seconds gauge" \
    "keybuzz_backup_last_duration_seconds{system=\"postgres\",type=\"$type\"} $((finished - started))")
  printf '%s\n' "$content" >"$metric"
fi
echo "pgbackrest backup: $type backup of stanza $KB_STANZA done in $((finished - started)) s"
