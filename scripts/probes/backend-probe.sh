#!/bin/sh
# The backend probe (components/observability/probes): connects to each backend endpoint with the
# values the applications get (envFrom keybuzz-backend-config and keybuzz-backend-credentials) and
# prints one line per endpoint, `OK` or `FAIL` with the reason. Exits 1 when any endpoint failed.
# POSIX sh: each service runs in its own client image (Debian, Ubuntu, Alpine, UBI micro), so no
# bash, grep or awk here; scripts/probes/amqp-open.sh (bash) speaks AMQP for the RabbitMQ check.
# Never prints a secret: every reason is scrubbed of the credentials' values (KB_SECRET_DIR).
#
# Usage: backend-probe.sh SERVICE...   SERVICE = postgres | redis | mariadb | rabbitmq | minio
# Environment besides the application's: KB_PG_WRITE_PORT, KB_PG_READ_PORT, KB_PGBOUNCER_PORT (the
# load balancer's PostgreSQL ports), KB_MINIO_BUCKET, KB_CHECK_TIMEOUT (seconds per check),
# KB_SECRET_DIR (the credentials Secret mounted as files), KB_PROBE_DIR (where these scripts are).
set -eu

timeout_seconds=${KB_CHECK_TIMEOUT:-10}
export PGCONNECT_TIMEOUT="$timeout_seconds"
probe_dir=${KB_PROBE_DIR:-$(dirname "$0")}
failed=0
newline='
'

