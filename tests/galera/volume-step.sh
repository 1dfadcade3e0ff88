#!/usr/bin/env bash
# Runs a Galera volume step body (file BODY) for tests/galera/galera.tools.test.ts in a private
# mount namespace where /dev is the test's ROOT/dev and /etc the host's under a tmpfs layer holding
# ROOT/etc/fstab (copied back afterwards; all mounts are gone with the namespace), and blkid, mkfs.xfs, mountpoint, mount, findmnt and systemctl are fakes that keep
# the volume's state under ROOT/state and log their calls to ROOT/calls. The host's /dev, /etc and
# mounts are never touched.
#
# Usage: volume-step.sh BODY ROOT   (root: unshare -m)
#   ROOT/dev/disk/by-id/  the volume links the step looks for (prepared by the test)
#   ROOT/etc/fstab        the fstab the step edits (in, and out after the run)
#   ROOT/state/fstype     the volume's file system ("" = blank); ROOT/state/mounted when mounted
set -euo pipefail
body=$1 root=$2
mkdir -p "$root/bin" "$root/state"
fake() {
  printf '#!/usr/bin/env bash\necho "%s $*" >>%q/calls\n%s\n' "$1" "$root" "$2" >"$root/bin/$1"
  chmod +x "$root/bin/$1"
}
state=$(printf %q "$root/state")
fake blkid "case \"\$*\" in *TYPE*) cat $state/fstype ;; *UUID*) echo 6f1e2d3c-0000-4000-8000-00000000abcd ;; esac"
fake mkfs.xfs "echo xfs >$state/fstype"
fake mountpoint "[ -f $state/mounted ]"
fake mount "touch $state/mounted"
fake findmnt "echo 'xfs rw,noatime,attr2'"
fake systemctl ":"
# shellcheck disable=SC2016 # expanded by the inner bash
exec unshare -m bash -c '
set -euo pipefail
root=$1
mount --make-rprivate /
for node in null zero urandom; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
ln -sfn /proc/self/fd "$root/dev/fd"
mount --bind "$root/dev" /dev
# /etc as it is, under a writable tmpfs layer that holds the test fstab.
mkdir -p "$root/etc-layer"
mount -t tmpfs tmpfs "$root/etc-layer"
mkdir "$root/etc-layer/upper" "$root/etc-layer/work"
cp "$root/etc/fstab" "$root/etc-layer/upper/fstab"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$root/etc-layer/upper,workdir=$root/etc-layer/work" /etc
export PATH="$root/bin:/usr/sbin:/usr/bin:/sbin:/bin"
status=0
# Its own bash, strict like a step (errexit holds there; it would not inside a `|| status=`).
bash -c "set -euo pipefail; kb_diagnose() { echo \"diagnosis: \$*\" >&2; }; . \"\$0\"" "$2" || status=$?
cp /etc/fstab "$root/etc/fstab"
exit "$status"
' _ "$root" "$body"
