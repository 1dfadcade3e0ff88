# A Galera node: keybuzz-galera-backup and keybuzz-galera-restore are written above this body. On
# the backup node, also the key, the units, the timer, and a check that backup-01's receiver
# answers (the first connection learns its host key into KB_KNOWN_HOSTS).
if [ "$KB_BACKUP_NODE" != yes ]; then
  echo "galera backup: restore script installed (backups run on another node)"
  exit 0
fi
systemctl daemon-reload
systemctl enable --now "$KB_UNIT.timer" >/dev/null 2>&1
if ! stored=$(remote list 2>&1); then
  kb_diagnose "galera backup: backup-01's receiver does not answer over SSH ($KB_REMOTE:$KB_REMOTE_PORT): $stored"
  exit 1
fi
count=$(printf '%s\n' "$stored" | grep -c 'mbstream.gz$' || true)
echo "galera backup: timer $(systemctl show -p NextElapseUSecRealtime --value "$KB_UNIT.timer"), $count backup(s) on $KB_REMOTE"
