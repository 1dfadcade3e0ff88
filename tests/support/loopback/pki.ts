import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { assertLoopback } from "./supervisor";

/**
 * The loopback clusters' CA and node certificates, issued with Debian's `openssl` the way
 * components/security/pki.ts issues them with `@pulumi/tls` (which needs the engine): ECDSA P-256,
 * one certificate per node valid for both server and client authentication, SANs = the node's
 * name, `localhost`, its address and 127.0.0.1; and client-only certificates ({@link issueTestClientCert}).
 */

/** PEM files of one node. */
export interface NodeTls {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A CA and the node certificates it signed, as files in `dir`. */
export interface TestPki {
  readonly caFile: string;
  readonly nodes: Readonly<Record<string, NodeTls>>;
}

function openssl(args: readonly string[]): void {
  const result = spawnSync("openssl", [...args], { encoding: "utf8", timeout: 30_000 });
  if (result.status !== 0) throw new Error(`integration: openssl ${args[0]} failed: ${result.stderr || result.error?.message}`);
}

/** Issues the CA and one certificate per `{name, address}` (addresses must be loopback). */
export function issueTestPki(
  dir: string,
  nodes: readonly { readonly name: string; readonly address: string; readonly dnsNames?: readonly string[] }[],
): TestPki {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, "ca.key");
  const caFile = path.join(dir, "ca.crt");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey]);
  openssl(["req", "-x509", "-new", "-key", caKey, "-sha256", "-days", "2", "-subj", "/O=KeyBuzz/CN=KeyBuzz loopback CA", "-out", caFile]);
  const issued: Record<string, NodeTls> = {};
  for (const node of nodes) {
    assertLoopback(node.address);
    issued[node.name] = signCertificate(dir, { caFile, caKey }, node.name, [
      "extendedKeyUsage = serverAuth, clientAuth",
      `subjectAltName = ${[node.name, "localhost", ...(node.dnsNames ?? [])].map((name) => `DNS:${name}`).join(", ")}, IP:${node.address}, IP:127.0.0.1`,
    ]);
  }
  return { caFile, nodes: issued };
}

/**
 * A client-only certificate of the loopback CA (in the CA's directory), as `Pki.issueClient` issues
 * one (components/security/pki.ts): `clientAuth` only, no SAN, CN = `commonName`.
 */
export function issueTestClientCert(pki: TestPki, commonName: string): NodeTls {
  const dir = path.dirname(pki.caFile);
  return signCertificate(dir, { caFile: pki.caFile, caKey: path.join(dir, "ca.key") }, commonName, ["extendedKeyUsage = clientAuth"]);
}

/** A new P-256 key in `dir` and its certificate signed by the CA, with these extension lines besides the common ones. */
function signCertificate(dir: string, ca: { caFile: string; caKey: string }, name: string, extensionLines: readonly string[]): NodeTls {
  const keyFile = path.join(dir, `${name}.key`);
  const request = path.join(dir, `${name}.csr`);
  const extensions = path.join(dir, `${name}.ext`);
  const certFile = path.join(dir, `${name}.crt`);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyFile]);
  openssl(["req", "-new", "-key", keyFile, "-subj", `/O=KeyBuzz/CN=${name}`, "-out", request]);
  fs.writeFileSync(
    extensions,
    ["basicConstraints = critical, CA:FALSE", "keyUsage = critical, digitalSignature, keyEncipherment", ...extensionLines, ""].join("\n"),
  );
  openssl([
    "x509",
    "-req",
    "-in",
    request,
    "-CA",
    ca.caFile,
    "-CAkey",
    ca.caKey,
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    extensions,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile };
}
