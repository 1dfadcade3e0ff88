import * as pulumi from "@pulumi/pulumi";
import {
  DEFAULT_MINIO_SETTINGS,
  MinioCluster,
  minioBucketFiles,
  minioHaproxyListener,
  minioS3Endpoint,
  minioVolumes,
  parseMinioSettings,
  renderMinioAppPolicy,
  renderMinioBucketScript,
  renderMinioEnv,
  renderMinioNodeScript,
  renderMinioVerifyScript,
} from "../../components/data/minio";
import { secretKeysIn } from "../../components/lib/remote";
import { ConfigError, isConfigError, loadVersions, moduleInventoryProblems, parseInventory } from "../../config";
import { isSecretValue, reveal, runFailingProgram, runProgram } from "../../scripts/lib/mock-engine";
import { declared, mockHosts, testSpec } from "../support/component-mocks";
import { configProblems } from "../support/module-checks";
import { rawStackConfig } from "../support/stack-config";

// Spec 003: the IPs are not sequential, the names are.
const NODES = [
  { name: "minio-01", address: "10.0.0.134" },
  { name: "minio-02", address: "10.0.0.131" },
  { name: "minio-03", address: "10.0.0.132" },
];

describe("MINIO_VOLUMES", () => {
  it("expands the sequential host names of the managed /etc/hosts, not the IPs", () => {
    expect(minioVolumes(NODES)).toBe("http://minio-0{1...3}.keybuzz.io:9000/data");
  });
  it("keeps the width of multi-digit numbers", () => {
    const nodes = [9, 10, 11].map((n) => ({ name: `s3-${String(n).padStart(2, "0")}`, address: "10.0.0.1" }));
    expect(minioVolumes(nodes, { ...DEFAULT_MINIO_SETTINGS, domain: "example.org" })).toBe("http://s3-{09...11}.example.org:9000/data");
  });
  it("refuses names the expansion cannot express", () => {
    expect(() => minioVolumes([NODES[0], NODES[2]])).toThrow(/consecutive/);
    expect(() => minioVolumes([{ name: "storage", address: "10.0.0.1" }])).toThrow(/end in a number/);
  });
  it("refuses them as a configuration error naming keybuzz:servers, so config/ reports it before any resource", () => {
    expect(() => minioVolumes([NODES[0], NODES[2]])).toThrow(ConfigError);
    const raw = structuredClone(rawStackConfig("prod")) as { servers: { name: string }[] };
    const third = raw.servers.find((server) => server.name === "minio-03");
    if (!third) throw new Error("prod has no minio-03");
    third.name = "minio-04";
    expect(moduleInventoryProblems(parseInventory(raw))).toContainEqual(
      expect.stringMatching(
        /^keybuzz:servers: MinIO node names must be consecutive \(minio-01, minio-02, …\) for MINIO_VOLUMES; got minio-01, minio-02, minio-04$/,
      ),
    );
    expect(moduleInventoryProblems(parseInventory(rawStackConfig("prod")))).toEqual([]);
  });
});

/** Every `MINIO_*` variable a node's server sees: the env file's lines and the container's `-e` options. */
function minioVariablesOf(envFile: string, nodeScript: string): Record<string, string> {
  const fromFile = envFile
    .split("\n")
    .filter((line) => line.startsWith("MINIO_"))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]);
  const fromOptions = [...nodeScript.matchAll(/ -e (MINIO_\w+)=(\S+)/g)].map((match) => [match[1], match[2]]);
  return Object.fromEntries([...fromFile, ...fromOptions]);
}

describe("MinIO environment", () => {
  const env = renderMinioEnv(NODES);
  it("gives every node the same pool and root user, the password as a placeholder", () => {
    expect(env).toContain('MINIO_VOLUMES="http://minio-0{1...3}.keybuzz.io:9000/data"');
    expect(env).toContain('MINIO_ROOT_USER="keybuzz-root"');
    expect(secretKeysIn(env)).toEqual(["minio-root-password"]);
  });
  it("redirects the browser to the first node's console, the same URL on every node", () => {
    expect(env).toContain('MINIO_BROWSER_REDIRECT_URL="http://10.0.0.134:9001"');
  });
  it("binds the API and the console (9001) on the node's private IP", () => {
    const script = renderMinioNodeScript(NODES[1], "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z");
    expect(script).toContain("--address 10.0.0.131:9000 --console-address 10.0.0.131:9001");
    expect(script).toContain("MINIO_CONFIG_ENV_FILE=/etc/minio/config.env");
  });
  it("verifies /minio/health/cluster on every node", () => {
    const script = renderMinioVerifyScript(NODES);
    for (const node of NODES) expect(script).toContain(`http://${node.address}:9000/minio/health/cluster`);
  });
});

