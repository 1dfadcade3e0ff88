# kb_platform_containers_down: prints the platform's containers on this host (those with a
# `keybuzz.spec` label, components/lib/container.ts) that are not running, or not healthy where
# they have a health check, one `name: state` per line; nothing when all are up. The base OS
# verification waits on it, so a base-OS change rolls to the next server of the same group only
# once this one's services are back (Docker's live-restore keeps them running through a daemon
# restart; this checks it).
kb_platform_containers_down() {
  local listing name state health
  listing=$(docker ps --all --filter label=keybuzz.spec --format '{{.Names}} {{.State}} {{.Status}}') || {
    echo "docker: not answering"
    return 0
  }
  while read -r name state health; do
    [ -n "$name" ] || continue
    if [ "$state" != running ]; then
      echo "${name}: ${state}"
    elif [[ "$health" == *"(health: starting)"* || "$health" == *"(unhealthy)"* ]]; then
      health=${health##*(}
      echo "${name}: ${health%)}"
    fi
  done <<<"$listing"
}

kb_platform_containers_up() {
  local down
  down=$(kb_platform_containers_down)
  [ -z "$down" ]
}
