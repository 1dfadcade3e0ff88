import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_MINIO_SETTINGS,
  MINIO_APP_SECRET_KEY,
  MINIO_HOST_PATHS,
  MINIO_ROOT_PASSWORD_KEY,
  MinioHostPaths,
  minioBucketFiles,
  renderMinioBucketScript,
  renderMinioEndpointCheckScript,
  renderMinioNodeScript,
  renderMinioVerifyScript,
  renderMinioVolumeScript,
} from "../../components/data/minio";
import { fillSecrets, renderStepScript } from "../../components/lib/remote";
import { hostScript, shellVariables } from "../../components/lib/scripts";
import { loadVersions } from "../../config";
import { runBash } from "../support/bash-fakes";
import { shellcheckSteps, WAIT_UNTIL_ONCE } from "../support/module-checks";
import { tempDir } from "../support/tools";

const NODES = [
  { name: "minio-01", address: "10.0.0.134" },
  { name: "minio-02", address: "10.0.0.131" },
  { name: "minio-03", address: "10.0.0.132" },
];
const URLS = NODES.map((node) => `http://${node.address}:9000/minio/health/cluster`);

/** A curl that logs the URL it was given (its last argument) and answers 200 except for `failing`. */
function fakeCurl(log: string, failing = ""): string {
  return `url=\${!#}\necho "$url" >>${log}\nif [ "$url" = "${failing}" ]; then exit 22; fi`;
}

describe("the MinIO verification (scripts/minio/verify.sh) in bash", () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir("minio-verify");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("asks /minio/health/cluster of every node, in order, as a whole step", () => {
    const log = path.join(dir, "all.log");
    const step = renderStepScript("minio-verify", [], renderMinioVerifyScript(NODES), { timeoutMinutes: 1 });
    const result = runBash(step, { curl: fakeCurl(log) });
    expect(result.status).toBe(0);
    expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual(URLS);
    for (const url of URLS) expect(result.stdout).toContain(`minio verify: ${url} answers 200`);
  });

  it("fails on the node without write quorum, naming it, and asks no further node", () => {
    const log = path.join(dir, "failing.log");
    // kb_wait_until once instead of the step's 300 s budget.
    const result = runBash(`${WAIT_UNTIL_ONCE}\n${renderMinioVerifyScript(NODES)}`, { curl: fakeCurl(log, URLS[1]) });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`minio verify: ${URLS[1]} does not answer 200 (no write quorum)`);
    expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual(URLS.slice(0, 2));
  });
});

const IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";
const ROOT_PASSWORD = "R00tPasswordValue1";
const APP_SECRET = "AppSecretKeyValue2";

/**
 * A docker whose containers are mc: it logs each call's arguments (one line, words separated by
 * spaces) and, for `mc admin user add`, what arrived on stdin; `failing` (a word of the mc command)
 * makes that call exit 1 as mc does on an error.
 */
function fakeDockerMc(dir: string, failing = "__none__"): string {
  return `printf '%s\\n' "$*" >>${dir}/docker.log
case " $* " in
  *" user add "*) cat >${dir}/user-add.stdin ;;
  *" ${failing} "*) echo "mc: <ERROR> simulated" >&2; exit 1 ;;
esac`;
}

