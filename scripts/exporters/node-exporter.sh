# node_exporter on one server (components/observability/exporters sets the KB_* variables and the
# container functions above): the textfile directory and the hourly certificate scan first, then
# the container, then a scrape of its own endpoint on the private address.
: "${KB_NODE_IP:?}" "${KB_PORT:?}" "${KB_TEXTFILE_DIR:?}"

install -d -m 0755 "$KB_TEXTFILE_DIR"
systemctl daemon-reload
systemctl enable --now keybuzz-cert-expiry.timer >/dev/null 2>&1
systemctl start keybuzz-cert-expiry.service

state=$(kb_node_exporter_state)
if [ "$state" != "current" ]; then
  echo "node-exporter: (re)starting on $KB_NODE_IP:$KB_PORT ($state)"
  kb_node_exporter_run
fi

node_exporter_metrics() {
  local metrics
  metrics=$(curl -fsS --max-time 5 "http://$KB_NODE_IP:$KB_PORT/metrics") || return 1
  [[ "$metrics" == *"node_exporter_build_info"* && "$metrics" == *"node_textfile_mtime_seconds"* ]]
}
kb_wait_until --logs node-exporter 60 2 "node-exporter: http://$KB_NODE_IP:$KB_PORT/metrics has no node or textfile metrics" node_exporter_metrics
echo "node-exporter: serving http://$KB_NODE_IP:$KB_PORT/metrics"
