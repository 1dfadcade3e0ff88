# Renews this control plane's kubeadm certificates (`kubeadm certs renew all`: the API server's,
# etcd's, the front proxy's and the components' kubeconfigs, admin.conf included; the CAs are kept)
# and restarts its static Pods one at a time so they load them: the kubelet does not reload
# certificates, and it stops a static Pod when its manifest leaves the manifests directory and
# starts it again when the manifest is back (it rescans every 20 s, KubeletConfiguration
# fileCheckFrequency). One control plane at a time (the steps are chained), gated on a healthy API
# first, so etcd and the API keep a majority. Kubelet client certificates rotate by themselves.
# Variables: KB_NODE, KB_KUBERNETES_DIR (/etc/kubernetes), KB_RENEWAL (the operator's label).
export KUBECONFIG="${KB_KUBERNETES_DIR}/admin.conf"
manifests="${KB_KUBERNETES_DIR}/manifests"
paused="${KB_KUBERNETES_DIR}/manifests-paused"
apiserver_cert="${KB_KUBERNETES_DIR}/pki/apiserver.crt"

# The API through the load balancer (the cluster), or this node's own API server (127.0.0.1 is in its SANs).
kb_api_ready() { kubectl "$@" get --raw=/readyz >/dev/null 2>&1; }
# The state of a static Pod's container: a failing crictl answers neither "running" nor "stopped".
kb_running() {
  local ids
  ids=$(crictl ps --name "^$1\$" --state running -q 2>/dev/null) || return 1
  [ -n "$ids" ]
}
kb_stopped() {
  local ids
  ids=$(crictl ps --name "^$1\$" --state running -q 2>/dev/null) || return 1
  [ -z "$ids" ]
}

kb_wait_until 300 5 "the Kubernetes API is not ready before renewing ${KB_NODE}'s certificates" kb_api_ready
before=$(openssl x509 -noout -enddate -in "$apiserver_cert")
kubeadm certs renew all >/dev/null
after=$(openssl x509 -noout -enddate -in "$apiserver_cert")
echo "${KB_NODE}: certificates renewed (${KB_RENEWAL}); API server certificate ${before#notAfter=} -> ${after#notAfter=}"

mkdir -p "$paused"
for component in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  mv "${manifests}/${component}.yaml" "${paused}/${component}.yaml"
  kb_wait_until 120 2 "${component} did not stop after its manifest left ${manifests}" kb_stopped "$component"
  mv "${paused}/${component}.yaml" "${manifests}/${component}.yaml"
  kb_wait_until 180 2 "${component} did not start again on ${KB_NODE}" kb_running "$component"
  kb_wait_until 300 5 "${KB_NODE}'s API server is not ready after restarting ${component}" kb_api_ready --server=https://127.0.0.1:6443
  kb_wait_until 300 5 "the Kubernetes API is not ready after restarting ${component} on ${KB_NODE}" kb_api_ready
  echo "${KB_NODE}: ${component} restarted"
done
rmdir "$paused"
