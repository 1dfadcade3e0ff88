# Verifies one ProxySQL node (components/data/proxysql/render.ts sets the KB_* variables above):
# exactly one ONLINE backend in the writer hostgroup, then a write and a read as the app user
# through this node (table keybuzz_healthcheck of the app database). The MariaDB image is the client.
: "${KB_CLIENT_IMAGE:?}" "${KB_SECRET_DIR:?}" "${KB_HOST_NAME:?}" "${KB_APP_DATABASE:?}" "${KB_WRITER_HOSTGROUP:?}"

client() {
  docker run --rm -i --network host -v "$KB_SECRET_DIR/$1.cnf:/run/keybuzz/client.cnf:ro" "$KB_CLIENT_IMAGE" \
    mariadb --defaults-extra-file=/run/keybuzz/client.cnf -N -B "${@:2}"
}
# shellcheck disable=SC2317 # called through kb_wait_until (the step preamble)
one_online_writer() {
  [ "$(client admin <<<"SELECT COUNT(*) FROM runtime_mysql_servers WHERE hostgroup_id=$KB_WRITER_HOSTGROUP AND status='ONLINE';")" = 1 ]
}
kb_wait_until 300 3 "ProxySQL does not have exactly one ONLINE writer" one_online_writer || {
  client admin <<<"SELECT hostgroup_id, hostname, status, weight FROM runtime_mysql_servers ORDER BY hostgroup_id, hostname;" >&2 || true
  exit 1
}
token="$KB_HOST_NAME-$(date +%s)-$RANDOM"
client app -D "$KB_APP_DATABASE" <<SQL
CREATE TABLE IF NOT EXISTS keybuzz_healthcheck (probe VARCHAR(64) PRIMARY KEY, token VARCHAR(128) NOT NULL, checked_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP);
REPLACE INTO keybuzz_healthcheck (probe, token) VALUES ('$KB_HOST_NAME', '$token');
SQL
# The read goes to a reader (another Galera node), which applies the write within moments.
for _ in $(seq 1 30); do
  if [ "$(client app -D "$KB_APP_DATABASE" <<<"SELECT token FROM keybuzz_healthcheck WHERE probe='$KB_HOST_NAME';")" = "$token" ]; then
    echo "ProxySQL $KB_HOST_NAME: one ONLINE writer; write and read as the app user succeeded"
    exit 0
  fi
  sleep 1
done
echo "ProxySQL $KB_HOST_NAME: the row written through this node was not read back" >&2
exit 1
