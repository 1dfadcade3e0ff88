#!/usr/bin/env bash
# A stand-in for `docker` on one loopback RabbitMQ "host" (tests/rabbitmq/loopback.ts puts it on
# PATH as `docker` when it runs a node's rendered step): the container `rabbitmq` is Debian's
# rabbitmq-server, started as uid:gid 999:999 (the official image's rabbitmq user) with the
# container's mounts (/var/lib/rabbitmq, /etc/rabbitmq) mapped to the host paths the step gives,
# and `docker exec rabbitmq CMD` runs Debian's CLI against it with the same environment.
# Every container call is appended to $KB_SHIM_DIR/calls, so the tests can assert the order.
#
# KB_SHIM_DIR      this host's state: label, env (the container's), pid, log, calls
# KB_SHIM_ADDRESS  this host's address: the Erlang distribution listener binds it
# KB_SHIM_DIST_PORT  this node's distribution port: one epmd serves every loopback node, and the
#                  broker refuses a port another node already registered there (25672 on servers)
# ERL_INETRC       the Erlang resolver file mapping every node's host name to its address
set -euo pipefail
: "${KB_SHIM_DIR:?}" "${KB_SHIM_ADDRESS:?}" "${KB_SHIM_DIST_PORT:?}" "${ERL_INETRC:?}"
RABBITMQ_BIN=/usr/lib/rabbitmq/bin
state=$KB_SHIM_DIR
mkdir -p "$state"

running() { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }
log_call() { echo "$*" >>"$state/calls"; }

# The environment of the broker and of its CLI: what the official image sets (HOME and the data
# directory on /var/lib/rabbitmq, the config in /etc/rabbitmq) plus the container's `-e` options.
container_env() {
  local data config
  data=$(cat "$state/data") config=$(cat "$state/config")
  local -a env=(
    "PATH=/usr/bin:/bin" "HOME=$data" "ERL_INETRC=$ERL_INETRC"
    "RABBITMQ_MNESIA_BASE=$data/mnesia" "RABBITMQ_LOG_BASE=$data/log" "RABBITMQ_PID_FILE=$data/pid"
    "RABBITMQ_CONFIG_FILE=$config/rabbitmq.conf" "RABBITMQ_ENABLED_PLUGINS_FILE=$config/enabled_plugins"
    "RABBITMQ_ADVANCED_CONFIG_FILE=$config/advanced.config" "RABBITMQ_CONF_ENV_FILE=$config/rabbitmq-env.conf"
  )
  [ -z "${ERL_EPMD_ADDRESS:-}" ] || env+=("ERL_EPMD_ADDRESS=$ERL_EPMD_ADDRESS")
  mapfile -t -O "${#env[@]}" env <"$state/env"
  printf '%s\0' "${env[@]}"
}

stop_container() {
  local grace=$1 pid
  running || return 0
  pid=$(cat "$state/pid")
  # The broker runs in its own session (setsid): its process group is the container.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq $((grace * 10))); do
    running || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  while running; do sleep 0.1; done
}

case "$1" in
  image | pull) exit 0 ;;
  inspect)
    name=${*: -1}
    [ "$name" = rabbitmq ] && [ -f "$state/label" ] || exit 1
    case "$3" in
      *keybuzz.spec*) cat "$state/label" ;;
      *State.Running*) if running; then echo true; else echo false; fi ;;
      *) echo "docker shim: unexpected inspect $*" >&2 && exit 1 ;;
    esac
    ;;
  stop)
    [ "$2" = -t ] || { echo "docker shim: stop without -t" >&2 && exit 1; }
    log_call "stop -t $3 $4"
    [ -f "$state/label" ] || exit 1
    stop_container "$3"
    ;;
  rm)
    log_call "rm $2 $3"
    [ -f "$state/label" ] || exit 1
    stop_container 0
    rm -f "$state/label" "$state/pid"
    ;;
  run)
    shift
    : >"$state/env"
    label=""
    while [ $# -gt 1 ]; do
      case "$1" in
        -d) shift ;;
        --label) label=${2#keybuzz.spec=} && shift 2 ;;
        -e) echo "$2" >>"$state/env" && shift 2 ;;
        -v)
          source=${2%%:*} target=${2#*:}
          case "${target%:ro}" in
            /var/lib/rabbitmq) echo "$source" >"$state/data" ;;
            /etc/rabbitmq) echo "$source" >"$state/config" ;;
            *) echo "docker shim: unexpected volume $2" >&2 && exit 1 ;;
          esac
          shift 2
          ;;
        *) shift 2 ;; # --name, --network, --restart, --log-opt, --ulimit: nothing to emulate
      esac
    done
    [ -f "$state/label" ] && { echo "docker shim: container rabbitmq exists" >&2 && exit 1; }
    log_call "run rabbitmq"
    echo "$label" >"$state/label"
    mapfile -d '' -t env < <(container_env)
    # The distribution listener binds this host's address.
    IFS=. read -r -a octets <<<"$KB_SHIM_ADDRESS"
    env+=("RABBITMQ_DIST_PORT=$KB_SHIM_DIST_PORT")
    env+=("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {${octets[0]},${octets[1]},${octets[2]},${octets[3]}}")
    cd "$(cat "$state/data")"
    setsid setpriv --reuid 999 --regid 999 --clear-groups env -i "${env[@]}" "$RABBITMQ_BIN/rabbitmq-server" >>"$state/log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    ;;
  exec)
    shift
    [ "$1" != -i ] || shift
    if [ "$1" != rabbitmq ] || ! running; then echo "docker shim: container rabbitmq is not running" >&2 && exit 1; fi
    shift
    mapfile -d '' -t env < <(container_env)
    command=$1
    shift
    exec env -i "${env[@]}" "$RABBITMQ_BIN/$command" "$@"
    ;;
  logs) tail -n 50 "$state/log" ;;
  *) echo "docker shim: unexpected docker $*" >&2 && exit 1 ;;
esac
