# HAProxy on one host of the haproxy group (components/data/haproxy/render.ts defines
# kb_haproxy_state / kb_haproxy_run and sets the KB_* variables above): validate the new
# configuration with the image's own haproxy -c, recreate the container when its image or options
# changed, reload it (SIGHUP, master-worker: no dropped connections) when only the configuration
# changed, then wait until every listener has a server UP whose last check passed.
: "${KB_HOST_DIR:?}" "${KB_CONTAINER_DIR:?}" "${KB_IMAGE:?}" "${KB_LISTENERS:?}" "${KB_STATS_URL:?}" "${KB_VERIFY_SECONDS:?}"
# Reject a bad configuration before it reaches the running proxy.
docker run --rm --network none -v "$KB_HOST_DIR:$KB_CONTAINER_DIR:ro" "$KB_IMAGE" haproxy -c -q -f "$KB_CONTAINER_DIR/haproxy.cfg"
if [ "$(kb_haproxy_state)" != current ]; then
  kb_haproxy_run >/dev/null
elif kb_is_changed "$KB_HOST_DIR/haproxy.cfg"; then
  docker kill -s HUP haproxy
fi
read -r -a listeners <<<"$KB_LISTENERS"
for listener in "${listeners[@]}"; do
  kb_wait_until --logs haproxy "$KB_VERIFY_SECONDS" 2 "HAProxy: listener $listener has no server UP whose last check passed" \
    kb_haproxy_checked_server "$listener"
  echo "HAProxy: listener $listener has a server UP whose last check passed"
done
