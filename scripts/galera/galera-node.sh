#!/usr/bin/env bash
# keybuzz-galera: node-local operations of one KeyBuzz MariaDB Galera node.
# Installed on every maria node as /usr/local/sbin/keybuzz-galera by the GaleraCluster steps
# (components/data/galera.ts); used by those steps and by scripts/galera/recover.sh.
#
# Usage: keybuzz-galera COMMAND [ARGS]
#   converge first|member  start or update this node; "first" may bootstrap a NEW cluster, but only
#                          when this node has no data and no peer answers (never bootstraps twice)
#   finalize               restart a node that runs as the bootstrap node as an ordinary member,
#                          once all nodes are in the cluster (no later restart can start a 2nd cluster)
#   apply-sql FILE         run FILE (root) when it differs from the last applied copy (idempotent)
#   verify                 fail unless Synced, Primary and wsrep_cluster_size = GALERA_CLUSTER_SIZE
#   status                 print "state=<comment> cluster_status=<status> cluster_size=<n>"
#   stop                   stop the node cleanly (saves its seqno in grastate.dat)
#   state                  (node stopped) print "uuid=<uuid> seqno=<n> safe_to_bootstrap=<0|1>",
#                          from grastate.dat, else from mariadbd --wsrep-recover
#   set-safe-to-bootstrap 0|1   rewrite safe_to_bootstrap in grastate.dat
#   bootstrap              start this node as a NEW cluster (recovery only; see docs/galera.md)
#
# Settings come from GALERA_ENV_FILE (default /etc/keybuzz/galera.env, rendered by Pulumi); every
# variable already set in the environment wins, so the same script drives loopback test nodes.
# Commands that touch the server are overridable (run with `bash -c`), defaults use Docker:
#   GALERA_SQL_CMD      runs SQL from stdin as root, batch output without column names
#   GALERA_START_CMD    starts the server; receives "bootstrap" or "member" as $1
#   GALERA_STOP_CMD     stops the server cleanly
#   GALERA_RUNNING_CMD  exits 0 when the server process runs
#   GALERA_RECOVER_CMD  runs mariadbd --wsrep-recover on the (stopped) datadir, log on stdout/stderr
#                       (then keybuzz-galera-start runs on the host, not in a container)
#   GALERA_PEER_ALIVE_CMD  exits 0 when another node answers (default: TCP probe of GALERA_PEERS)
set -euo pipefail

GALERA_ENV_FILE=${GALERA_ENV_FILE:-/etc/keybuzz/galera.env}
if [ -f "$GALERA_ENV_FILE" ]; then
  # shellcheck source=/dev/null
  . "$GALERA_ENV_FILE"
fi
GALERA_NODE_NAME=${GALERA_NODE_NAME:-$(hostname -s)}
GALERA_IMAGE=${GALERA_IMAGE:-}
GALERA_NOFILE=${GALERA_NOFILE:-}
GALERA_CONTAINER=${GALERA_CONTAINER:-mariadb}
GALERA_DATADIR=${GALERA_DATADIR:-/opt/keybuzz/mariadb/data}
GALERA_CONFDIR=${GALERA_CONFDIR:-/opt/keybuzz/mariadb/config}
GALERA_SECRETDIR=${GALERA_SECRETDIR:-/opt/keybuzz/mariadb/secrets}
GALERA_STATE_FILE=${GALERA_STATE_FILE:-/opt/keybuzz/mariadb/started-as}
# The container's entry point (scripts/galera/galera-start.sh): IST after an unclean stop.
GALERA_START_SCRIPT=${GALERA_START_SCRIPT:-/usr/local/sbin/keybuzz-galera-start}
GALERA_PEERS=${GALERA_PEERS:-}
GALERA_CLUSTER_SIZE=${GALERA_CLUSTER_SIZE:-3}
GALERA_SYNC_TIMEOUT=${GALERA_SYNC_TIMEOUT:-1800}
GALERA_PROBE_TIMEOUT=${GALERA_PROBE_TIMEOUT:-3}
GALERA_POLL_INTERVAL=${GALERA_POLL_INTERVAL:-5}

