# Base OS hardening (spec 000, module 2), run as root on every server after the step helper has
# written the managed files (sysctl, docker daemon.json, sshd drop-in, journald, fail2ban, hosts block).
# Inputs come from the rendered preamble: KB_HOSTNAME, KB_PRIVATE_CIDR, KB_ADMIN_CIDRS (space separated),
# KB_DOCKER_SOURCE (docker-ce|distribution), KB_DOCKER_PACKAGE, KB_DOCKER_CLI_PACKAGE (may be empty),
# KB_CONTAINERD_PACKAGE, KB_DOCKER_VERSION, KB_CONTAINERD_VERSION, KB_DOCKER_KEY_FINGERPRINT,
# KB_SSHD_DROP_IN, KB_OLD_SSHD_DROP_IN, KB_SSHD_EXPECTED (lines `sshd -T` must print),
# KB_UFW_RULES (one "[deny:]port/proto[@source]" per line), KB_UFW_ROUTED (allow|deny),
# KB_POD_CIDR (Kubernetes nodes only, else empty). The apt helpers (kb_apt_get, kb_apt_retry,
# kb_apt_key, kb_wait_cloud_init), kb_sshd_missing_settings and kb_container come from
# scripts/common/apt.sh, sshd.sh and host.sh, included before this file.
# Idempotent: a second run on a converged server changes nothing that matters.

# A fresh server is still running cloud-init (and apt) for a while.
kb_wait_cloud_init

# A container (the real-host test tier) cannot change what belongs to its machine: say so once here,
# and where each such setting is left below. A Hetzner server is never one.
container=$(kb_container) || container=""
if [ -n "$container" ]; then
  echo "base OS: this host is a container (${container}): kernel-wide sysctls, swap, the clock and auditd are its machine's"
fi

if [ "$(hostname)" != "$KB_HOSTNAME" ]; then hostnamectl set-hostname "$KB_HOSTNAME"; fi

# 1. Packages (spec 000 §1).
kb_apt_get update
kb_apt_get upgrade
kb_apt_get install curl wget jq unzip gnupg htop net-tools git ca-certificates \
  software-properties-common ufw fail2ban auditd xfsprogs

# 2. Timezone and NTP (§2): time drift breaks Patroni, Sentinel, RabbitMQ, Galera and Kubernetes.
# timedated is started on demand over D-Bus: on a loaded host its first answer can outlast
# timedatectl's own 25 s ("Connection timed out"), so each call is retried within a bound, and the
# zone is set only when it differs.
set_timezone_paris() { [ "$(timedatectl show -p Timezone --value)" = Europe/Paris ] || timedatectl set-timezone Europe/Paris; }
kb_wait_until 180 5 "base OS: timedatectl cannot set the time zone Europe/Paris" set_timezone_paris
kb_wait_until 180 5 "base OS: timedatectl cannot turn NTP on" timedatectl set-ntp true

# 3. Swap off, now and after reboot (§3).
if [ -z "$container" ]; then
  swapoff -a
else
  echo "base OS: container: swap is the machine's, left as it is"
fi
if grep -qE '^[^#].*\sswap\s' /etc/fstab; then sed -i.bak -E '/^[^#].*\sswap\s/d' /etc/fstab; fi

# 4. Kernel settings (§4), file written above.
if [ -z "$container" ]; then
  sysctl --system >/dev/null
else
  # Only the keys of the host's own network namespace can be set from a container.
  net_settings=$(grep -E '^[[:space:]]*net\.' /etc/sysctl.d/99-keybuzz.conf || true)
  sysctl -q -p - <<<"$net_settings"
  echo "base OS: container: applied the net.* keys of /etc/sysctl.d/99-keybuzz.conf only; vm.* and fs.* are the machine's"
fi

# 5. Docker pinned (DESIGN.md "Docker source"): Docker CE from Docker's apt repository (its signing
# key refreshed and checked on every run), or the distribution's docker.io. The other source's
# packages and apt source are removed.
docker_packages=("${KB_DOCKER_PACKAGE}=${KB_DOCKER_VERSION}" "${KB_CONTAINERD_PACKAGE}=${KB_CONTAINERD_VERSION}")
if [ -n "$KB_DOCKER_CLI_PACKAGE" ]; then docker_packages+=("${KB_DOCKER_CLI_PACKAGE}=${KB_DOCKER_VERSION}"); fi
case "$KB_DOCKER_SOURCE" in
  docker-ce)
    kb_apt_key https://download.docker.com/linux/ubuntu/gpg "$KB_DOCKER_KEY_FINGERPRINT" /etc/apt/keyrings/docker.gpg
    rm -f /etc/apt/keyrings/docker.asc
    # shellcheck source=/dev/null
    . /etc/os-release
    echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu ${VERSION_CODENAME} stable" |
      kb_write /etc/apt/sources.list.d/docker.list 0644 root:root
    other_packages=(docker.io docker-doc docker-compose podman-docker containerd runc)
    ;;
  distribution)
    rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.gpg /etc/apt/keyrings/docker.asc
    other_packages=(docker-ce docker-ce-cli containerd.io)
    ;;
  *)
    kb_diagnose "unknown Docker source '${KB_DOCKER_SOURCE}' (docker-ce or distribution)"
    exit 1
    ;;
