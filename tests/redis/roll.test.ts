import * as fs from "fs";
import * as path from "path";
import { DEFAULT_REDIS_DAEMON_SETTINGS, redisStopGraceSeconds, renderRedisNodeScript, RedisStepPhase } from "../../components/data/redis";
import { HostFile, renderStepScript } from "../../components/lib/remote";
import { runBash } from "../support/bash-fakes";
import { tempDir } from "../support/tools";

/**
 * The roll decisions of scripts/redis/redis-node.sh, the whole rendered step run by bash against a
 * fake `docker` that plays three nodes: their roles, Sentinel's answer and `SENTINEL failover`
 * (which makes another node the master), and logs every container call. The
 * real daemons and the timing are the host tier's (docs/integration.md, "The Redis roll").
 */

const NODES = [
  { name: "redis-01", address: "10.0.0.123" },
  { name: "redis-02", address: "10.0.0.124" },
  { name: "redis-03", address: "10.0.0.125" },
];
const SETTINGS = { ...DEFAULT_REDIS_DAEMON_SETTINGS, maxmemoryMb: 2457 };
const IMAGE = "redis:7.2.16-alpine";

/** The fake cluster: `$FAKE/role.<ip>`, `$FAKE/master` (what Sentinel names), `$FAKE/label.<container>`, `$FAKE/calls`. */
const FAKE_DOCKER = `
state=$FAKE
if [ "$1" = inspect ]; then
  name=\${*: -1}
  [ -f "$state/label.$name" ] || exit 1
  case "$3" in *keybuzz.spec*) cat "$state/label.$name" ;; *) echo true ;; esac
  exit 0
fi
if [ "$1 $2" = "image inspect" ]; then exit 0; fi
if [ "$1 $2" = "run --rm" ]; then
  while [ "$1" != "-h" ]; do shift; done
  ip=$2 port=$4
  shift 4
  # This host's daemons answer only while their containers exist (redis-02 is 10.0.0.124).
  if [ "$ip" = 10.0.0.124 ]; then
    container=redis
    if [ "$port" = 26379 ]; then container=redis-sentinel; fi
    [ -f "$state/label.$container" ] || exit 1
  fi
  role=$(cat "$state/role.$ip" 2>/dev/null || echo slave)
  case "$*" in
    PING) echo PONG ;;
    ROLE) echo "$role" ;;
    "SENTINEL get-master-addr-by-name "*)
      # failover-after: the Sentinels promote failover-to after this many more answers (a dead master's failover).
      if [ -f "$state/failover-after" ]; then
        left=$(cat "$state/failover-after")
        if [ "$left" -gt 0 ]; then echo $((left - 1)) >"$state/failover-after"; else
          rm "$state/failover-after"; cp "$state/failover-to" "$state/master"; echo master >"$state/role.$(cat "$state/failover-to")"
          echo "sentinels failed over to $(cat "$state/failover-to")" >>"$state/calls"
        fi
      fi
      printf '%s\\n6379\\n' "$(cat "$state/master")" ;;
    "SENTINEL MYID") echo "sentinel-$ip" ;;
    # Every other Sentinel, by id (SENTINEL SENTINELS lists field names and values one per line).
    "SENTINEL sentinels "*)
      for peer in 10.0.0.123 10.0.0.124 10.0.0.125; do
        if [ "$peer" != "$ip" ]; then printf 'name\\n%s:26379\\nrunid\\nsentinel-%s\\n' "$peer" "$peer"; fi
      done ;;
    "CLIENT PAUSE "*) echo "pause writes on $ip" >>"$state/calls"; echo OK ;;
    "SENTINEL failover "*)
      echo "failover by $ip" >>"$state/calls"
      # As Sentinel does, the old master keeps its role until it is converted 8 s later.
      for peer in 10.0.0.124 10.0.0.123; do
        if [ "$peer" != "$ip" ]; then echo master >"$state/role.$peer"; echo "$peer" >"$state/master"; break; fi
      done
      echo OK ;;
    "INFO replication")
      if [ "$role" = slave ]; then printf 'role:slave\\nmaster_link_status:up\\n'; exit 0; fi
      printf 'role:master\\nconnected_slaves:2\\n'
      n=0
      for peer in 10.0.0.123 10.0.0.124 10.0.0.125; do
        [ "$peer" != "$ip" ] || continue
        link=online
        # link-delay.<peer>: that replica is still connecting for this many more INFO calls.
        if [ -f "$state/link-delay.$peer" ]; then
          left=$(cat "$state/link-delay.$peer")
          if [ "$left" -gt 0 ]; then link=connect; echo $((left - 1)) >"$state/link-delay.$peer"; else rm "$state/link-delay.$peer"; echo "link $peer online" >>"$state/calls"; fi
        fi
        printf 'slave%s:ip=%s,port=6379,state=%s,offset=1,lag=0\\n' "$n" "$peer" "$link"
        n=$((n + 1))
      done ;;
    *) echo "unexpected redis-cli $*" >&2; exit 1 ;;
  esac
  exit 0
fi
case "$1" in
  stop|rm) echo "$*" >>"$state/calls" ;;
  run)
    while [ "$1" != "--name" ]; do shift; done
    name=$2
    echo "start $name" >>"$state/calls"
    label=\${4#keybuzz.spec=}
    echo "$label" >"$state/label.$name" ;;
  logs) ;;
  *) echo "unexpected docker $*" >&2; exit 1 ;;
esac`;

