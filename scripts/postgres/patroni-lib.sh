# Shared by the Patroni node and finish steps (preamble above sets the KB_* variables).
patroni_state() {
  python3 "$KB_CONFIG_DIR/patroni_state.py" --url "https://$KB_ADDRESS:$KB_REST_PORT" \
    --cafile "$KB_TLS_DIR/ca.crt" --name "$KB_NODE" "$@"
}
patronictl() {
  docker exec patroni patronictl -c "$KB_CONFIG_DIR/patroni.yml" "$@"
}
patroni_wanted() {
  local files_hash
  files_hash=$(cat "$KB_CONFIG_DIR/patroni.yml" "$KB_TLS_DIR"/* | sha256sum | cut -c1-16)
  echo "$KB_IMAGE_TAG $files_hash nofile=$KB_PATRONI_NOFILE"
}
patroni_current() {
  docker inspect -f '{{ index .Config.Labels "keybuzz.spec" }}' patroni 2>/dev/null || true
}
patroni_running() {
  [ "$(docker inspect -f '{{ .State.Running }}' patroni 2>/dev/null)" = true ]
}
# (Re)creates the container; Patroni stops PostgreSQL cleanly on SIGTERM (up to 120 s).
patroni_recreate() {
  local run_args=(--network host --restart unless-stopped --shm-size 1g --stop-timeout 120
    --log-opt max-size=50m --log-opt max-file=5 --ulimit "nofile=$KB_PATRONI_NOFILE:$KB_PATRONI_NOFILE"
    -v "$KB_VOLUME_MOUNT:$KB_VOLUME_MOUNT" -v "$KB_CONFIG_DIR:$KB_CONFIG_DIR:ro")
  if [ "$KB_DCS" = raft ]; then
    install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_RAFT_DIR"
    run_args+=(-v "$KB_RAFT_DIR:$KB_RAFT_DIR")
  fi
  if docker inspect patroni >/dev/null 2>&1; then
    docker stop -t 120 patroni >/dev/null || true
    docker rm -f -v patroni >/dev/null
  fi
  docker run -d --name patroni --label "keybuzz.spec=$(patroni_wanted)" "${run_args[@]}" "$KB_IMAGE_TAG" >/dev/null
  echo "patroni: container started on $KB_NODE ($KB_IMAGE_TAG)"
}
