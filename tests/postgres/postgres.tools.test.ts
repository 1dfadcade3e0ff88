import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import {
  DbNode,
  DEFAULT_POSTGRES_LAYOUT,
  parsePostgresSettings,
  PATRONI_DOCKERFILE,
  PostgresLayout,
  PostgresSettings,
  patroniImageTag,
  renderEtcdRunScript,
  renderEtcdStepScript,
  renderImageBuildScript,
  renderPatroniConfig,
  renderPatroniStepScript,
  renderVolumeScript,
} from "../../components/data/postgres";
import { fillSecrets, renderStepScript } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { loopbackPostgresLayout } from "../support/loopback/loopback";
import { requireTool, run, tempDir } from "../support/tools";

// Addresses of this file only (jest runs tool tests in parallel).
const MEMBERS: DbNode[] = [1, 2, 3].map((index) => ({ name: `pg-${index}`, address: `127.0.13.${index}` }));
const SECRETS = { "postgres-superuser": "s1", "postgres-replication": "s2", "patroni-restapi": "s3", "postgres-rewind": "s4" };

/** Patroni's validator requires the DCS peers to be reachable: stand-in listeners on loopback. */
async function listeners(ports: number[]): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  for (const member of MEMBERS) {
    for (const port of ports) {
      const server = net.createServer((socket) => socket.destroy());
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, member.address, resolve));
      servers.push(server);
    }
  }
  return servers;
}

/** The loopback layout in `dir`, its config dir created (the validator reads patroni.yml there). */
function layoutIn(dir: string): PostgresLayout {
  const layout = loopbackPostgresLayout(dir, path.join(dir, "etcd"));
  fs.mkdirSync(layout.paths.configDir, { recursive: true });
  return layout;
}

function validate(settings: PostgresSettings, layout: PostgresLayout): ReturnType<typeof run> {
  const patroni = requireTool("patroni");
  const file = path.join(layout.paths.configDir, `patroni-${settings.dcs}.yml`);
  fs.writeFileSync(file, fillSecrets(renderPatroniConfig({ node: MEMBERS[0], members: MEMBERS, settings, layout }), SECRETS));
  return run(patroni, ["--validate-config", file]);
}

describe("Patroni's --validate-config on the rendered patroni.yml", () => {
  let servers: net.Server[] = [];
  beforeAll(async () => {
    servers = await listeners([DEFAULT_POSTGRES_LAYOUT.ports.etcdClient, DEFAULT_POSTGRES_LAYOUT.ports.raft]);
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it.each(["etcd3", "raft"] as const)("accepts the %s variant", (dcs) => {
    const result = validate(parsePostgresSettings({ dcs }), layoutIn(tempDir(`patroni-${dcs}`)));
    expect(result.stderr.trim()).toBe("");
    expect(result.status).toBe(0);
  });

  it("rejects a config whose bin_dir lacks PostgreSQL (the check is real)", () => {
    const dir = tempDir("patroni-bad");
    const layout = layoutIn(dir);
    const result = validate(parsePostgresSettings(undefined), { ...layout, paths: { ...layout.paths, binDir: dir } });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/bin_dir/);
  });
});

describe("other rendered PostgreSQL files", () => {
  it("shellcheck passes the etcd run script", () => {
    const shellcheck = requireTool("shellcheck");
    const file = path.join(tempDir("etcd-run"), "run.sh");
    fs.writeFileSync(file, renderEtcdRunScript(MEMBERS[0], MEMBERS, loadVersions()));
    const result = run(shellcheck, ["-s", "bash", file]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  it("shellcheck passes every step body of the module (each step's variables all read, none missing a quote)", () => {
    const shellcheck = requireTool("shellcheck");
    const versions = loadVersions();
    const settings = parsePostgresSettings(undefined);
    const tag = patroniImageTag(versions);
    const dir = tempDir("postgres-steps");
    const bodies: Record<string, string> = {
      volume: renderVolumeScript(),
      image: renderImageBuildScript(versions, tag),
      etcd: renderEtcdStepScript(DEFAULT_POSTGRES_LAYOUT, "quay.io/coreos/etcd:v3.5.21@sha256:" + "0".repeat(64)),
      ...Object.fromEntries(
        (["accounts", "node", "finish", "verify"] as const).map((step) => [
          step,
          renderPatroniStepScript(step, MEMBERS[0], MEMBERS, settings, tag),
        ]),
      ),
    };
    const files = Object.entries(bodies).map(([name, body]) => {
      const file = path.join(dir, `${name}.sh`);
      fs.writeFileSync(file, renderStepScript(`postgres ${name}`, [], body));
      return file;
    });
    const result = run(shellcheck, ["--severity=warning", "--shell=bash", ...files]);
    expect(result.stdout).toBe("");
    expect(result.status).toBe(0);
  });

  it("the Patroni Dockerfile passes the Dockerfile linter (dockerfile-utils) without a problem", () => {
    let validate: (content: string) => { message: string }[];
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ({ validate } = require("dockerfile-utils") as { validate: typeof validate });
    } catch {
      throw new Error("the npm dev dependency dockerfile-utils is missing (npm install --save-dev dockerfile-utils)");
    }
    expect(validate(fs.readFileSync(PATRONI_DOCKERFILE, "utf8")).map((problem) => problem.message)).toEqual([]);
    expect(validate("FROM alpine\nEXPOSE abc\n").length).toBeGreaterThan(0);
  });

  it("python3 compiles the REST API state helper", () => {
    const python = requireTool("python3");
    const result = run(python, ["-m", "py_compile", path.join(__dirname, "..", "..", "scripts", "postgres", "patroni_state.py")]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
