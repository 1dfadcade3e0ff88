import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { dbNodesOf, renderPatroniConfig } from "../../components/data/postgres/render";
import { DEFAULT_POSTGRES_LAYOUT, parsePostgresSettings } from "../../components/data/postgres/settings";
import { requireTool, run } from "../support/tools";
import { clusterDir, loopbackInventory, loopbackPostgresLayout, stackModuleConfig } from "../support/loopback/loopback";

/**
 * Static checks of issue 7 not already in the tools tests (shellcheck and `sshd -t` are in
 * tests/base-os/base-os.tools.test.ts, `haproxy -c` in tests/redis/redis.tools.test.ts and the Redis suite):
 * `patroni --validate-config` on each patroni.yml rendered for the loopback inventory. Patroni's
 * validator checks that the listen ports are free and bin_dir exists, so the layout points at
 * Debian's PostgreSQL binaries and at a temp directory — through the render's layout input. It
 * also probes each etcd endpoint by TCP: plain listeners stand in for etcd here (the PostgreSQL
 * suite runs the real one).
 */
describe("patroni --validate-config on the rendered patroni.yml (loopback layout)", () => {
  const dir = clusterDir("patroni-static");
  const inventory = loopbackInventory("prod");
  const members = dbNodesOf(inventory);
  const listeners: net.Server[] = [];

  beforeAll(async () => {
    for (const member of members) {
      const server = net.createServer((socket) => socket.destroy());
      listeners.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(DEFAULT_POSTGRES_LAYOUT.ports.etcdClient, member.address, resolve);
      });
    }
  });

  afterAll(async () => {
    await Promise.all(listeners.map((server) => new Promise((resolve) => server.close(resolve))));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(members.map((node) => [node.name, node] as const))("patroni --validate-config accepts %s's patroni.yml", (_, node) => {
    const patroni = requireTool("patroni");
    const base = path.join(dir, node.name);
    const layout = loopbackPostgresLayout(base, path.join(dir, `${node.name}-etcd`));
    fs.mkdirSync(layout.paths.configDir, { recursive: true });
    const settings = parsePostgresSettings(stackModuleConfig("prod", "postgres"));
    const file = path.join(layout.paths.configDir, "patroni.yml");
    fs.writeFileSync(file, renderPatroniConfig({ node, members, settings, layout }));
    const result = run(patroni, ["--validate-config", file]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
