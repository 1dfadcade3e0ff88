# Service exporters on one host (components/observability/exporters renders the container functions
# above and one kb_service_exporter call per exporter below).

# kb_service_exporter CONTAINER URL UP_METRIC [FILE...]: (re)starts the container when its spec
# changed or one of its credentials files was rewritten (Docker reads env files and the image reads
# its password files only at start), then waits until its endpoint reports `UP_METRIC 1`: the
# exporter reaches its service as its user.
kb_service_exporter() {
  local container=$1 url=$2 up_metric=$3 fn state file restart=
  shift 3
  fn=${container//-/_}
  state=$("kb_${fn}_state")
  [ "$state" = "current" ] || restart=1
  for file in "$@"; do
    if kb_is_changed "$file"; then restart=1; fi
  done
  if [ -n "$restart" ]; then
    echo "$container: (re)starting ($state)"
    "kb_${fn}_run" >/dev/null
  fi
  kb_wait_until --logs "$container" 90 2 "$container: $url does not report $up_metric 1" kb_exporter_reports_up "$url" "$up_metric"
  echo "$container: serving $url ($up_metric 1)"
}

# kb_exporter_reports_up URL METRIC: the scrape holds the line `METRIC 1`.
kb_exporter_reports_up() {
  local metrics
  metrics=$(curl -fsS --max-time 10 "$1") || return 1
  grep -qx "$2 1" <<<"$metrics"
}
