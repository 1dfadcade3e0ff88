#!/usr/bin/env bash
# `docker` for the rendered etcd run script (/etc/keybuzz/etcd/run.sh) of a loopback DB node
# (tests/postgres/loopback.ts, `runEtcdScript`): the script runs unchanged, with Debian's etcd and
# etcdctl in place of the image in Docker. The container's lifecycle is the suite's: this shim asks
# it through a request file and waits for the answer, so the member runs under the suite's
# supervisor as every other loopback daemon.
#   run --rm … IMAGE /usr/local/bin/etcdctl ARGS     Debian's etcdctl ARGS (same flags, same files)
#   image inspect IMAGE | pull IMAGE                 the image is present
#   run -d --name etcd --label keybuzz.spec=L … -e ETCD_INITIAL_CLUSTER_STATE=S … IMAGE CMD
#                                                    the suite starts the member with state S
#   rm -f etcd                                       the suite stops the member
#   start etcd                                       the suite starts it again with its last state
#   inspect [-f FORMAT] etcd                         the recorded label, or whether it runs
#   logs --tail N etcd                               the member's log
# KB_SHIM_DIR (the node's shim directory) holds `label` and `state` (the container's), `running`
# and `log` (written by the suite), and `request` while one waits for the suite.
set -euo pipefail
dir=${KB_SHIM_DIR:?KB_SHIM_DIR is not set}

fail() {
  echo "etcd-docker-shim: $*" >&2
  exit 2
}

# Writes a request for the suite and waits (30 s at most) until it removed it.
ask_suite() {
  echo "$1" >"$dir/request.tmp"
  mv "$dir/request.tmp" "$dir/request"
  local waited=0
  while [ -e "$dir/request" ]; do
    [ "$waited" -lt 300 ] || fail "the suite did not answer '$1'"
    sleep 0.1
    waited=$((waited + 1))
  done
}

command=${1:-}
shift || true
case "$command" in
  image | pull) exit 0 ;;
  run)
    detached=no label="" state=""
    while [ "$#" -gt 0 ]; do
      case "$1" in
        --rm) ;;
        -d) detached=yes ;;
        --label) label=${2#keybuzz.spec=} && shift ;;
        -e)
          case "$2" in ETCD_INITIAL_CLUSTER_STATE=*) state=${2#*=} ;; esac
          shift
          ;;
        --name | --network | --restart | --user | --log-opt | --ulimit | -v | --env-file) shift ;;
        -*) fail "unknown docker run option $1" ;;
        *) break ;;
      esac
      shift
    done
    image=${1:?no image}
    shift
    if [ "$detached" = no ]; then
      [ "${1:-}" = /usr/local/bin/etcdctl ] || fail "only etcdctl runs in a throw-away container (got ${1:-nothing} of $image)"
      shift
      exec etcdctl "$@"
    fi
    [ -n "$state" ] || fail "docker run -d without ETCD_INITIAL_CLUSTER_STATE"
    echo "$label" >"$dir/label"
    echo "$state" >"$dir/state"
    ask_suite "start $state"
    ;;
  rm)
    [ "$*" = "-f etcd" ] || fail "docker rm $*"
    [ -e "$dir/label" ] || exit 1
    ask_suite stop
    rm -f "$dir/label" "$dir/state"
    ;;
  start)
    [ "$*" = etcd ] && [ -e "$dir/state" ] || fail "docker start $*"
    ask_suite "start $(cat "$dir/state")"
    ;;
  inspect)
    format=""
    if [ "${1:-}" = -f ]; then
      format=$2
      shift 2
    fi
    [ "$*" = etcd ] && [ -e "$dir/label" ] || exit 1
    case "$format" in
      *keybuzz.spec*) cat "$dir/label" ;;
      *State.Running*) if [ -e "$dir/running" ]; then echo true; else echo false; fi ;;
      "") echo "[]" ;;
      *) fail "docker inspect -f $format" ;;
    esac
    ;;
  logs)
    [ "${1:-}" = --tail ] || fail "docker logs $*"
    tail -n "$2" "$dir/log" 2>/dev/null || true
    ;;
  *) fail "docker $command $*" ;;
esac