# Replaces every occurrence of each credential value (a file of KB_SECRET_DIR, 16 characters or
# more: the generated passwords have 32 and the URLs carry them; shorter values are the Secret's
# user names and addresses, which a reason may name) in $1 by ***, and keeps the first line only.
kb_redact() {
  text=${1%%"$newline"*}
  if [ -n "${KB_SECRET_DIR:-}" ] && [ -d "$KB_SECRET_DIR" ]; then
    for file in "$KB_SECRET_DIR"/*; do
      [ -f "$file" ] || continue
      # read, not cat: the UBI micro image of MinIO has few tools; a value without a final newline still lands.
      IFS= read -r secret <"$file" || :
      [ "${#secret}" -ge 16 ] || continue
      while :; do
        case $text in
          *"$secret"*) text="${text%%"$secret"*}***${text#*"$secret"}" ;;
          *) break ;;
        esac
      done
    done
  fi
  printf '%s' "$text"
}

kb_ok() { printf 'OK   %s %s: %s\n' "$1" "$2" "$3"; }

kb_fail() {
  printf 'FAIL %s %s: %s\n' "$1" "$2" "$(kb_redact "$3")"
  failed=1
}

# Runs a check command with a bound; prints its output (stdout and stderr) and returns its status.
kb_run() {
  timeout "$timeout_seconds" "$@" 2>&1
}

# The variable named $1, or a FAIL for endpoint $2 when it is empty or unset.
kb_require() {
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    kb_fail "$2" "-" "$1 is not set (keybuzz-backend-config / keybuzz-backend-credentials)"
    return 1
  fi
}

# A PostgreSQL URL as libpq reads it: the query parameters libpq does not know (Prisma's
# `pgbouncer`, `schema`, `connection_limit`, …) are dropped, since psql refuses unknown ones.
kb_libpq_url() {
  case $1 in
    *\?*) base=${1%%\?*} query=${1#*\?} ;;
    *) printf '%s' "$1"; return ;;
  esac
  kept=""
  old_ifs=$IFS
  IFS='&'
  for parameter in $query; do
    case ${parameter%%=*} in
      sslmode | sslrootcert | sslcert | sslkey | connect_timeout | application_name | target_session_attrs | options)
        kept="${kept:+$kept&}$parameter" ;;
    esac
  done
  IFS=$old_ifs
  printf '%s' "$base${kept:+?$kept}"
}

# host:port of a URL (scheme://user:password@host:port/path), for the output line.
kb_url_address() {
  rest=${1#*://}
  rest=${rest##*@}
  printf '%s' "${rest%%[/?]*}"
}

# One SQL check through psql: name, where (for the line), what it proves, then psql's connection arguments.
kb_psql_check() {
  name=$1 where=$2 proves=$3 sql=$4
  shift 4
  if output=$(kb_run psql -X -q -A -t -v ON_ERROR_STOP=1 "$@" -c "$sql"); then
    kb_ok "$name" "$where" "$proves"
  else
    kb_fail "$name" "$where" "$output"
  fi
}

# PostgreSQL: the write port takes a write (a transaction id is only assigned on a writable
# leader), the read port and PgBouncer answer, and both application URLs connect.
kb_check_postgres() {
  write_sql='SELECT pg_current_xact_id()'
  if kb_require PGHOST postgres && kb_require PGUSER postgres && kb_require PGPASSWORD postgres && kb_require PGDATABASE postgres; then
    kb_psql_check postgres-write "$PGHOST:$KB_PG_WRITE_PORT" "write accepted" "$write_sql" -p "$KB_PG_WRITE_PORT"
    kb_psql_check postgres-read "$PGHOST:$KB_PG_READ_PORT" "query answered" 'SELECT 1' -p "$KB_PG_READ_PORT"
    kb_psql_check pgbouncer "$PGHOST:$KB_PGBOUNCER_PORT" "write accepted" "$write_sql" -p "$KB_PGBOUNCER_PORT"
  fi
  for variable in DATABASE_URL PRODUCT_DATABASE_URL; do
    if kb_require "$variable" "$variable"; then
      eval "url=\$$variable"
      kb_psql_check "$variable" "$(kb_url_address "$url")" "write accepted" "$write_sql" -d "$(kb_libpq_url "$url")"
    fi
  done
}

# Redis through REDIS_URL: PING, then a SET with a TTL and a GET of the same probe key.
kb_check_redis() {
  kb_require REDIS_URL redis || return 0
  where=$(kb_url_address "$REDIS_URL")
  key="keybuzz:probe:$(hostname)"
  value="probe-$$-$(date +%s)"
  # redis-cli (src/cli_common.c parseRedisUri, 7.0 to 7.2) sends the empty user of `redis://:password@`
  # to AUTH, which Redis refuses; `default` is the user a password-only AUTH logs in as.
  url=$REDIS_URL
  case $url in
    redis://:* | rediss://:*) url="${url%%://*}://default${url#*://}" ;;
  esac
  cli() { kb_run redis-cli --no-auth-warning -u "$url" "$@"; }
  if ! output=$(cli PING) || [ "$output" != PONG ]; then
    kb_fail redis "$where" "PING: ${output:-no answer}"
  elif ! output=$(cli SET "$key" "$value" EX 60) || [ "$output" != OK ]; then
    kb_fail redis "$where" "SET $key: ${output:-no answer}"
  elif ! output=$(cli GET "$key") || [ "$output" != "$value" ]; then
    kb_fail redis "$where" "GET $key: ${output:-no answer}"
  else
    kb_ok redis "$where" "PING, SET with TTL and GET"
  fi
}

# MariaDB through ProxySQL: SELECT 1 as the application user (password through MYSQL_PWD, not argv).
kb_check_mariadb() {
  kb_require MARIADB_HOST mariadb && kb_require MARIADB_PORT mariadb && kb_require MARIADB_USER mariadb &&
    kb_require MARIADB_PASSWORD mariadb || return 0
  where="$MARIADB_HOST:$MARIADB_PORT"
  export MYSQL_PWD="$MARIADB_PASSWORD"
  if output=$(kb_run mariadb --connect-timeout="$timeout_seconds" --protocol=TCP \
    -h "$MARIADB_HOST" -P "$MARIADB_PORT" -u "$MARIADB_USER" -N -B -e 'SELECT 1') && [ "$output" = 1 ]; then
    kb_ok mariadb "$where" "SELECT 1"
  else
    kb_fail mariadb "$where" "${output:-no answer}"
  fi
}

# RabbitMQ through RABBITMQ_URL: an AMQP 0-9-1 connection opened on its vhost, then closed.
kb_check_rabbitmq() {
  kb_require RABBITMQ_URL rabbitmq || return 0
  where=$(kb_url_address "$RABBITMQ_URL")
  if output=$(kb_run bash "$probe_dir/amqp-open.sh"); then
    kb_ok rabbitmq "$where" "$output"
  else
    kb_fail rabbitmq "$where" "${output:-no answer}"
  fi
}

# MinIO: a signed (AWS SigV4) HEAD of the application bucket with the application's access key.
kb_check_minio() {
  kb_require MINIO_ENDPOINT minio && kb_require MINIO_ACCESS_KEY minio && kb_require MINIO_SECRET_KEY minio || return 0
  bucket=${KB_MINIO_BUCKET:-keybuzz-attachments}
  case $MINIO_ENDPOINT in
    http://* | https://*) url=$MINIO_ENDPOINT ;;
    *) url="http://$MINIO_ENDPOINT" ;;
  esac
  case ${url#*://} in
    *:*) ;;
    *) url="$url${MINIO_PORT:+:$MINIO_PORT}" ;;
  esac
  where=${url#*://}
  # The credentials reach curl on stdin (its config syntax), never on its command line.
  if status=$(printf 'user = "%s:%s"\n' "$MINIO_ACCESS_KEY" "$MINIO_SECRET_KEY" |
    kb_run curl -sS -K - -I -o /dev/null -w '%{http_code}' --max-time "$timeout_seconds" \
      --aws-sigv4 "aws:amz:${MINIO_REGION:-us-east-1}:s3" "$url/$bucket"); then
    case $status in
      200) kb_ok minio "$where" "HEAD $bucket signed with the application key" ;;
      403) kb_fail minio "$where" "HEAD $bucket: HTTP 403 (the key is refused or may not list the bucket)" ;;
      404) kb_fail minio "$where" "HEAD $bucket: HTTP 404 (the bucket does not exist)" ;;
      *) kb_fail minio "$where" "HEAD $bucket: HTTP $status" ;;
    esac
  else
    kb_fail minio "$where" "${status:-no answer}"
  fi
}

[ "$#" -gt 0 ] || set -- postgres redis mariadb rabbitmq minio
for service in "$@"; do
  case $service in
    postgres) kb_check_postgres ;;
    redis) kb_check_redis ;;
    mariadb) kb_check_mariadb ;;
    rabbitmq) kb_check_rabbitmq ;;
    minio) kb_check_minio ;;
    *) kb_fail "$service" "-" "unknown service (postgres, redis, mariadb, rabbitmq, minio)" ;;
  esac
done
exit "$failed"
