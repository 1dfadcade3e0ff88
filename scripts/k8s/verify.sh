# Cluster verification (spec 001 module 9 tests, after Calico): every inventory node is
# registered and Ready, and CoreDNS is available. Any failure fails the deployment.
# Variables: KB_NODES (space-separated inventory names).
export KUBECONFIG=/etc/kubernetes/admin.conf
failures=0
read -r -a nodes <<<"$KB_NODES"
for node in "${nodes[@]}"; do
  if kubectl wait --for=condition=Ready "node/${node}" --timeout=600s >/dev/null 2>&1; then
    echo "PASS node ${node} Ready"
  else
    echo "FAIL node ${node} is not Ready (or not registered)" >&2
    failures=$((failures + 1))
  fi
done
registered=$(kubectl get nodes --no-headers | wc -l)
if [ "$registered" -ne "${#nodes[@]}" ]; then
  echo "FAIL ${registered} nodes registered, the inventory has ${#nodes[@]}" >&2
  failures=$((failures + 1))
fi
if kubectl -n kube-system rollout status deployment/coredns --timeout=300s >/dev/null; then
  echo "PASS CoreDNS available"
else
  echo "FAIL CoreDNS is not available" >&2
  failures=$((failures + 1))
fi
if [ "$failures" -ne 0 ]; then
  echo "Kubernetes verification: ${failures} check(s) failed" >&2
  exit 1
fi
echo "Kubernetes verification: ${#nodes[@]} nodes Ready, CoreDNS available"
