# Patroni's own accounts (superuser, replication, rewind) get their passwords from patroni.yml only
# at bootstrap (Patroni's post_bootstrap). A rotated password is applied here, before any node step
# restarts a member with the new patroni.yml: on the leader, through the local socket (peer
# authentication needs no password), with statement logging off as Patroni does it. A replica
# recreated with the new replication password then streams at once, and the old password, still
# in the running members' files, is needed by no new connection of the roll.
if ! patroni_running; then
  echo "postgres accounts: Patroni does not run on $KB_NODE yet (at bootstrap Patroni sets them itself)"
elif [ "$(patroni_state role)" = leader ]; then
  docker exec -u postgres patroni psql -X -q -v ON_ERROR_STOP=1 -h "$KB_SOCKET_DIR" -p "$KB_POSTGRES_PORT" -d postgres \
    -f "$KB_CONFIG_DIR/accounts.sql"
  echo "postgres accounts: passwords of the superuser, replication and rewind roles applied on the leader $KB_NODE"
else
  echo "postgres accounts: $KB_NODE is not the leader; the leader's step applies them"
fi
