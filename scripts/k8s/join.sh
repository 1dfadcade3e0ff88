# Joins this node to the cluster (spec 002 module 9) through the API load balancer, with the
# rendered JoinConfiguration (token, CA hash and, for control planes, certificate key inside it,
# root-only). A node that already joined is left alone. Variables: KB_NODE, KB_CONFIG.
if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo "${KB_NODE} already joined; kubeadm join skipped"
  exit 0
fi
if ! kubeadm join --config "$KB_CONFIG"; then
  # A failed join leaves partial state that blocks the next attempt: clean the node.
  kubeadm reset --force || true
  echo "kubeadm join failed on ${KB_NODE}; the node was reset, re-run pulumi up" >&2
  exit 1
fi
echo "${KB_NODE} joined"
