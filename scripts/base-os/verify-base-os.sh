# The 8 validation tests of spec 000 ("Tests de Validation"), run on the server itself after the
# base OS step. Any failure fails the deployment, naming the test.
# Variables: KB_HOSTNAME, KB_DOCKER_PACKAGE (docker-ce or docker.io), KB_DOCKER_VERSION (its pinned
# package version), KB_DOCKER_RELEASE (the x.y.z the daemon reports), KB_SSHD_EXPECTED (lines
# `sshd -T` must print). kb_sshd_missing_settings and kb_container come from scripts/common/sshd.sh
# and host.sh, kb_platform_containers_up/down from containers-running.sh, included before this file. In a container (the real-host test tier) swap and the clock
# are the machine's: those two tests are reported as skipped there, by name; a Hetzner server is never
# a container, so production always runs all 8. Then it waits until the platform's containers on the
# server run (and are healthy) again: the next server of the same group waits for this step.
# Each test captures a command's whole output before it looks at it: under pipefail, a pipe into a
# reader that stops early (grep -q) fails whenever the writer gets SIGPIPE.

# has_line LINE TEXT: TEXT holds LINE as a whole line.
has_line() { grep -qxF -- "$1" <<<"$2"; }

docker_pinned() {
  local package server
  package=$(dpkg-query -W -f='${Version}' "$KB_DOCKER_PACKAGE") || return 1
  server=$(docker version --format '{{.Server.Version}}') || return 1
  [ "$package" = "$KB_DOCKER_VERSION" ] && [ "${server%%[+~-]*}" = "$KB_DOCKER_RELEASE" ]
}
swap_off() { [ -z "$(swapon --summary --noheadings)" ]; }
ufw_active() {
  local status
  status=$(ufw status) || return 1
  has_line 'Status: active' "$status"
}
dns_fixed() {
  local resolv
  resolv=$(cat /etc/resolv.conf) || return 1
  has_line 'nameserver 1.1.1.1' "$resolv" && has_line 'nameserver 8.8.8.8' "$resolv"
}
ssh_hardened() {
  local missing
  missing=$(kb_sshd_missing_settings) || return 1
  [ -z "$missing" ]
}
timezone_paris() { [ "$(timedatectl show -p Timezone --value)" = Europe/Paris ]; }
ntp_active() { [ "$(timedatectl show -p NTP --value)" = yes ]; }
sysctl_applied() { [ "$(sysctl -n net.core.somaxconn)" = 65535 ]; }

container=$(kb_container) || container=""
failures=0
skipped=0
for test in docker_pinned swap_off ufw_active dns_fixed ssh_hardened timezone_paris ntp_active sysctl_applied; do
  if [ -n "$container" ] && { [ "$test" = swap_off ] || [ "$test" = ntp_active ]; }; then
    echo "SKIP ${test}: this host is a container (${container}); swap and the clock are its machine's"
    skipped=$((skipped + 1))
  elif "$test"; then
    echo "PASS ${test}"
  else
    kb_diagnose "FAIL ${test}"
    failures=$((failures + 1))
  fi
done
if [ "$failures" -ne 0 ]; then
  kb_diagnose "base OS verification: ${failures} of 8 tests failed on ${KB_HOSTNAME}"
  exit 1
fi
# The platform's containers on this server are back (kb_platform_containers_down, containers-running.sh):
# the next server of the group waits for this step.
if ! kb_wait_until 300 5 "the platform's containers on ${KB_HOSTNAME} are not all running and healthy" kb_platform_containers_up; then
  down=$(kb_platform_containers_down)
  kb_diagnose "not back: ${down//$'\n'/; }"
  exit 1
fi
if [ "$skipped" -ne 0 ]; then
  echo "base OS verification: $((8 - skipped))/8 passed, ${skipped} skipped (container) on ${KB_HOSTNAME}"
else
  echo "base OS verification: 8/8 passed on ${KB_HOSTNAME}"
fi
