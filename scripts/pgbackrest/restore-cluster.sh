# keybuzz-postgres-restore: in-cluster point-in-time restore of the PostgreSQL cluster from
# pgBackRest (docs/backups.md). Run as root on each DB node, in this order:
#   1. every node:            keybuzz-postgres-restore stop
#   2. the bootstrap node:    keybuzz-postgres-restore bootstrap '2026-12-01 12:00:00+00'   (or: latest)
#   3. each other node:       keybuzz-postgres-restore rejoin
# `bootstrap` removes the cluster from the DCS (patronictl remove), moves PGDATA and the WAL
# directory aside and starts Patroni with a custom bootstrap method (Patroni docs, "Custom
# bootstrap"): pgbackrest restore of the repository on backup-01 (the node's own layout, its pg_wal
# link included), then recovery to the target, then promotion. `rejoin` moves the node's PGDATA and
# WAL directory aside and starts Patroni, which clones the restored leader. The next `pulumi up` puts
# the rendered patroni.yml back (its bootstrap section only matters for a fresh cluster).
# Variables: KB_CONFIG_DIR (patroni.yml's directory), KB_DATA_DIR, KB_WAL_DIR, KB_OWNER (uid:gid of
# PostgreSQL's files), KB_PGBACKREST_CONFIG, KB_STANZA, KB_SCOPE, KB_PATRONICTL and KB_PYTHON (command
# words: patronictl; python3 reading a script on stdin, with KB_CONFIG_DIR writable), KB_STOP,
# KB_START, KB_START_RESTORE (shell commands: stop Patroni; start it with patroni.yml; start it with
# patroni-restore.yml).
read -r -a patronictl <<<"$KB_PATRONICTL"
read -r -a python <<<"$KB_PYTHON"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

aside() {
  local dir
  for dir in "$KB_DATA_DIR" "$KB_WAL_DIR"; do
    if [ -d "$dir" ]; then
      mv "$dir" "$dir.before-restore.$stamp"
    fi
    install -d -m 0700 -o "${KB_OWNER%%:*}" -g "${KB_OWNER##*:}" "$dir"
  done
}

case "${1:-}" in
  stop)
    bash -c "$KB_STOP"
    ;;
  bootstrap)
    target=${2:?usage: keybuzz-postgres-restore bootstrap 'YYYY-MM-DD HH:MM:SS+00' | latest}
    if [ "$target" = latest ]; then
      restore_args="--type=default"
    else
      restore_args="--type=time --target='$target' --target-action=promote"
    fi
    # The DCS forgets the old cluster (its leader key, its initialize key), so Patroni bootstraps.
    "${patronictl[@]}" -c "$KB_CONFIG_DIR/patroni.yml" remove "$KB_SCOPE" <<<"$KB_SCOPE
Yes I am aware"
    aside
    # patroni.yml plus the custom bootstrap method, written next to it.
    "${python[@]}" - "$KB_CONFIG_DIR/patroni.yml" "$KB_CONFIG_DIR/patroni-restore.yml" "$KB_PGBACKREST_CONFIG" "$KB_STANZA" \
      "$restore_args" <<'PY'
import sys, yaml
source, target, config, stanza, restore_args = sys.argv[1:]
document = yaml.safe_load(open(source))
document["bootstrap"]["method"] = "pgbackrest"
document["bootstrap"]["pgbackrest"] = {
    "command": f"pgbackrest --config={config} --stanza={stanza} --link-all {restore_args} restore",
    "keep_existing_recovery_conf": True,
    "no_params": True,
}
with open(target, "w") as out:
    yaml.safe_dump(document, out)
PY
    chown "$KB_OWNER" "$KB_CONFIG_DIR/patroni-restore.yml"
    chmod 0600 "$KB_CONFIG_DIR/patroni-restore.yml"
    bash -c "$KB_START_RESTORE"
    echo "restore: Patroni bootstraps $KB_SCOPE from the repository ($restore_args)"
    ;;
  rejoin)
    aside
    bash -c "$KB_START"
    echo "restore: Patroni started; it clones the restored leader"
    ;;
  *)
    echo "usage: keybuzz-postgres-restore stop | bootstrap TARGET | rejoin" >&2
    exit 2
    ;;
esac
