import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadVersions } from "../../config";
import { DbNode, renderEtcdRunScript } from "../../components/data/postgres/render";
import { DEFAULT_POSTGRES_LAYOUT, ETCD_UID, PostgresLayout } from "../../components/data/postgres/settings";
import { tempDir } from "../support/tools";

/**
 * The etcd run script (/etc/keybuzz/etcd/run.sh) in bash against a fake docker whose etcdctl
 * answers as the peers would: which initial-cluster-state a member starts with, and how an empty
 * member of a formed cluster (a rebuilt DB node) replaces its stale registration and joins again.
 * tests/postgres/replace.loopback.test.ts runs the same script against Debian's etcd.
 */

const versions = loadVersions();
const MEMBERS: DbNode[] = [
  { name: "db-master-01", address: "10.0.0.120" },
  { name: "db-slave-01", address: "10.0.0.121" },
  { name: "db-slave-02", address: "10.0.0.122" },
];
const NODE = MEMBERS[1];
const PEERS = ["https://10.0.0.120:2379", "https://10.0.0.122:2379"];
const OWN = "https://10.0.0.121:2379";

/** `member list -w simple` of the formed cluster, db-slave-01 listed at its own peer URL under `ownLine`. */
function listing(ownLine: string): string {
  return [
    "8e9e05c52164694d, started, db-master-01, https://10.0.0.120:2380, https://10.0.0.120:2379, false",
    ownLine,
    "fd422379fda50e48, started, db-slave-02, https://10.0.0.122:2380, https://10.0.0.122:2379, false",
  ].join("\n");
}

/** The fake docker: etcdctl in throw-away containers answers from FAKE_* files; every call is logged. */
const FAKE_DOCKER = `#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_DIR/calls.log"
case "$1" in
  image | pull | rm) exit 0 ;;
  inspect) [ -e "$FAKE_DIR/container" ] && echo true && exit 0; exit 1 ;;
  logs) exit 0 ;;
esac
# A started member answers its health check (FAKE_OWN: its client URL).
if [ "$1 $2" = "run -d" ]; then echo "$FAKE_OWN" >>"$FAKE_DIR/healthy" && touch "$FAKE_DIR/container" && exit 0; fi
args=("$@")
for ((i = 0; i < \${#args[@]}; i++)); do
  if [ "\${args[$i]}" = /usr/local/bin/etcdctl ]; then break; fi
done
set -- "\${args[@]:$((i + 1))}"
endpoint=""
words=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --endpoints=*) endpoint=\${1#*=} ;;
    --endpoints) endpoint=$2 && shift ;;
    --cacert | --cert | --key | --dial-timeout | --command-timeout | --peer-urls) [ "$1" != --peer-urls ] || words+=("$2"); shift ;;
    *) words+=("$1") ;;
  esac
  shift
done
command="\${words[*]}"
echo "etcdctl@$endpoint $command" >>"$FAKE_DIR/etcdctl.log"
answers() { grep -qxF "$1" "$FAKE_DIR/answering" 2>/dev/null; }
case "$command" in
  "endpoint health")
    for one in \${endpoint//,/ }; do grep -qxF "$one" "$FAKE_DIR/healthy" 2>/dev/null || exit 1; done ;;
  "member list -w simple") answers "$endpoint" && cat "$FAKE_DIR/listing" ;;
  "member remove "*) answers "$endpoint" ;;
  "member add "*) answers "$endpoint" && [ ! -e "$FAKE_DIR/add-fails" ] ;;
  *) exit 3 ;;
esac
`;

interface RunScenario {
  /** Endpoints that answer `member list` / `member remove` / `member add`. */
  readonly answering?: readonly string[];
  /** Endpoints that pass `endpoint health`. */
  readonly healthy?: readonly string[];
  readonly listing?: string;
  /** This member has data (a `member/` directory). */
  readonly hasData?: boolean;
  /** The cluster-formed marker exists on this node. */
  readonly marker?: boolean;
  readonly addFails?: boolean;
  readonly command?: readonly string[];
}

