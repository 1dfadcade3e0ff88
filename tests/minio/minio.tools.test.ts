import * as fs from "fs";
import * as path from "path";
import { renderMinioNodeScript, renderMinioVerifyScript } from "../../components/data/minio";
import { renderStepScript } from "../../components/lib/remote";
import { loadVersions } from "../../config";
import { runBash } from "../support/bash-fakes";
import { shellcheckSteps, WAIT_UNTIL_ONCE } from "../support/module-checks";
import { tempDir } from "../support/tools";

const NODES = [
  { name: "minio-01", address: "10.0.0.134" },
  { name: "minio-02", address: "10.0.0.131" },
  { name: "minio-03", address: "10.0.0.132" },
];
const URLS = NODES.map((node) => `http://${node.address}:9000/minio/health/cluster`);

/** A curl that logs the URL it was given (its last argument) and answers 200 except for `failing`. */
function fakeCurl(log: string, failing = ""): string {
  return `url=\${!#}\necho "$url" >>${log}\nif [ "$url" = "${failing}" ]; then exit 22; fi`;
}

describe("the MinIO verification (scripts/minio/verify.sh) in bash", () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir("minio-verify");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("asks /minio/health/cluster of every node, in order, as a whole step", () => {
    const log = path.join(dir, "all.log");
    const step = renderStepScript("minio-verify", [], renderMinioVerifyScript(NODES), { timeoutMinutes: 1 });
    const result = runBash(step, { curl: fakeCurl(log) });
    expect(result.status).toBe(0);
    expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual(URLS);
    for (const url of URLS) expect(result.stdout).toContain(`minio verify: ${url} answers 200`);
  });

  it("fails on the node without write quorum, naming it, and asks no further node", () => {
    const log = path.join(dir, "failing.log");
    // kb_wait_until once instead of the step's 300 s budget.
    const result = runBash(`${WAIT_UNTIL_ONCE}\n${renderMinioVerifyScript(NODES)}`, { curl: fakeCurl(log, URLS[1]) });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`minio verify: ${URLS[1]} does not answer 200 (no write quorum)`);
    expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual(URLS.slice(0, 2));
  });
});

describe("the rendered MinIO step scripts and shellcheck", () => {
  it("shellcheck accepts the node and verification steps", () => {
    const findings = shellcheckSteps({
      node: renderMinioNodeScript(NODES[0], loadVersions().images.minio),
      verify: renderMinioVerifyScript(NODES),
    });
    expect(findings).toEqual({ node: "", verify: "" });
  });
});
