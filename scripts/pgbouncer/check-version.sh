# The PgBouncer the pinned image really runs (components/data/pgbouncer/render.ts sets the KB_* variables
# above). edoburu's tags name a PgBouncer release, but its images are built and pushed by hand, so a
# tag may carry another build: stop before the container is (re)created when the binary is not the
# pinned release (packages.pgbouncer in config/versions.yaml).
: "${KB_PGBOUNCER_IMAGE:?}" "${KB_PGBOUNCER_VERSION:?}"

docker image inspect "$KB_PGBOUNCER_IMAGE" >/dev/null 2>&1 || docker pull -q "$KB_PGBOUNCER_IMAGE" >/dev/null
if ! reported=$(docker run --rm --network none --entrypoint pgbouncer "$KB_PGBOUNCER_IMAGE" --version 2>&1); then
  kb_diagnose "PgBouncer: 'pgbouncer --version' fails in $KB_PGBOUNCER_IMAGE: ${reported%%$'\n'*}"
  exit 1
fi
# The first line names the release ("PgBouncer 1.26.0"); libevent, TLS and the rest follow.
running=${reported%%$'\n'*}
if [ "$running" != "PgBouncer $KB_PGBOUNCER_VERSION" ]; then
  kb_diagnose "PgBouncer: $KB_PGBOUNCER_IMAGE runs '$running', not PgBouncer $KB_PGBOUNCER_VERSION (packages.pgbouncer, config/versions.yaml): pin an image that carries that release, or correct the pin"
  exit 1
fi
echo "PgBouncer: $KB_PGBOUNCER_IMAGE runs PgBouncer $KB_PGBOUNCER_VERSION"
