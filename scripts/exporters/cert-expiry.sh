#!/usr/bin/env bash
# Writes node_exporter's textfile of certificate expiry dates (components/observability/exporters):
# one keybuzz_certificate_expiry_timestamp_seconds{path="…"} series per certificate file found under
# the directories given, its value the certificate's notAfter as a Unix timestamp. Files that are
# not a PEM certificate (keys, CSRs) are skipped. Run hourly by keybuzz-cert-expiry.timer.
# Usage: cert-expiry.sh OUTPUT_FILE DIR...
set -euo pipefail
output=$1
shift
metric=keybuzz_certificate_expiry_timestamp_seconds
tmp=$(mktemp "${output}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
  echo "# HELP $metric notAfter of a certificate file on this host, Unix seconds."
  echo "# TYPE $metric gauge"
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    files=$(find "$dir" -type f \( -name '*.crt' -o -name '*.pem' \) | sort)
    while IFS= read -r file; do
      [ -n "$file" ] || continue
      if not_after=$(openssl x509 -noout -enddate -in "$file" 2>/dev/null); then
        echo "$metric{path=\"$file\"} $(date -d "${not_after#notAfter=}" +%s)"
      fi
    done <<<"$files"
  done
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$output"
trap - EXIT
