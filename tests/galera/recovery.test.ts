import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

/**
 * keybuzz-galera (scripts/galera/galera-node.sh) and the full-outage recovery
 * (scripts/galera/recover.sh) driven through their override variables: three fake nodes in a temp
 * directory whose "server" is a marker file, so the decisions (who bootstraps, in which order, what
 * is written to grastate.dat) are checked without MariaDB.
 */

const NODE_SCRIPT = path.join(__dirname, "..", "..", "scripts", "galera", "galera-node.sh");
const RECOVER_SCRIPT = path.join(__dirname, "..", "..", "scripts", "galera", "recover.sh");
const START_SCRIPT = path.join(__dirname, "..", "..", "scripts", "galera", "galera-start.sh");
const NODES = ["maria-01", "maria-02", "maria-03"];
const UUID = "6c2a3d4e-0000-11ef-9f00-7a9b1c2d3e4f";

function grastate(seqno: number, safe: 0 | 1, uuid = UUID): string {
  return `# GALERA saved state\nversion: 2.1\nuuid:    ${uuid}\nseqno:   ${seqno}\nsafe_to_bootstrap: ${safe}\n`;
}

const roots: string[] = [];
afterAll(() => roots.forEach((root) => fs.rmSync(root, { recursive: true, force: true })));

/** A temp cluster of fake nodes; `exec` is the GALERA_NODE_EXEC program for recover.sh. */
function fakeCluster(): { root: string; exec: string; log: () => string[]; node: (name: string) => string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-galera-fake-"));
  roots.push(root);
  const sql = path.join(root, "fake-sql");
  fs.writeFileSync(
    sql,
    `#!/usr/bin/env bash
# Answers SHOW GLOBAL STATUS like a Synced node of a Primary component; fails when the node is down.
[ -f "${root}/$GALERA_NODE_NAME/running" ] || exit 1
query=$(cat)
size=$(find "${root}" -maxdepth 2 -name running | wc -l)
case "$query" in
  *wsrep_local_state_comment*) printf 'wsrep_local_state_comment\\tSynced\\n' ;;
  *wsrep_cluster_status*) printf 'wsrep_cluster_status\\tPrimary\\n' ;;
  *wsrep_cluster_size*) printf 'wsrep_cluster_size\\t%s\\n' "$size" ;;
esac
`,
    { mode: 0o755 },
  );
  const exec = path.join(root, "node-exec");
  fs.writeFileSync(
    exec,
    `#!/usr/bin/env bash
node=$1
shift
d="${root}/$node"
export GALERA_ENV_FILE=/nonexistent GALERA_NODE_NAME="$node" GALERA_IMAGE=mariadb:10.11.14
export GALERA_DATADIR="$d/data" GALERA_CONFDIR="$d/conf" GALERA_STATE_FILE="$d/started-as"
export GALERA_PEERS="\${FAKE_PEERS:-}" GALERA_CLUSTER_SIZE=3 GALERA_SYNC_TIMEOUT=2 GALERA_POLL_INTERVAL=0
export GALERA_RUNNING_CMD="test -f '$d/running'"
export GALERA_START_CMD="touch '$d/running'; echo \\"$node start \\$1\\" >>'${root}/log'"
export GALERA_STOP_CMD="rm -f '$d/running'; echo '$node stop' >>'${root}/log'"
export GALERA_RECOVER_CMD="cat '$d/recover.log'" GALERA_START_SCRIPT="${START_SCRIPT}"
export GALERA_SQL_CMD="${sql}"
if [ -z "\${FAKE_PEERS:-}" ]; then
  export GALERA_PEER_ALIVE_CMD="find '${root}' -mindepth 2 -maxdepth 2 -name running ! -path '$d/*' | grep -q ."
fi
exec bash "${NODE_SCRIPT}" "$@"
`,
    { mode: 0o755 },
  );
  for (const name of NODES) {
    fs.mkdirSync(path.join(root, name, "data"), { recursive: true });
    fs.mkdirSync(path.join(root, name, "conf"), { recursive: true });
    fs.writeFileSync(path.join(root, name, "conf", "my.cnf"), `[mysqld]\nwsrep_node_name = ${name}\n`);
  }
  const log = () => (fs.existsSync(path.join(root, "log")) ? fs.readFileSync(path.join(root, "log"), "utf8").trim().split("\n") : []);
  return { root, exec, log, node: (name) => path.join(root, name) };
}

function run(script: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync("bash", [script, ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...env } });
}

