#!/usr/bin/env bash
# `docker` of the loopback Redis suite (tests/redis/loopback.ts) while it runs a node's rendered step
# (scripts/redis/redis-node.sh, scripts/redis/password-finish.sh): the few Docker calls those steps
# make, played by Debian's redis-server, redis-sentinel and redis-cli on this machine.
#
#   run --rm [-i] ... IMAGE redis-cli ARGS   redis-cli ARGS (REDISCLI_AUTH and stdin passed through)
#   run -d --name NAME --label keybuzz.spec=HASH ... -v HOST:CONTAINER ... IMAGE redis-server|redis-sentinel FILE
#                                            the daemon on FILE with every CONTAINER path read as its
#                                            HOST path, as the Debian `redis` user (the image's uid
#                                            999 is that user here), in its own session; pid and
#                                            label kept in KB_SHIM_DIR, output in KB_SHIM_DIR/NAME.log
#   inspect -f '{{ index .Config.Labels "keybuzz.spec" }}' NAME | inspect -f '{{ .State.Running }}' NAME
#   stop -t SECONDS NAME                     SIGTERM, SIGKILL after SECONDS (as docker stop)
#   rm -f NAME                               SIGKILL if it runs, then forgets it
#   logs --tail N NAME, image inspect, pull, tag
#
# KB_SHIM_DIR: this node's shim state (NAME.pid, NAME.label, NAME.log).
set -euo pipefail

state=${KB_SHIM_DIR:?KB_SHIM_DIR is not set}
die() {
  echo "docker-shim: $*" >&2
  exit 1
}

# Pid of container NAME when its daemon runs (the pid in NAME.pid is a redis-server or
# redis-sentinel process, not a zombie).
running_pid() {
  local pid status
  [ -f "$state/$1.pid" ] || return 1
  read -r pid <"$state/$1.pid" || return 1
  status=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$status" ] && [ "$status" != Z ] || return 1
  echo "$pid"
}

stop_container() {
  local grace=$1 name=$2 pid
  pid=$(running_pid "$name") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 10))); do
    running_pid "$name" >/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  sleep 0.2
}

run_detached() {
  local name="" label="" mounts=() image_seen=no command=() arg host
  while [ "$#" -gt 0 ]; do
    case "$1" in
      -d) shift ;;
      --name) name=$2; shift 2 ;;
      --label) label=${2#keybuzz.spec=}; shift 2 ;;
      -v) mounts+=("$2"); shift 2 ;;
      --network | --restart | --log-opt | --ulimit | --user) shift 2 ;;
      *)
        if [ "$image_seen" = no ]; then image_seen=yes; else command+=("$1"); fi
        shift
        ;;
    esac
  done
  if [ -z "$name" ] || [ "${#command[@]}" -lt 2 ]; then die "run -d: no --name or no command"; fi
  case "${command[0]}" in redis-server | redis-sentinel) ;; *) die "run -d: unexpected command ${command[0]}" ;; esac
  # Container paths become host paths (the step's mounts do not nest).
  for arg in "${!command[@]}"; do
    for host in "${mounts[@]}"; do
      if [[ ${command[$arg]} == "${host#*:}"/* ]]; then command[arg]="${host%%:*}${command[$arg]#"${host#*:}"}"; fi
    done
  done
  ! running_pid "$name" >/dev/null || die "run -d: $name already runs"
  setsid setpriv --reuid=redis --regid=redis --init-groups "/usr/bin/${command[0]}" "${command[@]:1}" </dev/null >>"$state/$name.log" 2>&1 &
  echo "$!" >"$state/$name.pid"
  echo "$label" >"$state/$name.label"
  echo "shim-$name"
}

case "${1:-}" in
  image | pull | tag) exit 0 ;;
  inspect)
    name=${*: -1}
    [ -f "$state/$name.label" ] || exit 1
    case "$3" in
      *keybuzz.spec*) cat "$state/$name.label" ;;
      *State.Running*) if running_pid "$name" >/dev/null; then echo true; else echo false; fi ;;
      *) die "inspect: unexpected format $3" ;;
    esac
    ;;
  run)
    shift
    if [ "$1" = --rm ]; then
      while [ "$#" -gt 0 ] && [ "$1" != redis-cli ]; do shift; done
      [ "$#" -gt 0 ] || die "run --rm: only redis-cli is played"
      shift
      exec /usr/bin/redis-cli "$@"
    fi
    run_detached "$@"
    ;;
  stop) stop_container "$3" "$4" ;;
  rm)
    name=${*: -1}
    if pid=$(running_pid "$name"); then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    rm -f "$state/$name.pid" "$state/$name.label"
    ;;
  logs) tail -n "${3:-50}" "$state/${*: -1}.log" 2>/dev/null || true ;;
  *) die "unexpected docker $*" ;;
esac
