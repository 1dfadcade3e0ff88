#!/usr/bin/env bash
# Builds the real-host tier's golden image once per recipe and prints its root directory.
# The image is Debian trixie (debootstrap) with golden-packages.txt installed, apt pointed at a local
# repository of its own .debs (file:, so hosts never need the network), no SSH host keys (each host
# gets its own) and no machine-id. Cached under $KB_HOSTS_CACHE/golden-<sha256 of this script and the
# package list>; an interrupted build leaves only a *.partial directory, removed by the next build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KB_HOSTS_CACHE:-/var/cache/keybuzz-hosts}
mirror=${KB_HOSTS_MIRROR:-http://deb.debian.org/debian}
suite=trixie
key=$(cat "$here/golden.sh" "$here/golden-packages.txt" | sha256sum)
image="$cache/golden-${key:0:16}"
if [ -f "$image/.complete" ]; then
  echo "$image/rootfs"
  exit 0
fi
mkdir -p "$cache"
# Older recipes' images and half-built ones are of no further use.
for old in "$cache"/golden-*; do
  [ -e "$old" ] && [ "$old" != "$image" ] && rm -rf --one-file-system "$old"
done
rm -rf --one-file-system "$image"
partial="$image.partial"
rm -rf --one-file-system "$partial"
mkdir -p "$partial"
mapfile -t packages < <(grep -vE '^\s*(#|$)' "$here/golden-packages.txt")
include=$(IFS=,; echo "${packages[*]}")
echo "golden: debootstrap $suite with ${#packages[@]} packages into $partial (a few minutes, once)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$partial/rootfs" "$mirror" >"$partial/debootstrap.log" 2>&1 || {
  tail -n 30 "$partial/debootstrap.log" >&2
  exit 1
}
root="$partial/rootfs"
# The local repository: every .deb debootstrap fetched, indexed for apt.
repo="$root/var/lib/keybuzz-local-repo"
mkdir -p "$repo"
mv "$root"/var/cache/apt/archives/*.deb "$repo"/
# Stand-ins for Ubuntu packages Debian trixie does not have, that base-os.sh installs by name:
# empty packages, so apt finds them; they provide nothing (docs/integration.md, "Real hosts").
standins=(software-properties-common)
for standin in "${standins[@]}"; do
  pkg="$partial/standin-$standin"
  mkdir -p "$pkg/DEBIAN"
  printf 'Package: %s\nVersion: 0.0-keybuzz-standin\nArchitecture: all\nMaintainer: KeyBuzz host tier <tier@localhost>\nDescription: empty stand-in for an Ubuntu-only package\n' \
    "$standin" >"$pkg/DEBIAN/control"
  dpkg-deb --root-owner-group --build "$pkg" "$repo/${standin}_0.0-keybuzz-standin_all.deb" >/dev/null
done
chroot "$root" sh -c 'cd /var/lib/keybuzz-local-repo && apt-ftparchive packages . >Packages'
rm -f "$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:/var/lib/keybuzz-local-repo ./' >"$root/etc/apt/sources.list.d/keybuzz-local.list"
chroot "$root" apt-get update -qq
# Per-host identity comes at boot: fresh host keys (hosts.ts), machine-id from systemd.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
# debootstrap copied the machine's resolver; a host has none until the base OS writes its own.
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
chroot "$root" systemctl enable ssh.service >/dev/null 2>&1 || true
# A host's console is not a terminal anyone logs in on.
chroot "$root" systemctl mask console-getty.service getty@.service >/dev/null 2>&1 || true
echo "$key" >"$partial/recipe.sha256"
touch "$partial/.complete"
mv "$partial" "$image"
echo "$image/rootfs"
