# redis-cli of the pinned image for the Redis steps (KB_IMAGE; the render sets it above). Passwords
# come from variables, never from a command line.

# rcli PASSWORD_VARIABLE ARGS...: redis-cli, password through REDISCLI_AUTH.
rcli() {
  local secret=${!1}
  shift
  REDISCLI_AUTH=$secret timeout 10 docker run --rm --network host -e REDISCLI_AUTH "$KB_IMAGE" redis-cli --no-auth-warning "$@"
}
# rcli_secret PASSWORD_VARIABLE VALUE_VARIABLE ARGS...: the same, with the value of VALUE_VARIABLE
# as the last argument, read from stdin (redis-cli -x).
rcli_secret() {
  local secret=${!1} value=${!2}
  shift 2
  printf '%s' "$value" | REDISCLI_AUTH=$secret timeout 10 docker run --rm -i --network host -e REDISCLI_AUTH "$KB_IMAGE" redis-cli --no-auth-warning -x "$@"
}
