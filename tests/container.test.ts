import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { containerSpecHash, ContainerSpec, renderContainerFunctions } from "../components/data/container";

/**
 * The shared container lifecycle (Redis, RabbitMQ, MinIO, HAProxy, PgBouncer) run by bash against a
 * fake `docker` that answers `inspect` from environment variables and logs every other call.
 */
const spec: ContainerSpec = {
  name: "pg-bouncer",
  image: "edoburu/pgbouncer:v1.24.1-p1",
  options: ["--user", "70:70"],
  command: ["pgbouncer", "/etc/x y.ini"],
};

function bashWithFakeDocker(body: string, env: Record<string, string>): { stdout: string; calls: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-docker-"));
  const log = path.join(dir, "calls.log");
  fs.writeFileSync(
    path.join(dir, "docker"),
    `#!/usr/bin/env bash
case "$1 $3" in
  "inspect {{ index .Config.Labels \\"keybuzz.spec\\" }}") [ -n "$FAKE_LABEL" ] || exit 1; echo "$FAKE_LABEL" ;;
  "inspect {{ .State.Running }}") echo "$FAKE_RUNNING" ;;
  *) if [ "$1 $2" = "image inspect" ] && [ "$FAKE_IMAGE_PRESENT" = yes ]; then exit 0; fi
     if [ "$1 $2" = "image inspect" ]; then exit 1; fi
     printf '%s\\n' "$*" >>"${log}" ;;
esac
`,
    { mode: 0o755 },
  );
  const result = spawnSync("bash", ["-euo", "pipefail", "-c", `${renderContainerFunctions(spec)}\n${body}`], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, FAKE_LABEL: "", FAKE_RUNNING: "", FAKE_IMAGE_PRESENT: "yes", ...env },
  });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return { stdout: result.stdout.trim(), calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [] };
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

  it("recreates the container with its spec label, the common options and quoted arguments", () => {
    const { calls } = bashWithFakeDocker("kb_pg_bouncer_run", {});
    expect(calls).toEqual([
      "rm -f pg-bouncer",
      `run -d --name pg-bouncer --label keybuzz.spec=${hash} --network host --restart unless-stopped --log-opt max-size=10m --log-opt max-file=3 --user 70:70 ${spec.image} pgbouncer /etc/x y.ini`,
    ]);
  });

  it("pulls the pinned image only when it is absent", () => {
    expect(bashWithFakeDocker("kb_pg_bouncer_run", { FAKE_IMAGE_PRESENT: "no" }).calls[0]).toBe(`pull -q ${spec.image}`);
  });

  it("changes the label when the image, an option or the command changes", () => {
    expect(containerSpecHash({ ...spec, image: "edoburu/pgbouncer:v1.24.2" })).not.toBe(hash);
    expect(containerSpecHash({ ...spec, options: ["--user", "71:71"] })).not.toBe(hash);
    expect(containerSpecHash({ ...spec, command: ["pgbouncer"] })).not.toBe(hash);
  });
});
