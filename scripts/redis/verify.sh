# Verification of the Redis cluster (components/data/redis.ts sets the KB_* variables above):
# every Sentinel names the same master, the master has all replicas online, Sentinel has its
# quorum, and a write on the master is readable on every replica.
: "${KB_PORT:?}" "${KB_SENTINEL_PORT:?}" "${KB_MASTER_NAME:?}" "${KB_NODE_IPS:?}" "${KB_IMAGE:?}" "${KB_MANAGED_DIR:?}"
REDIS_PASS=$(awk '$1 == "requirepass" { print $2 }' "$KB_MANAGED_DIR/redis.conf")
SENTINEL_PASS=$(awk '$1 == "requirepass" { print $2 }' "$KB_MANAGED_DIR/sentinel.conf")
export REDIS_PASS SENTINEL_PASS
rcli() {
  local secret=${!1}
  shift
  REDISCLI_AUTH=$secret timeout 10 docker run --rm --network host -e REDISCLI_AUTH "$KB_IMAGE" redis-cli --no-auth-warning "$@"
}

read -r -a nodes <<<"$KB_NODE_IPS"
expected_replicas=$((${#nodes[@]} - 1))
# Sets $masters (what the Sentinels name) and $master; true once the cluster is whole.
# Outputs are captured whole before they are read (a pipe into head or grep -q fails under pipefail
# whenever the writer gets SIGPIPE).
one_master_in_quorum() {
  local ip answer info quorum
  masters=$(for ip in "${nodes[@]}"; do
    answer=$(rcli SENTINEL_PASS -h "$ip" -p "$KB_SENTINEL_PORT" SENTINEL get-master-addr-by-name "$KB_MASTER_NAME" || true)
    printf '%s\n' "${answer%%$'\n'*}"
  done | sort -u)
  master=$masters
  [ "$(printf '%s\n' "$masters" | grep -c .)" = "1" ] || return 1
  info=$(rcli REDIS_PASS -h "$master" -p "$KB_PORT" INFO replication) || return 1
  quorum=$(rcli SENTINEL_PASS -h "${nodes[0]}" -p "$KB_SENTINEL_PORT" SENTINEL ckquorum "$KB_MASTER_NAME") || return 1
  grep -q "^connected_slaves:$expected_replicas" <<<"$info" &&
    [ "$(grep -c 'state=online' <<<"$info")" = "$expected_replicas" ] &&
    grep -q '^OK' <<<"$quorum"
}
masters=""
kb_wait_until 180 3 "redis verify: expected one master with $expected_replicas online replicas and a Sentinel quorum" one_master_in_quorum || {
  echo "redis verify: the Sentinels report master(s) [$(echo "$masters" | tr '\n' ' ')]" >&2
  exit 1
}
echo "redis verify: all ${#nodes[@]} Sentinels agree on master $master with $expected_replicas online replicas"

key="keybuzz:verify:$(date +%s)"
[ "$(rcli REDIS_PASS -h "$master" -p "$KB_PORT" SET "$key" ok EX 300)" = "OK" ]
rcli REDIS_PASS -h "$master" -p "$KB_PORT" WAIT "$expected_replicas" 5000 >/dev/null
for ip in "${nodes[@]}"; do
  if [ "$(rcli REDIS_PASS -h "$ip" -p "$KB_PORT" GET "$key")" != "ok" ]; then
    echo "redis verify: the write on $master is not readable on $ip" >&2
    exit 1
  fi
done
echo "redis verify: a write on the master reads back on every node"
