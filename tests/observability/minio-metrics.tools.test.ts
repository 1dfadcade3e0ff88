import { spawn } from "child_process";
import { createHmac, timingSafeEqual } from "crypto";
import * as fs from "fs";
import * as http from "http";
import type { AddressInfo } from "net";
import * as path from "path";
import {
  MINIO_METRICS_PATH,
  MINIO_METRICS_POLICY,
  MINIO_METRICS_SECRET_KEYS,
  MINIO_METRICS_USER,
  MINIO_PROMETHEUS_TOKEN_EXPIRY,
  minioMetricsFiles,
  minioPrometheusToken,
  renderMinioMetricsPolicy,
  renderMinioMetricsUserScript,
} from "../../components/observability/exporters";
import { fillSecrets } from "../../components/lib/remote";
import { fakeBin, type Fakes } from "../support/bash-fakes";
import { shellcheckSteps, WAIT_UNTIL_ONCE } from "../support/module-checks";
import { tempDir } from "../support/tools";

/**
 * MinIO's metrics account step (scripts/minio/metrics-user.sh) in bash with mc faked (docker) and
 * the real curl against a stand-in of MinIO's metrics endpoint on loopback. MinIO is not in Debian,
 * so the stand-in checks the bearer token the way MinIO RELEASE.2025-09-07T16-13-09Z does, written
 * here from its source and not with the library that signs it: the HMAC-SHA512 of `header.payload`
 * keyed with the secret key of the account named by `sub` (internal/jwt/parser.go
 * `ParseWithClaims`, cmd/jwt.go `metricsRequestAuthenticate`), `exp` in the future, issuer
 * `prometheus` and the account allowed `admin:Prometheus` (cmd/metrics.go `AuthMiddleware`).
 */

const IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";
const ROOT_PASSWORD = "R00tPasswordValue1";
const SECRET_KEY = "MetricsSecretKeyValue3";

/** MinIO's check of a metrics request's bearer token, given the accounts' secret keys and policies. */
function minioAccepts(authorization: string | undefined, accounts: ReadonlyMap<string, { secretKey: string; policy: string }>): boolean {
  const token = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
  if (!token) return false;
  const [header, payload, signature] = token.split(".");
  if (signature === undefined) return false;
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
  const { alg } = JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as { alg: string };
  const account = accounts.get(String(claims.accessKey ?? claims.sub));
  if (alg !== "HS512" || !account) return false;
  const expected = createHmac("sha512", account.secretKey).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) return false;
  const policy = JSON.parse(account.policy) as { Statement: { Effect: string; Action: string[] }[] };
  const allowed = policy.Statement.some((statement) => statement.Effect === "Allow" && statement.Action.includes("admin:Prometheus"));
  return claims.iss === "prometheus" && allowed;
}

describe("MinIO's Prometheus token", () => {
  it("is mc admin prometheus generate's shape: HS512, sub, iss prometheus, a fixed exp, no iat", () => {
    const token = minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY);
    const [header, payload] = token
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown);
    expect(header).toEqual({ alg: "HS512", typ: "JWT" });
    expect(payload).toEqual({ exp: MINIO_PROMETHEUS_TOKEN_EXPIRY, sub: MINIO_METRICS_USER, iss: "prometheus" });
    expect(new Date(MINIO_PROMETHEUS_TOKEN_EXPIRY * 1000).toISOString()).toBe("2126-01-01T00:00:00.000Z");
  });

  it("is the same on every run and changes with the secret key", () => {
    const token = minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY);
    expect(minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY)).toBe(token);
    expect(minioPrometheusToken(MINIO_METRICS_USER, `${SECRET_KEY}x`)).not.toBe(token);
  });

  it("is accepted by MinIO's check only with the account's own key and a policy allowing admin:Prometheus", () => {
    const token = `Bearer ${minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY)}`;
    const account = (secretKey: string, policy = renderMinioMetricsPolicy()) => new Map([[MINIO_METRICS_USER, { secretKey, policy }]]);
    expect(minioAccepts(token, account(SECRET_KEY))).toBe(true);
    expect(minioAccepts(token, account("AnotherSecretKey"))).toBe(false);
    const s3Only = JSON.stringify({ Statement: [{ Effect: "Allow", Action: ["s3:GetObject"] }] });
    expect(minioAccepts(token, account(SECRET_KEY, s3Only))).toBe(false);
    expect(minioAccepts(undefined, account(SECRET_KEY))).toBe(false);
  });

  it("the policy allows admin:Prometheus and nothing else", () => {
    expect(JSON.parse(renderMinioMetricsPolicy())).toEqual({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: ["admin:Prometheus"] }],
    });
  });
});

/**
 * Runs a step body in bash (`set -euo pipefail`) with `fakes` first on PATH, like runBash of
 * tests/support/bash-fakes.ts but without blocking: the MinIO stand-in answers curl from this process.
 */
