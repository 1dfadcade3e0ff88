# Patroni on one node. Bootstrap: the first node starts alone and becomes the leader; the others
# then clone it. Change (new patroni.yml, image or TLS): a replica restarts at once and must be
# healthy before the next node's step; the leader only reloads and leaves a marker, and the finish
# step restarts it after a switchover, when every replica is done.
if [ "$KB_DCS" = etcd3 ]; then
  "$KB_ETCD_RUN" wait-cluster 300
  # The cluster formed: from now on this member starts with initial-cluster-state=existing.
  "$KB_ETCD_RUN" start
fi
if ! docker inspect patroni >/dev/null 2>&1; then
  patroni_recreate
elif [ "$(patroni_current)" != "$(patroni_wanted)" ]; then
  if [ "$(patroni_state role)" = leader ] && patroni_state others-streaming; then
    docker kill -s HUP patroni >/dev/null
    touch "$KB_PENDING_MARKER"
    echo "patroni: $KB_NODE is the leader; restart deferred to after the replicas"
  else
    patroni_recreate
  fi
elif ! patroni_running; then
  docker start patroni >/dev/null
fi
patroni_state wait-healthy "$KB_WAIT_SECONDS"
# Cluster-wide settings: bootstrap.dcs is read once, so later changes go through edit-config.
if kb_is_changed "$KB_CONFIG_DIR/dynamic.yml"; then
  patronictl edit-config --apply "$KB_CONFIG_DIR/dynamic.yml" --force >/dev/null
  sleep $((KB_LOOP_WAIT + 2))
fi
if patroni_state pending-restart; then
  if [ "$(patroni_state role)" = leader ] && patroni_state others-streaming; then
    touch "$KB_PENDING_MARKER"
  else
    patronictl restart "$KB_SCOPE" "$KB_NODE" --force >/dev/null
    patroni_state wait-healthy "$KB_WAIT_SECONDS"
  fi
fi
echo "patroni: $KB_NODE is $(patroni_state role)"
