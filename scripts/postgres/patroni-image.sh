# Builds the Patroni image (scripts/patroni/Dockerfile, copied to KB_BUILD_CONTEXT) unless this exact
# tag exists: the tag carries a hash of the Dockerfile and of the build arguments below.
if docker image inspect "$KB_IMAGE_TAG" >/dev/null 2>&1; then
  echo "patroni image: $KB_IMAGE_TAG present"
else
  docker build -q --build-arg "POSTGRES_IMAGE=$KB_POSTGRES_IMAGE" --build-arg "PATRONI_VERSION=$KB_PATRONI_VERSION" \
    --build-arg "PGVECTOR_VERSION=$KB_PGVECTOR_VERSION" -t "$KB_IMAGE_TAG" "$KB_BUILD_CONTEXT"
  echo "patroni image: built $KB_IMAGE_TAG"
fi
