# Initialises the cluster on the first control plane once (spec 002 module 9): `kubeadm init` with
# the rendered config (token and certificate key inside it, root-only) and --upload-certs so the
# other control planes can join. A node that already holds admin.conf is not initialised again.
# kubeadm reads the ClusterConfiguration only at init, so a later change would be silently
# ignored: the step keeps the applied copy and fails, showing the difference, when the rendered
# one differs (docs/kubernetes.md, "Changing the ClusterConfiguration").
# Variables: KB_CONFIG, KB_CLUSTER_CONFIG (the ClusterConfiguration alone), KB_APPLIED_CLUSTER_CONFIG,
# KB_ADMIN_CONF.
if [ -f "$KB_ADMIN_CONF" ]; then
  if [ ! -f "$KB_APPLIED_CLUSTER_CONFIG" ]; then
    # A cluster initialised before the applied copy was kept: today's rendering becomes the reference.
    install -m 0600 "$KB_CLUSTER_CONFIG" "$KB_APPLIED_CLUSTER_CONFIG"
    echo "control plane already initialised; its ClusterConfiguration recorded as applied"
  elif ! difference=$(diff -u --label applied --label rendered "$KB_APPLIED_CLUSTER_CONFIG" "$KB_CLUSTER_CONFIG"); then
    echo "$difference" >&2
    kb_diagnose "the ClusterConfiguration changed after kubeadm init, which kubeadm would ignore; apply it as docs/kubernetes.md \"Changing the ClusterConfiguration\" says, or revert the change (difference in the log)"
    exit 1
  else
    echo "control plane already initialised; ClusterConfiguration unchanged; kubeadm init skipped"
  fi
else
  if ! kubeadm init --config "$KB_CONFIG" --upload-certs --skip-token-print --skip-certificate-key-print; then
    # A half-initialised first node cannot be re-initialised: clean it so the next run starts over.
    kubeadm reset --force || true
    kb_diagnose "kubeadm init failed; the node was reset, re-run pulumi up"
    exit 1
  fi
  install -m 0600 "$KB_CLUSTER_CONFIG" "$KB_APPLIED_CLUSTER_CONFIG"
fi

export KUBECONFIG="$KB_ADMIN_CONF"
kb_wait_until 300 5 "the API server is not ready" kubectl get --raw=/readyz
echo "API server ready"
