import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { containerSpecHash, ContainerSpec, renderContainerFunctions } from "../../components/lib/container";
import { PlannedStep } from "../../components/lib/remote";
import { proxySqlContainer } from "../../components/data/proxysql";
import { loadVersions } from "../../config";
import { runProgram } from "../../scripts/lib/mock-engine";

/**
 * The container lifecycles run by bash against a fake `docker` that answers `inspect` from
 * environment variables and logs every other call: the shared one (Redis, RabbitMQ, MinIO, HAProxy,
 * PgBouncer, ProxySQL) and, from the real rendered steps of the prod plan, every place a container starts.
 */
const spec: ContainerSpec = {
  name: "pg-bouncer",
  image: "edoburu/pgbouncer:v1.24.1-p1",
  options: ["--user", "70:70"],
  command: ["pgbouncer", "/etc/x y.ini"],
  nofile: 4096,
};

const roots: string[] = [];
afterAll(() => roots.forEach((root) => fs.rmSync(root, { recursive: true, force: true })));

/** A temp dir with `bin/docker` (the fake) and any other fake tools given by name. */
function fakeRoot(tools: Record<string, string> = {}): { root: string; bin: string; calls: () => string[] } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-docker-"));
  roots.push(root);
  const bin = path.join(root, "bin");
  fs.mkdirSync(bin);
  const log = path.join(root, "calls.log");
  fs.writeFileSync(
    path.join(bin, "docker"),
    `#!/usr/bin/env bash
case "$1 $3" in
  "inspect {{ index .Config.Labels \\"keybuzz.spec\\" }}") [ -n "$FAKE_LABEL" ] || exit 1; echo "$FAKE_LABEL" ;;
  "inspect {{ .State.Running }}") echo "$FAKE_RUNNING" ;;
  *) if [ "$1 $2" = "image inspect" ] && [ "$FAKE_IMAGE_PRESENT" = yes ]; then exit 0; fi
     if [ "$1 $2" = "image inspect" ] || [ "$1" = inspect ]; then exit 1; fi
     printf '%s\\n' "$*" >>"${log}" ;;
esac
`,
    { mode: 0o755 },
  );
  for (const [name, body] of Object.entries(tools))
    fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
  return { root, bin, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : []) };
}

function bash(bin: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync("bash", args, {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_LABEL: "", FAKE_RUNNING: "", FAKE_IMAGE_PRESENT: "yes", ...env },
  });
}

function bashWithFakeDocker(body: string, env: Record<string, string>): { stdout: string; calls: string[] } {
  const fake = fakeRoot();
  const result = bash(fake.bin, ["-euo", "pipefail", "-c", `${renderContainerFunctions(spec)}\n${body}`], env);
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return { stdout: result.stdout.trim(), calls: fake.calls() };
}

describe("container lifecycle functions", () => {
  const hash = containerSpecHash(spec);

  it.each([
    ["missing", { FAKE_LABEL: "" }],
    ["outdated", { FAKE_LABEL: "an-older-spec", FAKE_RUNNING: "true" }],
    ["current", { FAKE_LABEL: hash, FAKE_RUNNING: "true" }],
    ["stopped", { FAKE_LABEL: hash, FAKE_RUNNING: "false" }],
  ])("reports %s", (state, env) => {
    expect(bashWithFakeDocker("kb_pg_bouncer_state", env).stdout).toBe(state);
  });

  it("recreates the container with its spec label, the common options, its nofile limit and quoted arguments", () => {
    const { calls } = bashWithFakeDocker("kb_pg_bouncer_run", {});
    expect(calls).toEqual([
      "rm -f pg-bouncer",
      `run -d --name pg-bouncer --label keybuzz.spec=${hash} --network host --restart unless-stopped --log-opt max-size=10m --log-opt max-file=3 --ulimit nofile=4096:4096 --user 70:70 ${spec.image} pgbouncer /etc/x y.ini`,
    ]);
  });

  it("pulls the pinned image only when it is absent", () => {
    expect(bashWithFakeDocker("kb_pg_bouncer_run", { FAKE_IMAGE_PRESENT: "no" }).calls[0]).toBe(`pull -q ${spec.image}`);
  });

  it("changes the label when the image, an option, the command or the limit changes", () => {
    expect(containerSpecHash({ ...spec, image: "edoburu/pgbouncer:v1.24.2" })).not.toBe(hash);
    expect(containerSpecHash({ ...spec, options: ["--user", "71:71"] })).not.toBe(hash);
    expect(containerSpecHash({ ...spec, command: ["pgbouncer"] })).not.toBe(hash);
    expect(containerSpecHash({ ...spec, nofile: 8192 })).not.toBe(hash);
  });
});

