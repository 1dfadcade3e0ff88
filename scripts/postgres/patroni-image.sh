# Builds the Patroni image (scripts/patroni/Dockerfile, copied to KB_BUILD_CONTEXT) unless this exact
# tag exists: the tag carries a hash of the Dockerfile and of the build arguments. KB_BUILD_ARGS
# holds them as NAME=value words (no value has a space: image references and versions).
if docker image inspect "$KB_IMAGE_TAG" >/dev/null 2>&1; then
  echo "patroni image: $KB_IMAGE_TAG present"
else
  read -r -a build_args <<<"$KB_BUILD_ARGS"
  docker_args=()
  for build_arg in "${build_args[@]}"; do docker_args+=(--build-arg "$build_arg"); done
  docker build -q "${docker_args[@]}" -t "$KB_IMAGE_TAG" "$KB_BUILD_CONTEXT"
  echo "patroni image: built $KB_IMAGE_TAG"
fi
