# backup-01, the module's verification: the stanza exists (stanza-create is idempotent), then
# `pgbackrest check` — a WAL switch on the primary, archived and found in every repository within
# archive-timeout — and the repository's info. Runs as postgres, the repository's owner.
kb_pgbackrest() { runuser -u postgres -- pgbackrest --config="$KB_PGBACKREST_CONFIG" --stanza="$KB_STANZA" "$@"; }
if ! kb_pgbackrest --log-level-console=warn stanza-create; then
  kb_diagnose "pgbackrest: stanza-create of $KB_STANZA failed (log: $KB_WORK_DIR/log)"
  exit 1
fi
if ! kb_pgbackrest --log-level-console=warn --archive-timeout="$KB_CHECK_TIMEOUT" check; then
  kb_diagnose "pgbackrest: check of $KB_STANZA failed: WAL archiving from the primary does not reach the repository (log: $KB_WORK_DIR/log)"
  exit 1
fi
info=$(kb_pgbackrest info)
status=$(awk '/^ *status:/ { sub(/^ *status: /, ""); print; exit }' <<<"$info")
echo "pgbackrest: stanza $KB_STANZA checked, archiving works; repository status: $status"
