import * as fs from "fs";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/data/haproxy";
import { parsePostgresSettings, postgresHaproxyListeners } from "../../components/data/postgres";
import { parseInventory } from "../../config";
import { rawStackConfig } from "../support/stack-config";
import { requireTool, run, tempDir } from "../support/tools";

const inventory = parseInventory(rawStackConfig("prod"));

/** A throwaway CA certificate: HAProxy loads the ca-file of `check-ssl verify required` at check time. */
function caFile(dir: string): string {
  const openssl = requireTool("openssl");
  const file = path.join(dir, "ca.crt");
  const result = run(openssl, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    path.join(dir, "ca.key"),
    "-out",
    file,
    "-subj",
    "/CN=test-ca",
    "-days",
    "1",
  ]);
  expect(result.status).toBe(0);
  return file;
}

describe("haproxy -c on the rendered haproxy.cfg", () => {
  it("accepts the PostgreSQL listeners without a warning", () => {
    const haproxy = requireTool("haproxy");
    const dir = tempDir("haproxy");
    const listeners = postgresHaproxyListeners(inventory, parsePostgresSettings(undefined), { caFile: caFile(dir) });
    const config = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(config, renderHaproxyConfig(listeners));
    const result = run(haproxy, ["-c", "-f", config]);
    expect(result.stderr.trim()).toBe("");
    expect(result.stdout).toMatch(/Configuration file is valid/);
    expect(result.status).toBe(0);
  });

  it("rejects a listener with a bad line (the check is real)", () => {
    const haproxy = requireTool("haproxy");
    const dir = tempDir("haproxy-bad");
    const config = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(
      config,
      renderHaproxyConfig([{ name: "broken", port: 15432, lines: ["mode tcp", "server a 127.0.0.1:5432 check fastinter soon"] }]),
    );
    expect(run(haproxy, ["-c", "-f", config]).status).not.toBe(0);
  });
});
