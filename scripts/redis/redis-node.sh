# Redis + Sentinel on one node (components/data/redis/render.ts sets the KB_* variables above).
# The step writes the managed configs under /etc/keybuzz/redis; the live copies the daemons run
# with (and Sentinel rewrites) are regenerated from them only when they change, so a re-run on a
# converged node does nothing and never undoes a failover.
# KB_PHASE: `node` (the node step: restarts a replica; a master with replicas is left running and
# marked deferred) or `master-roll` (after every node step: hands a deferred master's role over
# through Sentinel, then restarts it). So replicas roll first and the master last, once.
: "${KB_PHASE:?}" "${KB_NODE_IP:?}" "${KB_PORT:?}" "${KB_SENTINEL_PORT:?}" "${KB_MASTER_NAME:?}" "${KB_QUORUM:?}"
: "${KB_BOOT_MASTER_IP:?}" "${KB_PEER_IPS:?}" "${KB_IMAGE:?}" "${KB_OWNER:?}"
: "${KB_MANAGED_DIR:?}" "${KB_REDIS_DIR:?}" "${KB_SENTINEL_DIR:?}" "${KB_DATA_DIR:?}"

# The pinned image first: a probe's 10 s must not be spent pulling it (an empty answer reads as
# "nobody there").
kb_redis_image
managed_redis=$KB_MANAGED_DIR/redis.conf
# Present while this node runs a container or config older than wanted because it was the master
# at its node step: the master-roll step restarts it, and removes this once Redis is back.
deferred=$KB_MANAGED_DIR/redis.restart-deferred
managed_sentinel=$KB_MANAGED_DIR/sentinel.conf
live_redis=$KB_REDIS_DIR/redis.conf
live_sentinel=$KB_SENTINEL_DIR/sentinel.conf
install -d -m 0700 -o "${KB_OWNER%:*}" -g "${KB_OWNER#*:}" "$KB_REDIS_DIR" "$KB_SENTINEL_DIR" "$KB_DATA_DIR"
if kb_is_changed "$KB_SYSCTL_FILE"; then
  # kb_container: scripts/common/host.sh. vm.* is kernel-wide: a container's machine owns it.
  if container=$(kb_container); then
    echo "redis: this host is a container (${container}): vm.overcommit_memory is its machine's, left as it is"
  else
    sysctl -q -p "$KB_SYSCTL_FILE"
  fi
fi

# Passwords come from the root-only managed files, never from the command line.
REDIS_PASS=$(awk '$1 == "requirepass" { print $2 }' "$managed_redis")
SENTINEL_PASS=$(awk '$1 == "requirepass" { print $2 }' "$managed_sentinel")
# The password a running daemon was started with is its live file's (CONFIG REWRITE quotes it);
# when it differs from the managed one, a rotation is under way (below).
live_password() { awk '$1 == "requirepass" { gsub(/"/, "", $2); print $2 }' "$1" 2>/dev/null || true; }
OLD_REDIS_PASS=$(live_password "$live_redis")
OLD_SENTINEL_PASS=$(live_password "$live_sentinel")
export REDIS_PASS SENTINEL_PASS OLD_REDIS_PASS OLD_SENTINEL_PASS

