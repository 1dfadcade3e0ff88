# MinIO on one node (components/data/minio/render.ts sets the KB_* variables above). The nodes of a
# distributed deployment wait for each other, so a first start does not wait for health; a
# restart of a running node for a changed environment waits until the whole cluster has its write
# quorum again, so those changes roll one node at a time. A new binary (image) is different: MinIO
# refuses peers that run another binary, so the node step (KB_PHASE=node) only pulls it, and the
# binary step (KB_PHASE=binary), run on every node at the same time once every node step is done,
# restarts all the nodes together.
: "${KB_PHASE:?}" "${KB_IMAGE:?}" "${KB_NODE_IP:?}" "${KB_API_PORT:?}" "${KB_VOLUME_MOUNT:?}" "${KB_DATA_DIR:?}" "${KB_ENV_FILE:?}"

# The drive lives on the node's data volume (the volume step mounts it): never on the root disk.
if ! mountpoint -q "$KB_VOLUME_MOUNT" || [ ! -d "$KB_DATA_DIR" ]; then
  kb_diagnose "minio: no data volume mounted at $KB_VOLUME_MOUNT (or no drive $KB_DATA_DIR on it); refusing to start MinIO on the root disk. Check that the node's Hetzner volume is attached (ls /dev/disk/by-id/scsi-0HC_Volume_*) and re-run"
  exit 1
fi
cluster_healthy() { curl -fsS -o /dev/null --max-time 5 "http://$KB_NODE_IP:$KB_API_PORT/minio/health/cluster"; }
# The container runs another image than the wanted one, by image ID (a new digest under the same tag counts).
binary_changed() {
  local running wanted
  running=$(docker inspect -f '{{ .Image }}' minio) || return 1
  wanted=$(docker image inspect -f '{{ .Id }}' "$KB_IMAGE")
  [ "$running" != "$wanted" ]
}

state=$(kb_minio_state)
if [ "$KB_PHASE" = "binary" ]; then
  # Left outdated by the node step: only a binary change is.
  if [ "$state" != "current" ] && [ "$state" != "missing" ]; then
    echo "minio: restarting $KB_NODE_IP on the new binary, together with the other nodes"
    kb_minio_run
  fi
  kb_wait_until --logs minio 300 2 "minio: the cluster has no write quorum on $KB_NODE_IP after the binary change" cluster_healthy
  echo "minio: $KB_NODE_IP runs the wanted binary, the cluster has its write quorum"
  exit 0
fi

if [ "$state" = "missing" ]; then
  echo "minio: starting $KB_NODE_IP (the cluster forms once every node is up)"
  kb_minio_run
elif [ "$state" != "current" ] || kb_is_changed "$KB_ENV_FILE"; then
  kb_minio_pull
  if binary_changed; then
    echo "minio: new binary pulled on $KB_NODE_IP; it restarts in the binary step, with every other node"
  else
    echo "minio: restarting $KB_NODE_IP"
    kb_minio_run
    kb_wait_until --logs minio 300 5 "minio: the cluster has no write quorum after restarting $KB_NODE_IP" cluster_healthy
  fi
fi
echo "minio: container up on $KB_NODE_IP"
