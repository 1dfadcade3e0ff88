# backup-01: pgBackRest from PGDG (pinned), the repository, its TLS server and the backup timers.
# Files (pgbackrest.conf, TLS material, units, the backup wrapper) are written above this body.
current=$(dpkg-query -W -f='${Version}' pgbackrest 2>/dev/null || true)
if [ "$current" != "$KB_PGBACKREST_VERSION" ]; then
  kb_apt_key https://www.postgresql.org/media/keys/ACCC4CF8.asc "$KB_PGDG_KEY_FINGERPRINT" /etc/apt/keyrings/pgdg.gpg
  # shellcheck source=/dev/null
  . /etc/os-release
  echo "deb [signed-by=/etc/apt/keyrings/pgdg.gpg] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
    | kb_write /etc/apt/sources.list.d/pgdg.list 0644 root:root
  kb_apt_get update
  kb_apt_get install --no-install-recommends "pgbackrest=$KB_PGBACKREST_VERSION"
  apt-mark hold pgbackrest >/dev/null
fi
installed=$(pgbackrest version)
echo "pgbackrest: $installed on $(hostname)"
install -d -m 0750 -o postgres -g postgres "$KB_REPO_PATH"
install -d -m 0750 -o postgres -g postgres "$KB_WORK_DIR" "$KB_WORK_DIR/lock" "$KB_WORK_DIR/log"
# node_exporter's textfile directory stays root's (the exporters step sets it 0755): the backup
# wrapper, run as postgres, rewrites its own two files there.
install -d -m 0755 "$KB_TEXTFILE_DIR"
for type in full diff; do
  metric=$KB_TEXTFILE_DIR/keybuzz-backup-postgres-$type.prom
  [ -f "$metric" ] || : >"$metric"
  chown postgres:postgres "$metric"
  chmod 0644 "$metric"
done
systemctl daemon-reload
# Restart the TLS server when what it runs changed (compared with the live spec, so a retry after a
# failed run converges too).
wanted=$(cat "$KB_PGBACKREST_CONFIG" "$KB_TLS_DIR"/* /etc/systemd/system/keybuzz-pgbackrest-server.service | sha256sum | cut -c1-16)
spec_file=$KB_WORK_DIR/server.spec
if [ "$(cat "$spec_file" 2>/dev/null || true)" != "$wanted" ] || ! systemctl is-active --quiet keybuzz-pgbackrest-server.service; then
  systemctl enable keybuzz-pgbackrest-server.service >/dev/null 2>&1
  systemctl restart keybuzz-pgbackrest-server.service
  echo "$wanted" >"$spec_file"
fi
systemctl enable --now keybuzz-pgbackrest-full.timer keybuzz-pgbackrest-diff.timer >/dev/null 2>&1
kb_wait_port() { timeout "$2" bash -c "until (exec 3<>/dev/tcp/$KB_ADDRESS/$1) 2>/dev/null; do sleep 1; done"; }
if ! kb_wait_port "$KB_TLS_PORT" 60; then
  kb_diagnose "pgbackrest: the TLS server does not listen on $KB_ADDRESS:$KB_TLS_PORT after 60 s (journalctl -u keybuzz-pgbackrest-server)"
  exit 1
fi
echo "pgbackrest: repository $KB_REPO_PATH, TLS server on $KB_ADDRESS:$KB_TLS_PORT, timers enabled"