describe("keybuzz-galera converge (bootstrap exactly once)", () => {
  it("bootstraps the first node only when it has no data and no peer answers; a re-run starts nothing", () => {
    const cluster = fakeCluster();
    const first = run(cluster.exec, ["maria-01", "converge", "first"]);
    expect(first.status).toBe(0);
    expect(cluster.log()).toEqual(["maria-01 start bootstrap"]);
    expect(run(cluster.exec, ["maria-01", "converge", "first"]).status).toBe(0);
    expect(cluster.log()).toEqual(["maria-01 start bootstrap"]);
  });

  it("joins as a member when a peer answers on its Galera port, even with an empty datadir", async () => {
    const cluster = fakeCluster();
    // A loopback listener stands for a running peer (the kernel completes the probe's handshake).
    const peer = net.createServer();
    await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
    try {
      const port = (peer.address() as net.AddressInfo).port;
      const result = run(cluster.exec, ["maria-01", "converge", "first"], { FAKE_PEERS: `127.0.0.1:${port}` });
      expect(result.stderr).toContain("starting as a member");
      expect(result.status).toBe(0);
    } finally {
      peer.close();
    }
    expect(cluster.log()).toEqual(["maria-01 start member"]);
  });

  it("refuses to start a node that has data while no other node answers (full outage)", () => {
    const cluster = fakeCluster();
    fs.writeFileSync(path.join(cluster.node("maria-01"), "data", "grastate.dat"), grastate(42, 0));
    const result = run(cluster.exec, ["maria-01", "converge", "first"]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/whole cluster is down.*docs\/galera\.md/);
    expect(cluster.log()).toEqual([]);
  });

  it("finalize restarts the bootstrap node as a member only once every node joined", () => {
    const cluster = fakeCluster();
    run(cluster.exec, ["maria-01", "converge", "first"]);
    run(cluster.exec, ["maria-02", "converge", "member"]);
    const early = run(cluster.exec, ["maria-01", "finalize"]);
    expect(early.status).not.toBe(0);
    expect(early.stderr).toMatch(/2 of 3 nodes/);
    run(cluster.exec, ["maria-03", "converge", "member"]);
    expect(run(cluster.exec, ["maria-01", "finalize"]).status).toBe(0);
    expect(cluster.log()).toEqual([
      "maria-01 start bootstrap",
      "maria-02 start member",
      "maria-03 start member",
      "maria-01 stop",
      "maria-01 start member",
    ]);
    // Converged: finalize and converge again change nothing.
    expect(run(cluster.exec, ["maria-01", "finalize"]).status).toBe(0);
    expect(run(cluster.exec, ["maria-02", "converge", "member"]).status).toBe(0);
    expect(cluster.log()).toHaveLength(5);
    for (const name of NODES) expect(run(cluster.exec, [name, "verify"]).status).toBe(0);
  });

  it("restarts a member whose configuration changed (rolling), and only that one", () => {
    const cluster = fakeCluster();
    for (const [name, role] of [
      ["maria-01", "first"],
      ["maria-02", "member"],
      ["maria-03", "member"],
    ])
      run(cluster.exec, [name, "converge", role]);
    run(cluster.exec, ["maria-01", "finalize"]);
    fs.appendFileSync(path.join(cluster.node("maria-02"), "conf", "my.cnf"), "max_connections = 600\n");
    const before = cluster.log().length;
    for (const [name, role] of [
      ["maria-01", "first"],
      ["maria-02", "member"],
      ["maria-03", "member"],
    ])
      expect(run(cluster.exec, [name, "converge", role]).status).toBe(0);
    expect(cluster.log().slice(before)).toEqual(["maria-02 stop", "maria-02 start member"]);
  });
});

describe("recover.sh (full outage)", () => {
  it("bootstraps from the node with the highest seqno, marking only that one safe_to_bootstrap", () => {
    const cluster = fakeCluster();
    fs.writeFileSync(path.join(cluster.node("maria-01"), "data", "grastate.dat"), grastate(100, 0));
    // maria-02 stopped uncleanly: seqno -1, position from --wsrep-recover.
    fs.writeFileSync(path.join(cluster.node("maria-02"), "data", "grastate.dat"), grastate(-1, 0));
    fs.writeFileSync(
      path.join(cluster.node("maria-02"), "recover.log"),
      `[Note] InnoDB: ...\n[Note] WSREP: Recovered position: ${UUID}:250,0-1-250\n`,
    );
    fs.writeFileSync(path.join(cluster.node("maria-03"), "data", "grastate.dat"), grastate(120, 1));
    const result = run(RECOVER_SCRIPT, ["--yes", ...NODES], { GALERA_NODE_EXEC: cluster.exec });
    expect(result.stderr).toContain("most advanced node: maria-02 (seqno 250");
    expect(result.status).toBe(0);
    const safe = (name: string) =>
      /safe_to_bootstrap: (\d)/.exec(fs.readFileSync(path.join(cluster.node(name), "data", "grastate.dat"), "utf8"))?.[1];
    expect(NODES.map(safe)).toEqual(["0", "1", "0"]);
    expect(cluster.log().filter((line) => line.includes("start"))).toEqual([
      "maria-02 start bootstrap",
      "maria-01 start member",
      "maria-03 start member",
      "maria-02 start member",
    ]);
  });

  it("refuses while a node is still in a Primary component, and stops nothing", () => {
    const cluster = fakeCluster();
    for (const name of NODES) fs.writeFileSync(path.join(cluster.node(name), "data", "grastate.dat"), grastate(7, 0));
    fs.writeFileSync(path.join(cluster.node("maria-03"), "running"), "");
    const result = run(RECOVER_SCRIPT, ["--yes", ...NODES], { GALERA_NODE_EXEC: cluster.exec });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/maria-03 is in a Primary component/);
    expect(cluster.log()).toEqual([]);
  });

  it("refuses nodes from different clusters", () => {
    const cluster = fakeCluster();
    fs.writeFileSync(path.join(cluster.node("maria-01"), "data", "grastate.dat"), grastate(5, 0));
    fs.writeFileSync(path.join(cluster.node("maria-02"), "data", "grastate.dat"), grastate(9, 0, "11111111-2222-3333-4444-555555555555"));
    fs.writeFileSync(path.join(cluster.node("maria-03"), "data", "grastate.dat"), grastate(5, 0));
    const result = run(RECOVER_SCRIPT, ["--yes", ...NODES], { GALERA_NODE_EXEC: cluster.exec });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/do not share one history/);
    expect(cluster.log().filter((line) => line.includes("start"))).toEqual([]);
  });
});