function runBashAsync(script: string, fakes: Fakes): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const bin = fakeBin({ kb_diagnose: 'echo "$*" >&2', ...fakes });
  const child = spawn("bash", ["-c", `set -euo pipefail\n${script}`], {
    env: { ...process.env, KB_STEP_LOG_DIR: path.join(bin, "step-logs"), PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

/**
 * A docker whose containers are mc: it logs each call's arguments and keeps IAM state in `dir`: the
 * secret key `mc admin user add` read on stdin, the policy document `policy create` got (the
 * step's policy.json, mounted at /tmp/policy.json), and the attachment.
 */
function fakeDockerMc(dir: string, failing = "__none__"): string {
  return `printf '%s\\n' "$*" >>${dir}/docker.log
case " $* " in
  *" ${failing} "*) echo "mc: <ERROR> simulated" >&2; exit 1 ;;
  *" policy create "*) cp ${dir}/policy.json ${dir}/iam-policy ;;
  *" user add "*) cat >${dir}/iam-secret ;;
  *" policy attach "*) touch ${dir}/iam-attached ;;
esac`;
}

describe("the MinIO metrics account step (scripts/minio/metrics-user.sh): mc faked, real curl to a MinIO stand-in", () => {
  let dir: string;
  let server: http.Server;
  let url: string;
  /** Answers of the stand-in: "jwt" checks the token against the IAM state the fake mc kept; "public" answers everyone. */
  let auth: "jwt" | "public" = "jwt";

  beforeAll(async () => {
    dir = tempDir("minio-metrics");
    server = http.createServer((request, response) => {
      const attached = fs.existsSync(path.join(dir, "iam-attached"));
      const accounts = new Map<string, { secretKey: string; policy: string }>();
      if (attached) {
        accounts.set(MINIO_METRICS_USER, {
          secretKey: fs.readFileSync(path.join(dir, "iam-secret"), "utf8").trim(),
          policy: fs.readFileSync(path.join(dir, "iam-policy"), "utf8"),
        });
      }
      const ok = request.url === MINIO_METRICS_PATH && (auth === "public" || minioAccepts(request.headers.authorization, accounts));
      response.writeHead(ok ? 200 : 403).end(ok ? "minio_cluster_nodes_offline_total 0\n" : "");
    });
    await new Promise<void>((resolve) => server.listen(0, `127.0.162.${20 + (process.pid % 200)}`, resolve));
    const address = server.address() as AddressInfo;
    url = `http://${address.address}:${address.port}${MINIO_METRICS_PATH}`;
    for (const file of minioMetricsFiles(`${address.address}:${address.port}`, "keybuzz-root", dir)) {
      const token = minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY);
      const values = {
        [MINIO_METRICS_SECRET_KEYS.rootPassword]: ROOT_PASSWORD,
        [MINIO_METRICS_SECRET_KEYS.secretKey]: SECRET_KEY,
        [MINIO_METRICS_SECRET_KEYS.token]: token,
      };
      fs.writeFileSync(file.path, fillSecrets(file.content, values), { mode: 0o600 });
    }
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    auth = "jwt";
    for (const file of ["docker.log", "iam-policy", "iam-secret", "iam-attached"]) fs.rmSync(path.join(dir, file), { force: true });
  });

  /** The step's body with kb_wait_until trying once (the step's own retries are for MinIO's IAM cache). */
  const run = (failing?: string) =>
    runBashAsync(`${WAIT_UNTIL_ONCE}\n${renderMinioMetricsUserScript(IMAGE, url, dir)}`, { docker: fakeDockerMc(dir, failing) });

  it("creates the policy and the user with its key on stdin, attaches the policy, then MinIO accepts the account's token", async () => {
    const result = await run();
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const container = `run --rm -i --network host --env-file ${dir}/mc.env -v ${dir}/policy.json:/tmp/policy.json:ro --entrypoint mc ${IMAGE} --no-color`;
    expect(fs.readFileSync(path.join(dir, "docker.log"), "utf8").trim().split("\n")).toEqual([
      `${container} admin policy create keybuzz ${MINIO_METRICS_POLICY} /tmp/policy.json`,
      `${container} admin user add keybuzz ${MINIO_METRICS_USER}`,
      `${container} admin policy attach keybuzz ${MINIO_METRICS_POLICY} --user ${MINIO_METRICS_USER}`,
    ]);
    expect(fs.readFileSync(path.join(dir, "iam-secret"), "utf8")).toBe(`${SECRET_KEY}\n`);
    expect(fs.readFileSync(path.join(dir, "mc.env"), "utf8")).toMatch(new RegExp(`^MC_HOST_keybuzz=http://keybuzz-root:${ROOT_PASSWORD}@`));
    expect(result.stdout).toContain(`minio metrics: ${MINIO_METRICS_USER} has ${MINIO_METRICS_POLICY} (admin:Prometheus only)`);
    expect(result.stdout).toContain("refuses none (403)");
  });

  it("never puts a secret on a command line or in its output", async () => {
    const result = await run();
    expect(result.status).toBe(0);
    const token = minioPrometheusToken(MINIO_METRICS_USER, SECRET_KEY);
    for (const text of [fs.readFileSync(path.join(dir, "docker.log"), "utf8"), result.stdout, result.stderr]) {
      for (const secret of [ROOT_PASSWORD, SECRET_KEY, token]) expect(text).not.toContain(secret);
    }
  });

  it("stops at an mc error (the policy not attached) without reporting the account ready", async () => {
    const result = await run("attach");
    expect(result.status).not.toBe(0);
    expect(fs.existsSync(path.join(dir, "iam-attached"))).toBe(false);
    expect(result.stdout).not.toContain("minio metrics:");
  });

  it("fails, naming the endpoint, when MinIO refuses the token (signed with another key than the account's)", async () => {
    const header = path.join(dir, "auth-header");
    const kept = fs.readFileSync(header, "utf8");
    fs.writeFileSync(header, `Authorization: Bearer ${minioPrometheusToken(MINIO_METRICS_USER, "NotTheAccountsKey")}\n`);
    try {
      const result = await run();
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(`minio metrics: ${url} does not answer 200 to ${MINIO_METRICS_USER}'s token`);
    } finally {
      fs.writeFileSync(header, kept);
    }
  });

  it("fails when the endpoint answers without a token (public metrics)", async () => {
    auth = "public";
    const result = await run();
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("answers without a token");
  });

  it("shellcheck has nothing to say", () => {
    expect(shellcheckSteps({ "minio-metrics-account": renderMinioMetricsUserScript(IMAGE, url, dir) })).toEqual({
      "minio-metrics-account": "",
    });
  });
});
