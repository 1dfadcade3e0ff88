#!/bin/bash
# In-cluster point-in-time restore of the PostgreSQL cluster from pgBackRest (docs/backups.md).
# Run as root on each DB node, in this order:
#   1. every node:            restore-cluster.sh stop
#   2. the bootstrap node:    restore-cluster.sh bootstrap '2026-12-01 12:00:00+00'   (or: latest)
#   3. each other node:       restore-cluster.sh rejoin
# `bootstrap` removes the cluster from etcd (patronictl remove), moves PGDATA aside and starts
# Patroni with a custom bootstrap method (Patroni docs, "Custom bootstrap"): pgbackrest restore of
# the repository on backup-01, then recovery to the target, then promotion. `rejoin` moves the
# node's PGDATA aside and starts Patroni, which clones the restored leader. The next `pulumi up`
# puts the rendered patroni.yml back (its bootstrap section only matters for a fresh cluster).
set -euo pipefail
KB_CONFIG_DIR=${KB_CONFIG_DIR:-/etc/keybuzz/postgres}
KB_VOLUME_MOUNT=${KB_VOLUME_MOUNT:-/opt/keybuzz/postgres}
KB_DATA_DIR=${KB_DATA_DIR:-$KB_VOLUME_MOUNT/data}
KB_STANZA=${KB_STANZA:-keybuzz}
KB_SCOPE=${KB_SCOPE:-keybuzz-postgres}
config=$KB_CONFIG_DIR/pgbackrest.conf
image=$(docker inspect -f '{{ .Config.Image }}' patroni)

aside() {
  if [ -d "$KB_DATA_DIR" ]; then
    mv "$KB_DATA_DIR" "$KB_DATA_DIR.before-restore.$(date -u +%Y%m%dT%H%M%SZ)"
  fi
  install -d -m 0700 -o 999 -g 999 "$KB_DATA_DIR"
}

case "${1:-}" in
  stop)
    docker stop -t 120 patroni
    ;;
  bootstrap)
    target=${2:?usage: restore-cluster.sh bootstrap 'YYYY-MM-DD HH:MM:SS+00' | latest}
    if [ "$target" = latest ]; then
      restore_args="--type=default"
    else
      restore_args="--type=time --target='$target' --target-action=promote"
    fi
    # The DCS forgets the old cluster (its leader key, its initialize key), so Patroni bootstraps.
    docker run --rm --network host --user 999:999 -v "$KB_CONFIG_DIR:$KB_CONFIG_DIR:ro" --entrypoint patronictl "$image" \
      -c "$KB_CONFIG_DIR/patroni.yml" remove "$KB_SCOPE" <<<"$KB_SCOPE
Yes I am aware"
    aside
    # patroni.yml plus the custom bootstrap method, written next to it (the container mounts the directory read-only).
    docker run --rm --user 0 -v "$KB_CONFIG_DIR:$KB_CONFIG_DIR" --entrypoint python3 "$image" - \
      "$KB_CONFIG_DIR/patroni.yml" "$KB_CONFIG_DIR/patroni-restore.yml" "$config" "$KB_STANZA" "$restore_args" <<'PY'
import sys, yaml
source, target, config, stanza, restore_args = sys.argv[1:]
document = yaml.safe_load(open(source))
document["bootstrap"]["method"] = "pgbackrest"
document["bootstrap"]["pgbackrest"] = {
    "command": f"pgbackrest --config={config} --stanza={stanza} {restore_args} restore",
    "keep_existing_recovery_conf": True,
    "no_params": True,
}
with open(target, "w") as out:
    yaml.safe_dump(document, out)
PY
    chown 999:999 "$KB_CONFIG_DIR/patroni-restore.yml"
    chmod 0600 "$KB_CONFIG_DIR/patroni-restore.yml"
    # The node step's container (scripts/postgres/patroni-lib.sh), with the restore file as its
    # argument; the next `pulumi up` sees another spec label and recreates it with patroni.yml.
    docker rm patroni >/dev/null
    docker run -d --name patroni --network host --restart unless-stopped --shm-size 1g --stop-timeout 120 \
      -v "$KB_VOLUME_MOUNT:$KB_VOLUME_MOUNT" -v "$KB_CONFIG_DIR:$KB_CONFIG_DIR:ro" \
      "$image" "$KB_CONFIG_DIR/patroni-restore.yml" >/dev/null
    echo "restore: Patroni bootstraps $KB_SCOPE from the repository ($restore_args); follow it with docker logs -f patroni"
    ;;
  rejoin)
    aside
    docker start patroni
    ;;
  *)
    echo "usage: restore-cluster.sh stop | bootstrap TARGET | rejoin" >&2
    exit 2
    ;;
esac
