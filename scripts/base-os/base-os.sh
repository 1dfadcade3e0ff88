# Base OS hardening (spec 000, module 2), run as root on every server after the step helper has
# written the managed files (sysctl, docker daemon.json, sshd drop-in, journald, fail2ban, hosts block).
# Inputs come from the rendered preamble: KB_HOSTNAME, KB_PRIVATE_CIDR, KB_ADMIN_CIDRS (space separated),
# KB_DOCKER_VERSION, KB_CONTAINERD_VERSION, KB_UFW_RULES (one "port/proto" or "port/proto@source" per line),
# KB_UFW_ROUTED (allow|deny), KB_POD_CIDR (Kubernetes nodes only, else empty).
# Idempotent: a second run on a converged server changes nothing that matters.

# A fresh server is still running cloud-init (and apt) for a while.
cloud-init status --wait >/dev/null 2>&1 || true
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq "$@"; }

hostnamectl set-hostname "$KB_HOSTNAME"

# 1. Packages (spec 000 §1).
apt_get update
apt_get upgrade
apt_get install curl wget jq unzip gnupg htop net-tools git ca-certificates \
  software-properties-common ufw fail2ban auditd xfsprogs

# 2. Timezone and NTP (§2): time drift breaks Patroni, Sentinel, RabbitMQ, Galera and Kubernetes.
timedatectl set-timezone Europe/Paris
timedatectl set-ntp true

# 3. Swap off, now and after reboot (§3).
swapoff -a
if grep -qE '^[^#].*\sswap\s' /etc/fstab; then sed -i.bak -E '/^[^#].*\sswap\s/d' /etc/fstab; fi

# 4. Kernel settings (§4), file written above.
sysctl --system >/dev/null

# 5. Docker CE pinned, from Docker's apt repository (DESIGN.md: 24.x has no noble packages).
install -m 0755 -d /etc/apt/keyrings
if [ ! -s /etc/apt/keyrings/docker.asc ]; then
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
fi
# shellcheck source=/dev/null
. /etc/os-release
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu ${VERSION_CODENAME} stable" |
  kb_write /etc/apt/sources.list.d/docker.list 0644 root:root
apt_get remove docker.io docker-doc docker-compose podman-docker containerd runc >/dev/null 2>&1 || true
apt_get update
apt-mark unhold docker-ce docker-ce-cli containerd.io >/dev/null
apt_get install --allow-downgrades "docker-ce=${KB_DOCKER_VERSION}" "docker-ce-cli=${KB_DOCKER_VERSION}" \
  "containerd.io=${KB_CONTAINERD_VERSION}"
apt-mark hold docker-ce docker-ce-cli containerd.io >/dev/null
systemctl enable docker >/dev/null
if kb_is_changed /etc/docker/daemon.json || ! systemctl is-active --quiet docker; then systemctl restart docker; fi

# 6. SSH hardening (§6): validate before reloading, so a bad drop-in never locks us out.
sshd -t
if kb_is_changed /etc/ssh/sshd_config.d/99-keybuzz.conf; then systemctl reload ssh; fi

# 7. UFW (§7): default deny in, allow out; SSH from admins and the private network; the private
# network in full (this also lets Calico's IPIP, protocol 4, through); role ports below.
ufw --force reset >/dev/null
ufw default deny incoming >/dev/null
ufw default allow outgoing >/dev/null
ufw default "$KB_UFW_ROUTED" routed >/dev/null
for cidr in $KB_ADMIN_CIDRS; do ufw allow from "$cidr" to any port 22 proto tcp >/dev/null; done
ufw allow from "$KB_PRIVATE_CIDR" to any port 22 proto tcp >/dev/null
ufw allow from "$KB_PRIVATE_CIDR" >/dev/null
if [ -n "$KB_POD_CIDR" ]; then ufw allow from "$KB_POD_CIDR" >/dev/null; fi
while IFS= read -r rule; do
  [ -n "$rule" ] || continue
  port_proto=${rule%@*}
  port=${port_proto%/*}
  proto=${port_proto#*/}
  if [ "$rule" = "$port_proto" ]; then
    ufw allow "${port}/${proto}" >/dev/null
  else
    ufw allow from "${rule#*@}" to any port "$port" proto "$proto" >/dev/null
  fi
done <<<"$KB_UFW_RULES"
ufw --force enable >/dev/null

# 8. DNS fixed and locked (§8). systemd-resolved would rewrite the file: stop it first.
chattr -i /etc/resolv.conf 2>/dev/null || true
systemctl disable --now systemd-resolved >/dev/null 2>&1 || true
printf 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n' | kb_write /etc/resolv.conf.keybuzz 0644 root:root
if [ -L /etc/resolv.conf ] || ! cmp -s /etc/resolv.conf.keybuzz /etc/resolv.conf; then
  rm -f /etc/resolv.conf
  cp /etc/resolv.conf.keybuzz /etc/resolv.conf
fi
chattr +i /etc/resolv.conf

# 9. journald limits (§9).
if kb_is_changed /etc/systemd/journald.conf.d/limit.conf; then systemctl restart systemd-journald; fi

# fail2ban (SSH jail) and auditd.
systemctl enable --now auditd >/dev/null
systemctl enable fail2ban >/dev/null
if kb_is_changed /etc/fail2ban/jail.d/keybuzz.conf || ! systemctl is-active --quiet fail2ban; then systemctl restart fail2ban; fi

# The managed /etc/hosts block: every inventory name, replaced in place between its markers.
kb_begin='# BEGIN KeyBuzz managed block'
kb_end='# END KeyBuzz managed block'
sed -i "/^${kb_begin}\$/,/^${kb_end}\$/d" /etc/hosts
cat /etc/keybuzz/hosts.block >>/etc/hosts

echo "base OS applied on ${KB_HOSTNAME}"
