# PgBouncer on this haproxy host (after check-version.sh): kb_pgbouncer_state / kb_pgbouncer_run
# come from the container lifecycle above (components/lib/container.ts).
# PgBouncer reads its files at start: recreate it when they changed in this run, too.
if [ "$(kb_pgbouncer_state)" != current ] || [ "${#kb_changed[@]}" -gt 0 ]; then
  kb_pgbouncer_run >/dev/null
fi
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$KB_PGBOUNCER_PORT"); }
kb_wait_until --logs pgbouncer 60 2 "PgBouncer: port $KB_PGBOUNCER_PORT not listening" listening
echo "PgBouncer: listening on $KB_PGBOUNCER_PORT"
