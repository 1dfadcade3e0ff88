# MinIO on one node (components/data/minio/render.ts sets the KB_* variables above). The nodes of a
# distributed deployment wait for each other, so a first start does not wait for health; a
# restart of a running node waits until the whole cluster has its write quorum again, so changes
# roll one node at a time.
: "${KB_NODE_IP:?}" "${KB_API_PORT:?}" "${KB_VOLUME_MOUNT:?}" "${KB_DATA_DIR:?}" "${KB_ENV_FILE:?}"

# The drive lives on the node's data volume (the volume step mounts it): never on the root disk.
if ! mountpoint -q "$KB_VOLUME_MOUNT" || [ ! -d "$KB_DATA_DIR" ]; then
  kb_diagnose "minio: no data volume mounted at $KB_VOLUME_MOUNT (or no drive $KB_DATA_DIR on it); refusing to start MinIO on the root disk. Check that the node's Hetzner volume is attached (ls /dev/disk/by-id/scsi-0HC_Volume_*) and re-run"
  exit 1
fi
cluster_healthy() { curl -fsS -o /dev/null --max-time 5 "http://$KB_NODE_IP:$KB_API_PORT/minio/health/cluster"; }

state=$(kb_minio_state)
if [ "$state" = "missing" ]; then
  echo "minio: starting $KB_NODE_IP (the cluster forms once every node is up)"
  kb_minio_run
elif [ "$state" != "current" ] || kb_is_changed "$KB_ENV_FILE"; then
  echo "minio: restarting $KB_NODE_IP"
  kb_minio_run
  kb_wait_until --logs minio 300 5 "minio: the cluster has no write quorum after restarting $KB_NODE_IP" cluster_healthy
fi
echo "minio: container up on $KB_NODE_IP"