interface Node {
  readonly fake: string;
  readonly managed: string;
  /** Runs the node's rendered step of `phase`; @returns its output and the container calls it made. */
  run(phase: RedisStepPhase, files?: HostFile[]): { status: number | null; output: string; calls: string[] };
}

/** redis-02's host, with its managed configs written (as the node step's files land them) and Redis and Sentinel containers current. */
function redis02(roles: Record<string, "master" | "slave">, master: string, withData = true): Node {
  const root = tempDir("redis-roll");
  const fake = path.join(root, "fake");
  const managed = path.join(root, "managed");
  fs.mkdirSync(fake);
  fs.mkdirSync(managed);
  fs.writeFileSync(path.join(managed, "redis.conf"), "requirepass data-pass\n");
  fs.writeFileSync(path.join(managed, "sentinel.conf"), "requirepass sentinel-pass\nsentinel monitor kb-redis-master 10.0.0.123 6379 2\n");
  for (const [ip, role] of Object.entries(roles)) fs.writeFileSync(path.join(fake, `role.${ip}`), role);
  fs.writeFileSync(path.join(fake, "master"), master);
  // The node has run before: its AOF is there (a node the Sentinels name as master is started only with data of its own).
  if (withData) fs.mkdirSync(path.join(root, "data", "appendonlydir"), { recursive: true });
  const paths = {
    managedDir: managed,
    redisDir: path.join(root, "conf"),
    sentinelDir: path.join(root, "sentinel"),
    dataDir: path.join(root, "data"),
    sysctlFile: path.join(root, "sysctl.conf"),
  };
  const run = (phase: RedisStepPhase, files: HostFile[] = []) => {
    fs.rmSync(path.join(fake, "calls"), { force: true });
    const body = renderRedisNodeScript(NODES[1], NODES, IMAGE, SETTINGS, phase, paths);
    const result = runBash(renderStepScript(`redis-02-${phase}`, files, body), { docker: FAKE_DOCKER }, { FAKE: fake });
    const calls = fs.existsSync(path.join(fake, "calls")) ? fs.readFileSync(path.join(fake, "calls"), "utf8").trim().split("\n") : [];
    return { status: result.status, output: result.stdout + result.stderr, calls };
  };
  // The first deployment leaves both containers current (their spec labels as rendered).
  const first = run("node");
  expect(first.status).toBe(0);
  return { fake, managed, run };
}

/** Makes the node's Redis container outdated (an older spec label), as an image bump does. */
function outdate(node: Node): void {
  fs.writeFileSync(path.join(node.fake, "label.redis"), "an-older-spec\n");
}

const GRACE = redisStopGraceSeconds(SETTINGS.maxmemoryMb);
const RESTART = [`stop -t ${GRACE} redis`, "rm -f redis", "start redis"];

