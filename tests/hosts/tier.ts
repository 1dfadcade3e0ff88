import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadVersions } from "../../config/versions";
import { readStackConfig } from "../../scripts/lib/mock-engine";
import { BackendStandin, backendStandins, stdinFiles } from "./backends";
import { HostPlan, HostStep, planHostSteps } from "./plan";
import { ssh, SshContext } from "./ssh";

/**
 * `npm run test:hosts` (docs/integration.md, "Real hosts"): boots systemd-nspawn hosts named and
 * addressed as the staging inventory's servers, runs the program's own base-OS steps on them over
 * real SSH, twice, asserts the second run changed nothing, checks the firewall and fail2ban from
 * outside, and prints which step kinds ran for real. Exit status 0 only when every check passed.
 */

const ROOT = path.resolve(__dirname, "..", "..");
const HOSTS_SH = path.join(ROOT, "scripts", "hosts", "hosts.sh");
const GOLDEN_SH = path.join(ROOT, "scripts", "hosts", "golden.sh");
const STANDIN_SH = path.join(ROOT, "scripts", "hosts", "standin-image.sh");
const NETNS = "kbhosts";
/** Addresses the runner holds on the test bridge (scripts/hosts/hosts.sh). */
const ADMIN_ADDRESS = "100.64.0.1";
const PRIVATE_ADDRESS = "10.0.0.1";
const STRANGER_ADDRESS = "100.64.0.99";
/** The stack file the test's stack starts from; admin CIDRs and SSH keys are the test's own. */
const STACK = "staging";
/** One host of each kind the base OS treats differently (DB, Redis, Kubernetes worker, HAProxy). */
const BASE_OS_HOSTS = ["db-master-01", "redis-01", "k8s-worker-01", "haproxy-01"];
/** The data module run end to end: Redis + Sentinel on the three Redis nodes, stand-in image. */
const REDIS_HOSTS = ["redis-01", "redis-02", "redis-03"];
/** The shared HAProxy, on the first host of its group; the internal LB 10.0.0.10 is emulated on it. */
const HAPROXY_HOST = "haproxy-01";
const KINDS = ["base-os", "base-os-verify", "redis", "redis-master-roll", "redis-verify", "haproxy", "redis-endpoint-check"];
/**
 * Steps the HAProxy step waits for that the tier does not run (no PostgreSQL, RabbitMQ or MinIO
 * images): taken as done; stand-in backends answer those listeners' health checks ({@link backendStandins}).
 */
const ASSUMED_DONE_KINDS = ["postgres-verify", "rabbitmq-verify", "minio-verify"];
/** Image settings of the HAProxy stand-in: the official image's (docker-library/haproxy 2.8/Dockerfile and entrypoint). */
const HAPROXY_IMAGE_CHANGES = [
  'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
  "USER haproxy",
  "WORKDIR /var/lib/haproxy",
  "STOPSIGNAL SIGUSR1",
];
const BACKEND_STANDIN = path.join(ROOT, "scripts", "hosts", "backend-standin.py");
/** Every step's output (fresh secrets masked), one file per step and run, kept after the run. */
const LOG_DIR = process.env.KB_HOSTS_LOGS ?? "/var/tmp/keybuzz-hosts-logs";
/** Steps run at once, as `pulumi up` runs independent resources in parallel (2 cores here). */
const PARALLEL = 4;
/** A port no role opens: a listener there must be reachable from the private network only. */
const PROBE_PORT = 8089;

/** What one step's run gave. */
interface StepOutcome {
  readonly step: HostStep;
  readonly code: number | null;
  readonly millis: number;
  /** When it started and ended, ms since the epoch. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly output: string;
}

const failures: string[] = [];
function check(condition: boolean, message: string): void {
  if (!condition) failures.push(message);
  console.log(`${condition ? "ok  " : "FAIL"} ${message}`);
}

function log(message: string): void {
  console.log(`[hosts ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** The version of a Debian package installed in the golden image (its dpkg database). */
function debianVersion(rootfs: string, pkg: string): string {
  const admindir = path.join(rootfs, "var", "lib", "dpkg");
  return execFileSync("dpkg-query", [`--admindir=${admindir}`, "-W", "-f=${Version}", pkg], { encoding: "utf8" }).trim();
}

/** Inventory addresses of the staging stack's servers, by name. */
function inventoryAddresses(): Map<string, string> {
  const servers = JSON.parse(readStackConfig(STACK).config["keybuzz:servers"]) as { name: string; privateIp: string }[];
  return new Map(servers.map((server) => [server.name, server.privateIp]));
}

/** Private address of the staging stack's internal load balancer (the one forwarding 6379). */
function readInternalLbAddress(): string {
  const config = readStackConfig(STACK).config;
  const balancers = JSON.parse(config["keybuzz:loadBalancers"] ?? "[]") as { privateIp: string; services: { listenPort: number }[] }[];
  const internal = balancers.find((lb) => lb.services.some((service) => service.listenPort === 6379));
  if (!internal) throw new Error(`stack ${STACK} has no load balancer forwarding 6379`);
  return internal.privateIp;
}

/** Replaces each fresh secret value in `text` (output of a step that read secrets) with `***`. */
function redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce((result, secret) => result.split(secret).join("***"), text);
}

