# Mounts the node's Hetzner volume (kb_xfs_volume: XFS, fstab, noatime) and prepares PGDATA and the
# WAL directory, owned by the container's postgres uid with mode 700 (spec 001's replica permission fix).
kb_xfs_volume "$KB_VOLUME_MOUNT"
install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_DATA_DIR" "$KB_WAL_DIR"
# pgBackRest's directory (components/backup/pgbackrest): PostgreSQL's second socket directory must
# exist before PostgreSQL starts.
install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_VOLUME_MOUNT/pgbackrest"
# Verification: the directories as PostgreSQL requires them.
for dir in "$KB_DATA_DIR" "$KB_WAL_DIR"; do
  test "$(stat -c '%u %a' "$dir")" = "$KB_POSTGRES_UID 700"
done
echo "postgres volume: $KB_VOLUME_MOUNT ready (PGDATA and WAL owned by uid $KB_POSTGRES_UID, mode 700)"
