# The module's verification: exactly one leader and every other node a streaming replica with
# lag 0; then the application roles and databases (idempotent) and the vector extension, on the leader.
patroni_state verify "$KB_REPLICAS" "$KB_WAIT_SECONDS"
leader=$(patroni_state leader-host)
docker exec -e PGPASSFILE="$KB_CONFIG_DIR/verify.pgpass" patroni psql -X -q -v ON_ERROR_STOP=1 \
  "host=$leader port=$KB_POSTGRES_PORT user=postgres dbname=postgres sslmode=verify-ca sslrootcert=$KB_TLS_DIR/ca.crt" \
  -f "$KB_CONFIG_DIR/app.sql"
echo "postgres: cluster verified, leader $leader, databases keybuzz (with vector) and keybuzz_backend ready"
