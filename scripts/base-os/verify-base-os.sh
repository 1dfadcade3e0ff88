# The 8 validation tests of spec 000 ("Tests de Validation"), run on the server itself after the
# base OS step. Any failure fails the deployment, naming the test.
docker_pinned() { docker version --format '{{.Server.Version}}' | grep -qx "$KB_DOCKER_RELEASE"; }
swap_off() { [ -z "$(swapon --summary --noheadings)" ]; }
ufw_active() { ufw status | grep -q '^Status: active'; }
dns_fixed() { grep -q '^nameserver 1.1.1.1' /etc/resolv.conf && grep -q '^nameserver 8.8.8.8' /etc/resolv.conf; }
ssh_hardened() { sshd -T | grep -qx 'passwordauthentication no'; }
timezone_paris() { timedatectl show -p Timezone --value | grep -qx 'Europe/Paris'; }
ntp_active() { timedatectl show -p NTP --value | grep -qx yes; }
sysctl_applied() { [ "$(sysctl -n net.core.somaxconn)" = 65535 ]; }

failures=0
for test in docker_pinned swap_off ufw_active dns_fixed ssh_hardened timezone_paris ntp_active sysctl_applied; do
  if "$test"; then
    echo "PASS ${test}"
  else
    echo "FAIL ${test}" >&2
    failures=$((failures + 1))
  fi
done
if [ "$failures" -ne 0 ]; then
  echo "base OS verification: ${failures} of 8 tests failed on ${KB_HOSTNAME}" >&2
  exit 1
fi
echo "base OS verification: 8/8 passed on ${KB_HOSTNAME}"