/** Runs the rendered run script of db-slave-01 against the fake docker; what it did. */
function runScript(scenario: RunScenario): { status: number | null; output: string; etcdctl: string[]; docker: string[]; dir: string } {
  const dir = tempDir("etcd-run");
  const layout: PostgresLayout = {
    ...DEFAULT_POSTGRES_LAYOUT,
    paths: { ...DEFAULT_POSTGRES_LAYOUT.paths, etcdDataDir: path.join(dir, "data"), etcdConfigDir: path.join(dir, "config") },
  };
  fs.mkdirSync(path.join(dir, "config", "tls"), { recursive: true });
  fs.writeFileSync(path.join(dir, "config", "etcd.env"), "ETCD_NAME=db-slave-01\n");
  fs.writeFileSync(path.join(dir, "config", "tls", "ca.crt"), "ca\n");
  if (scenario.hasData) fs.mkdirSync(path.join(dir, "data", "member"), { recursive: true });
  if (scenario.marker) fs.writeFileSync(path.join(dir, "config", "cluster-formed"), "");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
  // The fake `sleep` keeps the script's waits short.
  fs.writeFileSync(path.join(bin, "sleep"), "#!/usr/bin/env bash\nexit 0\n", { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "answering"), (scenario.answering ?? []).join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "healthy"), (scenario.healthy ?? []).join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "listing"), scenario.listing ?? "");
  if (scenario.addFails) fs.writeFileSync(path.join(dir, "add-fails"), "");
  const uid = process.getuid?.() ?? 0;
  const script = renderEtcdRunScript(NODE, MEMBERS, versions, layout).replace(`KB_ETCD_UID='${ETCD_UID}'`, `KB_ETCD_UID='${uid}'`);
  const file = path.join(dir, "run.sh");
  fs.writeFileSync(file, script, { mode: 0o755 });
  const result = spawnSync("bash", [file, ...(scenario.command ?? ["start"])], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`, FAKE_DIR: dir, FAKE_OWN: OWN },
  });
  const lines = (file: string): string[] =>
    fs.existsSync(path.join(dir, file)) ? fs.readFileSync(path.join(dir, file), "utf8").trim().split("\n") : [];
  return { status: result.status, output: result.stdout + result.stderr, etcdctl: lines("etcdctl.log"), docker: lines("calls.log"), dir };
}

/** The initial-cluster-state of the member the script started, if it started one. */
function startedState(docker: readonly string[]): string | undefined {
  const run = docker.find((call) => call.startsWith("docker run -d --name etcd"));
  return run === undefined ? undefined : /-e ETCD_INITIAL_CLUSTER_STATE=(\w+)/.exec(run)?.[1];
}

describe("the etcd run script (run.sh start)", () => {
  it("starts a member that has data `existing` without asking the peers, and waits for its health", () => {
    const result = runScript({ hasData: true, healthy: [OWN] });
    expect(result.status).toBe(0);
    expect(startedState(result.docker)).toBe("existing");
    expect(result.docker.find((call) => call.startsWith("docker run -d"))).toContain(`${versions.images.etcd} /usr/local/bin/etcd`);
    expect(result.etcdctl).toEqual([`etcdctl@${OWN} endpoint health`]);
  });

  it("starts an empty member `new` while no peer answers (first bootstrap)", () => {
    const result = runScript({});
    expect(result.status).toBe(0);
    expect(startedState(result.docker)).toBe("new");
    expect(result.etcdctl.filter((call) => /member (add|remove)/.test(call))).toEqual([]);
  });

  it("starts an empty member `new` while the peers list no started member (the cluster is still forming)", () => {
    const unstarted = [
      "8e9e05c52164694d, unstarted, , https://10.0.0.120:2380, , false",
      "91bc3c398fb3c146, unstarted, , https://10.0.0.121:2380, , false",
      "fd422379fda50e48, unstarted, , https://10.0.0.122:2380, , false",
    ].join("\n");
    const result = runScript({ answering: [PEERS[0]], listing: unstarted });
    expect(result.status).toBe(0);
    expect(startedState(result.docker)).toBe("new");
    expect(result.etcdctl.filter((call) => /member (add|remove)/.test(call))).toEqual([]);
  });

  it("an empty member of a formed cluster (a rebuilt node): removes its stale registration, adds it again, starts `existing`", () => {
    const stale = "91bc3c398fb3c146, started, db-slave-01, https://10.0.0.121:2380, https://10.0.0.121:2379, false";
    const result = runScript({ answering: PEERS, healthy: PEERS, listing: listing(stale) });
    expect(result.status).toBe(0);
    const membership = result.etcdctl.filter((call) => /member (add|remove)/.test(call));
    expect(membership).toEqual([
      `etcdctl@${PEERS[0]} member remove 91bc3c398fb3c146`,
      `etcdctl@${PEERS[0]} member add db-slave-01 https://10.0.0.121:2380`,
    ]);
    // The stale member's own client URL was asked first: it did not answer, so it was removed.
    expect(result.etcdctl).toContain(`etcdctl@${OWN} endpoint health`);
    expect(startedState(result.docker)).toBe("existing");
    expect(result.output).toContain("stale etcd member 91bc3c398fb3c146 (db-slave-01) at https://10.0.0.121:2380 removed");
  });

  it("an empty member whose registration never started (added, then the run failed): removed and added again, `existing`", () => {
    const unstarted = "91bc3c398fb3c146, unstarted, , https://10.0.0.121:2380, , false";
    const result = runScript({ answering: PEERS, healthy: PEERS, listing: listing(unstarted) });
    expect(result.status).toBe(0);
    expect(result.etcdctl.filter((call) => /member (add|remove)/.test(call))).toEqual([
      `etcdctl@${PEERS[0]} member remove 91bc3c398fb3c146`,
      `etcdctl@${PEERS[0]} member add db-slave-01 https://10.0.0.121:2380`,
    ]);
    expect(startedState(result.docker)).toBe("existing");
  });

  it("never removes a member that passes its health check: the add then fails and no member starts", () => {
    const registered = "91bc3c398fb3c146, started, db-slave-01, https://10.0.0.121:2380, https://10.0.0.121:2379, false";
    const result = runScript({ answering: PEERS, healthy: [...PEERS, OWN], listing: listing(registered), addFails: true });
    expect(result.status).not.toBe(0);
    expect(result.etcdctl.filter((call) => call.includes("member remove"))).toEqual([]);
    expect(result.output).toContain("etcd member db-slave-01 (https://10.0.0.121:2380) is healthy; kept");
    expect(startedState(result.docker)).toBeUndefined();
  });

  it("goes through the first healthy peer when another peer answers but has no quorum", () => {
    const stale = "91bc3c398fb3c146, started, db-slave-01, https://10.0.0.121:2380, https://10.0.0.121:2379, false";
    const result = runScript({ answering: PEERS, healthy: [PEERS[1]], listing: listing(stale) });
    expect(result.status).toBe(0);
    expect(result.etcdctl.filter((call) => /member (add|remove)/.test(call))).toEqual([
      `etcdctl@${PEERS[1]} member remove 91bc3c398fb3c146`,
      `etcdctl@${PEERS[1]} member add db-slave-01 https://10.0.0.121:2380`,
    ]);
  });

  it("refuses to bootstrap a new cluster when the marker says it formed and no peer answers", () => {
    const result = runScript({ marker: true });
    expect(result.status).toBe(1);
    expect(result.output).toContain("refusing to bootstrap a new cluster");
    expect(startedState(result.docker)).toBeUndefined();
  });
});

describe("the etcd run script (run.sh wait-cluster)", () => {
  it("writes the cluster-formed marker only once every member is healthy", () => {
    const unhealthy = runScript({ healthy: PEERS, command: ["wait-cluster", "1"] });
    expect(unhealthy.status).not.toBe(0);
    expect(fs.existsSync(path.join(unhealthy.dir, "config", "cluster-formed"))).toBe(false);
    const healthy = runScript({ healthy: [...PEERS, OWN], command: ["wait-cluster", "1"] });
    expect(healthy.status).toBe(0);
    expect(healthy.etcdctl).toEqual([`etcdctl@${[PEERS[0], OWN, PEERS[1]].join(",")} endpoint health`]);
    expect(fs.existsSync(path.join(healthy.dir, "config", "cluster-formed"))).toBe(true);
  });
});
