#!/usr/bin/env bash
# Runs `bash .ci/run` on a fresh clone of a commit inside a clean Debian root, so a package that was
# installed by hand on this machine cannot hide a missing install step (README, "Tests").
#
#   sudo bash scripts/ci-in-clean-root.sh [COMMIT]      (default: HEAD)
#
# KEYBUZZ_CLEAN_ROOT_COMMAND replaces `bash .ci/run` (e.g. to re-run one stage).
# KEYBUZZ_CLEAN_ROOT_SHARE_HOSTS_CACHE=1 lends the real-host tier's image cache
# (/var/cache/keybuzz-hosts: its golden root and stand-in images) to the clean root, as CI on this
# machine finds it; without it the tier builds them cold inside the root (minutes more).
#
# The root is a debootstrap of the machine's Debian release with only what a fresh CI machine has
# (git, python3, make, g++, curl, ca-certificates) plus this machine's Node.js, cached in
# /var/cache/keybuzz-clean-root/base and used through a throw-away overlay, so every run starts
# from the same clean state. apt inside it reaches the Debian mirror only, as .ci/run does on CI.
# Needs root, debootstrap and overlayfs. Exit status: that of .ci/run.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "ci-in-clean-root: run as root (debootstrap, mounts, chroot)" >&2; exit 2; }
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse "${1:-HEAD}")
cache=/var/cache/keybuzz-clean-root
base=$cache/base
# shellcheck source=/dev/null
. /etc/os-release

if [ ! -f "$base/.complete" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$base"
  mkdir -p "$base"
  echo "ci-in-clean-root: building the clean ${VERSION_CODENAME} root (once, cached in $base)"
  debootstrap --variant=minbase --include=git,ca-certificates,python3,make,g++,curl,procps \
    "$VERSION_CODENAME" "$base" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
    { echo "ci-in-clean-root: debootstrap failed, see $cache/debootstrap.log" >&2; exit 1; }
  # Node.js and npm as a fresh machine has them: this machine's nodejs package files, and npm as
  # upgraded in place (npm's own tree, not the package's).
  dpkg -L nodejs | while IFS= read -r path; do
    if [ -f "$path" ] && [ ! -L "$path" ]; then install -D -m "$(stat -c %a "$path")" "$path" "$base$path"; fi
  done
  rm -rf "$base/usr/lib/node_modules/npm"
  cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$base/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$base/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$base/usr/bin/npx"
  # The machine's apt sources (the Debian mirror, with security updates), in place of debootstrap's.
  rm -f "$base/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/debian.sources "$base/etc/apt/sources.list.d/"
  # The machine's trust and registry settings (its CA bundle additions, npm's global config), which a
  # fresh machine of this kind also has: they are setup, not packages.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$base/usr/local/share/ca-certificates/"
    chroot "$base" update-ca-certificates >/dev/null
  fi
  for npmrc in /etc/npmrc /usr/etc/npmrc /root/.npmrc; do
    if [ -f "$npmrc" ]; then install -D -m 0644 "$npmrc" "$base$npmrc"; fi
  done
  touch "$base/.complete"
fi

run=$(mktemp -d /var/tmp/keybuzz-clean-root.XXXXXX)
root=$run/root
mkdir -p "$run/upper" "$run/work" "$root"
cleanup() {
  for mount in "$root/var/cache/keybuzz-hosts" "$root/var/lib/keybuzz-hosts-disk" "$root/dev/pts" "$root/dev" "$root/proc" "$root/sys" "$root/run" "$root/tmp" "$root"; do
    if mountpoint -q "$mount"; then umount -R -l "$mount"; fi
  done
  rm -rf "$run"
}
trap cleanup EXIT
mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$root"
mount -t proc proc "$root/proc"
# /sys with its cgroup tree, for the real-host tier (systemd-nspawn needs the cgroup hierarchy).
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs -o size=8G tmpfs "$root/tmp"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The real-host tier's per-host Docker data: overlay2 cannot stack on the root's own overlay, so
# this one directory lives on the machine's disk, empty like the rest.
mkdir -p "$run/hosts-data" "$root/var/lib/keybuzz-hosts-disk"
mount --bind "$run/hosts-data" "$root/var/lib/keybuzz-hosts-disk"
if [ "${KEYBUZZ_CLEAN_ROOT_SHARE_HOSTS_CACHE:-0}" = 1 ] && [ -d /var/cache/keybuzz-hosts ]; then
  mkdir -p "$root/var/cache/keybuzz-hosts"
  mount --bind /var/cache/keybuzz-hosts "$root/var/cache/keybuzz-hosts"
fi

git clone -q "$repo" "$root/ci/keybuzz"
git -C "$root/ci/keybuzz" checkout -q "$commit"
cp -a "$repo/../shared" "$root/ci/shared" 2>/dev/null || true
echo "ci-in-clean-root: bash .ci/run on $commit in a clean root ($root)"
# The environment CI gets: the machine's, as on a fresh machine (certificate variables included).
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true \
  LANG=C.UTF-8 ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS} ${SSL_CERT_FILE:+SSL_CERT_FILE=$SSL_CERT_FILE} \
  KB_HOSTS_DATA=/var/lib/keybuzz-hosts-disk/data \
  bash -c "cd /ci/keybuzz && ${KEYBUZZ_CLEAN_ROOT_COMMAND:-bash .ci/run} </dev/null"
