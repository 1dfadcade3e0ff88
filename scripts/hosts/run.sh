#!/usr/bin/env bash
# npm run test:hosts: the real-host tier (docs/integration.md, "Real hosts"). Needs root: it creates
# network namespaces, overlay mounts and systemd-nspawn hosts. Installs its Debian packages
# (packages.txt) when missing, then runs tests/hosts/tier.ts. Leftovers of a crashed run (hosts,
# mounts, namespaces) are removed first.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test:hosts: needs root (network namespaces, overlay mounts, systemd-nspawn); run it as root, e.g. sudo npm run test:hosts" >&2
  exit 1
fi
mapfile -t wanted < <(grep -vE '^\s*(#|$)' scripts/hosts/packages.txt)
missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then missing+=("$package"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test:hosts: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash scripts/hosts/hosts.sh down
exec npx ts-node --transpile-only tests/hosts/tier.ts
