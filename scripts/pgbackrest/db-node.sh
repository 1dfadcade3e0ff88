# A DB node: pgBackRest's directories on the data volume and its TLS server, a container of the
# node's Patroni image (the pgBackRest that archive_command runs), through which backup-01 backs up.
# pgbackrest.conf and the unit are written above this body.
install -d -m 0700 -o "$KB_POSTGRES_UID" -g "$KB_POSTGRES_UID" "$KB_WORK_DIR" "$KB_WORK_DIR/spool" "$KB_WORK_DIR/lock" "$KB_WORK_DIR/log"
systemctl daemon-reload
wanted=$(cat "$KB_PGBACKREST_CONFIG" "$KB_TLS_DIR"/* "/etc/systemd/system/$KB_UNIT" | sha256sum | cut -c1-16)
spec_file=/var/lib/keybuzz/pgbackrest-server.spec
mkdir -p /var/lib/keybuzz
if [ "$(cat "$spec_file" 2>/dev/null || true)" != "$wanted" ] || ! systemctl is-active --quiet "$KB_UNIT"; then
  systemctl enable "$KB_UNIT" >/dev/null 2>&1
  systemctl restart "$KB_UNIT"
  echo "$wanted" >"$spec_file"
fi
if ! timeout 60 bash -c "until (exec 3<>/dev/tcp/$KB_ADDRESS/$KB_TLS_PORT) 2>/dev/null; do sleep 1; done"; then
  kb_diagnose "pgbackrest: the TLS server does not listen on $KB_ADDRESS:$KB_TLS_PORT after 60 s (journalctl -u $KB_UNIT)"
  exit 1
fi
echo "pgbackrest: TLS server on $KB_ADDRESS:$KB_TLS_PORT ($KB_IMAGE_TAG)"
