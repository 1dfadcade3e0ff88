import { backendStandins, stdinFiles } from "./backends";
import { planHostSteps } from "./plan";

/** The stand-in backends of the real-host tier, chosen from the program's own rendered haproxy.cfg. */

describe("real-host tier: stand-in backends for HAProxy's HTTP checks", () => {
  it("gives every httpchk listener one server the tier does not boot, answering exactly that listener's check", async () => {
    const plan = await planHostSteps({
      stack: "staging",
      configOverride: {},
      hosts: ["redis-01", "redis-02", "redis-03", "haproxy-01", "db-master-01"],
      kinds: ["base-os", "base-os-verify", "redis", "redis-master-roll", "redis-verify", "haproxy"],
      assumedDoneKinds: ["postgres-verify", "rabbitmq-verify", "minio-verify"],
    });
    const haproxy = plan.steps.find((step) => step.kind === "haproxy");
    const cfg = stdinFiles(haproxy ?? plan.steps[0]).find((file) => /^listen /m.test(file)) ?? "";
    // db-master-01 (10.0.0.120) is booted and runs no PostgreSQL: its address is never a stand-in's.
    const booted = ["10.0.0.123", "10.0.0.124", "10.0.0.125", "10.0.0.11", "10.0.0.120"];
    const standins = backendStandins(cfg, booted, "/logs");

    const authorization = /hdr Authorization "(Basic [^"]+)"/.exec(cfg)?.[1];
    expect(authorization).toMatch(/^Basic [A-Za-z0-9+/=]+$/);
    expect(authorization).not.toContain("mock-secret");
    expect(standins).toEqual([
      {
        listener: "postgres-write",
        address: "10.0.0.121",
        port: 8008,
        tls: true,
        method: "OPTIONS",
        uri: "/primary",
        authorization: null,
        log: "/logs/backend-standin-10.0.0.121-8008.log",
      },
      // The read listener's first free server on 8008 is taken by the write listener's stand-in.
      expect.objectContaining({ listener: "postgres-read", address: "10.0.0.122", port: 8008, tls: true, uri: "/replica?lag=1048576" }),
      {
        listener: "rabbitmq",
        address: "10.0.0.126",
        port: 15672,
        tls: false,
        method: "GET",
        uri: "/api/health/checks/port-listener/5672",
        authorization,
        log: "/logs/backend-standin-10.0.0.126-15672.log",
      },
      {
        listener: "minio",
        address: "10.0.0.134",
        port: 9000,
        tls: false,
        method: "GET",
        uri: "/minio/health/cluster",
        authorization: null,
        log: "/logs/backend-standin-10.0.0.134-9000.log",
      },
    ]);
  });

  it("refuses a listener whose servers are all booted hosts (no address left for a stand-in)", () => {
    const cfg = "listen pg\n    option httpchk OPTIONS /primary\n    server a 10.0.0.120:5432 check\n";
    expect(() => backendStandins(cfg, ["10.0.0.120"], "/logs")).toThrow("listener pg: no server address free");
    expect(backendStandins(cfg, [], "/logs")).toEqual([expect.objectContaining({ address: "10.0.0.120", port: 5432, uri: "/primary" })]);
  });
});
