# kb_xfs_volume MOUNT_POINT [WAIT_SECONDS]
# Mounts the node's one Hetzner data volume on MOUNT_POINT: XFS (made when the volume is blank,
# refused when it holds another file system), an /etc/fstab entry by file-system UUID with
# noatime and nofail, mounted now. Waits up to WAIT_SECONDS (default 120) for the volume's stable
# link /dev/disk/by-id/scsi-0HC_Volume_* to appear: a volume attached with its server can show up
# after the first SSH login. Idempotent; leaves the rest of /etc/fstab alone.
kb_xfs_volume() {
  local mount_point=$1 wait_seconds=${2:-120} waited=0 devices=() device fstype uuid entry mounted
  shopt -s nullglob
  while :; do
    devices=(/dev/disk/by-id/scsi-0HC_Volume_*)
    if [ "${#devices[@]}" -gt 0 ] || [ "$waited" -ge "$wait_seconds" ]; then break; fi
    sleep 2
    waited=$((waited + 2))
  done
  shopt -u nullglob
  if [ "${#devices[@]}" -ne 1 ]; then
    kb_diagnose "data volume: expected exactly one Hetzner volume on this node, found ${#devices[@]}: ${devices[*]:-none}"
    return 1
  fi
  device=$(readlink -f "${devices[0]}")
  fstype=$(blkid -o value -s TYPE "$device" || true)
  if [ -z "$fstype" ]; then
    mkfs.xfs -q "$device"
    fstype=xfs
  fi
  if [ "$fstype" != xfs ]; then
    kb_diagnose "data volume: $device holds a $fstype file system, expected xfs; refusing to touch it"
    return 1
  fi
  uuid=$(blkid -o value -s UUID "$device")
  entry="UUID=$uuid $mount_point xfs defaults,noatime,nofail 0 2"
  if ! grep -qxF "$entry" /etc/fstab; then
    # Replace any older entry for this mount point, keep everything else.
    awk -v mp="$mount_point" '$2 != mp' /etc/fstab >/etc/fstab.keybuzz
    echo "$entry" >>/etc/fstab.keybuzz
    mv -f /etc/fstab.keybuzz /etc/fstab
    systemctl daemon-reload
  fi
  install -d -m 0755 "$mount_point"
  mountpoint -q "$mount_point" || mount "$mount_point"
  # (captured first: a pipe into grep -q fails under pipefail whenever findmnt gets SIGPIPE)
  mounted=$(findmnt -no FSTYPE,OPTIONS "$mount_point")
  if ! grep -q '^xfs .*noatime' <<<"$mounted"; then
    kb_diagnose "data volume: $mount_point is mounted as '$mounted', expected xfs with noatime"
    return 1
  fi
  echo "data volume: $device (xfs) on $mount_point"
}
