# etcd membership helpers for a node that joins a running etcd cluster again (a server recreated
# empty, or a member whose data was lost). The caller defines kb_etcdctl: etcdctl with its TLS flags.
# `member list -w simple` prints, per member: ID, status, name, peer URLs, client URLs, is learner,
# joined by ", " (etcdctl's simplePrinter; status `unstarted` and an empty name until the member
# first published itself), the same in etcd 3.4 and 3.5.

# kb_etcd_started_members ENDPOINT: the names of the members that started at least once, one a
# line, as the member at ENDPOINT lists them; fails when that member does not answer.
kb_etcd_started_members() {
  local listing id status name _rest
  listing=$(kb_etcdctl --endpoints="$1" member list -w simple)
  while IFS=, read -r id status name _rest; do
    if [ -n "$id" ] && [ "${status// /}" = started ]; then echo "${name// /}"; fi
  done <<<"$listing"
}

# kb_etcd_remove_stale_member ENDPOINT PEER_URL: through the member at ENDPOINT, removes the member
# registered at PEER_URL (its old registration) unless its client URLs answer `endpoint health`:
# a healthy member is never removed. Prints what it did.
kb_etcd_remove_stale_member() {
  local endpoint=$1 peer_url=$2 listing id _status name peers clients _learner
  listing=$(kb_etcdctl --endpoints="$endpoint" member list -w simple)
  while IFS=, read -r id _status name peers clients _learner; do
    if [ "${peers// /}" != "$peer_url" ]; then continue; fi
    clients=${clients// /}
    if [ -n "$clients" ] && kb_etcdctl --endpoints="$clients" endpoint health >/dev/null 2>&1; then
      echo "etcd member ${name// /} (${peer_url}) is healthy; kept"
      continue
    fi
    kb_etcdctl --endpoints="$endpoint" member remove "$id" >/dev/null
    echo "stale etcd member ${id}${name:+ (${name// /})} at ${peer_url} removed"
  done <<<"$listing"
}
