# Makes sure nodes can join (first control plane, before the joins): the bootstrap token exists and
# expires in 24 h from now, and the control-plane certificates are uploaded (kubeadm deletes them
# after 2 h). Re-runs when the node list changes. Variables: KB_INIT_CONFIG, KB_TOKEN_MANIFEST.
export KUBECONFIG=/etc/kubernetes/admin.conf

expiration=$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)
sed "s/__EXPIRATION__/${expiration}/" "$KB_TOKEN_MANIFEST" | kubectl apply -f - >/dev/null
echo "bootstrap token valid until ${expiration}"

if kubectl -n kube-system get secret kubeadm-certs >/dev/null 2>&1; then
  echo "control-plane certificates already uploaded"
else
  kubeadm init phase upload-certs --upload-certs --config "$KB_INIT_CONFIG" --skip-certificate-key-print >/dev/null
  echo "control-plane certificates uploaded (valid 2 h)"
fi
