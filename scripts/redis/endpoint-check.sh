# End-to-end check of Redis through the load balancer (components/data/redis/render.ts sets the
# KB_* variables above): a key written through KB_ADDRESS:KB_PORT reads back, so HAProxy routes
# clients to a master that takes writes. Runs on a Redis node: its image has redis-cli and its
# managed redis.conf has the password.
: "${KB_ADDRESS:?}" "${KB_PORT:?}" "${KB_IMAGE:?}" "${KB_MANAGED_DIR:?}"
REDISCLI_AUTH=$(awk '$1 == "requirepass" { print $2 }' "$KB_MANAGED_DIR/redis.conf")
export REDISCLI_AUTH
rcli() { timeout 10 docker run --rm --network host -e REDISCLI_AUTH "$KB_IMAGE" redis-cli --no-auth-warning -h "$KB_ADDRESS" -p "$KB_PORT" "$@"; }
key="keybuzz:endpoint-check:$(hostname):$(date +%s)"
reads_back() { [ "$(rcli SET "$key" ok EX 300)" = "OK" ] && [ "$(rcli GET "$key")" = "ok" ]; }
kb_wait_until 120 2 "redis endpoint: a write through $KB_ADDRESS:$KB_PORT does not read back" reads_back
echo "redis endpoint: a write through $KB_ADDRESS:$KB_PORT reads back"
