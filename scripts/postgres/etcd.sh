# This node's etcd member: start (or update) it with the installed run script (etcd-run.sh); a
# member of a formed cluster waits there for its health, so members roll one at a time.
"$KB_ETCD_RUN" start