describe("the bucket step (scripts/minio/bucket.sh) in bash, mc faked", () => {
  let dir: string;
  let paths: MinioHostPaths;
  let body: string;
  beforeAll(() => {
    dir = tempDir("minio-bucket");
    paths = { ...MINIO_HOST_PATHS, adminDir: path.join(dir, "admin") };
    fs.mkdirSync(paths.adminDir);
    // The files as the step writes them, secrets filled in (the step reads them from stdin).
    for (const file of minioBucketFiles(NODES[0], DEFAULT_MINIO_SETTINGS, paths)) {
      fs.writeFileSync(
        file.path,
        fillSecrets(file.content, { [MINIO_ROOT_PASSWORD_KEY]: ROOT_PASSWORD, [MINIO_APP_SECRET_KEY]: APP_SECRET }),
        {
          mode: 0o600,
        },
      );
    }
    body = `${WAIT_UNTIL_ONCE}\n${renderMinioBucketScript(NODES[0], IMAGE, DEFAULT_MINIO_SETTINGS, paths)}`;
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    for (const file of ["docker.log", "user-add.stdin", "curl.log"]) fs.rmSync(path.join(dir, file), { force: true });
  });

  it("creates the bucket, the policy, the user with its key on stdin, attaches the policy and lists the bucket with the app's key", () => {
    const result = runBash(body, { docker: fakeDockerMc(dir), curl: fakeCurl(path.join(dir, "curl.log")) });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "curl.log"), "utf8").trim()).toBe(URLS[0]);
    const container = `run --rm -i --network host --env-file ${paths.adminDir}/mc.env -v ${paths.adminDir}/app-policy.json:/tmp/policy.json:ro --entrypoint mc ${IMAGE} --no-color`;
    expect(fs.readFileSync(path.join(dir, "docker.log"), "utf8").trim().split("\n")).toEqual([
      `${container} mb --ignore-existing keybuzz/keybuzz-attachments`,
      `${container} admin policy create keybuzz keybuzz-attachments-readwrite /tmp/policy.json`,
      `${container} admin user add keybuzz keybuzz-backend`,
      `${container} admin policy attach keybuzz keybuzz-attachments-readwrite --user keybuzz-backend`,
      `${container} ls app/keybuzz-attachments`,
    ]);
    expect(fs.readFileSync(path.join(dir, "user-add.stdin"), "utf8")).toBe(`${APP_SECRET}\n`);
    expect(result.stdout).toContain("minio bucket: keybuzz-attachments ready; keybuzz-backend has keybuzz-attachments-readwrite");
  });

  it("never puts a secret on a command line or in its output", () => {
    const result = runBash(body, { docker: fakeDockerMc(dir), curl: fakeCurl(path.join(dir, "curl.log")) });
    expect(result.status).toBe(0);
    for (const text of [fs.readFileSync(path.join(dir, "docker.log"), "utf8"), result.stdout, result.stderr]) {
      expect(text).not.toContain(ROOT_PASSWORD);
      expect(text).not.toContain(APP_SECRET);
    }
  });

  it("stops at the first mc error (a policy it cannot create), before the user exists", () => {
    const result = runBash(body, { docker: fakeDockerMc(dir, "create"), curl: fakeCurl(path.join(dir, "curl.log")) });
    expect(result.status).not.toBe(0);
    expect(fs.readFileSync(path.join(dir, "docker.log"), "utf8")).not.toContain("user add");
  });

  it("touches nothing while the node has no write quorum", () => {
    const result = runBash(body, { docker: fakeDockerMc(dir), curl: fakeCurl(path.join(dir, "curl.log"), URLS[0]) });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`minio bucket: ${URLS[0]} does not answer 200 (no write quorum)`);
    expect(fs.existsSync(path.join(dir, "docker.log"))).toBe(false);
  });
});

