# keybuzz-etcd-snapshot: `etcdctl snapshot save` of an etcd cluster (Patroni's or Kubernetes') over
# mutual TLS into KB_SNAPSHOT_DIR, checked (`snapshot status`) before it replaces nothing, then only
# the newest KB_KEEP snapshots kept, and the success time for node_exporter's textfile collector.
# Variables: KB_CLUSTER (name in file names and the metric), KB_ENDPOINTS (comma-separated https URLs),
# KB_CA, KB_CERT, KB_KEY, KB_SNAPSHOT_DIR, KB_KEEP, KB_TEXTFILE_DIR (optional), KB_ETCDCTL (the
# etcdctl command, words split on spaces: on backup-01 a one-off container of the pinned etcd image
# that mounts the TLS and snapshot directories at the same paths).
export ETCDCTL_API=3
read -r -a etcdctl <<<"$KB_ETCDCTL"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial=$KB_SNAPSHOT_DIR/.$KB_CLUSTER-$stamp.db.partial
final=$KB_SNAPSHOT_DIR/$KB_CLUSTER-$stamp.db
mkdir -p "$KB_SNAPSHOT_DIR"
chmod 0700 "$KB_SNAPSHOT_DIR"
# One member is enough (the snapshot is the whole keyspace); try them in order until one answers.
saved=""
IFS=, read -r -a endpoints <<<"$KB_ENDPOINTS"
for endpoint in "${endpoints[@]}"; do
  if "${etcdctl[@]}" --endpoints="$endpoint" --cacert="$KB_CA" --cert="$KB_CERT" --key="$KB_KEY" --command-timeout=60s \
    snapshot save "$partial" >/dev/null; then
    saved=$endpoint
    break
  fi
done
if [ -z "$saved" ]; then
  rm -f "$partial"
  echo "etcd snapshot $KB_CLUSTER: no member of $KB_ENDPOINTS answered" >&2
  exit 1
fi
status=$("${etcdctl[@]}" --write-out=simple snapshot status "$partial")
mv -f "$partial" "$final"
shopt -s nullglob
snapshots=("$KB_SNAPSHOT_DIR/$KB_CLUSTER"-*.db)
shopt -u nullglob
# The names sort by time: remove all but the newest KB_KEEP.
while [ "${#snapshots[@]}" -gt "$KB_KEEP" ]; do
  rm -f "${snapshots[0]}"
  snapshots=("${snapshots[@]:1}")
done
if [ -n "${KB_TEXTFILE_DIR:-}" ] && [ -d "$KB_TEXTFILE_DIR" ]; then
  metric=$(mktemp "$KB_TEXTFILE_DIR/.keybuzz-backup-etcd-$KB_CLUSTER.XXXXXX")
  printf '%s\n' "# HELP keybuzz_backup_last_success_timestamp_seconds End of the last successful backup, Unix time." \
    "# TYPE keybuzz_backup_last_success_timestamp_seconds gauge" \
    "keybuzz_backup_last_success_timestamp_seconds{system=\"etcd\",type=\"$KB_CLUSTER\"} $(date +%s)" >"$metric"
  chmod 0644 "$metric"
  mv -f "$metric" "$KB_TEXTFILE_DIR/keybuzz-backup-etcd-$KB_CLUSTER.prom"
fi
echo "etcd snapshot $KB_CLUSTER: $final from $saved (hash, revision, keys, size: $status); ${#snapshots[@]} kept"