# Password rotation (docs/redis.md, "Password rotation"): before anything restarts, every running
# Redis and Sentinel that refuses the new password gets it as a second one (ACL SETUSER default
# >new, authenticated with the old one), so old and new both work while the nodes roll; a daemon
# this step restarts accepts both too (the `user default` line below). The finish step, after
# HAProxy has the new password, drops the old one everywhere (scripts/redis/password-finish.sh).
answers_with() { [ "$(rcli "$1" -h "$2" -p "$3" PING 2>/dev/null || true)" = "PONG" ]; }
add_new_password() {
  local new=$1 old=$2 port=$3 ip
  [ -n "${!old}" ] && [ "${!old}" != "${!new}" ] || return 0
  for ip in $KB_PEER_IPS; do
    if ! answers_with "$new" "$ip" "$port" && answers_with "$old" "$ip" "$port"; then
      NEW_RULE=">${!new}" rcli_secret "$old" NEW_RULE -h "$ip" -p "$port" ACL SETUSER default >/dev/null
      echo "redis: rotation: $ip:$port accepts the new password besides the old one"
    fi
  done
}
add_new_password REDIS_PASS OLD_REDIS_PASS "$KB_PORT"
add_new_password SENTINEL_PASS OLD_SENTINEL_PASS "$KB_SENTINEL_PORT"
# transition_user OLD_VARIABLE NEW_VARIABLE: the `user default` line a restarted daemon gets while a
# rotation is under way (it overrides requirepass: Redis loads `user` lines after the config,
# src/server.c ACLLoadUsersAtStartup), so the peers, Sentinels and HAProxy still on the old one reach it.
transition_user() {
  if [ -n "${!1}" ] && [ "${!1}" != "${!2}" ]; then printf 'user default on >%s >%s ~* &* +@all\n' "${!2}" "${!1}"; fi
}

# The master a Sentinel names, else the node whose ROLE is master; fails when neither answers.
known_master() {
  local ip answer
  for ip in $KB_PEER_IPS; do
    answer=$(rcli SENTINEL_PASS -h "$ip" -p "$KB_SENTINEL_PORT" SENTINEL get-master-addr-by-name "$KB_MASTER_NAME" 2>/dev/null || true)
    answer=${answer%%$'\n'*}
    if [[ $answer =~ ^[0-9.]+$ ]]; then
      echo "$answer"
      return
    fi
  done
  for ip in $KB_PEER_IPS; do
    answer=$(rcli REDIS_PASS -h "$ip" -p "$KB_PORT" ROLE 2>/dev/null || true)
    if [ "${answer%%$'\n'*}" = master ]; then
      echo "$ip"
      return
    fi
  done
  return 1
}
# Another node's Redis answers at all (PONG or an error reply such as NOAUTH): the cluster exists.
peer_exists() {
  local ip answer
  for ip in $KB_PEER_IPS; do
    [ "$ip" != "$KB_NODE_IP" ] || continue
    answer=$(rcli REDIS_PASS -h "$ip" -p "$KB_PORT" PING 2>/dev/null || true)
    if [ -n "$answer" ]; then return 0; fi
  done
  return 1
}
# Redis 7 keeps its data in appendonlydir/ (AOF) and dump.rdb.
has_data() { [ -e "$KB_DATA_DIR/appendonlydir" ] || [ -e "$KB_DATA_DIR/dump.rdb" ]; }
# Sets $master to what this node starts under. This node may be its own master only when it runs
# now (a master restarted in place), or has data of its own (a restart after a stop), or nothing
# answers anywhere (the first deployment: then the bootstrap node is master). An empty node that
# the Sentinels still name (a replaced master before their failover), or one that finds peers but
# no master (Sentinels not answering yet), waits instead of starting as an empty master that
# HAProxy would prefer and the replicas would resync from.
pick_master() {
  if master=$(known_master); then
    [ "$master" != "$KB_NODE_IP" ] || redis_pong || has_data
    return
  fi
  ! peer_exists || return 1
  master=$KB_BOOT_MASTER_IP
}
# current_master: pick_master, waited for (Sentinel's failover of this node takes
# down-after-milliseconds plus the election: seconds); prints it.
current_master() {
  kb_wait_until 180 2 "redis: no master to start under: the Sentinels name this empty node or nobody, while other nodes answer (docs/operations.md, Redis)" pick_master
  echo "$master"
}

