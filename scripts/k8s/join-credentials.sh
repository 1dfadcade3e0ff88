# Makes sure one node can join now (on the first control plane, just before that node's join; it
# re-runs with the node's join whenever the node's server is replaced):
# - the bootstrap token exists and expires 24 h from now;
# - for a control plane, the control-plane certificates are uploaded again (kubeadm deletes them
#   after 2 h), and a stale etcd member of this node is removed: a server recreated empty still has
#   its old member (same peer URL), and `kubeadm join` cannot add it again while that one exists.
#   A member that answers its health check is never removed.
# Variables: KB_NODE, KB_CONTROL_PLANE (1 or 0), KB_PEER_URL (the node's etcd peer URL),
# KB_INIT_CONFIG, KB_TOKEN_MANIFEST, KB_ETCD_PKI (kubeadm's etcd PKI directory).
export KUBECONFIG=/etc/kubernetes/admin.conf

expiration=$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)
sed "s/__EXPIRATION__/${expiration}/" "$KB_TOKEN_MANIFEST" | kubectl apply -f - >/dev/null
echo "bootstrap token valid until ${expiration} (for ${KB_NODE})"
if [ "$KB_CONTROL_PLANE" != 1 ]; then exit 0; fi

kubeadm init phase upload-certs --upload-certs --config "$KB_INIT_CONFIG" --skip-certificate-key-print >/dev/null
echo "control-plane certificates uploaded for ${KB_NODE} (valid 2 h)"

# etcdctl from this control plane's etcd container (registry.k8s.io/etcd ships it), with kubeadm's
# healthcheck client certificate.
kb_etcdctl() {
  local container
  container=$(crictl ps --name '^etcd$' --state running -q)
  if [ -z "$container" ]; then
    kb_diagnose "no running etcd container on this control plane"
    return 1
  fi
  crictl exec "${container%%$'\n'*}" etcdctl --cacert="${KB_ETCD_PKI}/ca.crt" --cert="${KB_ETCD_PKI}/healthcheck-client.crt" \
    --key="${KB_ETCD_PKI}/healthcheck-client.key" --command-timeout=5s "$@"
}

members=$(kb_etcdctl --endpoints=https://127.0.0.1:2379 member list -w simple)
# `member list -w simple`: ID, status, name, peer URLs, client URLs, is learner (comma-separated).
while IFS=, read -r id _status name peers clients _learner; do
  peers=${peers// /}
  if [ "$peers" != "$KB_PEER_URL" ]; then continue; fi
  clients=${clients// /}
  if [ -n "$clients" ] && kb_etcdctl --endpoints="$clients" endpoint health >/dev/null 2>&1; then
    echo "etcd member ${name// /} (${KB_PEER_URL}) is healthy; kept"
    continue
  fi
  kb_etcdctl --endpoints=https://127.0.0.1:2379 member remove "$id" >/dev/null
  echo "stale etcd member ${id}${name:+ (${name// /})} at ${KB_PEER_URL} removed, so ${KB_NODE} can join again"
done <<<"$members"
