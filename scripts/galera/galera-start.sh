#!/usr/bin/env bash
# keybuzz-galera-start: entry point of the KeyBuzz MariaDB Galera container. keybuzz-galera mounts it
# read-only from /usr/local/sbin/keybuzz-galera-start and runs the container with --entrypoint, so
# it runs on every start of the server: keybuzz-galera's own starts and Docker's restarts after a
# crash or a reboot.
#
# After an unclean stop grastate.dat holds seqno -1, and Galera would ask a donor for a full state
# snapshot (SST). The node's last committed position is in InnoDB: recover it (mariadbd
# --wsrep-recover: InnoDB recovery, then exit, without joining the cluster) and pass it as
# --wsrep_start_position, so the node catches up by IST from a donor's gcache. Debian's
# mariadb.service does the same with galera_recovery; the official image's entrypoint does not.
# A node that crashed during an SST (sst_in_progress in the datadir) has partial data: no
# recovery, it joins by SST again.
#
# Usage:
#   keybuzz-galera-start [MARIADBD_ARGS]    exec the server with MARIADBD_ARGS (+ the start position)
#   keybuzz-galera-start --recovered-position   print "uuid:seqno" recovered from InnoDB (node stopped)
#
# Environment (the defaults fit the official mariadb image):
#   GALERA_DATADIR      datadir (default /var/lib/mysql)
#   GALERA_SERVER_CMD   server command, before MARIADBD_ARGS (default: docker-entrypoint.sh mariadbd)
#   GALERA_RECOVER_CMD  run with bash -c, prints mariadbd --wsrep-recover's log
#                       (default: mariadbd --user=mysql --wsrep-recover --log-error=/dev/stderr)
set -euo pipefail

GALERA_DATADIR=${GALERA_DATADIR:-/var/lib/mysql}
GALERA_SERVER_CMD=${GALERA_SERVER_CMD:-docker-entrypoint.sh mariadbd}
GALERA_RECOVER_CMD=${GALERA_RECOVER_CMD:-mariadbd --user=mysql --wsrep-recover --log-error=/dev/stderr}

log() { echo "keybuzz-galera-start: $*" >&2; }

recovery_log=$(mktemp)
recovery_pid=""
trap 'rm -f "$recovery_log"' EXIT
# `docker stop` during the recovery: end it and exit (bash as PID 1 would ignore SIGTERM).
trap 'if [ -n "$recovery_pid" ]; then kill -TERM "$recovery_pid" 2>/dev/null || true; fi; exit 143' TERM INT

# Sets $position to "uuid:seqno" from the "WSREP: Recovered position: uuid:seqno" line of the
# recovery run; prints the run's whole log on stderr when there is none.
recover_position() {
  bash -c "$GALERA_RECOVER_CMD" >"$recovery_log" 2>&1 &
  recovery_pid=$!
  wait "$recovery_pid" || true
  recovery_pid=""
  position=$(sed -n 's/.*WSREP: Recovered position:[[:space:]]*\([0-9a-f-]*:-\{0,1\}[0-9][0-9]*\).*/\1/p' "$recovery_log" | tail -n 1)
  if [ -z "$position" ]; then
    log "mariadbd --wsrep-recover printed no position; its log:"
    cat "$recovery_log" >&2
    return 1
  fi
}

if [ "${1:-}" = --recovered-position ]; then
  recover_position || exit 1
  echo "$position"
  exit 0
fi

grastate="$GALERA_DATADIR/grastate.dat"
if [ -e "$GALERA_DATADIR/sst_in_progress" ]; then
  log "the node stopped during an SST (sst_in_progress): its data is partial, it joins by SST"
elif [ -f "$grastate" ] && [ "$(sed -n 's/^seqno:[[:space:]]*//p' "$grastate")" = "-1" ]; then
  if recover_position && [[ "$position" =~ ^[0-9a-f-]+:[0-9]+$ ]]; then
    log "unclean stop: starting from the recovered position $position (IST from a donor's gcache)"
    set -- "$@" "--wsrep_start_position=$position"
  else
    log "unclean stop and no recovered position (${position:-none}): the node joins by SST"
  fi
fi
rm -f "$recovery_log"
trap - EXIT TERM INT
# GALERA_SERVER_CMD is a command followed by its leading arguments: split on blanks on purpose.
# shellcheck disable=SC2086
exec $GALERA_SERVER_CMD "$@"