/** Prints the last 40 lines of a failed step's output, fresh secrets masked. */
function printTail(outcome: StepOutcome, label: string, secrets: readonly string[]): void {
  const tail = redact(outcome.output, secrets).split("\n").slice(-40).join("\n");
  console.log(`--- ${outcome.step.name} (${label}) output, last 40 lines:\n${tail}`);
}

/**
 * Runs `steps` over SSH from the admin address, each once all its dependencies succeeded, at most
 * {@link PARALLEL} at a time, each killed at its own create timeout. A failed step fails the run;
 * the steps after it are not started (as `pulumi up` stops).
 */
async function runSteps(
  context: SshContext,
  addresses: Map<string, string>,
  steps: readonly HostStep[],
  label: string,
  secrets: readonly string[],
): Promise<StepOutcome[]> {
  const outcomes = new Map<string, StepOutcome>();
  const pending = [...steps];
  const running = new Map<string, Promise<void>>();
  let stopped = false;
  while ((pending.length > 0 && !stopped) || running.size > 0) {
    const ready = stopped ? [] : pending.filter((step) => step.dependsOn.every((dependency) => outcomes.get(dependency)?.code === 0));
    for (const step of ready.slice(0, PARALLEL - running.size)) {
      pending.splice(pending.indexOf(step), 1);
      const address = addresses.get(step.host) as string;
      const startedAt = Date.now();
      running.set(
        step.name,
        ssh(context, address, step.command, { from: ADMIN_ADDRESS, stdin: step.stdin, timeoutSeconds: step.timeoutSeconds }).then(
          async (result) => {
            let output = result.stdout + result.stderr;
            // A failed step prints only a short diagnosis; its full log stays on the host (root only).
            const hostLog = /full log \(root only\): (\/var\/log\/keybuzz\/\S+)/.exec(output)?.[1];
            if (result.code !== 0 && hostLog) {
              const tail = await ssh(context, address, `tail -n 60 ${hostLog}`, { from: ADMIN_ADDRESS, timeoutSeconds: 30 });
              output += `\n--- ${hostLog} (last 60 lines)\n${tail.stdout}`;
            }
            const outcome = { step, code: result.code, millis: result.millis, startedAt, endedAt: Date.now(), output };
            outcomes.set(step.name, outcome);
            fs.writeFileSync(path.join(LOG_DIR, `${label.replace(/ /g, "")}-${step.name}.log`), redact(outcome.output, secrets));
            running.delete(step.name);
            const status = result.timedOut ? `killed at its ${step.timeoutSeconds} s timeout` : `exit ${result.code}`;
            log(`${label} ${step.name}: ${status} in ${(result.millis / 1000).toFixed(1)} s`);
            if (result.code !== 0) stopped = true;
          },
        ),
      );
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  return [...outcomes.values()];
}

/**
 * Files a second run may see changed although no step wrote them: the daemons' own live copies,
 * which they rewrite as their state changes. Sentinel rewrites its sentinel.conf whenever its
 * persisted state changes (peers, replicas, epochs: redis.io, Sentinel docs, SENTINEL
 * FLUSHCONFIG), and reconfigures its Redis instances with CONFIG REWRITE of their redis.conf
 * (redis.io, CONFIG REWRITE). What the steps manage is still compared: the managed copies under
 * /etc/keybuzz/redis, and a step that rewrites a live copy restarts its container, which the
 * containers' start times show.
 */
const DAEMON_OWNED_FILES = ["/opt/keybuzz/redis/conf/redis.conf", "/opt/keybuzz/redis/sentinel/sentinel.conf"];

/**
 * What a second run must leave alone on a host: every file's mtime and size under /etc, /usr,
 * /opt, /srv, /root (directories left out: a temporary file compared and removed touches its
 * directory; the modules' data directories too: the verify steps write test keys; and
 * {@link DAEMON_OWNED_FILES}), every active service's InvocationID (a new one means it was started
 * again; the bus-activated hostnamed, timedated and localed come and go with each
 * hostnamectl/timedatectl call, root's user manager and runtime directory with each SSH login) and
 * every container's start time.
 */
const SNAPSHOT_COMMAND = `set -euo pipefail
files=$(find /etc /usr /opt /srv /root -xdev -not -type d -not -path '/opt/keybuzz/*/data/*' ${DAEMON_OWNED_FILES.map((file) => `-not -path '${file}'`).join(" ")} -printf '%p %T@ %s\\n' 2>/dev/null | sort)
units=$(systemctl list-units --type=service --state=active --no-legend --plain | awk '$1 !~ /^(systemd-(hostnamed|timedated|localed)|user(-runtime-dir)?@[0-9]+)[.]service$/ { print $1 }')
services=$(for unit in $units; do printf '%s %s\\n' "$unit" "$(systemctl show -P InvocationID "$unit")"; done)
ids=$(docker ps -q)
containers=""
if [ -n "$ids" ]; then containers=$(docker inspect -f '{{.Name}} {{.State.StartedAt}}' $ids | sort); fi
printf '%s\\n--services--\\n%s\\n--containers--\\n%s\\n' "$files" "$services" "$containers"`;

function diffSnapshots(before: string, after: string): string[] {
  const lines = (text: string) => new Set(text.split("\n"));
  const old = lines(before);
  const now = lines(after);
  return [
    ...[...old].filter((line) => !now.has(line)).map((line) => `- ${line}`),
    ...[...now].filter((line) => !old.has(line)).map((line) => `+ ${line}`),
  ];
}

async function snapshot(context: SshContext, addresses: Map<string, string>, host: string): Promise<string> {
  const result = await ssh(context, addresses.get(host) as string, SNAPSHOT_COMMAND, { from: ADMIN_ADDRESS, timeoutSeconds: 60 });
  if (result.code !== 0) throw new Error(`snapshot of ${host} failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * Checks from outside a hardened host: SSH from the admin and private sources, a probe port open
 * only from the private network, and fail2ban banning a stranger but never the admin or private
 * sources after the same failed logins.
 */
async function checkFromOutside(context: SshContext, host: string, address: string, wrongKey: string): Promise<void> {
  const run = (command: string, from = ADMIN_ADDRESS) => ssh(context, address, command, { from, timeoutSeconds: 30 });
  check((await run("true")).code === 0, `${host}: SSH from the admin address ${ADMIN_ADDRESS} works`);
  check((await run("true", PRIVATE_ADDRESS)).code === 0, `${host}: SSH from the private network (${PRIVATE_ADDRESS}) works`);

  // systemd-run returns before python binds: wait (up to 30 s on a loaded machine) until it listens.
  const probe = await run(
    `systemd-run --unit=kb-probe --collect python3 -m http.server --bind 0.0.0.0 ${PROBE_PORT} >/dev/null && ` +
      `for _ in $(seq 1 150); do [ -n "$(ss -Hltn 'sport = :${PROBE_PORT}')" ] && exit 0; sleep 0.2; done; exit 1`,
  );
  check(probe.code === 0, `${host}: probe listener on ${PROBE_PORT} started and listening`);
  check(
    tcpFrom(PRIVATE_ADDRESS, address, PROBE_PORT),
    `${host}: port ${PROBE_PORT} reachable from the private network (the probe listens)`,
  );
  check(!tcpFrom(ADMIN_ADDRESS, address, PROBE_PORT), `${host}: port ${PROBE_PORT} (in no role's list) blocked from the admin address`);
  await run("systemctl stop kb-probe");

  check(
    !tcpFrom(STRANGER_ADDRESS, address, 22),
    `${host}: SSH port blocked from a stranger (${STRANGER_ADDRESS}, neither admin nor private)`,
  );

  // Six failed logins (maxretry 5) from each source, as an unknown user with a key the host does
  // not know. UFW keeps strangers off port 22, so the test lets its stranger through for this
  // check only: its ban shows fail2ban reads these hosts' sshd logs, so the admin and private
  // sources staying unbanned means something.
  const failLogins = async (from: string) => {
    for (let attempt = 0; attempt < 6; attempt++) {
      await ssh(context, address, "true", { from, user: "kb-no-such-user", keyFile: wrongKey, timeoutSeconds: 15 });
    }
  };
  const strangerRule = `from ${STRANGER_ADDRESS} to any port 22 proto tcp`;
  check((await run(`ufw allow ${strangerRule} >/dev/null`)).code === 0, `${host}: stranger let through UFW for the fail2ban check`);
  await failLogins(STRANGER_ADDRESS);
  await failLogins(ADMIN_ADDRESS);
  await failLogins(PRIVATE_ADDRESS);
  let banned = "";
  for (let wait = 0; wait < 20; wait++) {
    banned = (await run("fail2ban-client get sshd banned")).stdout;
    if (banned.includes(STRANGER_ADDRESS)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  check(banned.includes(STRANGER_ADDRESS), `${host}: fail2ban bans the stranger after 6 failed logins`);
  check(
    !banned.includes(ADMIN_ADDRESS) && !banned.includes(PRIVATE_ADDRESS),
    `${host}: fail2ban bans neither the admin nor the private source after 6 failed logins each`,
  );
  await run(`ufw delete allow ${strangerRule} >/dev/null; fail2ban-client set sshd unbanip ${STRANGER_ADDRESS} >/dev/null || true`);
  check((await run("true")).code === 0, `${host}: SSH from the admin address still works after its failed logins`);
  check((await run("true", PRIVATE_ADDRESS)).code === 0, `${host}: SSH from the private network still works after its failed logins`);
}

/** TCP reachability from a given source address of the runner (bash cannot bind, so via python3). */
function tcpFrom(from: string, address: string, port: number): boolean {
  const script = `import socket,sys\ns=socket.socket()\ns.settimeout(3)\ns.bind(("${from}",0))\ntry:\n  s.connect(("${address}",${port}))\nexcept OSError:\n  sys.exit(1)\n`;
  try {
    execFileSync("ip", ["netns", "exec", NETNS, "python3", "-c", script], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads a stand-in root tarball into the host's Docker as `image` (`docker import` over SSH, the
 * tarball streamed from disk), as if the image had been pulled. @throws Error when the import fails.
 */
function importImage(context: SshContext, address: string, tarball: string, image: string, changes: readonly string[] = []): Promise<void> {
  const changeOptions = changes.map((change) => `--change '${change}'`).join(" ");
  const command = `systemctl start docker && docker import ${changeOptions} - ${image} >/dev/null`;
  const args = [
    "netns",
    "exec",
    context.netns,
    "ssh",
    "-i",
    context.keyFile,
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=accept-new",
  ];
  args.push("-o", `UserKnownHostsFile=${context.knownHosts}`, "-b", ADMIN_ADDRESS, `root@${address}`, command);
  return new Promise((resolve, reject) => {
    const child = spawn("ip", args, { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    fs.createReadStream(tarball).pipe(child.stdin);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`docker import of ${image} on ${address} failed: ${stderr}`))));
  });
}

/**
 * Starts the HAProxy step's stand-in backends inside the test network (each address added to its
 * bridge: those hosts are not booted), serving the fresh certificate that the step's `ca-file`
 * holds. @returns a function that stops them. @throws Error when a check needs TLS and the step
 * carries no fresh certificate.
 */
async function startBackendStandins(plan: HostPlan, standins: readonly BackendStandin[], work: string): Promise<() => void> {
  const haproxyStep = plan.steps.find((step) => step.kind === "haproxy") as HostStep;
  const files = stdinFiles(haproxyStep);
  const fresh = [...plan.certificates.values()].find((candidate) => files.some((file) => file.includes(candidate.certificate)));
  const certificate = path.join(work, "backend-standin.crt");
  const key = path.join(work, "backend-standin.key");
  if (fresh) {
    fs.writeFileSync(certificate, fresh.certificate, { mode: 0o600 });
    fs.writeFileSync(key, fresh.key, { mode: 0o600 });
  } else if (standins.some((standin) => standin.tls)) {
    throw new Error("the HAProxy step's TLS checks need a certificate, and its stdin holds no fresh one");
  }
  const children = standins.map((standin, index) => {
    execFileSync("ip", ["-n", NETNS, "addr", "add", `${standin.address}/32`, "dev", "kbbr0"]);
    const config = path.join(work, `backend-standin-${index}.json`);
    const tls = standin.tls ? { certificate, key } : null;
    fs.writeFileSync(config, JSON.stringify({ ...standin, tls }), { mode: 0o600 });
    fs.writeFileSync(standin.log, "");
    return spawn("ip", ["netns", "exec", NETNS, "python3", BACKEND_STANDIN, config], { stdio: "ignore" });
  });
  // Each listens within a second; a port that never opens fails the HAProxy step, which says so.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return () => children.forEach((child) => child.kill());
}

/** Checks that HAProxy's health checks reached each stand-in backend and passed (a 200 in its log). */
function checkBackendStandins(standins: readonly BackendStandin[]): void {
  for (const standin of standins) {
    const answers = fs.readFileSync(standin.log, "utf8").split("\n");
    const tls = standin.tls ? " (TLS, verified against the step's ca-file)" : "";
    check(
      answers.includes(`200 ${standin.method} ${standin.uri}`),
      `HAProxy's ${standin.listener} check passed against its stand-in backend ${standin.address}:${standin.port}${tls}: ${standin.method} ${standin.uri} → 200`,
    );
  }
}

/**
 * The roll's change: the Redis image under a second pinned tag (the same stand-in imported under
 * it), a test-only pin laid over `config/versions.yaml` as the Docker pins are. It changes each
 * node's container spec, which the node step must restart for. (`keybuzz:redis.maxmemoryPercent`
 * changes only the managed redis.conf, which today restarts nothing: docs/integration.md.)
 */
const REDIS_ROLL_TAG_SUFFIX = "-tier-roll";
/** Interval of the roll's writer through the LB, seconds; its bound, seconds. */
const WRITER_INTERVAL = 0.05;
const WRITER_BOUND = 240;
/** The issue's bound on the one interruption a client may see during a roll, ms. */
const SHORT_INTERRUPTION_MS = 10_000;

/** The master Sentinel names (`SENTINEL get-master-addr-by-name`), asked of the first node that answers. */
function sentinelMaster(nodeAddresses: readonly string[], sentinelPassword: string): string {
  for (const address of nodeAddresses) {
    try {
      const answer = execFileSync(
        "ip",
        [
          "netns",
          "exec",
          NETNS,
          "redis-cli",
          "--no-auth-warning",
          "-h",
          address,
          "-p",
          "26379",
          "SENTINEL",
          "get-master-addr-by-name",
          "kb-redis-master",
        ],
        { encoding: "utf8", env: { ...process.env, REDISCLI_AUTH: sentinelPassword }, timeout: 5000 },
      );
      const ip = answer.split("\n")[0].trim();
      if (ip !== "") return ip;
    } catch {
      // this Sentinel is down or restarting: ask the next
    }
  }
  return "none";
}

/**
 * A bounded client writing through the internal LB from the private network (inside the test
 * namespace): one `SET` every {@link WRITER_INTERVAL} s, each its own connection, then the serving
 * node's own address (`CONFIG GET replica-announce-ip` through the LB), until stopped. Prints one
 * `epoch-ms node reply` line per write.
 */
function startWriter(lbAddress: string, password: string, stopFile: string) {
  const loop = `end=$((SECONDS + ${WRITER_BOUND})); i=0
rcli() { timeout 1 redis-cli --no-auth-warning -h ${lbAddress} -p 6379 "$@" 2>&1; }
while [ ! -e ${stopFile} ] && [ "$SECONDS" -lt "$end" ]; do
  i=$((i + 1))
  reply=$(rcli SET keybuzz:roll "$i" || true)
  node=$(rcli CONFIG GET replica-announce-ip || true)
  node=\${node##*$'\\n'}
  [[ $node =~ ^[0-9.]+$ ]] || node=none
  printf '%s %s %s\\n' "$(date +%s%3N)" "\${node:-none}" "\${reply:-no-reply}"
  sleep ${WRITER_INTERVAL}
done`;
  const child = spawn("ip", ["netns", "exec", NETNS, "bash", "-c", loop], {
    env: { ...process.env, REDISCLI_AUTH: password },
    stdio: ["ignore", "pipe", "ignore"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<string>((resolve) => child.on("close", () => resolve(output)));
  return { done };
}

/**
 * What the writer saw: its interruptions (runs of failed writes, each from its first failure to
 * the next success, ms) and the master switchovers (changes of the node that took a write).
 */
function writerRecord(writerOutput: string): { writes: number; failed: number; windows: number[]; servedBy: string[]; errors: string[] } {
  const lines = writerOutput
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => ({
      at: Number(line.split(" ")[0]),
      node: line.split(" ")[1],
      ok: line.endsWith(" OK"),
      reply: line.split(" ").slice(2).join(" "),
    }));
  const windows: number[] = [];
  const servedBy: string[] = [];
  let failingSince: number | undefined;
  for (const line of lines) {
    if (!line.ok && failingSince === undefined) failingSince = line.at;
    if (line.ok && failingSince !== undefined) {
      windows.push(line.at - failingSince);
      failingSince = undefined;
    }
    if (line.ok && line.node !== "none" && servedBy[servedBy.length - 1] !== line.node) servedBy.push(line.node);
  }
  if (failingSince !== undefined) windows.push(Infinity);
  const errors = [...new Set(lines.filter((line) => !line.ok).map((line) => line.reply))];
  return { writes: lines.length, failed: lines.filter((line) => !line.ok).length, windows, servedBy, errors };
}

/**
 * The Redis roll (issue 13 item 5): the Redis image pin changes (the stand-in under a second tag,
 * imported on every Redis host first) and the program's Redis node steps and verification run
 * again, with the same secrets, while a client writes through the LB. Checks every node restarted,
 * one at a time in the plan's order, the verification passed and the client got its writes through
 * again; measures the master switchovers and each interruption the client saw, and checks the
 * issue's rule: the master restarts last (container start times), one switchover, at most one
 * short interruption.
 */
async function redisRoll(
  context: SshContext,
  addresses: Map<string, string>,
  planArgs: Parameters<typeof planHostSteps>[0],
  secrets: Map<string, string>,
  lbAddress: string,
  standinTarball: string,
): Promise<number> {
  const rollImage = `${loadVersions().images.redis}${REDIS_ROLL_TAG_SUFFIX}`;
  const rollPlan = await planHostSteps({
    ...planArgs,
    images: { redis: rollImage },
    hosts: REDIS_HOSTS,
    kinds: ["redis", "redis-master-roll", "redis-verify"],
    assumedDoneKinds: [...ASSUMED_DONE_KINDS, "base-os", "base-os-verify"],
    secrets,
  });
  await Promise.all(REDIS_HOSTS.map((host) => importImage(context, addresses.get(host) as string, standinTarball, rollImage)));
  const nodeAddresses = REDIS_HOSTS.map((host) => addresses.get(host) as string);
  const sentinelPassword = secrets.get("secrets-redis-sentinel") as string;
  const startedOf = async () =>
    Promise.all(
      REDIS_HOSTS.map(async (host) =>
        (
          await ssh(context, addresses.get(host) as string, "docker inspect -f '{{.State.StartedAt}}' redis", {
            from: ADMIN_ADDRESS,
            timeoutSeconds: 30,
          })
        ).stdout.trim(),
      ),
    );
  const masterBefore = sentinelMaster(nodeAddresses, sentinelPassword);
  const startedBefore = await startedOf();
  const stopFile = path.join(os.tmpdir(), `keybuzz-roll-stop-${process.pid}`);
  fs.rmSync(stopFile, { force: true });
  const writer = startWriter(lbAddress, secrets.get("secrets-redis") as string, stopFile);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const rolled = await runSteps(context, addresses, rollPlan.steps, "roll", rollPlan.secretValues);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  fs.writeFileSync(stopFile, "");
  const writes = writerRecord(await writer.done);
  fs.rmSync(stopFile, { force: true });
  const masterAfter = sentinelMaster(nodeAddresses, sentinelPassword);
  const startedAfter = await startedOf();

  check(
    rolled.length === rollPlan.steps.length && rolled.every((outcome) => outcome.code === 0),
    `roll: all ${rollPlan.steps.length} Redis steps exit 0 after images.redis ${rollImage}`,
  );
  const nodeSteps = rolled.filter((outcome) => outcome.step.kind === "redis").sort((a, b) => a.startedAt - b.startedAt);
  const order = nodeSteps.map((outcome) => outcome.step.host);
  check(order.join(",") === REDIS_HOSTS.join(","), `roll: node steps in the plan's order (${order.join(", ")})`);
  check(
    nodeSteps.every((outcome, index) => index === 0 || outcome.startedAt >= nodeSteps[index - 1].endedAt),
    "roll: one node at a time (each step starts after the previous ended)",
  );
  REDIS_HOSTS.forEach((host, index) =>
    check(startedBefore[index] !== startedAfter[index], `roll: ${host}'s Redis container was restarted on the new image`),
  );
  const masterHost = REDIS_HOSTS[nodeAddresses.indexOf(masterBefore)] ?? "none";
  for (const outcome of rolled.filter((candidate) => candidate.step.kind !== "redis-verify")) {
    const role = /redis: starting as (master|replica of \S+)/.exec(outcome.output)?.[1];
    const handedOver = /switching the master role away before the restart/.test(outcome.output);
    const deferred = /restart deferred to the master-roll step/.test(outcome.output);
    const what = role
      ? `${handedOver ? "handed the master role over, then " : ""}restarted as ${role}`
      : deferred
        ? "master: restart deferred"
        : "no restart";
    console.log(`roll ${outcome.step.name}: ${what}`);
  }
  // The order the Redis containers really restarted in (their start times, ISO 8601 UTC, sort as text).
  const restartOrder = REDIS_HOSTS.map((host, index) => ({ host, started: startedAfter[index] }))
    .sort((a, b) => a.started.localeCompare(b.started))
    .map((entry) => entry.host);
  console.log(`roll: Redis containers restarted in the order ${restartOrder.join(", ")}`);
  console.log(`roll: Sentinel's master ${masterBefore} (${masterHost}) before, ${masterAfter} after`);
  check(masterAfter !== "none", "roll: Sentinel names a master after the roll");
  const switchovers = Math.max(0, writes.servedBy.length - 1);
  const longest = Math.max(0, ...writes.windows);
  console.log(
    `roll: writer through ${lbAddress}:6379 made ${writes.writes} writes, ${writes.failed} failed; ` +
      `master switchovers seen: ${switchovers} (${writes.servedBy.join(" → ")}); ` +
      `interruptions: ${writes.windows.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(", ") || "none"}` +
      `${writes.errors.length ? `; failed replies: ${writes.errors.slice(0, 4).join(" | ")}` : ""}`,
  );
  check(
    writes.writes > 0 && !writes.windows.includes(Infinity),
    `roll: the client's writes through ${lbAddress}:6379 go through again after the roll`,
  );
  check(
    restartOrder[restartOrder.length - 1] === masterHost,
    `roll: the master before the roll (${masterHost}) restarted last (${restartOrder.join(", ")})`,
  );
  check(switchovers === 1, `roll: exactly one master switchover seen by the client (${switchovers})`);
  check(
    writes.windows.length <= 1 && longest <= SHORT_INTERRUPTION_MS,
    `roll: at most one interruption (${writes.windows.length}), short (${(longest / 1000).toFixed(2)} s, at most ${SHORT_INTERRUPTION_MS / 1000} s)`,
  );
  return rolled.length;
}

/** What a container cannot do, as each hardened host reports it after the base OS. */
async function containerLimits(context: SshContext, host: string, address: string): Promise<string> {
  const command = `printf 'auditd: %s; ' "$(systemctl is-active auditd || true)"
printf 'vm.swappiness: %s (file asks 10); ' "$(sysctl -n vm.swappiness)"
printf 'swap devices: %s; ' "$(swapon --show --noheadings | wc -l)"
printf 'NTP: %s\\n' "$(timedatectl show -P NTP || true)"`;
  const result = await ssh(context, address, command, { from: ADMIN_ADDRESS, timeoutSeconds: 30 });
  return `${host}: ${result.stdout.trim()}`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("npm run test:hosts needs root (network namespaces, overlay mounts, systemd-nspawn); run it as root");
  const started = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-hosts-"));
  const keyFile = path.join(work, "id_ed25519");
  const wrongKey = path.join(work, "stranger_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "keybuzz-host-tier", "-f", keyFile]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "not-authorized", "-f", wrongKey]);
  const publicKey = fs.readFileSync(`${keyFile}.pub`, "utf8").trim();
  const context: SshContext = { netns: NETNS, keyFile, knownHosts: path.join(work, "known_hosts") };

  fs.rmSync(LOG_DIR, { recursive: true, force: true });
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const goldenStarted = Date.now();
  const golden = execFileSync("bash", [GOLDEN_SH], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const redisStandin = execFileSync("bash", [STANDIN_SH, "redis"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const haproxyStandin = execFileSync("bash", [STANDIN_SH, "haproxy"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const goldenSeconds = ((Date.now() - goldenStarted) / 1000).toFixed(0);
  log(`golden image ${golden} and stand-in image ${redisStandin} ready, stand-in ${haproxyStandin}, in ${goldenSeconds} s`);

  const addresses = inventoryAddresses();
  const hosts = [...new Set([...BASE_OS_HOSTS, ...REDIS_HOSTS, HAPROXY_HOST])];
  const planArgs = {
    stack: STACK,
    configOverride: { "keybuzz:adminCidrs": JSON.stringify([`${ADMIN_ADDRESS}/32`]), "keybuzz:sshKeys": JSON.stringify([publicKey]) },
    hosts,
    kinds: KINDS,
    assumedDoneKinds: ASSUMED_DONE_KINDS,
    docker: { source: "distribution", engine: debianVersion(golden, "docker.io"), containerd: debianVersion(golden, "containerd") },
  };
  const plan = await planHostSteps(planArgs);
  log(
    `plan: ${plan.steps.length} of the program's ${plan.totalSteps} remote steps run here (${[...new Set(plan.steps.map((s) => s.kind))].join(", ")})`,
  );

  const cleanup = () => execFileSync("bash", [HOSTS_SH, "down"], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  let stopStandins = () => {};
  try {
    const bootStarted = Date.now();
    execFileSync("bash", [HOSTS_SH, "up", golden, `${keyFile}.pub`, ...hosts.map((host) => `${host}=${addresses.get(host)}`)], {
      stdio: "inherit",
    });
    log(`${hosts.length} hosts booted in ${((Date.now() - bootStarted) / 1000).toFixed(1)} s`);
    // Nothing may leave the test network: its namespace has no way out (no default route, no NAT).
    const routes = execFileSync("ip", ["-n", NETNS, "route", "show", "default"], { encoding: "utf8" });
    check(routes.trim() === "", `the test network (${NETNS}) has no default route: no packet leaves it`);

    const redisImage = loadVersions().images.redis;
    await Promise.all(REDIS_HOSTS.map((host) => importImage(context, addresses.get(host) as string, redisStandin, redisImage)));
    log(`stand-in ${redisImage} (Debian's redis packages) imported on ${REDIS_HOSTS.join(", ")}`);
    const haproxyImage = loadVersions().images.haproxy;
    await importImage(context, addresses.get(HAPROXY_HOST) as string, haproxyStandin, haproxyImage, HAPROXY_IMAGE_CHANGES);
    log(`stand-in ${haproxyImage} (Debian's haproxy package) imported on ${HAPROXY_HOST}`);
    // The internal LB: its private address becomes an address of haproxy-01 (HAProxy binds 0.0.0.0).
    const internalLb = readInternalLbAddress();
    execFileSync("ip", ["-n", `kbh-${HAPROXY_HOST}`, "addr", "add", `${internalLb}/32`, "dev", "eth0"]);
    log(`internal load balancer ${internalLb} emulated as an address of ${HAPROXY_HOST}`);
    // HAProxy's PostgreSQL and RabbitMQ listeners: stand-in backends that answer their checks.
    const haproxyCfg = stdinFiles(plan.steps.find((step) => step.kind === "haproxy") as HostStep).find((file) => /^listen /m.test(file));
    if (haproxyCfg === undefined) throw new Error("the HAProxy step's stdin holds no haproxy.cfg");
    const standins = backendStandins(
      haproxyCfg,
      hosts.map((host) => addresses.get(host) as string),
      LOG_DIR,
    );
    stopStandins = await startBackendStandins(plan, standins, work);
    const standinNames = standins.map((standin) => `${standin.listener} on ${standin.address}:${standin.port}`);
    log(`stand-in backends for HAProxy's HTTP checks: ${standinNames.join("; ")}`);
    const first = await runSteps(context, addresses, plan.steps, "run 1", plan.secretValues);
    const failedFirst = first.filter((outcome) => outcome.code !== 0);
    for (const outcome of failedFirst) printTail(outcome, "run 1", plan.secretValues);
    check(first.length === plan.steps.length && failedFirst.length === 0, `run 1: all ${plan.steps.length} steps exit 0`);

    let second: StepOutcome[] = [];
    if (failedFirst.length === 0) {
      const before = await Promise.all(hosts.map((host) => snapshot(context, addresses, host)));
      second = await runSteps(context, addresses, plan.steps, "run 2", plan.secretValues);
      const failedSecond = second.filter((outcome) => outcome.code !== 0);
      for (const outcome of failedSecond) printTail(outcome, "run 2", plan.secretValues);
      check(
        second.length === plan.steps.length && failedSecond.length === 0,
        `run 2 (converged hosts): all ${plan.steps.length} steps exit 0`,
      );
      const after = await Promise.all(hosts.map((host) => snapshot(context, addresses, host)));
      hosts.forEach((host, index) => {
        const changes = diffSnapshots(before[index], after[index]);
        check(
          changes.length === 0,
          `${host}: run 2 rewrote no file and restarted no service${changes.length ? `:\n    ${changes.slice(0, 30).join("\n    ")}` : ""}`,
        );
      });
      await Promise.all(hosts.map((host) => checkFromOutside(context, host, addresses.get(host) as string, wrongKey)));
    }
    let rolledSteps = 0;
    if (failedFirst.length === 0) rolledSteps = await redisRoll(context, addresses, planArgs, plan.secrets, internalLb, redisStandin);
    // At the end: RabbitMQ's check runs every 2 s, so right after HAProxy's step it may not have yet.
    if (first.some((outcome) => outcome.step.kind === "haproxy")) checkBackendStandins(standins);
    for (const host of hosts) console.log(`container limits, ${await containerLimits(context, host, addresses.get(host) as string)}`);

    const ranKinds = [...new Set(first.filter((outcome) => outcome.code === 0).map((outcome) => outcome.step.kind))].sort();
    console.log("\n=== real-host tier report");
    console.log(`step kinds run on real hosts: ${ranKinds.length} of ${plan.allKinds.length} (${ranKinds.join(", ")})`);
    console.log(
      `taken as done, not run: ${ASSUMED_DONE_KINDS.join(", ")} (HAProxy's PostgreSQL, RabbitMQ and MinIO backends are stand-ins)`,
    );
    console.log(`not run here: ${plan.allKinds.filter((kind) => !ranKinds.includes(kind)).join(", ")}`);
    console.log(
      `steps run: ${first.length} (run 1) + ${second.length} (run 2) + ${rolledSteps} (Redis roll), of ${plan.totalSteps} in the plan`,
    );
    console.log(`wall time: ${((Date.now() - started) / 1000).toFixed(0)} s (golden image ${goldenSeconds} s)`);
    console.log(`step outputs and host consoles: ${LOG_DIR}`);
  } finally {
    stopStandins();
    // KB_HOSTS_KEEP=1 leaves the hosts up for a look (the next run, or hosts.sh down, removes them).
    if (process.env.KB_HOSTS_KEEP !== "1") cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (failures.length > 0) {
    console.log(`\n${failures.length} check(s) failed:\n  ${failures.join("\n  ")}`);
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  console.error(`test:hosts: ${(error as Error).message}`);
  process.exit(1);
});
