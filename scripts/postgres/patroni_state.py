#!/usr/bin/env python3
"""Reads a Patroni member's REST API (TLS, verified against the cluster CA) for the KeyBuzz steps.

Usage: patroni_state.py --url https://ADDR:8008 --cafile CA --name NODE COMMAND [ARGS]
  role                      print leader | replica | none
  pending-restart           exit 0 when this member has a pending restart
  others-streaming          exit 0 when another member is a streaming replica
  wait-healthy SECONDS      wait until this member runs as leader or streaming replica, and a leader exists
  wait-role ROLE SECONDS    wait until this member has ROLE (leader | replica)
  verify REPLICAS SECONDS   wait for exactly 1 leader and REPLICAS streaming replicas with lag 0
  leader-host               print the leader's host
Only the standard library: it runs on the host's python3.
"""
import argparse
import json
import ssl
import sys
import time
import urllib.request

LEADER_ROLES = ("leader", "primary", "master")
REPLICA_ROLES = ("replica", "sync_standby", "quorum_standby")


def get(args, endpoint):
    context = ssl.create_default_context(cafile=args.cafile)
    try:
        with urllib.request.urlopen(args.url + endpoint, context=context, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # 503 still carries the member's JSON
        try:
            return json.load(error)
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def role(args):
    member = get(args, "/patroni") or {}
    if member.get("role") in LEADER_ROLES:
        return "leader"
    if member.get("role") in REPLICA_ROLES:
        return "replica"
    return "none"


def members(args):
    return (get(args, "/cluster") or {}).get("members", [])


def healthy(args):
    member = get(args, "/patroni") or {}
    if member.get("state") != "running":
        return False
    leaders = [m for m in members(args) if m.get("role") in LEADER_ROLES]
    if len(leaders) != 1:
        return False
    if member.get("role") in LEADER_ROLES:
        return True
    return member.get("replication_state", "streaming") == "streaming"


def wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return 0
        if time.monotonic() >= deadline:
            print(f"patroni: timed out after {seconds}s waiting for {what}", file=sys.stderr)
            for member in members(ARGS):
                print(f"  {member}", file=sys.stderr)
            return 1
        time.sleep(2)


def cluster_ok(args, replicas):
    current = members(args)
    leaders = [m for m in current if m.get("role") in LEADER_ROLES and m.get("state") == "running"]
    streaming = [m for m in current if m.get("role") in REPLICA_ROLES and m.get("state") == "streaming" and m.get("lag") == 0]
    return len(leaders) == 1 and len(streaming) == replicas and len(current) == replicas + 1


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("command")
    parser.add_argument("params", nargs="*")
    args = parser.parse_args(argv)
    global ARGS
    ARGS = args
    if args.command == "role":
        print(role(args))
        return 0
    if args.command == "pending-restart":
        return 0 if (get(args, "/patroni") or {}).get("pending_restart") else 1
    if args.command == "others-streaming":
        others = [m for m in members(args) if m.get("name") != args.name and m.get("state") == "streaming"]
        return 0 if others else 1
    if args.command == "wait-healthy":
        return wait(lambda: healthy(args), int(args.params[0]), f"{args.name} to run as leader or streaming replica")
    if args.command == "wait-role":
        wanted = args.params[0]
        return wait(lambda: role(args) == wanted and healthy(args), int(args.params[1]), f"{args.name} to be {wanted}")
    if args.command == "verify":
        replicas = int(args.params[0])
        status = wait(lambda: cluster_ok(args, replicas), int(args.params[1]), f"1 leader and {replicas} streaming replicas with lag 0")
        for member in members(args):
            print(f"{member.get('name')}: {member.get('role')} {member.get('state')} lag={member.get('lag', '-')}")
        return status
    if args.command == "leader-host":
        leaders = [m for m in members(args) if m.get("role") in LEADER_ROLES]
        if len(leaders) != 1:
            return 1
        print(leaders[0]["host"])
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


ARGS = None

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