describe("the program (prod)", () => {
  let program: Awaited<ReturnType<typeof runProgram>>;
  beforeAll(async () => {
    program = await runProgram("prod");
  });

  it("lands the environment on each MinIO node, one after the other, and exports the S3 endpoint", () => {
    const { steps, registrations, outputs } = program;
    const order = ["minio-01", "minio-02", "minio-03"].map((name) => steps.findIndex((step) => step.step === `${name}-minio`));
    expect(order.every((index, position) => index >= 0 && (position === 0 || index > order[position - 1]))).toBe(true);
    for (const name of ["minio-01", "minio-02", "minio-03"]) {
      const step = steps.find((candidate) => candidate.step === `${name}-minio`);
      expect(step?.files.map((file) => file.path)).toEqual(["/etc/keybuzz/minio/config.env"]);
      expect(step?.files[0].content).not.toMatch(/mock-secret/);
      expect(isSecretValue(registrations.find((registration) => registration.name === `${name}-minio`)?.inputs.stdin)).toBe(true);
    }
    expect(steps.some((step) => step.step === "minio-verify")).toBe(true);
    // The HA endpoint: the internal LB in front of the shared HAProxy, not minio-01 (issue 19).
    expect(outputs.s3Endpoint).toBe("http://10.0.0.10:9000");
  });

  it("gives each MinIO node a 200 GB XFS data volume, mounted by its volume step before MinIO starts", () => {
    const { steps, registrations } = program;
    for (const name of ["minio-01", "minio-02", "minio-03"]) {
      const volume = registrations.find(
        (registration) => registration.type === "hcloud:index/volume:Volume" && registration.name === `${name}-data`,
      );
      expect(volume?.inputs).toMatchObject({ size: 200, format: "xfs", automount: false, deleteProtection: true });
      expect(volume?.protect).toBe(true);
      const volumeStep = registrations.find((registration) => registration.name === `${name}-minio-volume`);
      // The volume (its id, a trigger) and the host's verified base OS; nothing of the other nodes.
      expect(volumeStep?.dependsOn).toEqual(expect.arrayContaining([`${name}-base-os-verify`, `${name}-data`]));
      expect(volumeStep?.dependsOn.filter((dependency) => /minio-0\d-minio/.test(dependency))).toEqual([]);
      expect(registrations.find((registration) => registration.name === `${name}-minio`)?.dependsOn).toContain(`${name}-minio-volume`);
      const script = steps.find((step) => step.step === `${name}-minio-volume`)?.script ?? "";
      expect(script).toContain('kb_xfs_volume "$KB_VOLUME_MOUNT"');
      expect(script).toContain("KB_VOLUME_MOUNT='/opt/keybuzz/minio'");
    }
  });

  it("creates the application's bucket, policy and user on minio-01 after the nodes, before the verification, secrets only on stdin", () => {
    const { steps, registrations } = program;
    const bucket = steps.find((step) => step.step === "minio-bucket");
    expect(bucket?.host).toBe("minio-01");
    expect(bucket?.script).toContain("KB_BUCKET='keybuzz-attachments'");
    expect(bucket?.script).toContain("KB_APP_USER='keybuzz-backend'");
    expect(bucket?.files.map((file) => [file.path, file.mode])).toEqual([
      ["/etc/keybuzz/minio/admin/mc.env", "0600"],
      ["/etc/keybuzz/minio/admin/app-secret-key", "0600"],
      ["/etc/keybuzz/minio/admin/app-policy.json", "0600"],
    ]);
    const registration = registrations.find((candidate) => candidate.name === "minio-bucket");
    expect(registration?.dependsOn).toEqual(
      expect.arrayContaining(["minio-01-minio", "minio-02-minio", "minio-03-minio", "secrets-minio-app"]),
    );
    expect(isSecretValue(registration?.inputs.stdin)).toBe(true);
    expect(String(reveal(registration?.inputs.create))).not.toMatch(/mock-secret/);
    expect(registrations.find((candidate) => candidate.name === "minio-verify")?.dependsOn).toContain("minio-bucket");
  });

  it("serves S3 through the shared HAProxy and checks it through the internal LB's service on 9000", () => {
    const { steps, registrations } = program;
    const config =
      steps.find((step) => step.step === "haproxy-01-haproxy")?.files.find((file) => file.path.endsWith("haproxy.cfg"))?.content ?? "";
    expect(config).toContain("listen minio\n    bind 0.0.0.0:9000\n");
    expect(config).toContain("http-check send meth GET uri /minio/health/cluster");
    for (const node of NODES) expect(config).toContain(`server ${node.name} ${node.address}:9000 check`);
    expect(registrations.find((registration) => registration.name === "haproxy-01-haproxy")?.dependsOn).toContain("minio-verify");
    const service = registrations.find((registration) => registration.name === "lb-internal-minio");
    expect(service?.inputs).toMatchObject({ listenPort: 9000, destinationPort: 9000, protocol: "tcp" });
    const check = registrations.find((registration) => registration.name === "minio-01-minio-endpoint-check");
    expect(check?.dependsOn).toEqual(expect.arrayContaining(["minio-verify", "lb-internal", "haproxy-01-haproxy", "haproxy-02-haproxy"]));
    expect(steps.find((step) => step.step === "minio-01-minio-endpoint-check")?.script).toContain("KB_LB_ADDRESS='10.0.0.10'");
  });

  it("gives the three servers the same MINIO_* variables, so MinIO's bootstrap check lets them form the cluster", () => {
    const { steps } = program;
    const variables = ["minio-01", "minio-02", "minio-03"].map((name) => {
      const step = steps.find((candidate) => candidate.step === `${name}-minio`);
      if (!step) throw new Error(`no step ${name}-minio`);
      return minioVariablesOf(step.files[0].content, step.script);
    });
    expect(Object.keys(variables[0])).toEqual(
      expect.arrayContaining(["MINIO_VOLUMES", "MINIO_ROOT_USER", "MINIO_BROWSER_REDIRECT_URL", "MINIO_CONFIG_ENV_FILE"]),
    );
    expect(variables[1]).toEqual(variables[0]);
    expect(variables[2]).toEqual(variables[0]);
  });
});

