# Prepares a Kubernetes node (spec 002 module 9, DESIGN.md "Kubernetes"): kernel modules and sysctls
# for bridged traffic, containerd's CRI plugin with systemd cgroups, and kubeadm/kubelet/kubectl
# pinned from pkgs.k8s.io and held. Idempotent: a converged node is left as it is.
# Variables: KB_K8S_MINOR (1.33), KB_K8S_PACKAGE_VERSION (1.33.5-1.1), KB_K8S_KEY_FINGERPRINT,
# KB_K8S_KEYRING. The apt helpers (kb_wait_cloud_init, kb_apt_get, kb_apt_retry, kb_apt_key) come
# from scripts/common/apt.sh, included before this file.

kb_wait_cloud_init

# Kernel: the modules now and at boot (modules-load.d), the sysctls when their file changed.
for module in overlay br_netfilter ipip; do modprobe "$module"; done
if kb_is_changed /etc/sysctl.d/90-kubernetes.conf || [ "$(sysctl -n net.ipv4.ip_forward)" != 1 ]; then
  sysctl --system >/dev/null
fi

# The pkgs.k8s.io signing key, downloaded on every run (its expiry is extended under the same
# fingerprint: a stored copy expires) and checked against its known fingerprint before apt trusts it.
kb_apt_key "https://pkgs.k8s.io/core:/stable:/v${KB_K8S_MINOR}/deb/Release.key" "$KB_K8S_KEY_FINGERPRINT" "$KB_K8S_KEYRING"
refresh_index=0
if kb_is_changed "$KB_K8S_KEYRING" || kb_is_changed /etc/apt/sources.list.d/kubernetes.list; then refresh_index=1; fi

# kubeadm, kubelet, kubectl at the pinned version, held. A node that already joined is never moved
# to another version here: upgrades go through `kubeadm upgrade` (docs/kubernetes.md).
pending=()
for package in kubeadm kubelet kubectl; do
  installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
  if [ "$installed" != "$KB_K8S_PACKAGE_VERSION" ]; then
    if [ -n "$installed" ] && [ -f /etc/kubernetes/kubelet.conf ]; then
      echo "$package ${installed} is installed on a node that joined the cluster; upgrade it with kubeadm upgrade (docs/kubernetes.md), not by changing versions.yaml alone" >&2
      exit 1
    fi
    pending+=("${package}=${KB_K8S_PACKAGE_VERSION}")
  fi
done
if [ "${#pending[@]}" -gt 0 ]; then
  if [ "$refresh_index" = 1 ] || ! apt-cache show "kubeadm=${KB_K8S_PACKAGE_VERSION}" >/dev/null 2>&1; then
    kb_apt_get update
  fi
  kb_apt_get install --allow-change-held-packages "${pending[@]}" >/dev/null
fi
kb_apt_retry apt-mark hold kubeadm kubelet kubectl >/dev/null
systemctl enable kubelet >/dev/null 2>&1

# containerd: restart only when its configuration changed (Docker keeps running on it).
if kb_is_changed /etc/containerd/config.toml || ! systemctl is-active --quiet containerd; then
  systemctl restart containerd
fi
for attempt in $(seq 1 30); do
  if crictl info >/dev/null 2>&1; then break; fi
  if [ "$attempt" = 30 ]; then
    echo "containerd's CRI endpoint does not answer after 60 s" >&2
    exit 1
  fi
  sleep 2
done
if [ "$(crictl info -o go-template --template '{{.config.containerd.runtimes.runc.options.SystemdCgroup}}' 2>/dev/null)" != true ]; then
  echo "containerd does not run runc with SystemdCgroup = true" >&2
  exit 1
fi
echo "node prepared: kubeadm $(kubeadm version -o short), containerd CRI with systemd cgroups"
