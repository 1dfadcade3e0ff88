# The application's bucket and access key (components/data/minio/render.ts sets the KB_* variables
# above; issue 19): bucket KB_BUCKET, policy KB_POLICY (s3:* on that bucket and its objects only),
# user KB_APP_USER with the secret key of KB_APP_SECRET_FILE and that policy attached. Each call is
# an upsert, so a re-run is a no-op and a new secret key is a rotation: `mb --ignore-existing`,
# `policy create` replaces the document, `user add` of an existing user sets its secret key,
# `policy attach` ignores an association already in effect (mc cmd/admin-policy-attach.go).
# mc is the one the pinned MinIO image ships (its Dockerfile.release), run in a throwaway
# container; the credentials reach it only through the root-only env file (MC_HOST_<alias>) and
# stdin, never a command line.
: "${KB_IMAGE:?}" "${KB_MC_ENV_FILE:?}" "${KB_POLICY_FILE:?}" "${KB_APP_SECRET_FILE:?}" "${KB_ROOT_ALIAS:?}" "${KB_APP_ALIAS:?}"
: "${KB_BUCKET:?}" "${KB_POLICY:?}" "${KB_APP_USER:?}" "${KB_HEALTH_URL:?}"

kb_mc() {
  docker run --rm -i --network host --env-file "$KB_MC_ENV_FILE" -v "$KB_POLICY_FILE:/tmp/policy.json:ro" \
    --entrypoint mc "$KB_IMAGE" --no-color "$@"
}

kb_wait_until 300 5 "minio bucket: $KB_HEALTH_URL does not answer 200 (no write quorum)" curl -fsS -o /dev/null --max-time 5 "$KB_HEALTH_URL"
kb_mc mb --ignore-existing "$KB_ROOT_ALIAS/$KB_BUCKET"
kb_mc admin policy create "$KB_ROOT_ALIAS" "$KB_POLICY" /tmp/policy.json
# Two arguments: mc reads the secret key from stdin (mc cmd/admin-user-add.go, fetchUserKeys).
kb_mc admin user add "$KB_ROOT_ALIAS" "$KB_APP_USER" <"$KB_APP_SECRET_FILE"
kb_mc admin policy attach "$KB_ROOT_ALIAS" "$KB_POLICY" --user "$KB_APP_USER"
# The application's own key reaches its bucket.
kb_mc ls "$KB_APP_ALIAS/$KB_BUCKET" >/dev/null
echo "minio bucket: $KB_BUCKET ready; $KB_APP_USER has $KB_POLICY (s3:* on $KB_BUCKET only)"