describe("keybuzz:minio settings", () => {
  it("default to today's production values when the key is absent", () => {
    expect(parseMinioSettings(undefined)).toEqual({
      apiPort: 9000,
      consolePort: 9001,
      dataPath: "/data",
      rootUser: "keybuzz-root",
      bucket: "keybuzz-attachments",
    });
  });

  it("reach the pool, the server's addresses, the verification and the S3 endpoint", () => {
    const settings = parseMinioSettings({ apiPort: 9100, consolePort: 9101, dataPath: "/export", bucket: "other-files" });
    const layout = { ...settings, domain: "keybuzz.io" };
    expect(renderMinioEnv(NODES, layout)).toContain('MINIO_VOLUMES="http://minio-0{1...3}.keybuzz.io:9100/export"');
    const script = renderMinioNodeScript(NODES[0], "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", settings);
    expect(script).toContain("--address 10.0.0.134:9100 --console-address 10.0.0.134:9101");
    expect(script).toContain("--mount type=bind,source=/opt/keybuzz/minio/data,target=/export");
    expect(renderMinioVerifyScript(NODES, settings)).toContain("http://10.0.0.131:9100/minio/health/cluster");
    expect(minioS3Endpoint("10.0.0.10", settings)).toBe("http://10.0.0.10:9100");
    expect(minioHaproxyListener(NODES, settings)).toMatchObject({ port: 9100 });
    expect(minioHaproxyListener(NODES, settings).lines).toContain("server minio-02 10.0.0.131:9100 check");
    const bucket = renderMinioBucketScript(NODES[0], "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", settings);
    expect(bucket).toContain("KB_BUCKET='other-files'");
    expect(bucket).toContain("KB_HEALTH_URL='http://10.0.0.134:9100/minio/health/cluster'");
    expect(minioBucketFiles(NODES[0], settings)[0].content).toContain("@10.0.0.134:9100\n");
  });

  it("give the application a policy of s3:* on its bucket and the bucket's objects, nothing else", () => {
    expect(JSON.parse(renderMinioAppPolicy({ bucket: "keybuzz-attachments" }))).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["s3:*"],
          Resource: ["arn:aws:s3:::keybuzz-attachments", "arn:aws:s3:::keybuzz-attachments/*"],
        },
      ],
    });
  });

  it.each([
    [{ apiPort: 0 }, /^keybuzz:minio\.apiPort: /],
    [{ consolePort: 9000 }, /^keybuzz:minio\.apiPort: apiPort and consolePort must differ$/],
    [{ dataPath: "data" }, /^keybuzz:minio\.dataPath: an absolute path/],
    [{ rootUser: "ab" }, /^keybuzz:minio\.rootUser: at least 3 characters/],
    [{ bucket: "Keybuzz_Attachments" }, /^keybuzz:minio\.bucket: an S3 bucket name/],
    [{ region: "x" }, /^keybuzz:minio: Unrecognized key: "region"$/],
  ])("refuses %j with a ConfigError naming the key", (raw, problem) => {
    expect(configProblems(() => parseMinioSettings(raw))).toContainEqual(expect.stringMatching(problem));
  });

  it("are validated with the inventory before the first resource: a bad keybuzz:minio and non-consecutive names stop the program", async () => {
    const raw = structuredClone(rawStackConfig("prod")) as { servers: { name: string }[] };
    const third = raw.servers.find((server) => server.name === "minio-03");
    if (!third) throw new Error("prod has no minio-03");
    third.name = "minio-04";
    const { error, registrations } = await runFailingProgram("prod", {
      "keybuzz:servers": JSON.stringify(raw.servers),
      "keybuzz:minio": JSON.stringify({ apiPort: "9000" }),
    });
    if (!isConfigError(error)) throw error;
    expect(error.problems).toContainEqual(expect.stringMatching(/^keybuzz:minio\.apiPort: /));
    expect(error.problems).toContainEqual(expect.stringMatching(/^keybuzz:servers: MinIO node names must be consecutive/));
    expect(registrations).toHaveLength(0);
  });
});

