import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { ContainerSpec, containerSpecHash, renderContainerFunctions } from "../../components/lib/container";
import { PlannedStep } from "../../components/lib/remote";
import { isConfigError, loadVersions, lockedDigests, lockedImage } from "../../config";
import { runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { freePort, LOOPBACK } from "../support/preflight-servers";

/**
 * The digest lock deployed: with config/versions.lock.yaml present (here a fixture, named by
 * KEYBUZZ_VERSIONS_LOCK), every container is pulled by digest and runs its tag pointed at it.
 */
const versions = loadVersions();
const digestOf = (seed: string) => `sha256:${seed.repeat(64).slice(0, 64)}`;
const lockOf = (images: Record<string, string>) => ({ images });
const fullLock = lockOf(Object.fromEntries(Object.values(versions.images).map((image, index) => [image, digestOf(String(index + 1))])));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-lock-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes a lock fixture and points the program's config pass at it for `fn`. */
async function withLock<T>(lock: unknown, fn: () => Promise<T>): Promise<T> {
  const file = path.join(dir, `lock-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, yaml.dump(lock));
  process.env.KEYBUZZ_VERSIONS_LOCK = file;
  try {
    return await fn();
  } finally {
    delete process.env.KEYBUZZ_VERSIONS_LOCK;
  }
}

/** Runs bash with a fake `docker` that logs every call and answers inspections from FAKE_* variables. */
function runWithFakeDocker(script: string, env: Record<string, string>): string[] {
  const bin = fs.mkdtempSync(path.join(dir, "bin-"));
  const log = path.join(bin, "calls.log");
  fs.writeFileSync(
    path.join(bin, "docker"),
    `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"${log}"
case "$1 $2 $3" in
  "inspect -f {{ index .Config.Labels \\"keybuzz.spec\\" }}") [ -n "$FAKE_LABEL" ] || exit 1; echo "$FAKE_LABEL" ;;
  "inspect -f {{ .State.Running }}") echo true ;;
  "image inspect "*) [ "$3" = "$FAKE_PRESENT" ] ;;
esac
`,
    { mode: 0o755 },
  );
  const result = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_LABEL: "", FAKE_PRESENT: "", ...env },
  });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return fs.readFileSync(log, "utf8").trim().split("\n");
}

describe("a locked container (shared lifecycle, components/lib/container.ts)", () => {
  const tag = "redis:7.2.16-alpine";
  const spec = (digest: string): ContainerSpec => ({
    name: "redis",
    image: `${tag}@${digest}`,
    options: [],
    command: ["redis-server"],
    nofile: 10032,
  });
  const [oldDigest, newDigest] = [digestOf("a"), digestOf("b")];

  it("pulls by digest, tags it as the pinned tag and runs the tag", () => {
    const calls = runWithFakeDocker(`${renderContainerFunctions(spec(oldDigest))}\nkb_redis_run`, {});
    expect(calls).toEqual([
      `image inspect redis@${oldDigest}`,
      `pull -q redis@${oldDigest}`,
      `tag redis@${oldDigest} ${tag}`,
      "rm -f redis",
      `run -d --name redis --label keybuzz.spec=${containerSpecHash(spec(oldDigest))} --network host --restart unless-stopped --log-opt max-size=10m --log-opt max-file=3 --ulimit nofile=10032:10032 ${tag} redis-server`,
    ]);
  });

  it("re-tags without pulling when the digest is present, whatever the tag named before", () => {
    const calls = runWithFakeDocker(`${renderContainerFunctions(spec(oldDigest))}\nkb_redis_run`, { FAKE_PRESENT: `redis@${oldDigest}` });
    expect(calls.slice(0, 2)).toEqual([`image inspect redis@${oldDigest}`, `tag redis@${oldDigest} ${tag}`]);
  });

  it("finds the container of the previous digest outdated, and recreates it on the new one", () => {
    const script = `${renderContainerFunctions(spec(newDigest))}\n[ "$(kb_redis_state)" = outdated ] && kb_redis_run`;
    const calls = runWithFakeDocker(script, { FAKE_LABEL: containerSpecHash(spec(oldDigest)) });
    expect(calls).toContain(`pull -q redis@${newDigest}`);
    expect(calls).toContain(`tag redis@${newDigest} ${tag}`);
    expect(calls).toContain("rm -f redis");
    expect(calls[calls.length - 1]).toContain(`--label keybuzz.spec=${containerSpecHash(spec(newDigest))} `);
  });
});

describe("the lock in the config pass (config/lock.ts)", () => {
  it("gives each image of versions.yaml its locked digest", () => {
    const digests = lockedDigests(versions, fullLock.images);
    expect(digests.redis).toBe(fullLock.images[versions.images.redis]);
    expect(lockedImage({ ...versions, digests }, "redis")).toBe(`${versions.images.redis}@${digests.redis}`);
    expect(lockedImage(versions, "redis")).toBe(versions.images.redis);
  });

  it("refuses a stale entry, naming it, the key's current pin and the fix", () => {
    const stale = { ...fullLock.images, "redis:7.2.5-alpine": digestOf("c") };
    delete (stale as Record<string, string>)[versions.images.redis];
    expect(() => lockedDigests(versions, stale)).toThrow(
      `images."redis:7.2.5-alpine": stale, images.redis is now ${versions.images.redis} in versions.yaml; re-run \`npm run preflight -- --stack <stack> --write-lock\``,
    );
  });

  it("refuses an entry that names no image of versions.yaml", () => {
    expect(() => lockedDigests(versions, { "nginx:1.27.0": digestOf("d") })).toThrow(
      `images."nginx:1.27.0": names no image of versions.yaml`,
    );
  });
});

