# keybuzz-galera-restore: restore the Galera cluster from a backup on backup-01 (docs/backups.md).
#   keybuzz-galera-restore bootstrap NAME|latest --yes   on ONE node, every node stopped: this
#       node's datadir is replaced by the backup (extracted and prepared with mariadb-backup on
#       the same file system), then the node starts as a new cluster (keybuzz-galera bootstrap)
#   keybuzz-galera-restore rejoin --yes                   on each other node, after that: its
#       datadir is emptied and it joins the restored cluster by SST (keybuzz-galera converge member)
# Then `keybuzz-galera finalize` on the bootstrap node (or `pulumi up`, whose steps converge it).
# The current data of the node is deleted: copy the datadir first if you want to keep it.
# Variables: KB_GALERA_HELPER (keybuzz-galera), KB_DATADIR (the node's datadir on this host),
# KB_TOOL_CMD (prefix that runs mbstream / mariadb-backup with KB_DATADIR at the same path, e.g.
# a one-off container of the pinned image), KB_OWNER (uid:gid of the server's files), and remote.sh's.
mode=${1:-}
usage() {
  echo "usage: keybuzz-galera-restore bootstrap NAME|latest --yes | rejoin --yes" >&2
  exit 2
}
case "$mode" in
  bootstrap) backup=${2:-} confirm=${3:-} ;;
  rejoin) backup="" confirm=${2:-} ;;
  *) usage ;;
esac
[ "$confirm" = --yes ] || usage
[ "$mode" = rejoin ] || [[ "$backup" =~ ^(latest|galera-[0-9]{8}T[0-9]{6}Z)$ ]] || usage
helper() { bash -c "$KB_GALERA_HELPER \"\$@\"" keybuzz-galera "$@"; }
tool() { bash -c "$KB_TOOL_CMD \"\$@\"" keybuzz-galera-tool "$@"; }
# Everything in the datadir but the staging directory of this restore.
empty_datadir() {
  find "$KB_DATADIR" -mindepth 1 -maxdepth 1 ! -name .keybuzz-restore -exec rm -rf {} +
}
helper stop
if helper running; then
  echo "galera restore: the server still runs after keybuzz-galera stop" >&2
  exit 1
fi
started=$SECONDS
if [ "$mode" = rejoin ]; then
  empty_datadir
  helper converge member
  echo "galera restore: rejoined the restored cluster in $((SECONDS - started)) s"
  exit 0
fi
staging=$KB_DATADIR/.keybuzz-restore
rm -rf "$staging"
mkdir -m 0700 "$staging"
remote send "$backup" | gunzip | tool mbstream -x -C "$staging"
tool mariadb-backup --prepare --target-dir="$staging" >"$(dirname "$KB_DATADIR")/keybuzz-restore-prepare.log" 2>&1 || {
  echo "galera restore: mariadb-backup --prepare failed (see $(dirname "$KB_DATADIR")/keybuzz-restore-prepare.log)" >&2
  exit 1
}
empty_datadir
find "$staging" -mindepth 1 -maxdepth 1 -exec mv -t "$KB_DATADIR" {} +
rmdir "$staging"
# The backup's Galera position when mariadb-backup wrote it (uuid:seqno), else -1: then the
# entry point recovers the position InnoDB stored with the last commit (keybuzz-galera-start).
uuid=00000000-0000-0000-0000-000000000000 seqno=-1
if [ -s "$KB_DATADIR/xtrabackup_galera_info" ]; then
  info=$(cat "$KB_DATADIR/xtrabackup_galera_info")
  uuid=${info%%:*}
  seqno=${info#*:}
  seqno=${seqno%%[!0-9-]*}
  echo "galera restore: the backup's Galera position: $info" >&2
fi
printf '%s\n' "# GALERA saved state" "version: 2.1" "uuid:    $uuid" "seqno:   $seqno" "safe_to_bootstrap: 1" >"$KB_DATADIR/grastate.dat"
chown -R "$KB_OWNER" "$KB_DATADIR"
helper bootstrap
echo "galera restore: $backup restored and bootstrapped in $((SECONDS - started)) s (position $uuid:$seqno)"