log() { echo "keybuzz-galera[$GALERA_NODE_NAME]: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- primitives (overridable) ---------------------------------------------------------------

galera_sql() {
  if [ -n "${GALERA_SQL_CMD:-}" ]; then
    bash -c "$GALERA_SQL_CMD"
  else
    docker exec -i "$GALERA_CONTAINER" mariadb --defaults-extra-file=/run/keybuzz/client.cnf -N -B
  fi
}

galera_running() {
  if [ -n "${GALERA_RUNNING_CMD:-}" ]; then
    bash -c "$GALERA_RUNNING_CMD"
  else
    [ "$(docker inspect -f '{{.State.Running}}' "$GALERA_CONTAINER" 2>/dev/null || true)" = "true" ]
  fi
}

galera_stop() {
  if [ -n "${GALERA_STOP_CMD:-}" ]; then
    bash -c "$GALERA_STOP_CMD"
  elif docker inspect "$GALERA_CONTAINER" >/dev/null 2>&1; then
    # A clean shutdown writes the last seqno to grastate.dat; give a busy node time for it.
    docker stop -t 600 "$GALERA_CONTAINER" >/dev/null
  fi
}

# galera_start bootstrap|member
galera_start() {
  local mode=$1
  if [ -n "${GALERA_START_CMD:-}" ]; then
    bash -c "$GALERA_START_CMD" _ "$mode"
  else
    [ -n "$GALERA_IMAGE" ] || die "GALERA_IMAGE is not set"
    [ -n "$GALERA_NOFILE" ] || die "GALERA_NOFILE is not set"
    local restart=unless-stopped args=()
    if [ "$mode" = bootstrap ]; then
      # Never restarted by Docker: a reboot must not start a second cluster from this container.
      restart=no
      args=(--wsrep-new-cluster)
    fi
    docker image inspect "$GALERA_IMAGE" >/dev/null 2>&1 || docker pull -q "$GALERA_IMAGE" >/dev/null
    docker rm -f "$GALERA_CONTAINER" >/dev/null 2>&1 || true
    docker run -d --name "$GALERA_CONTAINER" \
      --network host --restart "$restart" --stop-timeout 600 \
      --log-opt max-size=10m --log-opt max-file=3 --ulimit "nofile=$GALERA_NOFILE:$GALERA_NOFILE" \
      --label "keybuzz.galera.mode=$mode" \
      -v "$GALERA_DATADIR:/var/lib/mysql" \
      -v "$GALERA_CONFDIR/my.cnf:/etc/mysql/mariadb.conf.d/99-keybuzz.cnf:ro" \
      -v "$GALERA_CONFDIR/sst-auth.cnf:/etc/mysql/mariadb.conf.d/99-keybuzz-sst.cnf:ro" \
      -v "$GALERA_SECRETDIR/client.cnf:/run/keybuzz/client.cnf:ro" \
      -v "$GALERA_SECRETDIR/root-password:/run/secrets/mariadb-root-password:ro" \
      -v "$GALERA_START_SCRIPT:/usr/local/bin/keybuzz-galera-start:ro" \
      --entrypoint /usr/local/bin/keybuzz-galera-start \
      -e MARIADB_ROOT_PASSWORD_FILE=/run/secrets/mariadb-root-password \
      -e MARIADB_ROOT_HOST=localhost \
      "$GALERA_IMAGE" "${args[@]}" >/dev/null
  fi
  echo "$mode $(desired_spec)" >"$GALERA_STATE_FILE"
}

# "uuid:seqno" of the stopped node's last committed transaction, recovered from InnoDB by the
# entry point (in a one-off container without network in production).
recovered_position() {
  if [ -n "${GALERA_RECOVER_CMD:-}" ]; then
    GALERA_DATADIR="$GALERA_DATADIR" bash "$GALERA_START_SCRIPT" --recovered-position
  else
    [ -n "$GALERA_IMAGE" ] || die "GALERA_IMAGE is not set"
    docker run --rm --network none --ulimit "nofile=$GALERA_NOFILE:$GALERA_NOFILE" \
      -v "$GALERA_DATADIR:/var/lib/mysql" \
      -v "$GALERA_CONFDIR/my.cnf:/etc/mysql/mariadb.conf.d/99-keybuzz.cnf:ro" \
      -v "$GALERA_START_SCRIPT:/usr/local/bin/keybuzz-galera-start:ro" \
      --entrypoint /usr/local/bin/keybuzz-galera-start "$GALERA_IMAGE" --recovered-position
  fi
}

# --- helpers ----------------------------------------------------------------------------------

# What the running server must match: the image, every config file and the entry point; a change =
# rolling restart.
desired_spec() {
  {
    echo "$GALERA_IMAGE nofile=$GALERA_NOFILE"
    cat "$GALERA_CONFDIR"/*.cnf "$GALERA_START_SCRIPT" 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

started_mode() {
  local mode=none
  if [ -f "$GALERA_STATE_FILE" ]; then read -r mode _ <"$GALERA_STATE_FILE" || true; fi
  echo "$mode"
}

started_spec() {
  local spec=none
  if [ -f "$GALERA_STATE_FILE" ]; then read -r _ spec <"$GALERA_STATE_FILE" || true; fi
  echo "$spec"
}

has_data() { [ -e "$GALERA_DATADIR/grastate.dat" ] || [ -d "$GALERA_DATADIR/mysql" ]; }

# True when any other node answers on its Galera replication port: a cluster exists somewhere.
peer_alive() {
  if [ -n "${GALERA_PEER_ALIVE_CMD:-}" ]; then
    bash -c "$GALERA_PEER_ALIVE_CMD"
    return
  fi
  local peer host port
  for peer in $GALERA_PEERS; do
    host=${peer%:*}
    port=${peer##*:}
    # shellcheck disable=SC2016 # $0/$1 expand in the inner shell
    if timeout "$GALERA_PROBE_TIMEOUT" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

# status_value NAME: one global status value, empty when the server does not answer.
status_value() {
  echo "SHOW GLOBAL STATUS LIKE '$1';" | galera_sql 2>/dev/null | awk '{print $2}' || true
}

is_synced() {
  [ "$(status_value wsrep_local_state_comment)" = "Synced" ] && [ "$(status_value wsrep_cluster_status)" = "Primary" ]
}

wait_synced() {
  local deadline=$((SECONDS + GALERA_SYNC_TIMEOUT))
  until is_synced; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "not Synced in a Primary component after ${GALERA_SYNC_TIMEOUT}s ($(cmd_status)); if every node is down, follow the full-outage recovery in docs/galera.md"
    fi
    sleep "$GALERA_POLL_INTERVAL"
  done
  log "Synced ($(cmd_status))"
}

# --- commands ---------------------------------------------------------------------------------

cmd_status() {
  echo "state=$(status_value wsrep_local_state_comment) cluster_status=$(status_value wsrep_cluster_status) cluster_size=$(status_value wsrep_cluster_size)"
}

cmd_converge() {
  local role=${1:-member}
  case "$role" in first | member) ;; *) die "converge: role must be first or member" ;; esac
  if galera_running; then
    if [ "$(started_mode)" = bootstrap ]; then
      log "runs as the bootstrap node of the cluster; 'finalize' restarts it as a member"
      wait_synced
      return
    fi
    if [ "$(started_spec)" = "$(desired_spec)" ]; then
      wait_synced
      return
    fi
    # Rolling change: restart only a complete, healthy cluster, so quorum survives the restart.
    wait_synced
    [ "$(status_value wsrep_cluster_size)" -ge "$GALERA_CLUSTER_SIZE" ] ||
      die "configuration changed but the cluster is not complete ($(cmd_status)); not restarting"
    log "configuration or image changed: restarting as a member"
    galera_stop
    galera_start member
    wait_synced
    return
  fi
  if [ "$role" = first ] && ! has_data && ! peer_alive; then
    log "no data and no peer answers: bootstrapping a new cluster"
    galera_start bootstrap
    wait_synced
    return
  fi
  if has_data && ! peer_alive; then
    die "this node has data but no other node answers: the whole cluster is down; follow the full-outage recovery in docs/galera.md (scripts/galera/recover.sh)"
  fi
  log "starting as a member (joins through IST or SST)"
  galera_start member
  wait_synced
}

cmd_finalize() {
  if [ "$(started_mode)" != bootstrap ] || ! galera_running; then
    cmd_converge member
    return
  fi
  wait_synced
  local size
  size=$(status_value wsrep_cluster_size)
  [ "$size" -ge "$GALERA_CLUSTER_SIZE" ] ||
    die "cluster has $size of $GALERA_CLUSTER_SIZE nodes; the bootstrap node stays as it is until all joined"
  log "all $size nodes joined: restarting the bootstrap node as an ordinary member"
  galera_stop
  galera_start member
  wait_synced
}

cmd_apply_sql() {
  local file=$1 applied="$1.applied"
  [ -f "$file" ] || die "apply-sql: no file $file"
  if [ -f "$applied" ] && cmp -s "$file" "$applied"; then return; fi
  galera_sql <"$file" >/dev/null
  cp -p "$file" "$applied"
  log "applied $file"
}

cmd_verify() {
  local deadline=$((SECONDS + 120)) state cluster size
  while :; do
    state=$(status_value wsrep_local_state_comment)
    cluster=$(status_value wsrep_cluster_status)
    size=$(status_value wsrep_cluster_size)
    if [ "$state" = Synced ] && [ "$cluster" = Primary ] && [ "$size" = "$GALERA_CLUSTER_SIZE" ]; then
      log "verified: Synced, Primary, wsrep_cluster_size=$size"
      return
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "verification failed: state=$state cluster_status=$cluster cluster_size=$size (want Synced, Primary, $GALERA_CLUSTER_SIZE)"
    sleep "$GALERA_POLL_INTERVAL"
  done
}

cmd_state() {
  galera_running && die "state: stop the node first (keybuzz-galera stop)"
  local grastate="$GALERA_DATADIR/grastate.dat" uuid="" seqno="-1" safe=0 recovered
  if [ -f "$grastate" ]; then
    uuid=$(sed -n 's/^uuid:[[:space:]]*//p' "$grastate")
    seqno=$(sed -n 's/^seqno:[[:space:]]*//p' "$grastate")
    safe=$(sed -n 's/^safe_to_bootstrap:[[:space:]]*//p' "$grastate")
  fi
  if [ -z "$seqno" ] || [ "$seqno" = "-1" ]; then
    # Unclean stop: InnoDB knows the last committed position.
    recovered=$(recovered_position) || die "state: no seqno in grastate.dat and mariadbd --wsrep-recover printed no position"
    uuid=${recovered%:*}
    seqno=${recovered##*:}
  fi
  echo "uuid=${uuid:-none} seqno=$seqno safe_to_bootstrap=${safe:-0}"
}

cmd_set_safe_to_bootstrap() {
  local value=$1 grastate="$GALERA_DATADIR/grastate.dat"
  case "$value" in 0 | 1) ;; *) die "set-safe-to-bootstrap: value must be 0 or 1" ;; esac
  galera_running && die "set-safe-to-bootstrap: stop the node first"
  [ -f "$grastate" ] || die "set-safe-to-bootstrap: no $grastate"
  sed -i "s/^safe_to_bootstrap:.*/safe_to_bootstrap: $value/" "$grastate"
}

cmd_bootstrap() {
  galera_running && die "bootstrap: the node is running; stop every node first"
  peer_alive && die "bootstrap: another node answers on its Galera port; a cluster is running, join it instead"
  galera_start bootstrap
  wait_synced
}

main() {
  local command=${1:-}
  shift || true
  case "$command" in
    converge) cmd_converge "$@" ;;
    finalize) cmd_finalize ;;
    apply-sql) cmd_apply_sql "$@" ;;
    verify) cmd_verify ;;
    status) cmd_status ;;
    stop) galera_stop ;;
    running) galera_running ;;
    state) cmd_state ;;
    set-safe-to-bootstrap) cmd_set_safe_to_bootstrap "$@" ;;
    bootstrap) cmd_bootstrap ;;
    *) die "usage: keybuzz-galera converge first|member | finalize | apply-sql FILE | verify | status | stop | running | state | set-safe-to-bootstrap 0|1 | bootstrap" ;;
  esac
}

main "$@"
