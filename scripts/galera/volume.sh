# Galera volume step (components/data/galera/render.ts sets the KB_* variables above): the node's
# XFS data volume on the datadir (kb_xfs_volume, scripts/common/xfs-volume.sh), then the config
# directory and the root-only secret directory the node's files go to.
: "${KB_DATA_DIR:?}" "${KB_CONFIG_DIR:?}" "${KB_SECRET_DIR:?}"

kb_xfs_volume "$KB_DATA_DIR"
install -d -m 0755 "$KB_CONFIG_DIR"
install -d -m 0700 "$KB_SECRET_DIR"
