# Signs a client certificate of kubeadm's etcd CA (/etc/kubernetes/pki/etcd/ca.{crt,key}) for the
# certificate request written above this body: backup-01's `etcdctl snapshot save` of Kubernetes'
# etcd (components/backup/etcd). kubeadm's etcd runs with --client-cert-auth and the etcd CA as its
# trusted CA, and without etcd's own auth, so a client certificate of that CA is all it asks (like
# kubeadm's etcd/healthcheck-client). The private key never comes here: Pulumi generated it and
# only backup-01 gets it. stdout carries the certificate, then the etcd CA (both public);
# everything else goes to stderr. Nothing on this node changes.
# Variables: KB_CA_CERT, KB_CA_KEY, KB_CSR, KB_DAYS.
exec 3>&1 1>&2
if [ ! -s "$KB_CA_CERT" ] || [ ! -s "$KB_CA_KEY" ]; then
  kb_diagnose "${KB_CA_CERT} or its key is missing: the cluster is not initialised on this node"
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature, keyEncipherment" \
  "extendedKeyUsage = clientAuth" >"$work/client.ext"
# A random serial, so no serial file is written next to kubeadm's CA.
openssl x509 -req -in "$KB_CSR" -CA "$KB_CA_CERT" -CAkey "$KB_CA_KEY" -set_serial "0x$(openssl rand -hex 16)" \
  -days "$KB_DAYS" -sha256 -extfile "$work/client.ext" -out "$work/client.crt" 2>"$work/openssl.log" || {
  kb_diagnose "openssl could not sign the etcd backup client certificate: $(cat "$work/openssl.log")"
  exit 1
}
openssl verify -CAfile "$KB_CA_CERT" -purpose sslclient "$work/client.crt" >/dev/null
subject=$(openssl x509 -noout -subject -enddate -in "$work/client.crt")
echo "etcd backup client certificate issued: ${subject//$'\n'/, }"
cat "$work/client.crt" "$KB_CA_CERT" >&3
