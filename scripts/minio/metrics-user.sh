# MinIO's Prometheus account (components/observability/exporters/render.ts sets the KB_* variables
# above; issue 16): policy KB_POLICY (admin:Prometheus only), user KB_USER with the secret key of
# KB_DIR/secret-key and that policy attached. Each mc call is an upsert (see bucket.sh), so a re-run
# is a no-op and a new secret key is a rotation. Then the cluster metrics endpoint must answer 200
# to the account's bearer token (KB_DIR/auth-header, a curl header file: no command line holds it)
# and refuse a request without one. mc is the pinned MinIO image's, the root credentials only in
# the root-only env file (MC_HOST_<alias>).
: "${KB_IMAGE:?}" "${KB_DIR:?}" "${KB_ROOT_ALIAS:?}" "${KB_POLICY:?}" "${KB_USER:?}" "${KB_METRICS_URL:?}"

kb_metrics_mc() {
  docker run --rm -i --network host --env-file "$KB_DIR/mc.env" -v "$KB_DIR/policy.json:/tmp/policy.json:ro" \
    --entrypoint mc "$KB_IMAGE" --no-color "$@"
}

kb_metrics_mc admin policy create "$KB_ROOT_ALIAS" "$KB_POLICY" /tmp/policy.json
# Two arguments: mc reads the secret key from stdin (mc cmd/admin-user-add.go, fetchUserKeys).
kb_metrics_mc admin user add "$KB_ROOT_ALIAS" "$KB_USER" <"$KB_DIR/secret-key"
kb_metrics_mc admin policy attach "$KB_ROOT_ALIAS" "$KB_POLICY" --user "$KB_USER"

# MinIO caches IAM for a moment after a change: retry the authorised scrape for a while.
kb_metrics_scrape() {
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H "@$KB_DIR/auth-header" "$KB_METRICS_URL") || return 1
  [ "$status" = 200 ]
}
kb_wait_until 60 2 "minio metrics: $KB_METRICS_URL does not answer 200 to $KB_USER's token" kb_metrics_scrape
anonymous=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$KB_METRICS_URL") || anonymous=unreachable
if [ "$anonymous" = 200 ]; then
  echo "minio metrics: $KB_METRICS_URL answers without a token (MINIO_PROMETHEUS_AUTH_TYPE=public?)" >&2
  exit 1
fi
echo "minio metrics: $KB_USER has $KB_POLICY (admin:Prometheus only); $KB_METRICS_URL answers its token, refuses none ($anonymous)"
