# postgres_exporter's role (components/observability/exporters sets the KB_* variables): the
# rendered SQL on the leader, found by libpq among every DB node (target_session_attrs=read-write),
# over TLS verified against the platform CA, as the superuser (pgpass). Then the role's memberships
# are read back: pg_monitor and nothing else.
: "${KB_PG_HOSTS:?}" "${KB_PG_PORT:?}" "${KB_CONFIG_DIR:?}" "${KB_TLS_DIR:?}" "${KB_ROLE:?}" "${KB_SQL_FILE:?}" "${KB_PGPASS_FILE:?}"

leader_psql() {
  docker exec -e PGPASSFILE="$KB_CONFIG_DIR/$KB_PGPASS_FILE" patroni psql -X -q -v ON_ERROR_STOP=1 \
    "host=$KB_PG_HOSTS port=$KB_PG_PORT user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=5 sslmode=verify-ca sslrootcert=$KB_TLS_DIR/ca.crt" "$@"
}
leader_psql -f "$KB_CONFIG_DIR/$KB_SQL_FILE"
memberships=$(leader_psql -At -c "SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '$KB_ROLE'")
if [ "$memberships" != pg_monitor ]; then
  echo "postgres-exporter: role $KB_ROLE is a member of '$memberships', expected pg_monitor only" >&2
  exit 1
fi
echo "postgres-exporter: role $KB_ROLE ready (pg_monitor only)"