describe("the prod plan with a lock", () => {
  const stepOf = (steps: readonly PlannedStep[], name: string) => {
    const found = steps.find((step) => step.step === name);
    if (!found) throw new Error(`no step ${name}`);
    return found;
  };

  it("pulls every container of the rendered steps by digest and runs its tag", async () => {
    const { steps } = await withLock(fullLock, () => runProgram("prod"));
    const digest = (key: keyof typeof versions.images) => fullLock.images[versions.images[key]];
    const redis = stepOf(steps, "redis-01-redis").script;
    expect(redis).toContain(
      `docker pull -q redis@${digest("redis")} >/dev/null\n  docker tag redis@${digest("redis")} ${versions.images.redis}`,
    );
    expect(redis).not.toContain(`docker pull -q ${versions.images.redis}`);
    const all = steps.map((step) => step.script + step.files.map((file) => file.content).join("\n")).join("\n");
    for (const key of ["haproxy", "pgbouncer", "rabbitmq", "minio", "proxysql"] as const) {
      const repository = versions.images[key].slice(0, versions.images[key].lastIndexOf(":"));
      expect(all).toContain(`docker tag ${repository}@${digest(key)} ${versions.images[key]}`);
    }
    expect(all).toContain(`POSTGRES_IMAGE=postgres@${digest("postgres")}`);
    // etcd and Galera: the step pins the tag their scripts run, and a file their spec hashes names the digest.
    const etcd = stepOf(steps, "db-master-01-etcd");
    expect(etcd.script).toContain(`docker tag quay.io/coreos/etcd@${digest("etcd")} ${versions.images.etcd}\n`);
    expect(etcd.files.find((file) => file.path.endsWith("/etcd.env"))?.content).toContain(
      `\nKEYBUZZ_ETCD_IMAGE=quay.io/coreos/etcd@${digest("etcd")}\n`,
    );
    const galera = stepOf(steps, "galera-maria-02-join");
    expect(galera.script).toContain(`docker tag mariadb@${digest("mariadb")} ${versions.images.mariadb}\n`);
    expect(galera.files.find((file) => file.path.endsWith("/my.cnf"))?.content).toContain(`# Image: mariadb@${digest("mariadb")}`);
    expect(galera.files.find((file) => file.path.endsWith("/galera.env"))?.content).toContain(
      `GALERA_IMAGE="\${GALERA_IMAGE:-${versions.images.mariadb}}"`,
    );
    expect(stepOf(steps, "proxysql-proxysql-01-verify").script).toContain(
      `docker tag mariadb@${digest("mariadb")} ${versions.images.mariadb}\n`,
    );
    // Nothing hands Docker the `name:tag@digest` form (docker/cli#2856).
    expect(all).not.toMatch(/docker (pull|run|tag|image inspect) [^\n]*:[\w.-]+@sha256:/);
  }, 120_000);

  it("is a config error naming the stale key before any resource", async () => {
    const stale = lockOf({ "redis:7.2.5-alpine": digestOf("e") });
    const { error, registrations } = await withLock(stale, () => runFailingProgram("prod"));
    expect(isConfigError(error)).toBe(true);
    expect((error as Error).message).toContain(`images."redis:7.2.5-alpine": stale, images.redis is now ${versions.images.redis}`);
    expect((error as Error).message).toContain("--write-lock");
    expect(registrations).toHaveLength(0);
  }, 120_000);
});

describe("npm run preflight with a stale lock", () => {
  /** Runs the preflight offline (every source a refused loopback port) against `lockFile`. */
  async function offlinePreflight(lockFile: string, extra: string[], env: Record<string, string> = {}) {
    const base = `http://${LOOPBACK.dead}:${await freePort(LOOPBACK.dead)}`;
    const endpoints = path.join(dir, "endpoints.json");
    const charts = Object.fromEntries(Object.values(versions.charts).map((chart) => [chart.repo, `${base}/charts`]));
    fs.writeFileSync(
      endpoints,
      JSON.stringify({
        hcloud: `${base}/v1`,
        registries: { "docker.io": base, "quay.io": base },
        dockerApt: `${base}/docker`,
        kubernetesApt: `${base}/k8s`,
        pgdgApt: `${base}/pgdg`,
        charts,
      }),
    );
    const args = ["--transpile-only", "scripts/preflight.ts", "--stack", "prod", "--endpoints", endpoints, "--lock", lockFile, ...extra];
    return spawnSync(path.join(__dirname, "..", "..", "node_modules", ".bin", "ts-node"), args, {
      cwd: path.join(__dirname, "..", ".."),
      encoding: "utf8",
      timeout: 120_000,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", HCLOUD_TOKEN: "offline-test", ...env },
    });
  }
  const staleFile = path.join(dir, "stale.lock.yaml");
  beforeAll(() => fs.writeFileSync(staleFile, yaml.dump(lockOf({ "redis:7.2.5-alpine": digestOf("f") }))));

  it("stops on its --lock as a configuration error (exit 2) naming the fix", async () => {
    const result = await offlinePreflight(staleFile, []);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`images."redis:7.2.5-alpine": stale, images.redis is now ${versions.images.redis}`);
  }, 120_000);

  it("still runs with --write-lock, which replaces it (here offline: every fact unreachable, the lock left as it was)", async () => {
    // The program's own lock is stale too: --write-lock must plan the stack without either.
    const result = await offlinePreflight(staleFile, ["--write-lock"], { KEYBUZZ_VERSIONS_LOCK: staleFile });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain("UNREACHABLE");
    expect(result.stderr).toContain("lock not written: not every fact holds");
  }, 120_000);
});
