# End of a password rotation (docs/redis.md, "Password rotation"; components/data/redis/render.ts
# sets the KB_* variables above). Runs once HAProxy checks with the new password: every Redis and
# Sentinel whose default user still holds a second password keeps only the managed one and writes
# it to its live file (CONFIG REWRITE, SENTINEL FLUSHCONFIG), so a restart does not bring the old
# one back. Nothing to do when no rotation is under way.
: "${KB_PORT:?}" "${KB_SENTINEL_PORT:?}" "${KB_NODE_IPS:?}" "${KB_IMAGE:?}" "${KB_MANAGED_DIR:?}"
REDIS_PASS=$(awk '$1 == "requirepass" { print $2 }' "$KB_MANAGED_DIR/redis.conf")
SENTINEL_PASS=$(awk '$1 == "requirepass" { print $2 }' "$KB_MANAGED_DIR/sentinel.conf")
REDIS_RULE=">$REDIS_PASS"
SENTINEL_RULE=">$SENTINEL_PASS"
export REDIS_PASS SENTINEL_PASS REDIS_RULE SENTINEL_RULE

# passwords PASSWORD_VARIABLE IP PORT: how many passwords the default user holds (ACL LIST: one
# `#<sha256>` per password); fails when the daemon does not answer with the managed password.
passwords() {
  local list line word count=0
  list=$(rcli "$1" -h "$2" -p "$3" ACL LIST) || return 1
  line=$(grep '^user default ' <<<"$list") || return 1
  for word in $line; do
    if [[ $word == "#"* ]]; then count=$((count + 1)); fi
  done
  echo "$count"
}

for ip in $KB_NODE_IPS; do
  count=$(passwords REDIS_PASS "$ip" "$KB_PORT") || {
    kb_diagnose "redis rotation: $ip:$KB_PORT does not answer with the managed password"
    exit 1
  }
  if [ "$count" -gt 1 ]; then
    # requirepass (what CONFIG REWRITE writes) is the managed one; CONFIG SET of an unchanged value
    # applies nothing (src/config.c sdsConfigSet), so the default user's passwords are reset apart.
    rcli_secret REDIS_PASS REDIS_PASS -h "$ip" -p "$KB_PORT" CONFIG SET requirepass >/dev/null
    rcli_secret REDIS_PASS REDIS_RULE -h "$ip" -p "$KB_PORT" ACL SETUSER default resetpass >/dev/null
    rcli REDIS_PASS -h "$ip" -p "$KB_PORT" CONFIG REWRITE >/dev/null
    echo "redis rotation: $ip:$KB_PORT keeps only the new password"
  fi
  count=$(passwords SENTINEL_PASS "$ip" "$KB_SENTINEL_PORT") || {
    kb_diagnose "redis rotation: the Sentinel on $ip:$KB_SENTINEL_PORT does not answer with the managed password"
    exit 1
  }
  if [ "$count" -gt 1 ]; then
    rcli_secret SENTINEL_PASS SENTINEL_RULE -h "$ip" -p "$KB_SENTINEL_PORT" ACL SETUSER default resetpass >/dev/null
    rcli SENTINEL_PASS -h "$ip" -p "$KB_SENTINEL_PORT" SENTINEL FLUSHCONFIG >/dev/null
    echo "redis rotation: the Sentinel on $ip:$KB_SENTINEL_PORT keeps only the new password"
  fi
done
echo "redis: every Redis and Sentinel accepts the managed password only"
