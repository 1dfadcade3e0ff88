import {
  DEFAULT_MINIO_SETTINGS,
  minioVolumes,
  renderMinioEnv,
  renderMinioNodeScript,
  renderMinioVerifyScript,
} from "../../components/data/minio";
import { secretKeysIn } from "../../components/lib/remote";
import { isSecretValue, runProgram } from "../../scripts/lib/mock-engine";

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
    expect(outputs.s3Endpoint).toBe("http://s3.keybuzz.io:9000");
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
