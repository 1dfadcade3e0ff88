# keybuzz-galera-backup-receive: the forced command (authorized_keys `restrict,command=`) of the
# Galera backup key on backup-01. SSH_ORIGINAL_COMMAND is one of:
#   receive NAME        stdin (a gzip'd mbstream) into KB_BACKUP_DIR/.NAME.partial (a failed run's
#                       partial stream is removed first)
#   commit NAME SECONDS check the partial stream (gzip -t), give it its final name NAME.mbstream.gz,
#                       keep the newest KB_KEEP, write the success metric for node_exporter
#   list                the stored backups, oldest first
#   send NAME|latest    a stored backup on stdout (the restore reads it)
# NAME is galera-<UTC time> (what keybuzz-galera-backup sends); anything else is refused.
# Variables: KB_BACKUP_DIR, KB_KEEP, KB_TEXTFILE_DIR (optional; its keybuzz-backup-galera.prom must be writable).
read -r -a words <<<"${SSH_ORIGINAL_COMMAND:-}"
verb=${words[0]:-}
name=${words[1]:-}
refuse() {
  echo "galera backup receiver: $*" >&2
  exit 2
}
valid_name() { [[ "$1" =~ ^galera-[0-9]{8}T[0-9]{6}Z$ ]]; }
stored() {
  local all=()
  shopt -s nullglob
  all=("$KB_BACKUP_DIR"/galera-*.mbstream.gz)
  shopt -u nullglob
  [ "${#all[@]}" -eq 0 ] || printf '%s\n' "${all[@]}"
}
umask 077
case "$verb" in
  receive)
    valid_name "$name" || refuse "bad backup name '$name'"
    # One sender, one backup at a time: a partial stream left here is a failed run's.
    find "$KB_BACKUP_DIR" -maxdepth 1 -name '.galera-*.partial' -delete
    cat >"$KB_BACKUP_DIR/.$name.partial"
    ;;
  commit)
    valid_name "$name" || refuse "bad backup name '$name'"
    seconds=${words[2]:-0}
    [[ "$seconds" =~ ^[0-9]+$ ]] || refuse "bad duration '$seconds'"
    partial=$KB_BACKUP_DIR/.$name.partial
    [ -f "$partial" ] || refuse "no stream received for $name"
    if ! gzip -t "$partial" 2>/dev/null; then
      rm -f "$partial"
      refuse "the stream of $name is truncated or corrupt; removed"
    fi
    mv -f "$partial" "$KB_BACKUP_DIR/$name.mbstream.gz"
    mapfile -t backups < <(stored)
    # The names sort by time: remove all but the newest KB_KEEP.
    while [ "${#backups[@]}" -gt "$KB_KEEP" ]; do
      rm -f "${backups[0]}"
      backups=("${backups[@]:1}")
    done
    # backup-01's step created this file for the receiver (the directory is root's): rewritten in
    # place with one write, so node_exporter reads the old or the new content.
    metric=${KB_TEXTFILE_DIR:+$KB_TEXTFILE_DIR/keybuzz-backup-galera.prom}
    if [ -n "$metric" ] && [ -w "$metric" ]; then
      content=$(printf '%s\n' "# HELP keybuzz_backup_last_success_timestamp_seconds End of the last successful backup, Unix time." \
        "# TYPE keybuzz_backup_last_success_timestamp_seconds gauge" \
        "keybuzz_backup_last_success_timestamp_seconds{system=\"galera\",type=\"full\"} $(date +%s)" \
        "# HELP keybuzz_backup_last_duration_seconds Duration of the last successful backup." \
        "# TYPE keybuzz_backup_last_duration_seconds gauge" \
        "keybuzz_backup_last_duration_seconds{system=\"galera\",type=\"full\"} $seconds")
      printf '%s\n' "$content" >"$metric"
    fi
    echo "galera backup receiver: $name stored, ${#backups[@]} kept"
    ;;
  list) stored ;;
  send)
    if [ "$name" = latest ]; then
      mapfile -t backups < <(stored)
      [ "${#backups[@]}" -gt 0 ] || refuse "no backup stored"
      file=${backups[-1]}
    else
      valid_name "$name" || refuse "bad backup name '$name'"
      file=$KB_BACKUP_DIR/$name.mbstream.gz
    fi
    [ -f "$file" ] || refuse "no backup $name"
    echo "galera backup receiver: sending $(basename "$file")" >&2
    cat "$file"
    ;;
  *) refuse "unknown command '${SSH_ORIGINAL_COMMAND:-}' (receive, commit, list, send)" ;;
esac
