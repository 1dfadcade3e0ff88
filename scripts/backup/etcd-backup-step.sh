# backup-01: etcd snapshots. The pinned etcd image is pulled above this body; the snapshot scripts,
# each cluster's TLS files and the units are written before it. Then the timers, and one snapshot of
# each cluster now: the module's verification (a member must answer with backup-01's client
# certificate), which also records each cluster's first success for BackupTooOld.
# Variables: KB_SNAPSHOT_DIR, KB_TLS_DIR, KB_TEXTFILE_DIR, KB_UNITS (the units, space separated).
install -d -m 0700 "$KB_SNAPSHOT_DIR" "$KB_TLS_DIR"
# node_exporter's textfile directory belongs to root (the snapshots run as root and write their own files there).
install -d -m 0755 "$KB_TEXTFILE_DIR"
systemctl daemon-reload
read -r -a units <<<"$KB_UNITS"
for unit in "${units[@]}"; do
  systemctl enable "$unit.timer" >/dev/null 2>&1
  systemctl start "$unit.timer"
  if ! systemctl start "$unit.service"; then
    log=$(journalctl -u "$unit.service" -n 5 --no-pager 2>&1 || true)
    kb_diagnose "etcd backup: the first snapshot ($unit.service) failed: $log"
    exit 1
  fi
  echo "etcd backup: $unit ok, next $(systemctl show -p NextElapseUSecRealtime --value "$unit.timer")"
done
shopt -s nullglob
stored=("$KB_SNAPSHOT_DIR"/*.db)
echo "etcd backup: ${#stored[@]} snapshot(s) in $KB_SNAPSHOT_DIR"
