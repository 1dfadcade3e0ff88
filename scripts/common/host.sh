# Host helpers shared by the steps (components/os/base-os.ts, commonHostScript).

# kb_container: prints the container technology this host runs in (`systemd-detect-virt
# --container`: systemd-nspawn, docker, lxc, …) and succeeds; prints nothing and fails on a VM or on
# bare metal, which a Hetzner server always is. In a container the kernel-wide settings (vm.*, fs.*,
# kernel.*), swap, the clock and the audit system belong to the machine, so the steps that touch
# them say so and leave them, instead of failing — never silently.
kb_container() {
  local kind
  kind=$(systemd-detect-virt --container 2>/dev/null) || return 1
  [ "$kind" != none ] || return 1
  echo "$kind"
}