describe("the data volume (scripts/minio/volume.sh, minio-node.sh) in bash", () => {
  let dir: string;
  let paths: MinioHostPaths;
  beforeEach(() => {
    dir = tempDir("minio-volume");
    paths = { ...MINIO_HOST_PATHS, volumeMount: path.join(dir, "minio"), dataDir: path.join(dir, "minio", "data") };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** volume.sh with kb_xfs_volume stubbed: it logs its mount point and "mounts" by creating a marker the fake mountpoint reads. */
  function volumeScript(): string {
    return [
      WAIT_UNTIL_ONCE,
      `kb_xfs_volume() { echo "$1" >>${dir}/xfs.log; mkdir -p "$1"; touch ${dir}/mounted; }`,
      shellVariables({ KB_VOLUME_MOUNT: paths.volumeMount, KB_DATA_DIR: paths.dataDir }),
      hostScript("minio", "volume.sh"),
    ].join("\n");
  }
  const mountpoint = (markerDir: string) => `[ -e ${markerDir}/mounted ]`;

  it("mounts the volume, then makes the drive directory on it, root-only", () => {
    const result = runBash(volumeScript(), { mountpoint: mountpoint(dir) });
    expect(result.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "xfs.log"), "utf8").trim()).toBe(paths.volumeMount);
    expect(fs.statSync(paths.dataDir).mode & 0o777).toBe(0o700);
    expect(renderMinioVolumeScript()).toContain("kb_xfs_volume() {");
  });

  it("refuses to mount over a drive already written on the root disk, naming the way out", () => {
    fs.mkdirSync(path.join(paths.dataDir, ".minio.sys"), { recursive: true });
    const result = runBash(volumeScript(), { mountpoint: mountpoint(dir) });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`minio volume: ${paths.dataDir} holds a drive on the root disk; move it onto the data volume first`);
    expect(fs.existsSync(path.join(dir, "xfs.log"))).toBe(false);
  });

  it("accepts a re-run on the mounted volume with its drive", () => {
    fs.mkdirSync(path.join(paths.dataDir, ".minio.sys"), { recursive: true });
    fs.writeFileSync(path.join(dir, "mounted"), "");
    const result = runBash(volumeScript(), { mountpoint: mountpoint(dir) });
    expect(result.status).toBe(0);
  });

  it("never starts MinIO when the volume is not mounted, and says why", () => {
    const dockerLog = path.join(dir, "docker.log");
    const script = `${renderMinioNodeScript(NODES[0], IMAGE, DEFAULT_MINIO_SETTINGS, paths)}`;
    const result = runBash(script, { mountpoint: mountpoint(dir), docker: `echo "$*" >>${dockerLog}` });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`minio: no data volume mounted at ${paths.volumeMount}`);
    expect(result.stderr).toContain("refusing to start MinIO on the root disk");
    expect(fs.existsSync(dockerLog)).toBe(false);
  });

  it("starts MinIO with the drive bound by --mount once the volume is there", () => {
    fs.mkdirSync(paths.dataDir, { recursive: true });
    fs.writeFileSync(path.join(dir, "mounted"), "");
    const dockerLog = path.join(dir, "docker.log");
    const fakeDocker = `echo "$*" >>${dockerLog}\n[ "$1" = inspect ] && exit 1\nexit 0`;
    const result = runBash(renderMinioNodeScript(NODES[0], IMAGE, DEFAULT_MINIO_SETTINGS, paths), {
      mountpoint: mountpoint(dir),
      docker: fakeDocker,
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(fs.readFileSync(dockerLog, "utf8")).toContain(`--mount type=bind,source=${paths.dataDir},target=/data`);
  });
});

describe("the HA S3 endpoint check (scripts/minio/endpoint-check.sh) in bash", () => {
  it("asks the cluster probe through the load balancer, and fails naming it when it does not answer", () => {
    const dir = tempDir("minio-endpoint");
    const url = "http://10.0.0.10:9000/minio/health/cluster";
    try {
      const ok = runBash(renderStepScript("endpoint-check", [], renderMinioEndpointCheckScript("10.0.0.10", 9000), { timeoutMinutes: 1 }), {
        curl: fakeCurl(path.join(dir, "ok.log")),
      });
      expect(ok.status).toBe(0);
      expect(fs.readFileSync(path.join(dir, "ok.log"), "utf8").trim()).toBe(url);
      const failing = runBash(`${WAIT_UNTIL_ONCE}\n${renderMinioEndpointCheckScript("10.0.0.10", 9000)}`, {
        curl: fakeCurl(path.join(dir, "failing.log"), url),
      });
      expect(failing.status).not.toBe(0);
      expect(failing.stderr).toContain(`minio endpoint: ${url} does not answer 200 through the load balancer`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the rendered MinIO step scripts and shellcheck", () => {
  it("shellcheck accepts the volume, node, bucket, verification and endpoint-check steps", () => {
    const findings = shellcheckSteps({
      volume: renderMinioVolumeScript(),
      node: renderMinioNodeScript(NODES[0], loadVersions().images.minio),
      bucket: renderMinioBucketScript(NODES[0], loadVersions().images.minio),
      verify: renderMinioVerifyScript(NODES),
      endpoint: renderMinioEndpointCheckScript("10.0.0.10", 9000),
    });
    expect(findings).toEqual({ volume: "", node: "", bucket: "", verify: "", endpoint: "" });
  });
});
