# Finishes a rolling change on this node when its step left a marker (it was the leader): switch
# the leadership over to a healthy replica, then restart this node, then wait for it to stream.
if [ -f "$KB_PENDING_MARKER" ]; then
  if [ "$(patroni_state role)" = leader ]; then
    patronictl switchover "$KB_SCOPE" --leader "$KB_NODE" --force
    patroni_state wait-role replica "$KB_WAIT_SECONDS"
  fi
  if [ "$(patroni_current)" != "$(patroni_wanted)" ]; then
    patroni_recreate
  else
    patronictl restart "$KB_SCOPE" "$KB_NODE" --force >/dev/null
  fi
  patroni_state wait-healthy "$KB_WAIT_SECONDS"
  rm -f "$KB_PENDING_MARKER"
  echo "patroni: rolling change finished on $KB_NODE"
fi
