# Verification of the MinIO cluster (components/data/minio/render.ts sets the KB_* variables above):
# /minio/health/cluster answers 200, i.e. the cluster has its write quorum, on every node.
: "${KB_HEALTH_URLS:?}"
read -ra health_urls <<<"$KB_HEALTH_URLS"
for url in "${health_urls[@]}"; do
  kb_wait_until 300 5 "minio verify: $url does not answer 200 (no write quorum)" curl -fsS -o /dev/null --max-time 5 "$url"
  echo "minio verify: $url answers 200"
done
