# kb_haproxy_checked_server PROXY: true when HAProxy's stats CSV ($KB_STATS_URL) shows a server of
# PROXY that is UP and whose last health check passed. HAProxy starts a server UP before its first
# check has run, so "UP" alone passes even when every backend is down. CSV columns (HAProxy 2.8
# doc/management.txt, "9.1. CSV format"; numbered from 0 there, from 1 in awk): 0 pxname,
# 1 svname, 17 status, 36 check_status (L4OK, L6OK, L7OK, L7OKC: passed; "* " prefixed while a
# check runs; INI before the first one). The CSV is captured whole before it is read.
kb_haproxy_checked_server() {
  local csv
  csv=$(curl -fsS "$KB_STATS_URL") || return 1
  awk -F, -v px="$1" '
    $1 == px && $2 != "FRONTEND" && $2 != "BACKEND" && $18 ~ /^UP/ && $37 ~ /^(\* )?L[467]OKC?$/ { found = 1 }
    END { exit !found }' <<<"$csv"
}