describe("MinioCluster on the mock engine", () => {
  it("mounts each volume, waits for each host's base OS and the previous node, creates the bucket, verifies after it, keeps secrets secret", async () => {
    let cluster: MinioCluster | undefined;
    const resources = await declared(() => {
      const {
        list: hosts,
        ready,
        volumes,
      } = mockHosts(NODES.map((node) => ({ ...testSpec(node.name, node.address, "minio"), volumeSizeGb: 200 })));
      cluster = new MinioCluster("minio", {
        hosts,
        after: { hosts: ready },
        versions: loadVersions(),
        settings: DEFAULT_MINIO_SETTINGS,
        secrets: { rootPassword: pulumi.secret("R00tSecretValue"), appSecretKey: pulumi.secret("AppSecretValue") },
        domain: "keybuzz.io",
        volumes,
        loadBalancerIp: "10.0.0.10",
      });
    });
    expect(resources.get("minio-01-minio-volume")?.deps).toEqual(["minio-01-base", "minio-01-data"]);
    expect(resources.get("minio-01-minio")?.deps).toEqual(["minio-01-base", "minio-01-minio-volume"]);
    expect(resources.get("minio-02-minio")?.deps).toEqual(["minio-02-base", "minio-02-minio-volume", "minio-01-minio"]);
    expect(resources.get("minio-03-minio")?.deps).toEqual(["minio-03-base", "minio-03-minio-volume", "minio-02-minio"]);
    // The binary steps wait for every node step and for no other binary step: they run at once.
    const nodeSteps = ["minio-01-minio", "minio-02-minio", "minio-03-minio"];
    const binarySteps = ["minio-01-minio-binary", "minio-02-minio-binary", "minio-03-minio-binary"];
    for (const [index, name] of binarySteps.entries())
      expect(resources.get(name)?.deps).toEqual([`minio-0${index + 1}-base`, ...nodeSteps]);
    expect(resources.get("minio-bucket")?.deps).toEqual([...nodeSteps, ...binarySteps]);
    expect(resources.get("minio-verify")?.deps).toEqual([...nodeSteps, ...binarySteps, "minio-bucket"]);
    for (const name of ["minio-02-minio", "minio-bucket"]) {
      const step = resources.get(name)?.inputs ?? {};
      expect(isSecretValue(step.stdin)).toBe(true);
      expect(String(reveal(step.create))).not.toMatch(/R00tSecretValue|AppSecretValue/);
    }
    // The secrets reach the bucket step's files (stdin), and nowhere else.
    const stdin = Buffer.from(String(reveal(resources.get("minio-bucket")?.inputs.stdin)).split("\n")[0], "base64").toString();
    expect(stdin).toBe(
      "MC_HOST_keybuzz=http://keybuzz-root:R00tSecretValue@10.0.0.134:9000\nMC_HOST_app=http://keybuzz-backend:AppSecretValue@10.0.0.134:9000\n",
    );
    expect(cluster?.s3Endpoint).toBe("http://10.0.0.10:9000");
    expect(cluster?.consoleUrl).toBe("http://10.0.0.134:9001");
    expect(cluster?.haproxy.listeners.map((listener) => [listener.name, listener.port])).toEqual([["minio", 9000]]);
  });
});
