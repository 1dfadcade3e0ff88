import { hetznerPlan } from "../../scripts/preflight/checks";
import { checkHetzner, HetznerPlan, sshFingerprint } from "../../scripts/preflight/hetzner";
import type { FactResult } from "../../scripts/preflight/source";
import { loadVersions } from "../../config/versions";
import { runProgram } from "../../scripts/lib/mock-engine";
import { healthyProject, loadBalancerType, location, named, serverType, startFakeHetzner, systemImage } from "../support/fake-hetzner";

const TOKEN = "test-token-for-the-loopback-fake";

const LIMITS = { servers: 40, load_balancers: 10, placement_groups: 50, primary_ips: 100, volumes: 20 };

const statusOf = (rows: FactResult[], fact: RegExp) =>
  rows.filter((row) => fact.test(row.fact)).map((row) => `${row.status}: ${row.detail}`);

describe("preflight: Hetzner facts against a loopback API with documented response shapes", () => {
  let plan: HetznerPlan;

  beforeAll(async () => {
    const run = await runProgram("prod");
    plan = hetznerPlan(run.registrations, loadVersions());
  });

  it("reads the prod plan's Hetzner needs from the program", () => {
    expect(plan).toMatchObject({
      location: "fsn1",
      networkZone: "eu-central",
      image: "ubuntu-24.04",
      loadBalancerTypes: ["lb11", "lb21"],
      primaryIpsPerServer: 2,
    });
    expect(plan.serverTypes).toEqual(["cx23", "cx33", "cx43"]);
    expect(plan.names.servers).toHaveLength(29);
    expect(plan.names.volumes).toHaveLength(9);
    expect(plan.sshKeys).toHaveLength(1);
  });

  it("holds on a project that has everything", async () => {
    const api = await startFakeHetzner(healthyProject(plan.serverTypes), TOKEN);
    try {
      const rows = await checkHetzner(plan, { baseUrl: api.baseUrl, token: TOKEN, timeoutMs: 5000, limits: LIMITS });
      expect(rows.filter((row) => row.status !== "ok")).toEqual([]);
      expect(rows.map((row) => row.fact)).toEqual(
        expect.arrayContaining([
          "token works",
          "location fsn1 in network zone eu-central",
          "server type cx43 offered in fsn1, not deprecated",
          "OS image ubuntu-24.04 (x86)",
        ]),
      );
      expect(statusOf(rows, /primary ips/)).toEqual(["ok: 58 needed (0 in the project + 58 new) ≤ limit 100"]);
    } finally {
      await api.close();
    }
  });

  it("fails on a missing server type, a deprecated one, an exceeded limit and a duplicate SSH key", async () => {
    const project = healthyProject(plan.serverTypes);
    project.server_types = [
      serverType(1, "cx23", [{ name: "fsn1" }]),
      serverType(2, "cx33", [
        { name: "fsn1", deprecation: { announced: "2026-01-01T00:00:00Z", unavailable_after: "2026-04-01T00:00:00Z" } },
      ]),
    ];
    project.ssh_keys = [
      {
        id: 2323,
        name: "laptop",
        fingerprint: sshFingerprint(plan.sshKeys[0].publicKey),
        public_key: plan.sshKeys[0].publicKey,
        labels: {},
        created: "2025-01-01T00:00:00+00:00",
      },
    ];
    project.servers = Array.from({ length: 15 }, (_, index) => named(index + 1, `other-app-${index + 1}`));
    const api = await startFakeHetzner(project, TOKEN);
    try {
      const rows = await checkHetzner(plan, { baseUrl: api.baseUrl, token: TOKEN, timeoutMs: 5000, limits: LIMITS });
      expect(statusOf(rows, /server type cx43/)).toEqual(["fail: no such server type"]);
      expect(statusOf(rows, /server type cx33/)).toEqual([
        "fail: deprecated (announced 2026-01-01T00:00:00Z, unavailable after 2026-04-01T00:00:00Z)",
      ]);
      expect(statusOf(rows, /server type cx23/)).toEqual(["ok: offered in fsn1"]);
      expect(statusOf(rows, /^SSH key keybuzz-operator-1/)).toEqual([expect.stringMatching(/^fail: already uploaded as "laptop"/)]);
      expect(statusOf(rows, /limit of servers/)).toEqual([
        "fail: 44 needed (15 in the project + 29 new) > limit 40: ask Hetzner to raise it",
      ]);
      expect(statusOf(rows, /limit of volumes/)).toEqual(["ok: 9 needed (0 in the project + 9 new) ≤ limit 20"]);
      // The SSH key is looked up by its MD5 fingerprint, as Hetzner lists it.
      expect(api.requests).toContain(
        `/v1/ssh_keys?fingerprint=${encodeURIComponent(sshFingerprint(plan.sshKeys[0].publicKey))}&page=1&per_page=50`,
      );
    } finally {
      await api.close();
    }
  });

  it("fails a location outside the network zone, an LB type not offered there, a missing image", async () => {
    const project = healthyProject(plan.serverTypes);
    project.locations = [location(1, "fsn1", "us-east")];
    project.load_balancer_types = [loadBalancerType(1, "lb11", ["ash"])];
    project.images = [systemImage(1, "ubuntu-22.04")];
    const api = await startFakeHetzner(project, TOKEN);
    try {
      const rows = await checkHetzner(plan, { baseUrl: api.baseUrl, token: TOKEN, timeoutMs: 5000, limits: LIMITS });
      expect(statusOf(rows, /^location/)).toEqual(["fail: fsn1 is in network zone us-east"]);
      expect(statusOf(rows, /load balancer type lb11/)).toEqual(["fail: no price in fsn1: not offered there"]);
      expect(statusOf(rows, /OS image/)).toEqual(["fail: no such system image"]);
    } finally {
      await api.close();
    }
  });

  it("counts existing resources of the same name once (a re-run on a deployed stack), and says limits it cannot read", async () => {
    const project = healthyProject(plan.serverTypes);
    project.servers = plan.names.servers.map((name, index) => named(index + 1, name));
    const api = await startFakeHetzner(project, TOKEN);
    try {
      const rows = await checkHetzner(plan, { baseUrl: api.baseUrl, token: TOKEN, timeoutMs: 5000, limits: {} });
      expect(statusOf(rows, /limit of servers/)).toEqual([
        expect.stringMatching(/^skipped: 29 needed \(29 in the project \+ 0 new\); the API has no limits endpoint/),
      ]);
      expect(statusOf(rows, /primary ips/)).toEqual([expect.stringMatching(/^skipped: 0 needed/)]);
    } finally {
      await api.close();
    }
  });

  it("fails on a refused token and reads nothing else", async () => {
    const api = await startFakeHetzner(healthyProject(plan.serverTypes), TOKEN);
    try {
      const rows = await checkHetzner(plan, { baseUrl: api.baseUrl, token: "wrong", timeoutMs: 5000, limits: LIMITS });
      expect(rows).toEqual([
        expect.objectContaining({ fact: "token works", status: "fail", detail: "unauthorized: unable to authenticate (HTTP 401)" }),
      ]);
      const none = await checkHetzner(plan, { baseUrl: api.baseUrl, token: undefined, timeoutMs: 5000, limits: LIMITS });
      expect(none).toEqual([
        expect.objectContaining({ fact: "token works", status: "fail", detail: expect.stringContaining("HCLOUD_TOKEN") }),
      ]);
    } finally {
      await api.close();
    }
  });
});
