#!/usr/bin/env bash
# Installs the Debian packages listed in tests/support/packages.txt that are not installed yet, so the
# real-tool tests can run on a fresh machine. Needs root and apt; set KEYBUZZ_SKIP_TOOL_INSTALL=1 to
# skip (the tests then fail, naming the missing tool).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${KEYBUZZ_SKIP_TOOL_INSTALL:-0}" = "1" ]; then exit 0; fi
mapfile -t wanted < <(grep -vE '^\s*(#|$)' tests/support/packages.txt)
missing=()
for package in "${wanted[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-test-tools: missing Debian packages ${missing[*]}; install them (root + apt) or run as root" >&2
  exit 1
fi
echo "install-test-tools: installing ${missing[*]}"
apt-get update -qq
# Daemons must not start at install time: the tests start what they need on loopback themselves.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