describe("keybuzz-galera-start (the container's entry point)", () => {
  /** Runs the entry point with a datadir holding `grastateText` and a fake recovery log; the "server" echoes its arguments. */
  function start(grastateText: string | undefined, recoveryLog: string, args: string[]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-galera-start-"));
    roots.push(dir);
    if (grastateText !== undefined) fs.writeFileSync(path.join(dir, "grastate.dat"), grastateText);
    fs.writeFileSync(path.join(dir, "recover.log"), recoveryLog);
    return run(START_SCRIPT, args, {
      GALERA_DATADIR: dir,
      GALERA_SERVER_CMD: "echo server",
      GALERA_RECOVER_CMD: `cat '${dir}/recover.log'`,
    });
  }
  const RECOVERED = `2026-11-21 [Note] InnoDB: ...\n2026-11-21 [Note] WSREP: Recovered position: ${UUID}:21521\n`;

  it("after an unclean stop (seqno -1) passes the position InnoDB recovered, so the node rejoins by IST", () => {
    const result = start(grastate(-1, 0), RECOVERED, ["--wsrep-new-cluster"]);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(`server --wsrep-new-cluster --wsrep_start_position=${UUID}:21521`);
  });

  it("after a clean stop, or on an empty datadir, starts the server with its arguments only", () => {
    expect(start(grastate(21521, 0), RECOVERED, []).stdout.trim()).toBe("server");
    expect(start(undefined, RECOVERED, ["--verbose"]).stdout.trim()).toBe("server --verbose");
  });

  it("without a usable recovered position starts without one (the node joins by SST) and says so", () => {
    const result = start(grastate(-1, 0), `WSREP: Recovered position: ${UUID}:-1\n`, []);
    expect(result.stdout.trim()).toBe("server");
    expect(result.stderr).toMatch(/joins by SST/);
  });

  it("--recovered-position prints uuid:seqno, and fails with the recovery's own log when it printed none", () => {
    expect(start(grastate(-1, 0), RECOVERED, ["--recovered-position"]).stdout.trim()).toBe(`${UUID}:21521`);
    const none = start(grastate(-1, 0), "InnoDB: Corrupted page in tablespace\n", ["--recovered-position"]);
    expect(none.status).not.toBe(0);
    expect(none.stdout).toBe("");
    expect(none.stderr).toMatch(/printed no position/);
    expect(none.stderr).toMatch(/Corrupted page in tablespace/);
  });

  it("does not recover a node that stopped during an SST (partial data): it joins by SST again", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-galera-start-"));
    roots.push(dir);
    fs.writeFileSync(path.join(dir, "grastate.dat"), grastate(-1, 0));
    fs.writeFileSync(path.join(dir, "sst_in_progress"), "");
    const result = run(START_SCRIPT, [], {
      GALERA_DATADIR: dir,
      GALERA_SERVER_CMD: "echo server",
      GALERA_RECOVER_CMD: "echo recovery-ran >&2",
    });
    expect(result.stdout.trim()).toBe("server");
    expect(result.stderr).not.toMatch(/recovery-ran/);
    expect(result.stderr).toMatch(/sst_in_progress/);
  });

  it("ends a running recovery and exits on SIGTERM (docker stop), without starting the server", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-galera-start-"));
    roots.push(dir);
    fs.writeFileSync(path.join(dir, "grastate.dat"), grastate(-1, 0));
    const child = spawn("bash", [START_SCRIPT], {
      env: { ...process.env, GALERA_DATADIR: dir, GALERA_SERVER_CMD: "echo server", GALERA_RECOVER_CMD: "exec sleep 30" },
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const signalledAt = Date.now();
    child.kill("SIGTERM");
    expect(await exited).toBe(143);
    expect(Date.now() - signalledAt).toBeLessThan(5_000);
    expect(stdout).toBe("");
  });
});
