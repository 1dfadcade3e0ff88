#!/usr/bin/env bash
# Boots and removes the real-host tier's hosts (tests/hosts, docs/integration.md "Real hosts").
#
#   hosts.sh up GOLDEN_ROOTFS PUBKEY_FILE NAME=IP...   boot one systemd-nspawn host per NAME
#   hosts.sh down                                      stop every host, remove mounts and namespaces
#
# Network: one namespace ($KB_HOSTS_NETNS, default kbhosts) holds the bridge kbbr0 with the private
# network's gateway 10.0.0.1/24, the test's admin address 100.64.0.1 and a stranger 100.64.0.99 (RFC 6598;
# the program refuses documentation ranges as admin CIDRs);
# each host has its own namespace kbh-NAME with eth0 (its inventory address) on a veth to that
# bridge, default route via the gateway. No namespace has a route out: nothing leaves them.
# Each host: an overlayfs on the golden image, fresh SSH host keys, the test's public key for root,
# /var/lib/docker on a plain directory (overlay2 cannot sit on overlayfs), systemd as PID 1.
# Capabilities are nspawn's defaults plus the network ones a private network brings; never
# CAP_SYS_TIME or CAP_SYS_MODULE.
set -euo pipefail
netns=${KB_HOSTS_NETNS:-kbhosts}
state=${KB_HOSTS_STATE:-/run/keybuzz-hosts}
# Docker's data of each host, on the machine's disk (not tmpfs).
data=${KB_HOSTS_DATA:-/var/lib/keybuzz-hosts}
# Each host's console (its boot and shutdown), kept after `down` for a look at what went wrong.
logs=${KB_HOSTS_LOGS:-/var/tmp/keybuzz-hosts-logs}
bridge=kbbr0
gateway=10.0.0.1/24
admin_address=100.64.0.1/32
stranger_address=100.64.0.99/32

in_ns() { ip netns exec "$netns" "$@"; }

down() {
  local dir name pid cmdline pids=()
  for dir in "$state"/hosts/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    [ -s "$dir/pid" ] || continue
    pid=$(cat "$dir/pid")
    cmdline=""
    if [ -r "/proc/$pid/cmdline" ]; then cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline"); fi
    # Only our nspawn: the pid must still be a systemd-nspawn for this machine. SIGTERM makes
    # nspawn shut the host's systemd down cleanly (every process inside ends with it).
    if [[ $cmdline == *"--machine=$name "* ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 30)) alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
    [ "${#alive[@]}" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "hosts: ${#alive[@]} host(s) still up after 30 s; killing nspawn ${alive[*]}" >&2
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # Mounts under the state directory, deepest first (docker's inside a host's tree as well).
  local mounts
  mounts=$(awk -v prefix="$state/" 'index($2, prefix) == 1 { print $2 }' /proc/self/mounts | sort -r)
  for mount in $mounts; do umount -l "$mount" 2>/dev/null || true; done
  local namespaces
  namespaces=$(ip netns list | awk '{ print $1 }')
  for ns in $namespaces; do
    case "$ns" in kbh-* | "$netns") ip netns delete "$ns" 2>/dev/null || true ;; esac
  done
  if [ -d "$state/hosts" ]; then
    mkdir -p "$logs"
    for dir in "$state"/hosts/*/; do
      if [ -f "$dir/console.log" ]; then cp "$dir/console.log" "$logs/$(basename "$dir").console.log"; fi
    done
  fi
  rm -rf --one-file-system "$state" "$data"
}

up() {
  local golden=$1 pubkey=$2
  shift 2
  down
  mkdir -p "$state/hosts" "$data"
  ip netns add "$netns"
  in_ns ip link set lo up
  in_ns ip link add "$bridge" type bridge
  in_ns ip addr add "$gateway" dev "$bridge"
  in_ns ip addr add "$admin_address" dev "$bridge"
  in_ns ip addr add "$stranger_address" dev "$bridge"
  in_ns ip link set "$bridge" up
  local index=0 spec name ip
  for spec in "$@"; do
    name=${spec%%=*}
    ip=${spec#*=}
    index=$((index + 1))
    local dir="$state/hosts/$name" hostns="kbh-$name"
    mkdir -p "$dir/upper" "$dir/work" "$dir/root" "$data/$name/docker"
    mount -t overlay overlay -o "lowerdir=$golden,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
    ssh-keygen -q -A -f "$dir/root" >/dev/null
    install -d -m 0700 "$dir/root/root/.ssh"
    install -m 0600 "$pubkey" "$dir/root/root/.ssh/authorized_keys"
    echo "$name" >"$dir/root/etc/hostname"
    # Root's user manager (pam_systemd starts it on each SSH login) hangs for minutes at a
    # container's shutdown; it holds nothing the tier checks. Tier-only: not in the golden image.
    install -d "$dir/root/etc/systemd/system/user@.service.d"
    printf '[Service]\nTimeoutStopSec=3s\n' >"$dir/root/etc/systemd/system/user@.service.d/zz-keybuzz-tier.conf"
    # Debian trixie's OpenSSH 10 logs each login from sshd-session, which Debian's fail2ban jail
    # (journalmatch _COMM=sshd) never reads; Ubuntu 24.04's OpenSSH 9.6 logs as sshd. Match both,
    # so fail2ban on these hosts bans as it does on the real servers.
    sed -i 's/^journalmatch = _SYSTEMD_UNIT=ssh.service + _COMM=sshd$/& + _COMM=sshd-session/' \
      "$dir/root/etc/fail2ban/jail.d/defaults-debian.conf"
    ip netns add "$hostns"
    ip link add "kbv$index" type veth peer name eth0 netns "$hostns"
    ip link set "kbv$index" netns "$netns"
    in_ns ip link set "kbv$index" master "$bridge" up
    ip -n "$hostns" link set lo up
    ip -n "$hostns" addr add "$ip/24" dev eth0
    ip -n "$hostns" link set eth0 up
    ip -n "$hostns" route add default via "${gateway%/*}"
    # The unified hierarchy inside the host (the machine itself may be hybrid); /proc/sys/net
    # writable, as with a private network: net.* sysctls belong to the host's own namespace.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_API_VFS_WRITABLE=network setsid systemd-nspawn --quiet --boot --register=no --keep-unit \
      --machine="$name" --hostname="$name" --directory="$dir/root" \
      --network-namespace-path="/run/netns/$hostns" \
      --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
      --bind="$data/$name/docker:/var/lib/docker" \
      --capability=CAP_NET_ADMIN \
      --system-call-filter='@keyring bpf' \
      </dev/null >"$dir/console.log" 2>&1 &
    echo $! >"$dir/pid"
  done
  # Ready when sshd answers on every host (systemd boots in about a second).
  for spec in "$@"; do
    name=${spec%%=*}
    ip=${spec#*=}
    local deadline=$((SECONDS + 60))
    until in_ns bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "hosts: $name ($ip) has no sshd after 60 s; its console:" >&2
        tail -n 40 "$state/hosts/$name/console.log" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
  done
}

case "${1:-}" in
  up)
    shift
    up "$@"
    ;;
  down) down ;;
  *)
    echo "usage: $0 up GOLDEN_ROOTFS PUBKEY_FILE NAME=IP... | down" >&2
    exit 2
    ;;
esac
