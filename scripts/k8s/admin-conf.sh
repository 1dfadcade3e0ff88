# Reads admin.conf on the first control plane for the Pulumi Kubernetes provider. It changes
# nothing, so its (secret) stdout stays the same from one run to the next, and `pulumi preview`
# never sees the provider's kubeconfig as unknown. It runs again after a certificate renewal, to
# pick up the renewed admin.conf. stdout carries only admin.conf; everything else goes to stderr.
# Variables: KB_ADMIN_CONF.
exec 3>&1 1>&2
if [ ! -s "$KB_ADMIN_CONF" ]; then
  kb_diagnose "${KB_ADMIN_CONF} is missing: the cluster is not initialised on this node"
  exit 1
fi
cat "$KB_ADMIN_CONF" >&3
