# (Re)starts this node's etcd member; installed as KB_ETCD_RUN by the etcd step (preamble above).
#   start                  create or update the container; with state `existing`, wait for health
#   rejoin                 start an emptied member with `existing` (after `etcdctl member add`, docs/postgres.md)
#   wait-cluster SECONDS   wait until every member of the cluster is healthy
# initial-cluster-state is `new` only before the cluster first formed; once the marker exists
# (written after the whole cluster was healthy) it is `existing`, so a restarted member never
# bootstraps a new cluster (spec 004, "Changer initial-cluster-state en existing").
set -euo pipefail
marker="$KB_ETCD_CONFIG_DIR/cluster-formed"
etcdctl() {
  docker exec etcd etcdctl --cacert "$KB_ETCD_CONFIG_DIR/tls/ca.crt" --cert "$KB_ETCD_CONFIG_DIR/tls/node.crt" \
    --key "$KB_ETCD_CONFIG_DIR/tls/node.key" --dial-timeout 3s --command-timeout 5s "$@"
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
  start | rejoin)
    if [ -d "$KB_ETCD_DATA_DIR/member" ] || [ "$1" = rejoin ]; then
      state=existing
    elif [ -f "$marker" ]; then
      echo "etcd: $KB_ETCD_DATA_DIR is empty but the cluster formed before: this member lost its data." >&2
      echo "etcd: replace it (docs/postgres.md, 'Replace an etcd member'); refusing to bootstrap a new cluster." >&2
      exit 1
    else
      state=new
    fi
    install -d -m 0700 -o "$KB_ETCD_UID" -g "$KB_ETCD_UID" "$KB_ETCD_DATA_DIR"
    docker image inspect "$KB_ETCD_IMAGE" >/dev/null 2>&1 || docker pull "$KB_ETCD_IMAGE"
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
      wait_for 120 "member health at $KB_ETCD_ENDPOINT" etcdctl --endpoints "$KB_ETCD_ENDPOINT" endpoint health
    else
      # A new member waits for its peers; the cluster check comes with the Patroni step.
      wait_for 30 "running container" etcd_running
    fi
    ;;
  wait-cluster)
    wait_for "${2:-300}" "health of every member" etcdctl --endpoints "$KB_ETCD_ENDPOINTS" endpoint health
    touch "$marker"
    ;;
  *)
    echo "usage: $0 start | rejoin | wait-cluster SECONDS" >&2
    exit 2
    ;;
esac
