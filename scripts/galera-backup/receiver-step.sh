# backup-01: the receiver of the Galera backups. KB_USER logs in only with the backup key (its
# password field is '*': no password matches, and the account is not "locked" for sshd), and that
# key runs only the receiver (authorized_keys: restrict, from=, command=). The receiver and the
# staged authorized_keys are written above this body.
if ! id -u "$KB_USER" >/dev/null 2>&1; then
  useradd --system --home-dir "$KB_BACKUP_DIR" --no-create-home --shell /bin/sh "$KB_USER"
fi
usermod -p '*' "$KB_USER"
install -d -m 0700 -o "$KB_USER" -g "$KB_USER" "$KB_BACKUP_DIR" "$KB_BACKUP_DIR/.ssh"
install -m 0600 -o "$KB_USER" -g "$KB_USER" "$KB_STAGED_KEYS" "$KB_BACKUP_DIR/.ssh/authorized_keys"
# node_exporter's textfile directory belongs to root: the receiver rewrites its own file there.
install -d -m 0755 "$KB_TEXTFILE_DIR"
metric=$KB_TEXTFILE_DIR/keybuzz-backup-galera.prom
[ -f "$metric" ] || : >"$metric"
chown "$KB_USER:$KB_USER" "$metric"
chmod 0644 "$metric"
shopt -s nullglob
stored=("$KB_BACKUP_DIR"/galera-*.mbstream.gz)
echo "galera backup receiver: $KB_USER ready, ${#stored[@]} backup(s) in $KB_BACKUP_DIR"
