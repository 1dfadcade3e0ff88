import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { loadVersions, parseInventory, serversOf } from "../../config";
import {
  HAPROXY_HOST_DIR,
  HaproxyLayer,
  HaproxyListener,
  renderHaproxyConfig,
  renderHaproxyStepScript,
} from "../../components/data/haproxy";
import { parsePostgresSettings, postgresHaproxyCaFile, postgresHaproxyListeners } from "../../components/data/postgres";
import { plannedSteps, secretRef } from "../../components/lib/remote";
import { isSecretValue, reveal } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";
import { declared, mockHosts } from "../support/component-mocks";

const inventory = parseInventory(rawStackConfig("prod"));
const settings = parsePostgresSettings(undefined);
const postgres = postgresHaproxyListeners(inventory, settings);

/** The lines of one section of a rendered haproxy.cfg. */
function section(config: string, header: string): string[] {
  const block = config.split("\n\n").find((part) => part.split("\n")[0] === header);
  if (!block) throw new Error(`no section ${header}`);
  return block.split("\n").map((line) => line.trim());
}

describe("renderHaproxyConfig", () => {
  it("renders one listen section per listener, bound on 0.0.0.0, never on the LB IP", () => {
    const config = renderHaproxyConfig(postgres);
    expect(section(config, "listen postgres-write")[1]).toBe("bind 0.0.0.0:5432");
    expect(section(config, "listen postgres-read")[1]).toBe("bind 0.0.0.0:5433");
    expect(config).not.toContain("10.0.0.10");
  });

  it("binds the stats page to localhost only", () => {
    const stats = section(renderHaproxyConfig(postgres), "listen stats");
    expect(stats).toContain("bind 127.0.0.1:8404");
    expect(stats).toContain("stats enable");
  });

  it("takes other modules' listeners in order, with their placeholders untouched", () => {
    const redis: HaproxyListener = {
      name: "redis",
      port: 6379,
      lines: ["mode tcp", `tcp-check send AUTH\\ ${secretRef("redis-password")}\\r\\n`],
    };
    const config = renderHaproxyConfig([...postgres, redis]);
    expect(config.indexOf("listen redis")).toBeGreaterThan(config.indexOf("listen postgres-read"));
    expect(section(config, "listen redis")).toContain("tcp-check send AUTH\\ {{secret:redis-password}}\\r\\n");
  });

  it("rejects a duplicate name or port, and the stats port", () => {
    expect(() => renderHaproxyConfig([...postgres, { name: "postgres-write", port: 7000, lines: [] }])).toThrow(/declared twice/);
    expect(() => renderHaproxyConfig([...postgres, { name: "other", port: 5432, lines: [] }])).toThrow(/already bound/);
    expect(() => renderHaproxyConfig([{ name: "other", port: 8404, lines: [] }])).toThrow(/already bound/);
  });
});

describe("PostgreSQL listeners", () => {
  const [write, read] = postgres;

  it("sends 5432 to the leader: Patroni's OPTIONS /primary over TLS, on the REST API port", () => {
    expect(write).toMatchObject({ name: "postgres-write", port: 5432 });
    expect(write.lines).toContain("option httpchk OPTIONS /primary");
    expect(write.lines).toContain("http-check expect status 200");
    const defaults = write.lines.find((line) => line.startsWith("default-server")) ?? "";
    expect(defaults).toMatch(/ check-ssl verify required ca-file \/usr\/local\/etc\/haproxy\/postgres-ca\.crt port 8008$/);
    // A new leader is UP within downinter + fastinter (0.75 s) of its promotion; a dead one out as fast, its sessions cut.
    expect(defaults).toMatch(/inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 on-marked-down shutdown-sessions/);
    expect(write.lines.filter((line) => line.startsWith("server "))).toEqual([
      "server db-master-01 10.0.0.120:5432 check",
      "server db-slave-01 10.0.0.121:5432 check",
      "server db-slave-02 10.0.0.122:5432 check",
    ]);
  });

  it("sends 5433 to replicas within the configured lag, round robin", () => {
    expect(read).toMatchObject({ name: "postgres-read", port: 5433 });
    expect(read.lines).toContain("option httpchk OPTIONS /replica?lag=1048576");
    expect(read.lines).toContain("balance roundrobin");
    const custom = postgresHaproxyListeners(inventory, parsePostgresSettings({ readMaxLagBytes: 65536 }));
    expect(custom[1].lines).toContain("option httpchk OPTIONS /replica?lag=65536");
  });
});

describe("HaproxyLayer on the mock engine", () => {
  it("runs one step per haproxy host, haproxy-02 after haproxy-01, after the clusters behind it", async () => {
    let before = 0;
    const created = await declared(() => {
      const { list: hosts, ready } = mockHosts(serversOf(inventory, "haproxy"));
      const backend = new hcloud.Server("postgres-verified", { serverType: "cx23", image: "x" });
      before = plannedSteps.length;
      new HaproxyLayer("haproxy", {
        hosts,
        listeners: postgres,
        secrets: { "postgres-ca": pulumi.secret("S3cretCaPem") },
        extraFiles: [postgresHaproxyCaFile()],
        versions: loadVersions(),
        ready,
        dependsOn: [backend],
      });
    });
    const deps = new Map([...created].map(([name, resource]) => [name, resource.deps]));
    expect(deps.get("haproxy-01-haproxy")?.sort()).toEqual(["haproxy-01-base", "postgres-verified"]);
    expect(deps.get("haproxy-02-haproxy")?.sort()).toEqual(["haproxy-01-haproxy", "haproxy-02-base", "postgres-verified"]);
    const step = created.get("haproxy-01-haproxy")?.inputs ?? {};
    expect(isSecretValue(step.stdin)).toBe(true);
    expect(String(reveal(step.create))).not.toContain("S3cretCaPem");
    const files = plannedSteps.slice(before).find((planned) => planned.step === "haproxy-01-haproxy")?.files ?? [];
    expect(files.map((file) => [file.path, file.owner])).toEqual([
      [`${HAPROXY_HOST_DIR}/haproxy.cfg`, "99:99"],
      [`${HAPROXY_HOST_DIR}/postgres-ca.crt`, "99:99"],
    ]);
    expect(files[0].content).toBe(renderHaproxyConfig(postgres));
  });

  it("checks the new config with the image's haproxy -c before a graceful reload, and waits for a server UP per listener", () => {
    const script = renderHaproxyStepScript("haproxy:2.8.15", postgres, 60);
    expect(script.indexOf("haproxy -c -q")).toBeLessThan(script.indexOf("docker kill -s HUP haproxy"));
    expect(script).toContain("for listener in postgres-write postgres-read; do");
    expect(script).toContain("--network host");
  });
});
