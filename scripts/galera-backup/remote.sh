# remote ARGS: ARGS to backup-01's receiver (the forced command of KB_SSH_KEY: receive, commit,
# list, send), over SSH with key authentication, from this node's own address KB_BIND_ADDRESS
# (the key's `from=` on backup-01 lists the Galera nodes). backup-01's host key is learnt on the
# first connection (the node step's check) into KB_KNOWN_HOSTS, then required to stay the same.
remote() {
  ssh -i "$KB_SSH_KEY" -p "$KB_REMOTE_PORT" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new \
    -o UserKnownHostsFile="$KB_KNOWN_HOSTS" -o BindAddress="$KB_BIND_ADDRESS" -o ConnectTimeout=15 -o ServerAliveInterval=30 "$KB_REMOTE" "$@"
}
