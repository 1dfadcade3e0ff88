# The HA S3 endpoint (components/data/minio/render.ts sets the KB_* variables above): MinIO's
# cluster probe answers 200 through the load balancer, i.e. LB → HAProxy → a node with write quorum.
: "${KB_LB_ADDRESS:?}" "${KB_LB_PORT:?}" "${KB_HEALTH_PATH:?}"
url="http://$KB_LB_ADDRESS:$KB_LB_PORT$KB_HEALTH_PATH"
kb_wait_until 120 2 "minio endpoint: $url does not answer 200 through the load balancer" curl -fsS -o /dev/null --max-time 5 "$url"
echo "minio endpoint: $url answers 200"
