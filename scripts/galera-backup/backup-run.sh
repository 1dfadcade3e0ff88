# keybuzz-galera-backup: one consistent mariadb-backup of this Galera node, streamed to backup-01.
# Run by keybuzz-galera-backup.timer on the backup node (docs/backups.md). Steps:
#   1. one run at a time (flock; the oneshot unit never starts twice either);
#   2. only from a healthy cluster: this node Synced, wsrep_cluster_size = KB_CLUSTER_SIZE (a
#      backup must not take the last good node away from ProxySQL);
#   3. SET GLOBAL wsrep_desync=ON: flow control ignores this node while the backup copies, and
#      ProxySQL's Galera monitor moves a node with wsrep_desync=ON to its offline hostgroup
#      (lib/MySQL_Monitor.cpp, "wsrep_desync=YES"); KB_DRAIN_SECONDS lets it notice first;
#   4. mariadb-backup --backup --stream=mbstream --galera-info, gzip, over SSH (key auth, the
#      receiver is a forced command on backup-01) as `receive NAME`, then `commit NAME` (the
#      receiver checks the stream, renames it, keeps the newest KB_KEEP, writes the metric);
#   5. wsrep_desync=OFF and wait until Synced again (also on failure: trap).
# Variables: KB_LOCK_FILE, KB_CLUSTER_SIZE, KB_DRAIN_SECONDS, KB_RESYNC_TIMEOUT, KB_SQL_CMD (SQL on
# stdin as root, batch output), KB_BACKUP_CMD (mariadb-backup streaming to stdout), and remote.sh's.
exec 9>>"$KB_LOCK_FILE"
if ! flock -n 9; then
  echo "galera backup: another backup holds $KB_LOCK_FILE; not started" >&2
  exit 75
fi
sql() { bash -c "$KB_SQL_CMD"; }
status_of() {
  local rows
  rows=$(echo "SHOW GLOBAL STATUS LIKE '$1';" | sql)
  printf '%s\n' "$rows" | awk -v name="$1" '$1 == name { print $2 }'
}
state=$(status_of wsrep_local_state_comment)
size=$(status_of wsrep_cluster_size)
if [ "$state" != Synced ] || [ "$size" != "$KB_CLUSTER_SIZE" ]; then
  echo "galera backup: this node is '$state' in a cluster of ${size:-?} (want Synced in $KB_CLUSTER_SIZE); no backup from a degraded cluster" >&2
  exit 1
fi
resync() {
  echo "SET GLOBAL wsrep_desync=OFF;" | sql || true
  local deadline=$((SECONDS + KB_RESYNC_TIMEOUT))
  until [ "$(status_of wsrep_local_state_comment)" = Synced ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "galera backup: not Synced $KB_RESYNC_TIMEOUT s after wsrep_desync=OFF" >&2
      return 1
    fi
    sleep 1
  done
}
echo "SET GLOBAL wsrep_desync=ON;" | sql
trap 'resync' EXIT
sleep "$KB_DRAIN_SECONDS"
name=galera-$(date -u +%Y%m%dT%H%M%SZ)
started=$SECONDS
bash -c "$KB_BACKUP_CMD" | gzip -1 | remote receive "$name"
remote commit "$name" "$((SECONDS - started))"
echo "galera backup: $name streamed to $KB_REMOTE in $((SECONDS - started)) s"
