#!/usr/bin/env bash
# GALERA_NODE_EXEC of the loopback Galera suite (tests/galera/loopback.ts).
#
# Usage: galera-node-exec.sh NODE COMMAND [ARGS]
#   COMMAND is a keybuzz-galera command (converge, finalize, apply-sql, verify, status, stop,
#   running, state, set-safe-to-bootstrap, bootstrap): this runs the project's own
#   scripts/galera/galera-node.sh for the loopback node NODE, with NODE's rendered galera.env and
#   the server primitives it documents (GALERA_*_CMD) pointed at this script's _start, _stop,
#   _running, _sql and _recover, which run Debian's mariadbd (as `mysql`) on NODE's rendered
#   my.cnf instead of the official image in Docker.
#
# KB_GALERA_LOOPBACK_DIR is the cluster's working directory; NODE's files are under NODE/:
#   galera.env      rendered by renderGaleraEnv (datadir, confdir, secretdir, state file, peers)
#   defaults.cnf    stands in for the image's /etc/mysql/my.cnf: includes config/my.cnf and
#                   config/sst-auth.cnf, as the image's conf.d mounts do
#   mariadbd.pid    pid of the server started by _start (a session and process group leader)
#   mariadbd.log    the server's stderr (the container log in production)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
helper="$here/../../scripts/galera/galera-node.sh"
entry_point="$here/../../scripts/galera/galera-start.sh"
MARIADBD=/usr/sbin/mariadbd

die() {
  echo "galera-node-exec: $*" >&2
  exit 1
}

node=${1:-}
[ "$#" -ge 2 ] || die "usage: galera-node-exec.sh NODE COMMAND [ARGS]"
shift
dir=${KB_GALERA_LOOPBACK_DIR:?KB_GALERA_LOOPBACK_DIR is not set}
nodedir="$dir/$node"
if ! [[ "$node" =~ ^[a-z0-9-]+$ ]] || [ ! -f "$nodedir/galera.env" ]; then die "unknown node $node"; fi
cnf="$nodedir/defaults.cnf"
pidfile="$nodedir/mariadbd.pid"
log="$nodedir/mariadbd.log"
stop_timeout=${KB_GALERA_STOP_TIMEOUT:-120}

export GALERA_ENV_FILE="$nodedir/galera.env"
# shellcheck source=/dev/null
. "$GALERA_ENV_FILE"

# Pid of this node's server when it runs: mariadbd on this node's defaults file, or the entry point
# still recovering this node's position (as a container that runs; a zombie or another program
# with a reused pid is not it).
server_pid() {
  local pid state cmdline
  [ -f "$pidfile" ] || return 1
  read -r pid <"$pidfile" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  case "$cmdline" in
    *"--defaults-file=$cnf"*) ;;
    *"$entry_point"*) tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF -- "GALERA_DATADIR=$GALERA_DATADIR" || return 1 ;;
    *) return 1 ;;
  esac
  echo "$pid"
}

socket() {
  my_print_defaults --defaults-file="$cnf" mysqld | sed -n 's/^--socket=//p' | tail -n 1
}

# Never start a server whose configuration names an address outside 127.0.0.0/8.
assert_loopback_config() {
  local file address
  for file in "$GALERA_CONFDIR/my.cnf" "$cnf"; do
    for address in $(grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}' "$file" || true); do
      [[ "$address" == 127.* ]] || die "$file names $address, not a loopback address; refusing to start mariadbd"
    done
  done
}

# What the official image's entrypoint does on an empty datadir: system tables, then only
# root@localhost, with the password of MARIADB_ROOT_PASSWORD_FILE (the rendered root-password).
init_datadir() {
  local password sql
  password=$(cat "$GALERA_SECRETDIR/root-password")
  [[ "$password" =~ ^[A-Za-z0-9._-]+$ ]] || die "init: unexpected characters in the root password"
  sql=$(mktemp "$nodedir/init.XXXXXX.sql")
  printf '%s\n' \
    "DELETE FROM mysql.global_priv WHERE User='root' AND Host<>'localhost';" \
    "DELETE FROM mysql.global_priv WHERE User='';" \
    "FLUSH PRIVILEGES;" \
    "ALTER USER 'root'@'localhost' IDENTIFIED BY '$password';" >"$sql"
  if ! mariadb-install-db --defaults-file="$cnf" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db --extra-file="$sql" >>"$log" 2>&1; then
    rm -f "$sql"
    die "mariadb-install-db failed (see $log)"
  fi
  rm -f "$sql"
}

# _start bootstrap|member [MARIADBD_ARGS]: as the container the helper runs in production, through
# the same entry point, keybuzz-galera-start (mode bootstrap adds --wsrep-new-cluster; further
# arguments go to mariadbd, as after the image name); returns once the server process runs.
cmd_start() {
  local mode=${1:-} args=()
  shift || true
  case "$mode" in bootstrap) args=(--wsrep-new-cluster) ;; member) ;; *) die "_start: mode must be bootstrap or member" ;; esac
  args+=("$@")
  assert_loopback_config
  ! server_pid >/dev/null || die "_start: $node already runs"
  [ -d "$GALERA_DATADIR/mysql" ] || init_datadir
  echo "galera-node-exec: starting $node as $mode" >>"$log"
  # setsid: the server leads its own session and process group, so the test can signal it alone.
  # The entry point recovers the start position (as root, like the container's) and then execs
  # mariadbd as mysql in the same process.
  setsid env GALERA_DATADIR="$GALERA_DATADIR" \
    GALERA_SERVER_CMD="setpriv --reuid=mysql --regid=mysql --init-groups $MARIADBD --defaults-file=$cnf" \
    bash "$entry_point" "${args[@]}" </dev/null >>"$log" 2>&1 &
  echo "$!" >"$pidfile"
  sleep 0.2
  server_pid >/dev/null || die "_start: the server exited at once (see $log)"
}

# _stop: as `docker stop -t`: SIGTERM to the server (or to the entry point, which then ends its
# recovery), SIGKILL of its process group after the timeout.
cmd_stop() {
  local pid
  pid=$(server_pid) || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 $((stop_timeout * 5))); do
    server_pid >/dev/null || return 0
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  sleep 1
}

case "$1" in
  _start) cmd_start "${@:2}" ;;
  _stop) cmd_stop ;;
  _running) server_pid >/dev/null ;;
  _sql) mariadb --defaults-file="$GALERA_SECRETDIR/client.cnf" --socket="$(socket)" -N -B ;;
  # As production's one-off container: root, --user=mysql, no network (an empty namespace here,
  # when the machine allows one; --wsrep-recover opens no connection either way).
  _recover)
    isolate=()
    if unshare -n true 2>/dev/null; then isolate=(unshare -n); fi
    "${isolate[@]}" "$MARIADBD" --defaults-file="$cnf" --user=mysql --wsrep-recover --log-error=/dev/stderr
    ;;
  *)
    export GALERA_START_CMD="'$self' '$node' _start \"\$@\""
    export GALERA_STOP_CMD="'$self' '$node' _stop"
    export GALERA_RUNNING_CMD="'$self' '$node' _running"
    export GALERA_SQL_CMD="'$self' '$node' _sql"
    export GALERA_RECOVER_CMD="'$self' '$node' _recover"
    export GALERA_START_SCRIPT="$entry_point"
    exec bash "$helper" "$@"
    ;;
esac
