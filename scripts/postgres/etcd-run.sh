# (Re)starts this node's etcd member; installed as KB_ETCD_RUN by the etcd step (preamble above).
#   start                  create or update the container; with state `existing`, wait for health
#   wait-cluster SECONDS   wait until every member of the cluster is healthy
# initial-cluster-state: a member with data starts `existing`. An empty member starts `new` only
# while the cluster has not formed yet (no peer lists a started member; spec 004, "Changer
# initial-cluster-state en existing"). Once it formed, an empty member is a rebuilt node or lost
# its data: through a healthy peer its stale registration is removed (never a healthy member),
# it is added again (`member add`) and starts `existing`, receiving the data from the leader.
set -euo pipefail
marker="$KB_ETCD_CONFIG_DIR/cluster-formed"
# etcdctl of the pinned image (it ships /usr/local/bin/etcdctl), with this node's certificate: it
# also runs before this member's container exists.
kb_etcdctl() {
  docker run --rm --network host --user "$KB_ETCD_UID:$KB_ETCD_UID" -v "$KB_ETCD_CONFIG_DIR:$KB_ETCD_CONFIG_DIR:ro" \
    "$KB_ETCD_IMAGE" /usr/local/bin/etcdctl --cacert "$KB_ETCD_CONFIG_DIR/tls/ca.crt" --cert "$KB_ETCD_CONFIG_DIR/tls/node.crt" \
    --key "$KB_ETCD_CONFIG_DIR/tls/node.key" --dial-timeout 3s --command-timeout 5s "$@"
}
peers=()
for endpoint in ${KB_ETCD_ENDPOINTS//,/ }; do
  if [ "$endpoint" != "$KB_ETCD_ENDPOINT" ]; then peers+=("$endpoint"); fi
done
# Whether a peer lists a member that started: the cluster formed (before quorum, none has).
cluster_formed() {
  local peer started
  for peer in "${peers[@]}"; do
    if started=$(kb_etcd_started_members "$peer" 2>/dev/null) && [ -n "$started" ]; then return 0; fi
  done
  return 1
}
# Prints the first peer that answers `endpoint health` (it has quorum).
healthy_peer() {
  local peer
  for peer in "${peers[@]}"; do
    if kb_etcdctl --endpoints "$peer" endpoint health >/dev/null 2>&1; then
      echo "$peer"
      return 0
    fi
  done
  return 1
}
etcd_running() { [ "$(docker inspect -f '{{ .State.Running }}' etcd 2>/dev/null)" = true ]; }
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "etcd: $what not reached after ${seconds}s" >&2
      docker logs --tail 30 etcd >&2 || true
      return 1
    fi
    sleep 2
  done
}
case "${1:-}" in
  start)
    install -d -m 0700 -o "$KB_ETCD_UID" -g "$KB_ETCD_UID" "$KB_ETCD_DATA_DIR"
    docker image inspect "$KB_ETCD_IMAGE" >/dev/null 2>&1 || docker pull "$KB_ETCD_IMAGE"
    if [ -d "$KB_ETCD_DATA_DIR/member" ]; then
      state=existing
    elif cluster_formed; then
      wait_for 120 "a healthy peer to rejoin through" healthy_peer
      peer=$(healthy_peer)
      # No container of an emptied member keeps running on its old registration.
      docker rm -f etcd >/dev/null 2>&1 || true
      kb_etcd_remove_stale_member "$peer" "$KB_ETCD_PEER_URL"
      kb_etcdctl --endpoints "$peer" member add "$KB_ETCD_NAME" --peer-urls "$KB_ETCD_PEER_URL" >/dev/null
      echo "etcd: $KB_ETCD_NAME added again through $peer; it joins with initial-cluster-state=existing"
      state=existing
    elif [ -f "$marker" ]; then
      echo "etcd: $KB_ETCD_DATA_DIR is empty, the cluster formed before and no peer answers: refusing to bootstrap a new cluster." >&2
      echo "etcd: start the other members first (docs/postgres.md, 'Replace a DB node')." >&2
      exit 1
    else
      state=new
    fi
    run_args=(--network host --restart unless-stopped --user "$KB_ETCD_UID:$KB_ETCD_UID"
      --log-opt max-size=10m --log-opt max-file=3 --ulimit "nofile=$KB_ETCD_NOFILE:$KB_ETCD_NOFILE"
      -v "$KB_ETCD_DATA_DIR:$KB_ETCD_DATA_DIR" -v "$KB_ETCD_CONFIG_DIR:$KB_ETCD_CONFIG_DIR:ro"
      --env-file "$KB_ETCD_CONFIG_DIR/etcd.env" -e "ETCD_INITIAL_CLUSTER_STATE=$state")
    files_hash=$(cat "$KB_ETCD_CONFIG_DIR/etcd.env" "$KB_ETCD_CONFIG_DIR"/tls/* | sha256sum | cut -c1-16)
    wanted="$KB_ETCD_IMAGE $state $files_hash nofile=$KB_ETCD_NOFILE"
    current=$(docker inspect -f '{{ index .Config.Labels "keybuzz.spec" }}' etcd 2>/dev/null || true)
    if [ "$current" != "$wanted" ]; then
      docker rm -f etcd >/dev/null 2>&1 || true
      docker run -d --name etcd --label "keybuzz.spec=$wanted" "${run_args[@]}" "$KB_ETCD_IMAGE" /usr/local/bin/etcd >/dev/null
      echo "etcd: started $KB_ETCD_IMAGE (initial-cluster-state=$state)"
    elif [ "$(docker inspect -f '{{ .State.Running }}' etcd)" != "true" ]; then
      docker start etcd >/dev/null
    fi
    if [ "$state" = existing ]; then
      # A member of a formed cluster is healthy only with quorum: roll one member at a time.
      wait_for 120 "member health at $KB_ETCD_ENDPOINT" kb_etcdctl --endpoints "$KB_ETCD_ENDPOINT" endpoint health
    else
      # A new member waits for its peers; the cluster check comes with the Patroni step.
      wait_for 30 "running container" etcd_running
    fi
    ;;
  wait-cluster)
    wait_for "${2:-300}" "health of every member" kb_etcdctl --endpoints "$KB_ETCD_ENDPOINTS" endpoint health
    touch "$marker"
    ;;
  *)
    echo "usage: $0 start | wait-cluster SECONDS" >&2
    exit 2
    ;;
esac