describe("the Redis roll (scripts/redis/redis-node.sh)", () => {
  it("sizes the stop grace from Redis' shutdown: 10 s for lagging replicas, then the final RDB of maxmemory at 100 MB/s", () => {
    expect(redisStopGraceSeconds(2457)).toBe(35);
    expect(redisStopGraceSeconds(0)).toBe(10);
  });

  it("node step, outdated replica: restarts it as a replica of Sentinel's master, SIGTERM with the grace period, no failover", () => {
    const node = redis02({ "10.0.0.123": "master", "10.0.0.124": "slave" }, "10.0.0.123");
    outdate(node);
    const result = node.run("node");
    expect(result.status).toBe(0);
    expect(result.calls).toEqual(RESTART);
    expect(result.output).toContain("redis: starting as replica of 10.0.0.123");
  });

  it("node step, outdated master with replicas: leaves it running and marks it deferred; the master-roll step hands over, then restarts it", () => {
    const node = redis02({ "10.0.0.123": "slave", "10.0.0.124": "master" }, "10.0.0.124");
    outdate(node);
    const deferred = path.join(node.managed, "redis.restart-deferred");

    const nodeStep = node.run("node");
    expect(nodeStep.status).toBe(0);
    expect(nodeStep.calls).toEqual([]);
    expect(nodeStep.output).toContain("restart deferred to the master-roll step");
    expect(fs.existsSync(deferred)).toBe(true);

    const roll = node.run("master-roll");
    expect(roll.status).toBe(0);
    expect(roll.calls).toEqual(["pause writes on 10.0.0.124", "failover by 10.0.0.124", ...RESTART]);
    expect(roll.output).toContain("redis: starting as replica of 10.0.0.123");
    expect(fs.existsSync(deferred)).toBe(false);
  });

  it("master-roll: restarts only once the new master has another replica online (else it would refuse writes: min-replicas-to-write)", () => {
    const node = redis02({ "10.0.0.123": "slave", "10.0.0.124": "master" }, "10.0.0.124");
    outdate(node);
    expect(node.run("node").calls).toEqual([]);
    // After the failover to 10.0.0.123, Sentinel is still moving redis-03 (10.0.0.125) over to it.
    fs.writeFileSync(path.join(node.fake, "link-delay.10.0.0.125"), "1");
    const roll = node.run("master-roll");
    expect(roll.status).toBe(0);
    expect(roll.calls).toEqual(["pause writes on 10.0.0.124", "failover by 10.0.0.124", "link 10.0.0.125 online", ...RESTART]);
  });

  it("a config change only (container current): the master's restart is deferred the same way", () => {
    const node = redis02({ "10.0.0.123": "slave", "10.0.0.124": "master" }, "10.0.0.124");
    // The node step lands a changed managed redis.conf, as a settings change does.
    const changed = [{ path: path.join(node.managed, "redis.conf"), content: "requirepass data-pass\nmaxmemory 2048mb\n", mode: "0600" }];
    expect(node.run("node", changed).calls).toEqual([]);
    expect(fs.existsSync(path.join(node.managed, "redis.restart-deferred"))).toBe(true);
    expect(node.run("master-roll").calls).toEqual(["pause writes on 10.0.0.124", "failover by 10.0.0.124", ...RESTART]);
  });

  it("converged nodes: neither step stops, starts or fails over anything", () => {
    const master = redis02({ "10.0.0.124": "master" }, "10.0.0.124");
    expect(master.run("node").calls).toEqual([]);
    expect(master.run("master-roll").calls).toEqual([]);
    const replica = redis02({ "10.0.0.123": "master", "10.0.0.124": "slave" }, "10.0.0.123");
    expect(replica.run("master-roll").calls).toEqual([]);
  });

  it("a replaced master (empty, gone) that the Sentinels still name: its node step waits for their failover and starts it as a replica, never as master", () => {
    const node = redis02({ "10.0.0.123": "slave", "10.0.0.124": "slave" }, "10.0.0.123", false);
    // The server is recreated empty: no containers, no data, no live configs; the Sentinels still
    // name it (10.0.0.124) for a few more answers, then promote 10.0.0.123.
    for (const file of fs.readdirSync(node.fake).filter((name) => name.startsWith("label."))) fs.rmSync(path.join(node.fake, file));
    fs.rmSync(path.dirname(node.managed) + "/conf", { recursive: true, force: true });
    fs.writeFileSync(path.join(node.fake, "master"), "10.0.0.124");
    fs.writeFileSync(path.join(node.fake, "role.10.0.0.124"), "master");
    fs.writeFileSync(path.join(node.fake, "role.10.0.0.123"), "slave");
    fs.writeFileSync(path.join(node.fake, "failover-after"), "3");
    fs.writeFileSync(path.join(node.fake, "failover-to"), "10.0.0.123");
    const result = node.run("node");
    expect(result.status).toBe(0);
    expect(result.calls).toEqual(["sentinels failed over to 10.0.0.123", ...RESTART, "rm -f redis-sentinel", "start redis-sentinel"]);
    expect(result.output).toContain("redis: starting as replica of 10.0.0.123");
    expect(result.output).not.toContain("starting as master");
  });
});
