# RabbitMQ on one node (components/data/rabbitmq/render.ts sets the KB_* variables above). Nodes run
# one at a time in inventory order, so a new node finds the running ones through classic_config
# peer discovery and joins them; a restart of a running node waits until it is not quorum-critical
# and stops it with SIGTERM and a grace period; a replaced node (empty data, its old identity still
# a stopped member for the peers) has that identity forgotten by a peer, joins, and gets its quorum
# queue members back.
: "${KB_NODE:?}" "${KB_SEED_NODE:?}" "${KB_PEER_NODES:?}" "${KB_NODE_COUNT:?}" "${KB_OWNER:?}" "${KB_DATA_DIR:?}" "${KB_CONFIG_DIR:?}"
: "${KB_MANAGED_DIR:?}" "${KB_ADMIN_USER:?}" "${KB_MONITOR_USER:?}"

install -d -m 0750 -o "${KB_OWNER%:*}" -g "${KB_OWNER#*:}" "$KB_DATA_DIR" "$KB_CONFIG_DIR"
rmq() { docker exec rabbitmq "$@"; }

# No node directory under mnesia/ (the image's RABBITMQ_MNESIA_BASE): a new node, or a replaced one.
fresh=no
if [ ! -d "$KB_DATA_DIR/mnesia/$KB_NODE" ]; then fresh=yes; fi

in_seed_cluster() {
  rmq rabbitmq-diagnostics -q cluster_status --formatter json |
    jq -e --arg self "$KB_NODE" --arg seed "$KB_SEED_NODE" '(.running_nodes | index($self)) and (.running_nodes | index($seed)) and (.partitions | length == 0)'
}
container_running() { [ "$(docker inspect -f '{{ .State.Running }}' rabbitmq 2>/dev/null || true)" = "true" ]; }

state=$(kb_rabbitmq_state)
if [ "$state" = "missing" ]; then
  echo "rabbitmq: starting $KB_NODE"
  kb_rabbitmq_run
elif [ "$state" != "current" ] || kb_is_changed "$KB_CONFIG_DIR/rabbitmq.conf" || kb_is_changed "$KB_CONFIG_DIR/enabled_plugins" ||
  kb_is_changed "$KB_DATA_DIR/.erlang.cookie"; then
  # A running node (current or outdated: an image bump) must not take a quorum queue below its
  # majority when it stops (rabbitmq.com, upgrade guide).
  if container_running; then
    kb_wait_until 600 10 "rabbitmq: $KB_NODE stays quorum-critical; not restarting it" \
      rmq rabbitmq-diagnostics -q check_if_node_is_quorum_critical || {
      rmq rabbitmq-diagnostics check_if_node_is_quorum_critical >&2 || true
      exit 1
    }
  fi
  echo "rabbitmq: restarting $KB_NODE"
  kb_rabbitmq_run
fi
kb_wait_until --logs rabbitmq 300 5 "rabbitmq: $KB_NODE is not running" rmq rabbitmq-diagnostics -q check_running

# A replaced node boots alone: the peers still list its old identity as a stopped member, so they
# refuse it (inconsistent_cluster). A running peer forgets that identity (only while the peer sees
# it stopped), then this node resets and joins (rabbitmq.com, clustering guide, "Removing Nodes").
stale_member_on() {
  local status
  status=$(rmq rabbitmq-diagnostics -q -n "$1" cluster_status --formatter json 2>/dev/null) || return 1
  jq -e --arg self "$KB_NODE" '((.disk_nodes + .ram_nodes) | index($self)) and ((.running_nodes | index($self)) | not)' <<<"$status" >/dev/null
}
if [ "$fresh" = "yes" ]; then
  for peer in $KB_PEER_NODES; do
    if stale_member_on "$peer"; then
      echo "rabbitmq: $KB_NODE has empty data and $peer lists it as a stopped member: $peer forgets it, then it joins again"
      rmq rabbitmqctl -q stop_app
      rmq rabbitmqctl -q -n "$peer" forget_cluster_node "$KB_NODE"
      rmq rabbitmqctl -q reset
      rmq rabbitmqctl -q join_cluster "$peer"
      rmq rabbitmqctl -q start_app
      break
    fi
  done
fi

# The node must be in the seed's cluster (it joined, or it is the seed).
kb_wait_until 300 5 "rabbitmq: $KB_NODE did not join $KB_SEED_NODE's cluster" in_seed_cluster || {
  rmq rabbitmq-diagnostics cluster_status >&2 || true
  exit 1
}
# A node that came up empty holds no quorum queue member yet: add one to every quorum queue.
if [ "$fresh" = "yes" ]; then
  grown=$(rmq rabbitmq-queues -q grow "$KB_NODE" all)
  echo "rabbitmq: quorum queue members added on $KB_NODE: $(grep -c . <<<"$grown" || true)"
fi

# Accounts: the application's administrator and the health-check user (monitoring tag only),
# passwords read from root-only files through stdin; no default `guest` account.
ensure_user() {
  local user=$1 file=$2 tags=$3
  if ! rmq rabbitmqctl -q list_users --formatter json | jq -e --arg u "$user" 'any(.[]; .user == $u)' >/dev/null; then
    docker exec -i rabbitmq rabbitmqctl -q add_user "$user" <"$file" >/dev/null
  elif ! docker exec -i rabbitmq rabbitmqctl -q authenticate_user "$user" <"$file" >/dev/null 2>&1; then
    docker exec -i rabbitmq rabbitmqctl -q change_password "$user" <"$file" >/dev/null
  fi
  rmq rabbitmqctl -q set_user_tags "$user" "$tags" >/dev/null
}
ensure_user "$KB_ADMIN_USER" "$KB_MANAGED_DIR/admin-password" administrator
rmq rabbitmqctl -q set_permissions -p / "$KB_ADMIN_USER" '.*' '.*' '.*' >/dev/null
ensure_user "$KB_MONITOR_USER" "$KB_MANAGED_DIR/monitor-password" monitoring
if rmq rabbitmqctl -q list_users --formatter json | jq -e 'any(.[]; .user == "guest")' >/dev/null; then
  rmq rabbitmqctl -q delete_user guest >/dev/null
fi
echo "rabbitmq: $KB_NODE running in the cluster of $KB_SEED_NODE"
