# Initialises the cluster on the first control plane once (spec 002 module 9): `kubeadm init` with
# the rendered config (token and certificate key inside it, root-only) and --upload-certs so the
# other control planes can join. A node that already holds admin.conf is left alone.
# stdout carries only admin.conf (the step's stdout is a secret output); everything else goes to
# stderr. Variables: KB_CONFIG.
exec 3>&1 1>&2

if [ -f /etc/kubernetes/admin.conf ]; then
  echo "control plane already initialised; kubeadm init skipped"
else
  if ! kubeadm init --config "$KB_CONFIG" --upload-certs --skip-token-print --skip-certificate-key-print; then
    # A half-initialised first node cannot be re-initialised: clean it so the next run starts over.
    kubeadm reset --force || true
    echo "kubeadm init failed; the node was reset, re-run pulumi up" >&2
    exit 1
  fi
fi

export KUBECONFIG=/etc/kubernetes/admin.conf
for attempt in $(seq 1 60); do
  if kubectl get --raw=/readyz >/dev/null 2>&1; then break; fi
  if [ "$attempt" = 60 ]; then
    echo "the API server is not ready after 5 minutes" >&2
    exit 1
  fi
  sleep 5
done
cat /etc/kubernetes/admin.conf >&3
