# MinIO volume step (components/data/minio/render.ts sets the KB_* variables above): the node's
# Hetzner data volume mounted on KB_VOLUME_MOUNT (kb_xfs_volume, scripts/common/xfs-volume.sh),
# then the drive directory KB_DATA_DIR on it.
: "${KB_VOLUME_MOUNT:?}" "${KB_DATA_DIR:?}"

# A drive written on the root disk before the node had a volume would vanish under the mount, and
# the node would come back empty: refuse, so its objects are moved (docs/minio.md) instead of lost.
if ! mountpoint -q "$KB_VOLUME_MOUNT" && [ -d "$KB_DATA_DIR" ]; then
  root_disk_entries=$(find "$KB_DATA_DIR" -mindepth 1 -maxdepth 1 -printf x)
  if [ -n "$root_disk_entries" ]; then
    kb_diagnose "minio volume: $KB_DATA_DIR holds a drive on the root disk; move it onto the data volume first (docs/minio.md, \"A drive on the root disk\")"
    exit 1
  fi
fi
kb_xfs_volume "$KB_VOLUME_MOUNT"
install -d -m 0700 "$KB_DATA_DIR"
echo "minio volume: drive $KB_DATA_DIR on the data volume mounted at $KB_VOLUME_MOUNT"