esac
installed_others=()
for package in "${other_packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)" = "install ok installed" ]; then installed_others+=("$package"); fi
done
if [ "${#installed_others[@]}" -gt 0 ]; then kb_apt_get remove "${installed_others[@]}" >/dev/null; fi
kb_apt_get update
held=("${docker_packages[@]%%=*}")
kb_apt_retry apt-mark unhold "${held[@]}" >/dev/null
kb_apt_get install --allow-downgrades "${docker_packages[@]}"
kb_apt_retry apt-mark hold "${held[@]}" >/dev/null
systemctl enable docker >/dev/null
if kb_is_changed /etc/docker/daemon.json && systemctl is-active --quiet docker; then
  # live-restore is reloadable (docs.docker.com "Live restore"): turn it on in the running daemon
  # first, so the restart below keeps the containers running.
  systemctl reload docker
fi
if kb_is_changed /etc/docker/daemon.json || ! systemctl is-active --quiet docker; then systemctl restart docker; fi

# 6. SSH hardening (§6): validate before reloading, so a bad drop-in never locks us out; then check
# the settings sshd really applies (an earlier drop-in would win over ours: sshd keeps the first value).
sshd_changed=0
if kb_is_changed "$KB_SSHD_DROP_IN"; then sshd_changed=1; fi
if [ -e "$KB_OLD_SSHD_DROP_IN" ]; then
  rm -f "$KB_OLD_SSHD_DROP_IN"
  sshd_changed=1
fi
sshd -t
if [ "$sshd_changed" = 1 ]; then systemctl reload ssh; fi
sshd_missing=$(kb_sshd_missing_settings)
if [ -n "$sshd_missing" ]; then
  kb_diagnose "sshd does not apply '${sshd_missing//$'\n'/"', '"}' (sshd -T); an sshd_config.d file read before ${KB_SSHD_DROP_IN} overrides it"
  exit 1
fi

# 7. UFW (§7): default deny in, allow out; SSH from admins and the private network; role and
# exporter ports; then the private network in full (this also lets Calico's IPIP, protocol 4, through).
# Rebuilt only when the wanted rule set differs from the one last applied, or UFW is not active, so
# a converged host keeps its rule files (a reset rewrites them and leaves backups on every run).
ufw_wanted=$(printf 'routed %s\nadmin %s\nprivate %s\npods %s\n%s\n' "$KB_UFW_ROUTED" "$KB_ADMIN_CIDRS" "$KB_PRIVATE_CIDR" "$KB_POD_CIDR" "$KB_UFW_RULES")
ufw_status=$(ufw status) || ufw_status=""
ufw_applied=$(cat /etc/keybuzz/ufw.applied 2>/dev/null || true)
if ! grep -qxF 'Status: active' <<<"$ufw_status" || [ "$ufw_applied" != "$ufw_wanted" ]; then
  ufw --force reset >/dev/null
  ufw default deny incoming >/dev/null
  ufw default allow outgoing >/dev/null
  ufw default "$KB_UFW_ROUTED" routed >/dev/null
  for cidr in $KB_ADMIN_CIDRS; do ufw allow from "$cidr" to any port 22 proto tcp >/dev/null; done
  ufw allow from "$KB_PRIVATE_CIDR" to any port 22 proto tcp >/dev/null
  # Role and exporter rules before the blanket allows: UFW keeps the first matching rule, so an
  # exporter port's deny from the private network holds for every server but the Kubernetes nodes.
  while IFS= read -r rule; do
    [ -n "$rule" ] || continue
    action=allow
    if [[ $rule == deny:* ]]; then
      action=deny
      rule=${rule#deny:}
    fi
    port_proto=${rule%@*}
    port=${port_proto%/*}
    proto=${port_proto#*/}
    if [ "$rule" = "$port_proto" ]; then
      ufw "$action" "${port}/${proto}" >/dev/null
    else
      ufw "$action" from "${rule#*@}" to any port "$port" proto "$proto" >/dev/null
    fi
  done <<<"$KB_UFW_RULES"
  ufw allow from "$KB_PRIVATE_CIDR" >/dev/null
  if [ -n "$KB_POD_CIDR" ]; then ufw allow from "$KB_POD_CIDR" >/dev/null; fi
  ufw --force enable >/dev/null
  # Recorded only once the rules are in force, so a failed run rebuilds them on its retry.
  printf '%s\n' "$ufw_wanted" | kb_write /etc/keybuzz/ufw.applied 0644 root:root
fi

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
if [ -z "$container" ]; then
  systemctl enable --now auditd >/dev/null
else
  systemctl enable auditd >/dev/null
  echo "base OS: container: auditd enabled, not started (the kernel's audit system is the machine's)"
fi
systemctl enable fail2ban >/dev/null
if kb_is_changed /etc/fail2ban/jail.d/keybuzz.conf || ! systemctl is-active --quiet fail2ban; then systemctl restart fail2ban; fi

# The managed /etc/hosts block: every inventory name, replaced in place between its markers.
kb_begin='# BEGIN KeyBuzz managed block'
kb_end='# END KeyBuzz managed block'
hosts_wanted=$(
  sed "/^${kb_begin}\$/,/^${kb_end}\$/d" /etc/hosts
  cat /etc/keybuzz/hosts.block
)
# Rewritten in place (same inode), and only when it differs.
if [ "$(cat /etc/hosts)" != "$hosts_wanted" ]; then printf '%s\n' "$hosts_wanted" >/etc/hosts; fi

echo "base OS applied on ${KB_HOSTNAME}"