# Whole outputs are captured before they are read: under pipefail a pipe into a reader that stops
# early (head, grep -q) fails whenever the writer gets SIGPIPE.
local_role() {
  local role
  role=$(rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" ROLE 2>/dev/null || true)
  echo "${role%%$'\n'*}"
}
is_replica() { [ "$(local_role)" = "slave" ]; }
redis_pong() { [ "$(rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" PING)" = "PONG" ]; }
link_up() {
  local info
  info=$(rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" INFO replication) || return 1
  grep -q '^master_link_status:up' <<<"$info"
}
sentinel_pong() { [ "$(rcli SENTINEL_PASS -h "$KB_NODE_IP" -p "$KB_SENTINEL_PORT" PING)" = "PONG" ]; }

# A master clients are writing to: it has a connected replica that can take its role over.
serving_master() {
  [ "$(local_role)" = "master" ] || return 1
  local info
  info=$(rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" INFO replication || true)
  grep -q '^connected_slaves:[1-9]' <<<"$info"
}
# A Sentinel names another master, and that master has a replica other than this node online:
# Sentinel has moved the other replicas over, so the new master takes writes (min-replicas-to-write)
# while this one restarts. This node's own demotion is not waited for: Sentinel converts an old
# master only sentinel_publish_period x 4 (8 s) after the switch (Redis 7.2, src/sentinel.c,
# sentinelRefreshInstanceInfo), and until then HAProxy still sends clients to it, where writes fail
# with no replica left (NOREPLICAS). Stopping it now moves the clients within HAProxy's fall 2.
handed_over() {
  local master info line
  master=$(known_master) || return 1
  [ "$master" != "$KB_NODE_IP" ] || return 1
  info=$(rcli REDIS_PASS -h "$master" -p "$KB_PORT" INFO replication) || return 1
  while IFS= read -r line; do
    if [[ $line == slave[0-9]*:* && $line != *"ip=$KB_NODE_IP,"* && $line == *state=online* ]]; then return 0; fi
  done <<<"$info"
  return 1
}

# Before restarting the master, hand its role to a replica through Sentinel so clients see a
# clean switchover instead of an outage; done once another master has a replica besides this one.
# Writes pause on this master first (CLIENT PAUSE WRITE, Redis 6.2+; reads go on): Sentinel's
# failover does not stop them, and what the old master acknowledged after the promotion would be
# lost. The pause ends with this node's stop (its clients then move through HAProxy), or is lifted
# when the hand-over fails.
hand_over() {
  echo "redis: switching the master role away before the restart (writes paused)"
  rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" CLIENT PAUSE 120000 WRITE >/dev/null
  rcli SENTINEL_PASS -h "$KB_NODE_IP" -p "$KB_SENTINEL_PORT" SENTINEL failover "$KB_MASTER_NAME"
  if ! kb_wait_until 90 1 "redis: the switchover did not complete (no other master with an online replica)" handed_over; then
    rcli REDIS_PASS -h "$KB_NODE_IP" -p "$KB_PORT" CLIENT UNPAUSE >/dev/null || true
    return 1
  fi
}

# --- Redis -------------------------------------------------------------------------------------
redis_state=$(kb_redis_state)
restarted=no
if [ "$redis_state" != "current" ] || [ ! -f "$live_redis" ] || [ -f "$deferred" ] || kb_is_changed "$managed_redis"; then
  restart=yes
  if serving_master; then
    if [ "$KB_PHASE" = node ]; then
      restart=no
      touch "$deferred"
      echo "redis: master with replicas, restart deferred to the master-roll step (after every replica)"
    else
      hand_over
    fi
  elif [ "$(local_role)" = "master" ]; then
    echo "redis: no connected replica, restarting the master in place"
  fi
  if [ "$restart" = yes ]; then
    master=$(current_master)
    tmp=$(mktemp "$live_redis.XXXXXX")
    { cat "$managed_redis" && transition_user OLD_REDIS_PASS REDIS_PASS; } >"$tmp"
    if [ "$master" != "$KB_NODE_IP" ]; then
      printf 'replicaof %s %s\n' "$master" "$KB_PORT" >>"$tmp"
    fi
    chmod 0600 "$tmp"
    chown "$KB_OWNER" "$tmp"
    mv -f "$tmp" "$live_redis"
    echo "redis: starting as $([ "$master" = "$KB_NODE_IP" ] && echo master || echo "replica of $master")"
    kb_redis_run
    restarted=yes
  fi
fi

kb_wait_until --logs redis 120 2 "redis: no PONG on $KB_NODE_IP:$KB_PORT" redis_pong
if is_replica; then
  kb_wait_until 120 2 "redis: replication link to the master is not up" link_up
fi
if [ "$restarted" = yes ]; then rm -f "$deferred"; fi

# --- Sentinel ----------------------------------------------------------------------------------
sentinel_state=$(kb_redis_sentinel_state)
if [ "$sentinel_state" != "current" ] || [ ! -f "$live_sentinel" ] || kb_is_changed "$managed_sentinel"; then
  master=$(current_master)
  myid=$(grep -E '^sentinel myid ' "$live_sentinel" 2>/dev/null || true)
  tmp=$(mktemp "$live_sentinel.XXXXXX")
  sed -E "s/^sentinel monitor $KB_MASTER_NAME .*/sentinel monitor $KB_MASTER_NAME $master $KB_PORT $KB_QUORUM/" "$managed_sentinel" >"$tmp"
  if [ -n "$myid" ]; then echo "$myid" >>"$tmp"; fi
  transition_user OLD_SENTINEL_PASS SENTINEL_PASS >>"$tmp"
  chmod 0600 "$tmp"
  chown "$KB_OWNER" "$tmp"
  mv -f "$tmp" "$live_sentinel"
  kb_redis_sentinel_run
fi
kb_wait_until --logs redis-sentinel 60 2 "sentinel: no PONG on $KB_NODE_IP:$KB_SENTINEL_PORT" sentinel_pong

# A replaced node's Sentinel has a new id: the other Sentinels keep the old one's entry and count it
# in the majority a failover needs. Once a Sentinel knows this one, a Sentinel that lists more peers
# than there are other nodes is reset (SENTINEL RESET; Redis docs, "Adding or removing Sentinels"),
# one at a time, each waited for until it knows exactly the others again.
others=$(($(wc -w <<<"$KB_PEER_IPS") - 1))
my_sentinel_id=$(rcli SENTINEL_PASS -h "$KB_NODE_IP" -p "$KB_SENTINEL_PORT" SENTINEL MYID)
# sentinel_ids IP: the ids of the Sentinels the Sentinel on IP knows (`runid` of SENTINEL SENTINELS).
sentinel_ids() {
  local listing
  listing=$(rcli SENTINEL_PASS -h "$1" -p "$KB_SENTINEL_PORT" SENTINEL sentinels "$KB_MASTER_NAME") || return 1
  awk 'previous == "runid" { print } { previous = $0 }' <<<"$listing"
}
knows_this_sentinel() {
  local ids
  ids=$(sentinel_ids "$1") || return 1
  grep -qxF "$my_sentinel_id" <<<"$ids"
}
knows_exactly_the_others() {
  local ids
  ids=$(sentinel_ids "$1") || return 1
  grep -qxF "$my_sentinel_id" <<<"$ids" && [ "$(grep -c . <<<"$ids")" -eq "$others" ]
}
for ip in $KB_PEER_IPS; do
  if [ "$ip" = "$KB_NODE_IP" ] || ! answers_with SENTINEL_PASS "$ip" "$KB_SENTINEL_PORT"; then continue; fi
  kb_wait_until 60 2 "sentinel: the Sentinel on $ip does not know this one" knows_this_sentinel "$ip"
  ids=$(sentinel_ids "$ip")
  if [ "$(grep -c . <<<"$ids")" -gt "$others" ]; then
    echo "sentinel: the Sentinel on $ip keeps the entry of a replaced Sentinel: SENTINEL RESET"
    rcli SENTINEL_PASS -h "$ip" -p "$KB_SENTINEL_PORT" SENTINEL RESET "$KB_MASTER_NAME" >/dev/null
    kb_wait_until 120 2 "sentinel: the Sentinel on $ip does not know the others again after its reset" knows_exactly_the_others "$ip"
  fi
done
echo "redis: $(local_role) on $KB_NODE_IP, sentinel up"
