# ProxySQL on one node (components/data/proxysql/render.ts sets the KB_* variables and defines
# kb_proxysql_state / kb_proxysql_run, components/lib/container.ts, above). The container starts
# with --initial, so the rendered proxysql.cnf is its whole configuration at every start (no drift
# in proxysql.db). It is recreated when its image or options changed (the keybuzz.spec label), when
# it is not running, or when proxysql.cnf differs from the one it was started with: compared with
# the live file, so a retry after a failed run still restarts it, and a rotated password too.
: "${KB_CONFIG_FILE:?}" "${KB_DATA_DIR:?}" "${KB_STARTED_FILE:?}"

install -d -m 0755 "$KB_DATA_DIR"
config=$(sha256sum "$KB_CONFIG_FILE")
config=${config%% *}
started=$(cat "$KB_STARTED_FILE" 2>/dev/null || true)
state=$(kb_proxysql_state)
if [ "$state" != current ] || [ "$started" != "$config" ]; then
  kb_proxysql_run >/dev/null
  # The hash of a file that holds passwords: root only, like the file itself.
  (umask 077 && echo "$config" >"$KB_STARTED_FILE")
  echo "proxysql: (re)started (container $state, configuration $([ "$started" = "$config" ] && echo unchanged || echo changed))"
fi
