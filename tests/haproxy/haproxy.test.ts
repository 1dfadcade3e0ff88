import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { loadVersions, parseInventory, parseModuleSettings, serversOf } from "../../config";
import {
  HAPROXY_HOST_DIR,
  HaproxyLayer,
  HaproxyLayerArgs,
  parseHaproxySettings,
  renderHaproxyConfig,
  renderHaproxyStepScript,
} from "../../components/data/haproxy";
import { parsePostgresSettings, postgresHaproxyCaFile, postgresHaproxyListeners } from "../../components/data/postgres";
import type { HaproxyContribution, HaproxyListener } from "../../components/lib/contract";
import { plannedSteps, renderStepScript, secretRef } from "../../components/lib/remote";
import { declareResources, isSecretValue, reveal } from "../../scripts/lib/mock-engine";
import { rawStackConfig } from "../support/stack-config";
import { declared, mockHosts, testSpec } from "../support/component-mocks";
import { runBash } from "../support/bash-fakes";

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

/** The layer's arguments on mocked haproxy hosts, serving `contributions`. Call inside `declared`'s build. */
function layerArgs(contributions: HaproxyContribution[], extra: Partial<HaproxyLayerArgs> = {}): HaproxyLayerArgs {
  const { list: hosts, ready } = mockHosts(serversOf(inventory, "haproxy"));
  return {
    hosts,
    versions: loadVersions(),
    settings: parseHaproxySettings(undefined),
    secrets: {},
    after: { hosts: ready },
    contributions,
    ...extra,
  };
}

