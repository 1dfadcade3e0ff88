# postgres_exporter on one DB node (components/observability/exporters sets the KB_* variables and
# the container functions above): (re)created when its spec or its files changed, then its own
# endpoint must report PostgreSQL reachable (`pg_up 1`) with the role's credentials.
: "${KB_NODE_IP:?}" "${KB_PORT:?}"

state=$(kb_postgres_exporter_state)
if [ "$state" != "current" ] || [ "${#kb_changed[@]}" -gt 0 ]; then
  echo "postgres-exporter: (re)starting on $KB_NODE_IP:$KB_PORT ($state)"
  kb_postgres_exporter_run >/dev/null
fi

postgres_reachable() {
  local metrics
  metrics=$(curl -fsS --max-time 5 "http://$KB_NODE_IP:$KB_PORT/metrics") || return 1
  [[ "$metrics" == *$'\npg_up 1'* ]]
}
kb_wait_until --logs postgres-exporter 60 2 "postgres-exporter: http://$KB_NODE_IP:$KB_PORT/metrics does not report pg_up 1" postgres_reachable
echo "postgres-exporter: serving http://$KB_NODE_IP:$KB_PORT/metrics, PostgreSQL reachable"
