# Verification of the RabbitMQ cluster (components/data/rabbitmq/render.ts sets the KB_* variables above):
# every node running, no partitions, and a quorum queue gets a member on every node.
: "${KB_NODE_COUNT:?}" "${KB_NODE_IP:?}" "${KB_MANAGEMENT_PORT:?}" "${KB_ADMIN_USER:?}" "${KB_MANAGED_DIR:?}"
rmq() { docker exec rabbitmq "$@"; }

cluster_whole() {
  rmq rabbitmq-diagnostics -q cluster_status --formatter json |
    jq -e --argjson n "$KB_NODE_COUNT" '(.running_nodes | length == $n) and (.partitions | length == 0) and (.alarms | length == 0)'
}
kb_wait_until 300 5 "rabbitmq verify: expected $KB_NODE_COUNT running nodes, no partitions, no alarms" cluster_whole || {
  rmq rabbitmq-diagnostics cluster_status >&2 || true
  exit 1
}
echo "rabbitmq verify: $KB_NODE_COUNT nodes running, no partitions, no alarms"

# A quorum queue declared through the management API lands on every node.
queue="keybuzz.verify.$(hostname)"
curl_config=$(mktemp)
trap 'rm -f "$curl_config"' EXIT
chmod 0600 "$curl_config"
printf 'user = "%s:%s"\n' "$KB_ADMIN_USER" "$(cat "$KB_MANAGED_DIR/admin-password")" >"$curl_config"
api="http://$KB_NODE_IP:$KB_MANAGEMENT_PORT/api/queues/%2F/$queue"
curl -fsS -K "$curl_config" -X PUT -H 'content-type: application/json' \
  -d '{"durable": true, "arguments": {"x-queue-type": "quorum"}}' "$api" >/dev/null
members=$(curl -fsS -K "$curl_config" "$api" | jq '.members | length')
curl -fsS -K "$curl_config" -X DELETE "$api" >/dev/null
if [ "$members" != "$KB_NODE_COUNT" ]; then
  echo "rabbitmq verify: the quorum queue has $members members, expected $KB_NODE_COUNT" >&2
  exit 1
fi
echo "rabbitmq verify: a quorum queue has $members members"
