import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import { renderMinioNodeScript, renderMinioVerifyScript } from "../../components/data/minio";
import {
  rabbitmqHaproxyListener,
  renderRabbitMqEndpointCheckScript,
  renderRabbitMqNodeScript,
  renderRabbitMqVerifyScript,
} from "../../components/data/rabbitmq";
import {
  DEFAULT_REDIS_DAEMON_SETTINGS,
  redisHaproxyListener,
  RedisDaemonSettings,
  renderRedisConf,
  renderRedisEndpointCheckScript,
  renderRedisNodeScript,
  renderRedisVerifyScript,
  renderSentinelConf,
  REDIS_HOST_PATHS,
} from "../../components/data/redis";
import { fillSecrets, renderStepScript } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { runBash } from "../support/bash-fakes";

// The rendered redis.conf and sentinel.conf start Debian's redis-server / redis-sentinel on a
// loopback address and answer PING with the rendered passwords (and refuse without them).
const ADDRESS = "127.0.10.1";
const SECRETS = {
  "redis-password": "data-secret-1",
  "redis-sentinel-password": "sentinel-secret-2",
  "redis-exporter-password": "exporter-secret-3",
};

function cli(port: number, password: string | undefined, ...args: string[]): string {
  try {
    return execFileSync("redis-cli", ["--no-auth-warning", "-h", ADDRESS, "-p", String(port), ...args], {
      env: { ...process.env, ...(password ? { REDISCLI_AUTH: password } : {}) },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 5000,
    }).trim();
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("rendered Redis configs on the real daemons", () => {
  let dir: string;
  const daemons: ChildProcess[] = [];
  const settings: RedisDaemonSettings = {
    ...DEFAULT_REDIS_DAEMON_SETTINGS,
    port: 16379,
    sentinelPort: 26479,
    maxmemoryMb: 64,
    dataDir: "",
    sentinelDir: "",
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "kb-redis-"));
  });
  afterAll(() => {
    for (const daemon of daemons) daemon.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("redis-server and redis-sentinel start and answer PING behind their passwords", async () => {
    const node = { name: "redis-01", address: ADDRESS };
    const local = { ...settings, dataDir: dir, sentinelDir: dir };
    fs.writeFileSync(path.join(dir, "redis.conf"), fillSecrets(renderRedisConf(node, local), SECRETS));
    fs.writeFileSync(path.join(dir, "sentinel.conf"), fillSecrets(renderSentinelConf(node, ADDRESS, local), SECRETS));
    daemons.push(spawn("redis-server", [path.join(dir, "redis.conf")], { stdio: "ignore" }));
    await until(() => cli(local.port, SECRETS["redis-password"], "PING") === "PONG", "redis-server PONG");
    daemons.push(spawn("redis-sentinel", [path.join(dir, "sentinel.conf")], { stdio: "ignore" }));
    await until(() => cli(local.sentinelPort, SECRETS["redis-sentinel-password"], "PING") === "PONG", "redis-sentinel PONG");

    expect(cli(local.port, undefined, "PING")).toMatch(/NOAUTH/);
    expect(cli(local.sentinelPort, undefined, "PING")).toMatch(/NOAUTH/);
    expect(cli(local.port, SECRETS["redis-password"], "CONFIG", "GET", "maxmemory")).toContain(String(64 * 1024 * 1024));
    expect(cli(local.port, SECRETS["redis-password"], "CONFIG", "GET", "min-replicas-to-write")).toMatch(/\n1$/);
    // Sentinel authenticates to the master with auth-pass and sees it as master.
    await until(
      () => /flags\nmaster\n/.test(cli(local.sentinelPort, SECRETS["redis-sentinel-password"], "SENTINEL", "master", settings.masterName)),
      "Sentinel to see the master",
    );
    expect(cli(local.sentinelPort, SECRETS["redis-sentinel-password"], "SENTINEL", "get-master-addr-by-name", settings.masterName)).toBe(
      `${ADDRESS}\n${local.port}`,
    );
  });

  it("redis_exporter's ACL user reads INFO and the Sentinel tables, but no key, CONFIG or write; the users survive a config rewrite", () => {
    const local = { ...settings, dataDir: dir, sentinelDir: dir };
    const exporter = (port: number, ...args: string[]) => cli(port, SECRETS["redis-exporter-password"], "--user", "exporter", ...args);
    expect(exporter(local.port, "PING")).toBe("PONG");
    expect(exporter(local.port, "INFO", "replication")).toMatch(/^role:master$/m);
    expect(exporter(local.port, "SLOWLOG", "LEN")).toMatch(/^\d+$/);
    expect(exporter(local.port, "LATENCY", "LATEST")).not.toMatch(/NOPERM/);
    for (const denied of [
      ["CONFIG", "GET", "requirepass"],
      ["GET", "k"],
      ["SET", "k", "v"],
      ["KEYS", "*"],
      ["ACL", "LIST"],
    ]) {
      expect(exporter(local.port, ...denied)).toMatch(/NOPERM/);
    }
    expect(exporter(local.sentinelPort, "SENTINEL", "MASTERS")).toContain(settings.masterName);
    // One Sentinel here: CKQUORUM answers NOQUORUM, but it answers (no NOPERM).
    expect(exporter(local.sentinelPort, "SENTINEL", "CKQUORUM", settings.masterName)).toMatch(/^(OK|NOQUORUM)/);
    expect(exporter(local.sentinelPort, "SENTINEL", "CONFIG", "GET", "*")).toMatch(/NOPERM/);
    expect(exporter(local.sentinelPort, "SENTINEL", "FAILOVER", settings.masterName)).toMatch(/NOPERM/);
    // Sentinel rewrites its file (failovers, FLUSHCONFIG) and Redis on CONFIG REWRITE: the user must stay.
    expect(cli(local.sentinelPort, SECRETS["redis-sentinel-password"], "SENTINEL", "FLUSHCONFIG")).toBe("OK");
    expect(cli(local.port, SECRETS["redis-password"], "CONFIG", "REWRITE")).toBe("OK");
    for (const file of ["redis.conf", "sentinel.conf"]) {
      expect(fs.readFileSync(path.join(dir, file), "utf8")).toMatch(/^user exporter on /m);
    }
  });

  it("the endpoint check writes a key through the address and port it is given, with the managed redis.conf's password", () => {
    // The redis-server above stands in for the load balancer; `docker run … IMAGE` becomes Debian's redis-cli.
    // Alone, it refuses writes (min-replicas-to-write 1); behind the LB a master has its replicas.
    expect(cli(settings.port, SECRETS["redis-password"], "CONFIG", "SET", "min-replicas-to-write", "0")).toBe("OK");
    const managedDir = path.join(dir, "managed");
    fs.mkdirSync(managedDir, { recursive: true });
    fs.writeFileSync(
      path.join(managedDir, "redis.conf"),
      fillSecrets(renderRedisConf({ name: "redis-01", address: ADDRESS }, settings), SECRETS),
    );
    const body = renderRedisEndpointCheckScript(ADDRESS, settings.port, "redis:test", { ...REDIS_HOST_PATHS, managedDir });
    const result = runBash(renderStepScript("redis-01-redis-endpoint-check on redis-01", [], body), {
      docker:
        '[ "${*:1:13}" = "run --rm --network host -e REDISCLI_AUTH redis:test redis-cli --no-auth-warning -h 127.0.10.1 -p 16379" ] && exec redis-cli "${@:9}"',
      hostname: "echo redis-01",
    });
    expect(result.stderr).not.toMatch(/does not read back/);
    expect(result.stdout).toContain(`redis endpoint: a write through ${ADDRESS}:${settings.port} reads back`);
    expect(result.status).toBe(0);
    expect(cli(settings.port, SECRETS["redis-password"], "--scan", "--pattern", "keybuzz:endpoint-check:redis-01:*")).toMatch(
      /^keybuzz:endpoint-check:redis-01:\d+$/,
    );
  });
});

describe("rendered data-tier files and the real checkers", () => {
  const redisNodes = [1, 2, 3].map((n) => ({ name: `redis-0${n}`, address: `10.0.0.${122 + n}` }));
  const queueNodes = [1, 2, 3].map((n) => ({ name: `queue-0${n}`, address: `10.0.0.${125 + n}` }));
  const minioNodes = [
    { name: "minio-01", address: "10.0.0.134" },
    { name: "minio-02", address: "10.0.0.131" },
    { name: "minio-03", address: "10.0.0.132" },
  ];
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "kb-data-tools-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("haproxy -c accepts the single haproxy.cfg holding the Redis and RabbitMQ listeners", () => {
    const cfg = renderHaproxyConfig([redisHaproxyListener(redisNodes), rabbitmqHaproxyListener(queueNodes)]);
    const file = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(file, fillSecrets(cfg, { "redis-password": "abc123", "rabbitmq-health-auth": "a2V5YnV6ejpwdw==" }));
    const result = spawnSync("haproxy", ["-c", "-f", file], { encoding: "utf8" });
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/\[(ALERT|WARNING)\]/);
    expect(result.status).toBe(0);
  });

  it("shellcheck accepts every rendered Redis, RabbitMQ and MinIO step script", () => {
    const image = loadVersions().images;
    const settings = { ...DEFAULT_REDIS_DAEMON_SETTINGS, maxmemoryMb: 4915 };
    const scripts: Record<string, string> = {
      "redis-node": renderRedisNodeScript(redisNodes[1], redisNodes, image.redis, settings),
      "redis-verify": renderRedisVerifyScript(redisNodes, image.redis, settings),
      "redis-endpoint": renderRedisEndpointCheckScript("10.0.0.10", 6379, image.redis),
      "rabbitmq-node": renderRabbitMqNodeScript(queueNodes[1], queueNodes, image.rabbitmq),
      "rabbitmq-verify": renderRabbitMqVerifyScript(queueNodes[0], 3),
      "rabbitmq-endpoint": renderRabbitMqEndpointCheckScript("10.0.0.10", 5672),
      "minio-node": renderMinioNodeScript(minioNodes[0], image.minio),
      "minio-verify": renderMinioVerifyScript(minioNodes),
    };
    for (const [name, body] of Object.entries(scripts)) {
      const file = path.join(dir, `${name}.sh`);
      fs.writeFileSync(file, renderStepScript(name, [], body));
      const result = spawnSync("shellcheck", ["-s", "bash", file], { encoding: "utf8" });
      expect({ name, output: result.stdout }).toEqual({ name, output: "" });
    }
  });
});
