# Mounts the node's Hetzner volume (XFS, fstab, noatime) and prepares PGDATA and the WAL directory,
# owned by the container's postgres uid with mode 700 (spec 001's replica permission fix).
shopt -s nullglob
devices=(/dev/disk/by-id/scsi-0HC_Volume_*)
if [ "${#devices[@]}" -ne 1 ]; then
  echo "postgres volume: expected exactly one Hetzner volume, found ${#devices[@]}: ${devices[*]:-none}" >&2
  exit 1
fi
device=$(readlink -f "${devices[0]}")
fstype=$(blkid -o value -s TYPE "$device" || true)
if [ -z "$fstype" ]; then
  mkfs.xfs -q "$device"
  fstype=xfs
fi
if [ "$fstype" != xfs ]; then
  echo "postgres volume: $device holds $fstype, expected xfs; refusing to touch it" >&2
  exit 1
fi
uuid=$(blkid -o value -s UUID "$device")
line="UUID=$uuid $KB_VOLUME_MOUNT xfs defaults,noatime,nofail 0 2"
if ! grep -qxF "$line" /etc/fstab; then
  # Replace any older entry for this mount point, keep everything else.
  awk -v mp="$KB_VOLUME_MOUNT" '$2 != mp' /etc/fstab >/etc/fstab.keybuzz
  echo "$line" >>/etc/fstab.keybuzz
  mv /etc/fstab.keybuzz /etc/fstab
  systemctl daemon-reload
fi
install -d -m 0755 "$KB_VOLUME_MOUNT"
if ! mountpoint -q "$KB_VOLUME_MOUNT"; then
  mount "$KB_VOLUME_MOUNT"
fi
install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_DATA_DIR" "$KB_WAL_DIR"
# pgBackRest's directory (components/backup/pgbackrest): PostgreSQL's second socket directory must
# exist before PostgreSQL starts.
install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_VOLUME_MOUNT/pgbackrest"
# Verification: the right filesystem, mounted with noatime, directories as PostgreSQL requires.
# (captured first: a pipe into grep -q fails under pipefail whenever findmnt gets SIGPIPE)
mounted=$(findmnt -no FSTYPE,OPTIONS "$KB_VOLUME_MOUNT")
grep -q '^xfs .*noatime' <<<"$mounted"
for dir in "$KB_DATA_DIR" "$KB_WAL_DIR"; do
  test "$(stat -c '%u %a' "$dir")" = "$KB_POSTGRES_UID 700"
done
echo "postgres volume: $device (xfs) on $KB_VOLUME_MOUNT"