describe("HaproxyLayer on the mock engine", () => {
  it("runs one step per haproxy host, haproxy-02 after haproxy-01, after the clusters behind it", async () => {
    let before = 0;
    let layer: HaproxyLayer | undefined;
    const created = await declared(() => {
      const backend = new hcloud.Server("postgres-verified", { serverType: "cx23", image: "x" });
      const args = layerArgs([
        {
          listeners: postgres,
          files: [postgresHaproxyCaFile()],
          secrets: { "postgres-ca": pulumi.secret("S3cretCaPem") },
          verified: backend,
        },
      ]);
      before = plannedSteps.length;
      layer = new HaproxyLayer("haproxy", args);
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
    expect(Object.keys(layer!.verifiedByHost)).toEqual(["haproxy-01", "haproxy-02"]);
    expect(layer!.verified).toBe(layer!.verifiedByHost["haproxy-02"]);
  });

  it("renders every contribution's listeners in order and declares their endpoint checks once HAProxy and the LB are ready", async () => {
    const queue = testSpec("queue-01", "10.0.0.126", "rabbitmq");
    const registrations = await declareResources(() => {
      const { list: queueHosts } = mockHosts([queue]);
      const moduleVerified = new hcloud.Server("queue-verified", { serverType: "cx23", image: "x" });
      const lb = new hcloud.LoadBalancer("lb-internal", { loadBalancerType: "lb11" });
      const former = new pulumi.ComponentResource("keybuzz:data:RabbitMqCluster", "rabbitmq");
      const amqp: HaproxyListener = { name: "amqp", port: 5672, lines: ["mode tcp", "server queue-01 10.0.0.126:5672 check"] };
      const contribution: HaproxyContribution = {
        listeners: [amqp],
        endpointChecks: [
          {
            name: "queue-01-amqp-check",
            host: queueHosts[0],
            listener: "amqp",
            script: (address, port) => `echo through ${address}:${port}`,
            triggers: ["fingerprint-1"],
            formerParent: former,
          },
        ],
        verified: moduleVerified,
      };
      new HaproxyLayer(
        "haproxy",
        layerArgs([{ listeners: postgres, verified: moduleVerified }, contribution], {
          loadBalancer: { address: "10.0.0.10", ready: lb },
        }),
      );
    });
    const byName = (name: string) => registrations.find((registration) => registration.name === name);
    const check = byName("queue-01-amqp-check");
    expect(check?.dependsOn.sort()).toEqual(["haproxy-01-haproxy", "haproxy-02-haproxy", "lb-internal", "queue-verified"]);
    expect(String(reveal(check?.inputs.create))).toContain("\necho through 10.0.0.10:5672\n");
    expect(reveal(check?.inputs.triggers)).toEqual(["fingerprint-1"]);
    // Declared under the layer, it keeps the URN it had under its module through an alias (moved, not replaced).
    expect(check?.parent).toBe(byName("haproxy")?.urn);
    expect(check?.aliasUrns).toEqual([
      "urn:pulumi:test::keybuzz::keybuzz:data:RabbitMqCluster$command:remote:Command::queue-01-amqp-check",
    ]);
    const cfg = String(reveal(byName("haproxy-01-haproxy")?.inputs.create));
    expect(cfg.indexOf("listen postgres-read")).toBeLessThan(cfg.indexOf("listen amqp"));
  });

  it("declares no endpoint check without a load balancer, and refuses a secret key contributed twice", async () => {
    const created = await declared(() => {
      const verified = new hcloud.Server("module-verified", { serverType: "cx23", image: "x" });
      const { list: hosts } = mockHosts([testSpec("redis-01", "10.0.0.123", "redis")]);
      const check = { name: "redis-01-check", host: hosts[0], listener: "postgres-write", script: () => "true", triggers: [] };
      new HaproxyLayer("haproxy", layerArgs([{ listeners: postgres, endpointChecks: [check], verified }]));
      const twice = { "postgres-ca": pulumi.secret("a") };
      expect(
        () =>
          new HaproxyLayer(
            "haproxy-twice",
            layerArgs([
              { listeners: [], secrets: twice, verified },
              { listeners: [], secrets: twice, verified },
            ]),
          ),
      ).toThrow(/"postgres-ca" is contributed twice/);
    });
    expect(created.has("redis-01-check")).toBe(false);
  });
});

describe("keybuzz:haproxy settings", () => {
  it("default to a 120 s wait, name a bad key, and are validated in the config pass with the other modules", () => {
    expect(parseHaproxySettings(undefined)).toEqual({ verifyTimeoutSeconds: 120 });
    expect(() => parseHaproxySettings({ verifyTimeoutSeconds: 5 })).toThrow(/keybuzz:haproxy\.verifyTimeoutSeconds/);
    expect(() => parseHaproxySettings({ verifyTimeout: 60 })).toThrow(/keybuzz:haproxy/);
    expect(parseModuleSettings({ haproxy: { verifyTimeoutSeconds: 300 } }).settings?.haproxy).toEqual({ verifyTimeoutSeconds: 300 });
    expect(parseModuleSettings({ haproxy: { verifyTimeoutSeconds: 0 } }).problems).toEqual([
      expect.stringMatching(/^keybuzz:haproxy\.verifyTimeoutSeconds/),
    ]);
  });

  it("bound each host's wait for a checked server", async () => {
    const created = await declared(() => {
      const verified = new hcloud.Server("module-verified", { serverType: "cx23", image: "x" });
      new HaproxyLayer(
        "haproxy",
        layerArgs([{ listeners: postgres, verified }], { settings: parseHaproxySettings({ verifyTimeoutSeconds: 300 }) }),
      );
    });
    expect(String(reveal(created.get("haproxy-01-haproxy")?.inputs.create))).toContain("KB_VERIFY_SECONDS=");
    expect(plannedSteps.filter((step) => step.step === "haproxy-01-haproxy").at(-1)?.script).toContain("\nKB_VERIFY_SECONDS='300'\n");
  });
});

describe("the HAProxy step script", () => {
  it("checks the new config with the image's haproxy -c before a graceful reload, and waits for a checked server per listener", () => {
    const script = renderHaproxyStepScript("haproxy:2.8.15", postgres, 60);
    expect(script.indexOf("haproxy -c -q")).toBeLessThan(script.indexOf("docker kill -s HUP haproxy"));
    expect(script).toContain("KB_LISTENERS='postgres-write postgres-read'\n");
    expect(script).toContain("KB_VERIFY_SECONDS='60'\n");
    expect(script).toContain("--network host");
  });

  /** Runs the whole step with a fake docker and a fake stats page serving `csv`. */
  const runStep = (csv: string) =>
    runBash(renderStepScript("haproxy-01-haproxy on haproxy-01", [], renderHaproxyStepScript("haproxy:2.8.15", postgres, 1)), {
      docker: 'echo "docker $*" >>"$KB_STEP_LOG_DIR/../docker.log"\n[ "$1" != inspect ] && [ "$2" != inspect ]',
      curl: `cat <<'CSV'\n${csv}\nCSV`,
    });
  const row = (proxy: string, server: string, status: string, check: string) => {
    const fields = Array.from({ length: 80 }, () => "");
    [fields[0], fields[1], fields[17], fields[36]] = [proxy, server, status, check];
    return fields.join(",");
  };

  it("passes once every listener has an UP server whose last check passed", () => {
    const result = runStep(
      [row("postgres-write", "db-master-01", "UP", "L7OK"), row("postgres-read", "db-slave-01", "UP", "* L7OK")].join("\n"),
    );
    expect(result.stderr).not.toMatch(/failed/);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("HAProxy: listener postgres-write has a server UP whose last check passed");
    expect(result.stdout).toContain("HAProxy: listener postgres-read has a server UP whose last check passed");
  });

  it("fails, naming the listener, when its servers are UP only because no check has run yet", () => {
    const result = runStep(
      [row("postgres-write", "db-master-01", "UP", "L7OK"), row("postgres-read", "db-slave-01", "UP", "INI")].join("\n"),
    );
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("HAProxy: listener postgres-read has no server UP whose last check passed");
  });
});