describe("the nofile limit of every container the prod plan starts", () => {
  let steps: readonly PlannedStep[] = [];
  beforeAll(async () => {
    steps = (await runProgram("prod")).steps;
  }, 120_000);

  const step = (name: string): PlannedStep => {
    const found = steps.find((candidate) => candidate.step === name);
    if (!found) throw new Error(`no step ${name} in the prod plan`);
    return found;
  };
  const file = (planned: PlannedStep, suffix: string): string => {
    const found = planned.files.find((candidate) => candidate.path.endsWith(suffix));
    if (!found) throw new Error(`step ${planned.step} writes no ${suffix}`);
    return found.content;
  };
  /** A bash function as the step script defines it (from `name() {` to the first `}` line). */
  const definition = (script: string, name: string): string => {
    const match = new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?\\n\\}$`, "m").exec(script);
    if (!match) throw new Error(`the script defines no ${name}`);
    return match[0];
  };
  /** The `run` call the fake docker recorded for `container`, as its words. */
  const runCall = (calls: string[], container: string): string => {
    const found = calls.find((call) => call.startsWith("run ") && call.includes(` --name ${container} `));
    if (!found) throw new Error(`no docker run of ${container} in ${JSON.stringify(calls)}`);
    return found;
  };
  const ulimit = (call: string): string | undefined => /--ulimit (nofile=\S+)/.exec(call)?.[1];
  const value = (text: string, key: string): number => Number(new RegExp(`^${key} = (\\d+)$`, "m").exec(text)?.[1]);

  /** Runs the real `kb_<container>_run` of a step against the fake docker; its `docker run` call. */
  function sharedLifecycleRun(stepName: string, container: string): string {
    const fake = fakeRoot();
    const fn = `kb_${container.replace(/-/g, "_")}_run`;
    const result = bash(fake.bin, ["-euo", "pipefail", "-c", `${definition(step(stepName).script, fn)}\n${fn} >/dev/null`]);
    expect(result.stderr).toBe("");
    return runCall(fake.calls(), container);
  }

  it.each([
    ["redis-01-redis", "redis", 10032],
    ["redis-01-redis", "redis-sentinel", 10032],
    ["queue-01-rabbitmq", "rabbitmq", 64000],
    ["minio-01-minio", "minio", 1048576],
  ])("%s starts %s with nofile %i", (stepName, container, nofile) => {
    expect(ulimit(sharedLifecycleRun(stepName, container))).toBe(`nofile=${nofile}:${nofile}`);
  });

  it("Redis and Sentinel keep redis.conf's default of 10000 clients, which their 10032 (+ 32 reserved) is sized for", () => {
    const redis = step("redis-01-redis");
    for (const conf of ["redis.conf", "sentinel.conf"]) expect(file(redis, conf)).not.toMatch(/^maxclients/m);
  });

  it("HAProxy gets two descriptors per connection of its maxconn, plus room for listeners and checks", () => {
    const maxconn = Number(/^\s+maxconn (\d+)$/m.exec(file(step("haproxy-01-haproxy"), "haproxy.cfg"))?.[1]);
    expect(maxconn).toBeGreaterThan(0);
    const limit = ulimit(sharedLifecycleRun("haproxy-01-haproxy", "haproxy"));
    expect(limit).toBe(`nofile=${2 * maxconn + 1024}:${2 * maxconn + 1024}`);
  });

  it("PgBouncer gets twice its theoretical maximum: max_client_conn + max pool size × databases × pooled users", () => {
    const pgbouncer = step("haproxy-01-pgbouncer");
    const ini = file(pgbouncer, "pgbouncer.ini");
    const databases = (/^\[databases\]\n([\s\S]*?)\n\[pgbouncer\]/m.exec(ini)?.[1] ?? "")
      .split("\n")
      .filter((line) => line.includes(" = host="));
    // stats_users reach only the console: they get no server pool.
    const consoleUsers = (/^stats_users = (.*)$/m.exec(ini)?.[1] ?? "").split(",");
    const entries = file(pgbouncer, "userlist.txt").trim().split("\n");
    const users = entries.filter((line) => !consoleUsers.some((user) => line.startsWith(`"${user}" `)));
    // keybuzz, keybuzz_backend, postgres; the owners keybuzz and kb_backend (issue 19), plus the stats user.
    expect([databases.length, entries.length, users.length]).toEqual([3, 3, 2]);
    const theoretical = value(ini, "max_client_conn") + (value(ini, "default_pool_size") + value(ini, "reserve_pool_size")) * 3 * 2;
    expect(theoretical).toBeGreaterThan(1024);
    expect(ulimit(sharedLifecycleRun("haproxy-01-pgbouncer", "pgbouncer"))).toBe(`nofile=${2 * theoretical}:${2 * theoretical}`);
  });

  it("ProxySQL goes through the shared lifecycle: nofile 102400, and the limit is part of its spec label", () => {
    expect(ulimit(sharedLifecycleRun("proxysql-proxysql-01", "proxysql"))).toBe("nofile=102400:102400");
    const container = proxySqlContainer(loadVersions().images.proxysql);
    expect(step("proxysql-proxysql-01").script).toContain(`--label keybuzz.spec=${containerSpecHash(container)} `);
    expect(containerSpecHash({ ...container, nofile: 1024 })).not.toBe(containerSpecHash(container));
  });

  it("keybuzz-galera starts MariaDB (and its recovery container) with nofile 32768 from the rendered galera.env", () => {
    const bootstrap = step("galera-maria-01-bootstrap");
    const fake = fakeRoot();
    const dir = (name: string) => {
      const created = path.join(fake.root, name);
      fs.mkdirSync(created, { recursive: true });
      return created;
    };
    const helper = path.join(fake.root, "keybuzz-galera");
    fs.writeFileSync(helper, file(bootstrap, "/usr/local/sbin/keybuzz-galera"));
    const envFile = path.join(fake.root, "galera.env");
    fs.writeFileSync(envFile, file(bootstrap, "/etc/keybuzz/galera.env"));
    const env = {
      GALERA_ENV_FILE: envFile,
      GALERA_DATADIR: dir("data"),
      GALERA_CONFDIR: dir("config"),
      GALERA_SECRETDIR: dir("secrets"),
      GALERA_STATE_FILE: path.join(fake.root, "started-as"),
      GALERA_START_SCRIPT: path.join(fake.root, "start.sh"),
      GALERA_RUNNING_CMD: "false",
      GALERA_PEER_ALIVE_CMD: "false",
      GALERA_SQL_CMD: "false",
      GALERA_SYNC_TIMEOUT: "0",
      GALERA_POLL_INTERVAL: "0",
    };
    bash(fake.bin, [helper, "bootstrap"], env);
    expect(ulimit(runCall(fake.calls(), "mariadb"))).toBe("nofile=32768:32768");
    bash(fake.bin, [helper, "state"], env);
    const recovery = fake.calls().find((call) => call.startsWith("run --rm --network none "));
    expect(recovery && ulimit(recovery)).toBe("nofile=32768:32768");
  });

  it("the etcd run script starts etcd with nofile 40000, part of its spec label", () => {
    const etcd = step("db-master-01-etcd");
    const fake = fakeRoot({ install: "exit 0" });
    const config = path.join(fake.root, "etcd");
    fs.mkdirSync(path.join(config, "tls"), { recursive: true });
    fs.writeFileSync(path.join(config, "etcd.env"), "ETCD_NAME=db-master-01\n");
    fs.writeFileSync(path.join(config, "tls", "ca.crt"), "ca\n");
    const run = file(etcd, "/etc/keybuzz/etcd/run.sh")
      .replace(/^KB_ETCD_CONFIG_DIR=.*$/m, `KB_ETCD_CONFIG_DIR=${config}`)
      .replace(/^KB_ETCD_DATA_DIR=.*$/m, `KB_ETCD_DATA_DIR=${path.join(fake.root, "data")}`);
    const script = path.join(fake.root, "run.sh");
    fs.writeFileSync(script, run);
    const result = bash(fake.bin, [script, "start"], { FAKE_RUNNING: "true" });
    expect(result.status).toBe(0);
    const call = runCall(fake.calls(), "etcd");
    expect(ulimit(call)).toBe("nofile=40000:40000");
    expect(call).toMatch(/--label keybuzz\.spec=\S+ new \S+ nofile=40000 /);
  });

  it("the Patroni steps start Patroni with nofile 4096, part of its spec label", () => {
    const script = step("db-master-01-patroni").script;
    const preamble = script.split("\n").filter((line) => /^\s*KB_[A-Z_]+=/.test(line));
    const fake = fakeRoot();
    const config = path.join(fake.root, "config");
    fs.mkdirSync(path.join(config, "tls"), { recursive: true });
    fs.writeFileSync(path.join(config, "patroni.yml"), "scope: keybuzz\n");
    fs.writeFileSync(path.join(config, "tls", "ca.crt"), "ca\n");
    const result = bash(fake.bin, [
      "-euo",
      "pipefail",
      "-c",
      [
        ...preamble,
        `KB_CONFIG_DIR=${config} KB_TLS_DIR=${config}/tls KB_DCS=etcd3`,
        definition(script, "patroni_wanted"),
        definition(script, "patroni_recreate"),
        "patroni_recreate",
      ].join("\n"),
    ]);
    expect(result.stderr).toBe("");
    const call = runCall(fake.calls(), "patroni");
    expect(ulimit(call)).toBe("nofile=4096:4096");
    expect(call).toContain(" nofile=4096 ");
  });
});
