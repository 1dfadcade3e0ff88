#!/usr/bin/env bash
# Builds, once per recipe, the root tarball of a stand-in container image for the real-host tier and
# prints its path: Debian trixie (debootstrap minbase) with the Debian packages named below. The
# tier imports it into each host's Docker under the pinned name (`docker import`), so the program's
# steps find "their" image without a registry. A stand-in proves the step scripts, the rendered
# configs and the daemons' behaviour; NOT the upstream image's entrypoint, users, paths or version
# (docs/integration.md, "Real hosts").
#   standin-image.sh redis    redis-server + redis-sentinel + redis-tools, for redis:<pin>
#   standin-image.sh haproxy  haproxy, its user renumbered to uid/gid 99 as in the official image
#                             (docker-library/haproxy 2.8/Dockerfile), for haproxy:<pin>
set -euo pipefail
kind=${1:?usage: standin-image.sh redis|haproxy}
cache=${KB_HOSTS_CACHE:-/var/cache/keybuzz-hosts}
mirror=${KB_HOSTS_MIRROR:-http://deb.debian.org/debian}
case "$kind" in
  redis) packages=redis-server,redis-sentinel,redis-tools ;;
  haproxy) packages=haproxy ;;
  *)
    echo "standin-image: no stand-in for $kind" >&2
    exit 2
    ;;
esac
key=$(printf '%s\n' "$kind" "$packages" | cat - "$0" | sha256sum)
tarball="$cache/standin-$kind-${key:0:16}.tar"
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi
mkdir -p "$cache"
for old in "$cache"/standin-"$kind"-*; do
  [ -e "$old" ] && rm -rf --one-file-system "$old"
done
work="$cache/standin-$kind.partial"
rm -rf --one-file-system "$work"
mkdir -p "$work"
echo "standin-image: debootstrap trixie with $packages (once)" >&2
debootstrap --variant=minbase --include="$packages" trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
if [ "$kind" = haproxy ]; then
  # The step chowns haproxy.cfg to 99:99 and reads it as the image's user (components/data/haproxy.ts).
  chroot "$work/rootfs" groupmod -g 99 haproxy
  chroot "$work/rootfs" usermod -u 99 -g 99 haproxy
  chroot "$work/rootfs" chown -R haproxy:haproxy /var/lib/haproxy
fi
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
rm -rf --one-file-system "$work"
echo "$tarball"
