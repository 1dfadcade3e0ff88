# Shared apt helpers of the host steps (base OS, Kubernetes node preparation), included in a step's
# script before the step's own file (components/os/base-os.ts, commonHostScript).
#
# Why a wrapper: apt-get's DPkg::Lock::Timeout waits only for dpkg's locks (frontend and dpkg lock,
# apt-pkg/deb/debsystem.cc); the lists and archives locks (pkgAcquire::GetLock, apt-pkg/acquire.cc)
# fail at once, and Ubuntu's apt-daily may hold them after first boot. A dpkg conffile question with
# stdin closed aborts the step, so dpkg keeps a locally changed file and takes the default otherwise.
# Optional variables: KB_APT_ATTEMPTS (30), KB_APT_RETRY_SECONDS (10), KB_CLOUD_INIT_TIMEOUT_SECONDS (900).

# kb_wait_cloud_init: waits until cloud-init has finished (it runs apt on a fresh server), bounded;
# a host without cloud-init goes on at once. Fails on the timeout only: a cloud-init that finished
# with errors is reported and the step goes on (we pass it no user data).
kb_wait_cloud_init() {
  local limit=${KB_CLOUD_INIT_TIMEOUT_SECONDS:-900} status=0
  if ! command -v cloud-init >/dev/null 2>&1; then return 0; fi
  timeout "$limit" cloud-init status --wait >/dev/null 2>&1 || status=$?
  case "$status" in
    0) ;;
    124)
      echo "cloud-init has not finished after ${limit} s; see 'cloud-init status --long' on this host" >&2
      return 1
      ;;
    *) echo "cloud-init finished with errors (status exit code ${status}); going on (see /var/log/cloud-init.log)" >&2 ;;
  esac
}

# kb_apt_lock_error TEXT: true when TEXT is apt's or dpkg's complaint about a lock held by another process.
kb_apt_lock_error() {
  case "$1" in
    *"Could not get lock"* | *"Unable to lock directory"* | *"Unable to acquire the dpkg frontend lock"*) return 0 ;;
    *) return 1 ;;
  esac
}

# kb_apt_retry COMMAND [ARGS]: runs an apt tool in the C locale (so its messages can be matched) and
# retries it while another process holds one of apt's locks, KB_APT_ATTEMPTS times at most. Prints
# the tool's output (stdout on success, stderr on failure) and returns its exit code.
kb_apt_retry() {
  local attempts=${KB_APT_ATTEMPTS:-30} delay=${KB_APT_RETRY_SECONDS:-10} attempt=1 output status what=$1 arg skip=0
  # What the messages name: the tool and its operation (the first word that is no option).
  for arg in "${@:2}"; do
    if [ "$skip" = 1 ]; then skip=0; elif [ "$arg" = -o ]; then skip=1; elif [ "${arg#-}" = "$arg" ]; then
      what="$1 $arg"
      break
    fi
  done
  while true; do
    status=0
    output=$(LC_ALL=C "$@" 2>&1) || status=$?
    if [ "$status" -eq 0 ]; then
      if [ -n "$output" ]; then printf '%s\n' "$output"; fi
      return 0
    fi
    if ! kb_apt_lock_error "$output"; then
      printf '%s\n' "$output" >&2
      return "$status"
    fi
    if [ "$attempt" -ge "$attempts" ]; then
      printf '%s\n' "$output" >&2
      echo "${what}: an apt lock was still held by another process after ${attempts} attempts, ${delay} s apart" >&2
      return "$status"
    fi
    echo "${what}: an apt lock is held by another process (attempt ${attempt}/${attempts}); retrying in ${delay} s" >&2
    attempt=$((attempt + 1))
    sleep "$delay"
  done
}

# kb_apt_get ARGS: apt-get -y -qq ARGS with a bounded wait for dpkg's locks, retries while a lock is
# held, and no conffile question.
kb_apt_get() {
  kb_apt_retry apt-get -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    -y -qq "$@"
}

# kb_apt_key URL FINGERPRINT KEYRING: downloads a repository's signing key on every run (its owner may
# extend its expiry under the same fingerprint), refuses it unless its only primary key has
# FINGERPRINT (40 hex digits), and writes it in binary form to KEYRING (0644) with kb_write, so
# `kb_is_changed KEYRING` tells whether it changed.
kb_apt_key() {
  local url=$1 expected=$2 keyring=$3 work listing fingerprints
  work=$(mktemp -d)
  if ! curl -fsSL --retry 5 --retry-delay 3 "$url" -o "$work/key.asc"; then
    rm -rf "$work"
    echo "cannot download the apt signing key ${url}" >&2
    return 1
  fi
  if ! listing=$(gpg --homedir "$work" --batch --show-keys --with-colons "$work/key.asc" 2>/dev/null); then
    rm -rf "$work"
    echo "${url} is not an OpenPGP key; refusing it" >&2
    return 1
  fi
  # The fpr record right after a pub record is the primary key's fingerprint (gpg's DETAILS file).
  fingerprints=$(awk -F: '$1 == "pub" { primary = 1; next } $1 == "fpr" && primary { print $10 } { primary = 0 }' <<<"$listing")
  if [ "$fingerprints" != "$expected" ]; then
    rm -rf "$work"
    echo "the apt signing key from ${url} has the fingerprint(s) '${fingerprints//$'\n'/ }', expected ${expected}; refusing it" >&2
    return 1
  fi
  gpg --homedir "$work" --batch --yes --dearmor -o "$work/key.gpg" "$work/key.asc"
  kb_write "$keyring" 0644 root:root <"$work/key.gpg"
  rm -rf "$work"
}
