# pgbouncer_exporter on one haproxy node (components/observability/exporters sets the KB_* variables
# and the container functions above): (re)created when its spec or its pgpass changed, then its own
# endpoint must report PgBouncer's console reachable (`pgbouncer_up 1`) as the stats_users user.
: "${KB_NODE_IP:?}" "${KB_PORT:?}"

state=$(kb_pgbouncer_exporter_state)
if [ "$state" != "current" ] || [ "${#kb_changed[@]}" -gt 0 ]; then
  echo "pgbouncer-exporter: (re)starting on $KB_NODE_IP:$KB_PORT ($state)"
  kb_pgbouncer_exporter_run >/dev/null
fi

pgbouncer_reachable() {
  local metrics
  metrics=$(curl -fsS --max-time 5 "http://$KB_NODE_IP:$KB_PORT/metrics") || return 1
  [[ "$metrics" == *$'\npgbouncer_up 1'* ]]
}
kb_wait_until --logs pgbouncer-exporter 60 2 "pgbouncer-exporter: http://$KB_NODE_IP:$KB_PORT/metrics does not report pgbouncer_up 1" pgbouncer_reachable
echo "pgbouncer-exporter: serving http://$KB_NODE_IP:$KB_PORT/metrics, PgBouncer reachable"
