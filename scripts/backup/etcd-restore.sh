# keybuzz-etcd-restore SNAPSHOT: one member's data directory from a snapshot (`etcdctl snapshot
# restore`), run on every member with its own name and peer URL, all with the same cluster and a
# NEW token, before the members start again (etcd docs, "Disaster recovery").
# Variables: KB_NAME, KB_INITIAL_CLUSTER (name=https://ip:2380,…), KB_PEER_URL, KB_TOKEN, KB_DATA_DIR.
export ETCDCTL_API=3
snapshot=${1:?usage: keybuzz-etcd-restore SNAPSHOT}
if [ -e "$KB_DATA_DIR" ]; then
  echo "etcd restore: $KB_DATA_DIR exists; move it aside first (the member must be stopped)" >&2
  exit 1
fi
etcdctl snapshot restore "$snapshot" --name="$KB_NAME" --initial-cluster="$KB_INITIAL_CLUSTER" \
  --initial-advertise-peer-urls="$KB_PEER_URL" --initial-cluster-token="$KB_TOKEN" --data-dir="$KB_DATA_DIR"
echo "etcd restore: $KB_DATA_DIR restored from $snapshot for member $KB_NAME"
