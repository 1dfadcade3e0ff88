# Shared sshd check of the base OS step and its verification (included before their own files,
# components/os/base-os.ts). Variable: KB_SSHD_EXPECTED, the lines `sshd -T` must print.

# kb_sshd_missing_settings: prints each expected line that `sshd -T` does not show (nothing when all
# are in force); fails when sshd -T itself fails. sshd prints PermitRootLogin's key-only value as
# `without-password` (OpenSSH 9) or `prohibit-password` (later releases list that name first), so
# both spellings count as the same setting.
kb_sshd_missing_settings() {
  local effective expected
  effective=$(sshd -T) || return 1
  effective=$'\n'"$effective"$'\n'
  effective=${effective//$'\n'permitrootlogin without-password$'\n'/$'\n'permitrootlogin prohibit-password$'\n'}
  while IFS= read -r expected; do
    if ! grep -qxF -- "$expected" <<<"$effective"; then printf '%s\n' "$expected"; fi
  done <<<"$KB_SSHD_EXPECTED"
}
