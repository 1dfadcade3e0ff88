#!/usr/bin/env bash
# Full-outage recovery of the KeyBuzz Galera cluster (docs/galera.md, "Full-outage recovery").
#
# Usage: scripts/galera/recover.sh [--yes] NODE...
#   NODE   how to reach each Galera node, in inventory order (ties on seqno go to the first listed),
#          e.g. root@maria-01 root@maria-02 root@maria-03 (any ssh destination)
#   --yes  do not ask before bootstrapping the chosen node
#
# Steps: refuse if any node is still in a Primary component; stop every node; read each node's
# position (grastate.dat, else mariadbd --wsrep-recover); refuse if the cluster UUIDs differ; choose
# the node with the highest seqno; set safe_to_bootstrap: 1 on that node only (0 on the others);
# bootstrap it; start the others one at a time, each waiting until Synced; restart the bootstrap
# node as an ordinary member; verify every node.
#
# Environment (defaults for production; override them to drive loopback nodes):
#   GALERA_NODE_EXEC   program run as `$GALERA_NODE_EXEC NODE COMMAND [ARGS]` to run keybuzz-galera
#                      on NODE; default: ssh $GALERA_SSH_OPTS NODE $GALERA_REMOTE_CMD COMMAND [ARGS]
#   GALERA_SSH_OPTS    default "-o BatchMode=yes -o ConnectTimeout=10"
#   GALERA_REMOTE_CMD  default /usr/local/sbin/keybuzz-galera
set -euo pipefail

GALERA_SSH_OPTS=${GALERA_SSH_OPTS:--o BatchMode=yes -o ConnectTimeout=10}
GALERA_REMOTE_CMD=${GALERA_REMOTE_CMD:-/usr/local/sbin/keybuzz-galera}

log() { echo "recover: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# on NODE COMMAND [ARGS]: run keybuzz-galera COMMAND on NODE.
on() {
  local node=$1
  shift
  if [ -n "${GALERA_NODE_EXEC:-}" ]; then
    "$GALERA_NODE_EXEC" "$node" "$@"
  else
    # GALERA_SSH_OPTS holds several options; the arguments are plain words (no remote expansion).
    # shellcheck disable=SC2086,SC2029
    ssh $GALERA_SSH_OPTS "$node" "$GALERA_REMOTE_CMD" "$@"
  fi
}

# field NAME "k=v k=v": the value of NAME.
field() {
  local pair
  for pair in $2; do
    if [ "${pair%%=*}" = "$1" ]; then
      echo "${pair#*=}"
      return
    fi
  done
}

assume_yes=0
nodes=()
for arg in "$@"; do
  case "$arg" in
    --yes) assume_yes=1 ;;
    -h | --help)
      sed -n '2,12p' "$0"
      exit 0
      ;;
    -*) die "unknown option $arg" ;;
    *) nodes+=("$arg") ;;
  esac
done
[ "${#nodes[@]}" -ge 1 ] || die "usage: recover.sh [--yes] NODE... (every Galera node, inventory order)"

# 1. Only for a cluster that is really down: a node in a Primary component means the others
#    should simply be restarted and rejoin.
for node in "${nodes[@]}"; do
  if on "$node" running; then
    status=$(on "$node" status || true)
    if [ "$(field cluster_status "$status")" = Primary ]; then
      die "$node is in a Primary component ($status): the cluster is up; restart the failed nodes normally (keybuzz-galera converge member)"
    fi
  fi
done

# 2. Stop every node (a node left in a restart loop would change its state while we read it).
for node in "${nodes[@]}"; do
  log "stopping $node"
  on "$node" stop
done

# 3. Read positions and choose the most advanced node.
best="" best_seqno="" best_safe=0 cluster_uuid=""
for node in "${nodes[@]}"; do
  state=$(on "$node" state)
  log "$node: $state"
  uuid=$(field uuid "$state")
  seqno=$(field seqno "$state")
  safe=$(field safe_to_bootstrap "$state")
  [[ "$seqno" =~ ^[0-9]+$ ]] || die "$node has no usable seqno ($state); inspect it by hand (docs/galera.md)"
  if [ -z "$cluster_uuid" ]; then
    cluster_uuid=$uuid
  elif [ "$uuid" != "$cluster_uuid" ]; then
    die "$node belongs to cluster $uuid, not $cluster_uuid: the nodes do not share one history; recover by hand"
  fi
  # Highest seqno wins; on a tie, the node that already says safe_to_bootstrap: 1, else the first listed.
  if [ -z "$best" ] || [ "$seqno" -gt "$best_seqno" ] || { [ "$seqno" -eq "$best_seqno" ] && [ "$safe" = 1 ] && [ "$best_safe" != 1 ]; }; then
    best=$node
    best_seqno=$seqno
    best_safe=$safe
  fi
done
log "most advanced node: $best (seqno $best_seqno, cluster $cluster_uuid)"

if [ "$assume_yes" != 1 ]; then
  read -r -p "Bootstrap the cluster from $best? [y/N] " answer
  [ "$answer" = y ] || [ "$answer" = Y ] || die "aborted; nothing was started"
fi

# 4. Only the chosen node may bootstrap.
for node in "${nodes[@]}"; do
  if [ "$node" = "$best" ]; then on "$node" set-safe-to-bootstrap 1; else on "$node" set-safe-to-bootstrap 0; fi
done

# 5. Bootstrap, then the others one at a time, then the bootstrap node becomes a member again.
log "bootstrapping $best"
on "$best" bootstrap
for node in "${nodes[@]}"; do
  [ "$node" = "$best" ] && continue
  log "starting $node"
  on "$node" converge member
done
log "restarting $best as an ordinary member"
on "$best" finalize
for node in "${nodes[@]}"; do
  on "$node" verify
done
log "cluster recovered from $best"
