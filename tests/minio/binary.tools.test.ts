import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_MINIO_SETTINGS,
  MINIO_STOP_GRACE_SECONDS,
  MinioHostPaths,
  MinioStepPhase,
  renderMinioNodeScript,
} from "../../components/data/minio";
import { renderStepScript } from "../../components/lib/remote";
import { runBash } from "../support/bash-fakes";
import { tempDir } from "../support/tools";

/**
 * MinIO's rule for a binary change (issue 15 item 3, docs/minio.md): the whole rendered node step of
 * each phase, run by bash against a fake `docker` that plays one node's container (its spec label,
 * the image ID it runs, the image ID the wanted tag has once pulled) and logs every container call.
 */

const NODES = [
  { name: "minio-01", address: "10.0.0.134" },
  { name: "minio-02", address: "10.0.0.131" },
  { name: "minio-03", address: "10.0.0.132" },
];
const IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";

/** `$FAKE/label`, `$FAKE/running-image` (the container's image ID), `$FAKE/pulled-image` (the tag's ID once pulled), `$FAKE/calls`. */
const FAKE_DOCKER = `
state=$FAKE
case "$1 $2" in
  "image inspect")
    if [ "$3" = -f ]; then cat "$state/pulled-image"; exit 0; fi
    [ -f "$state/pulled" ] ;;
  "pull -q") touch "$state/pulled"; echo "pull" >>"$state/calls" ;;
  "inspect -f")
    [ -f "$state/label" ] || exit 1
    case "$3" in
      *keybuzz.spec*) cat "$state/label" ;;
      *State.Running*) echo true ;;
      *.Image*) cat "$state/running-image" ;;
    esac ;;
  "stop -t"|"rm -f")
    [ -f "$state/label" ] || exit 1
    echo "$1 $2 $3\${4:+ $4}" >>"$state/calls"
    if [ "$1" = rm ]; then rm "$state/label"; fi ;;
  "run -d")
    echo "run" >>"$state/calls"
    while [ "$1" != "--label" ]; do shift; done
    echo "\${2#keybuzz.spec=}" >"$state/label"
    cp "$state/pulled-image" "$state/running-image" ;;
  *) echo "unexpected docker $*" >&2; exit 1 ;;
esac`;

interface FakeNode {
  readonly fake: string;
  readonly paths: MinioHostPaths;
  run(phase: MinioStepPhase): { status: number | null; output: string; calls: string[] };
}

/** One node's host: drive mounted, container running `running` while the tag, once pulled, is `pulled`. */
function minioHost(index: number, running: string, pulled: string): FakeNode {
  const root = tempDir("minio-binary");
  const fake = path.join(root, "fake");
  const paths: MinioHostPaths = {
    volumeMount: root,
    dataDir: path.join(root, "data"),
    envFile: path.join(root, "config.env"),
    adminDir: path.join(root, "admin"),
  };
  fs.mkdirSync(fake);
  fs.mkdirSync(paths.dataDir);
  fs.writeFileSync(path.join(fake, "running-image"), running);
  fs.writeFileSync(path.join(fake, "pulled-image"), pulled);
  const run = (phase: MinioStepPhase) => {
    fs.rmSync(path.join(fake, "calls"), { force: true });
    const body = renderMinioNodeScript(NODES[index], IMAGE, DEFAULT_MINIO_SETTINGS, paths, phase);
    const result = runBash(
      renderStepScript(`${NODES[index].name}-minio-${phase}`, [], body),
      { docker: FAKE_DOCKER, mountpoint: "exit 0", curl: "exit 0" },
      { FAKE: fake },
    );
    const calls = fs.existsSync(path.join(fake, "calls")) ? fs.readFileSync(path.join(fake, "calls"), "utf8").trim().split("\n") : [];
    return { status: result.status, output: result.stdout + result.stderr, calls };
  };
  return { fake, paths, run };
}

const RESTART = [`stop -t ${MINIO_STOP_GRACE_SECONDS} minio`, "rm -f minio", "run"];

describe("a MinIO binary change (scripts/minio/minio-node.sh): every node restarts together, never one by one", () => {
  it("sizes the stop grace from MinIO's shutdown: a minute for the heal hand-over, then the 30 s HTTP shutdown", () => {
    expect(MINIO_STOP_GRACE_SECONDS).toBe(90);
  });

  it("node steps only pull the new image; the binary steps then stop and start each node with SIGTERM and the grace", () => {
    const hosts = NODES.map((_, index) => minioHost(index, "sha256:old", "sha256:new"));
    // The first deployment: each container started on the old image, labelled as rendered.
    for (const host of hosts) {
      fs.writeFileSync(path.join(host.fake, "pulled-image"), "sha256:old");
      expect(host.run("node")).toMatchObject({ status: 0, calls: ["pull", "run"] });
    }
    // The image bump: an older label, and the tag now names another image.
    for (const host of hosts) {
      fs.writeFileSync(path.join(host.fake, "label"), "the-spec-of-the-old-image\n");
      fs.writeFileSync(path.join(host.fake, "pulled-image"), "sha256:new");
      fs.rmSync(path.join(host.fake, "pulled"));
    }
    for (const host of hosts) {
      const node = host.run("node");
      expect(node.status).toBe(0);
      expect(node.calls).toEqual(["pull"]);
      expect(node.output).toContain("it restarts in the binary step, with every other node");
      expect(fs.readFileSync(path.join(host.fake, "running-image"), "utf8")).toBe("sha256:old");
    }
    for (const host of hosts) {
      const binary = host.run("binary");
      expect(binary.status).toBe(0);
      expect(binary.calls).toEqual(RESTART);
      expect(fs.readFileSync(path.join(host.fake, "running-image"), "utf8")).toBe("sha256:new");
    }
    // Converged: a re-run of either phase touches no container.
    for (const host of hosts) {
      expect(host.run("node").calls).toEqual([]);
      expect(host.run("binary").calls).toEqual([]);
    }
  });

  it("a change that keeps the binary (the container's options) still rolls in the node step, behind the write quorum", () => {
    const host = minioHost(1, "sha256:same", "sha256:same");
    expect(host.run("node").calls).toEqual(["pull", "run"]);
    fs.writeFileSync(path.join(host.fake, "label"), "the-spec-with-other-options\n");
    const node = host.run("node");
    expect(node.status).toBe(0);
    expect(node.calls).toEqual(RESTART);
    expect(host.run("binary").calls).toEqual([]);
  });
});
