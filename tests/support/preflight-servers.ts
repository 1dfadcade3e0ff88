import { ChildProcess, spawn } from "child_process";
import { createHash, createSign, randomBytes } from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { gzipSync } from "zlib";
import { requireTool, run, tempDir } from "./tools";

/**
 * Real protocol servers on loopback for the preflight tests (127.0.20.x, random free ports):
 * Debian's distribution registry behind Docker's token authentication, a static HTTP server for
 * apt repositories and chart indexes, and a Hetzner-API-shaped JSON server.
 */

/** The preflight suite's loopback addresses (other suites use other 127.0.x.y). */
export const LOOPBACK = { registry: "127.0.20.1", token: "127.0.20.2", files: "127.0.20.3", hetzner: "127.0.20.4", dead: "127.0.20.5" };

/** A free TCP port on `host` (bound, then released). */
export async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An HTTP server on loopback; resolves once listening. */
export async function listen(host: string, handler: http.RequestListener): Promise<{ base: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    base: `http://${host}:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Serves the files under `root` (GET only; 404 for anything else). */
export function serveFiles(host: string, root: string) {
  return listen(host, (request, response) => {
    const file = path.join(root, decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname));
    if (request.method !== "GET" || !file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404).end("not found");
      return;
    }
    response.writeHead(200).end(fs.readFileSync(file));
  });
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");
export const sha256 = (data: Buffer | string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** A running registry with its token server. */
export interface TestRegistry {
  /** Registry API base (`http://127.0.20.1:<port>`). */
  readonly base: string;
  /** Scopes asked of the token server, in order (`repository:keybuzz/etcd:pull`). */
  readonly tokenScopes: string[];
  /** Pushes blobs and a manifest (by tag or digest) with a push token; returns the manifest digest. */
  pushManifest(repository: string, reference: string, manifest: object, mediaType: string, blobs?: Buffer[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's `docker-registry` with token authentication: its realm is a token server on
 * 127.0.20.2 that signs RS256 JWTs with a throwaway certificate (`x5c` header), which the registry
 * trusts through `rootcertbundle` (distribution v2.8 `registry/auth/token`). Anonymous requests
 * get whatever scope they ask for, as Docker Hub grants pull on public repositories.
 */
export async function startRegistry(): Promise<TestRegistry> {
  const registryBinary = requireTool("docker-registry");
  const openssl = requireTool("openssl");
  const dir = tempDir("preflight-registry");
  const keyFile = path.join(dir, "token.key");
  const certFile = path.join(dir, "token.crt");
  const made = run(openssl, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-subj",
    "/CN=keybuzz-test-token",
    "-days",
    "1",
  ]);
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  const privateKey = fs.readFileSync(keyFile, "utf8");
  const certDer = fs
    .readFileSync(certFile, "utf8")
    .replace(/-----(BEGIN|END) CERTIFICATE-----/g, "")
    .replace(/\s+/g, "");
  const service = "keybuzz-test-registry";
  const issuer = "keybuzz-test-issuer";
  const tokenScopes: string[] = [];

  const tokenServer = await listen(LOOPBACK.token, (request, response) => {
    const query = new URL(request.url ?? "/", "http://x").searchParams;
    const scope = query.get("scope") ?? "";
    tokenScopes.push(scope);
    const [type, name, actions] = scope.split(":");
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: "",
      aud: query.get("service"),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access: type ? [{ type, name, actions: (actions ?? "").split(",") }] : [],
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = createSign("RSA-SHA256").update(signingInput).sign(privateKey);
    response
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ token: `${signingInput}.${base64url(signature)}`, expires_in: 300 }));
  });

  const port = await freePort(LOOPBACK.registry);
  const base = `http://${LOOPBACK.registry}:${port}`;
  const configFile = path.join(dir, "config.yml");
  fs.writeFileSync(
    configFile,
    [
      "version: 0.1",
      "log: { level: warn }",
      `storage: { filesystem: { rootdirectory: ${path.join(dir, "data")} }, delete: { enabled: true } }`,
      `http: { addr: "${LOOPBACK.registry}:${port}" }`,
      `auth: { token: { realm: "${tokenServer.base}/token", service: ${service}, issuer: ${issuer}, rootcertbundle: ${certFile} } }`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(registryBinary, ["serve", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const answer = await fetch(`${base}/v2/`);
      if (answer.status === 401) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`docker-registry did not start: ${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const pushToken = async (repository: string) => {
    const answer = await fetch(`${tokenServer.base}/token?service=${service}&scope=repository:${repository}:pull,push`);
    return ((await answer.json()) as { token: string }).token;
  };
  return {
    base,
    tokenScopes,
    async pushManifest(repository, reference, manifest, mediaType, blobs = []) {
      const authorization = `Bearer ${await pushToken(repository)}`;
      for (const blob of blobs) {
        const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: { authorization } });
        if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status} ${await start.text()}`);
        const location = new URL(start.headers.get("location") ?? "", base);
        location.searchParams.set("digest", sha256(blob));
        const put = await fetch(location, {
          method: "PUT",
          headers: { authorization, "content-type": "application/octet-stream" },
          body: blob,
        });
        if (put.status !== 201) throw new Error(`blob PUT: HTTP ${put.status} ${await put.text()}`);
      }
      const body = JSON.stringify(manifest);
      const put = await fetch(`${base}/v2/${repository}/manifests/${reference}`, {
        method: "PUT",
        headers: { authorization, "content-type": mediaType },
        body,
      });
      if (put.status !== 201) throw new Error(`manifest PUT: HTTP ${put.status} ${await put.text()}`);
      return sha256(body);
    },
    async stop() {
      child.kill("SIGTERM");
      await tokenServer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Media types of the OCI image spec (image-spec v1.0: manifest, index, config, gzip layer). */
export const OCI = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

/** A tiny single-platform OCI image built by hand: a config blob, one layer, the manifest. */
export function tinyImage(architecture: string, layerText: string) {
  const config = Buffer.from(
    JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: [sha256(layerText)] }, config: {} }),
  );
  const layer = Buffer.from(layerText);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    config: { mediaType: OCI.config, digest: sha256(config), size: config.length },
    layers: [{ mediaType: OCI.layer, digest: sha256(layer), size: layer.length }],
  };
  return { manifest, blobs: [config, layer], digest: sha256(JSON.stringify(manifest)), size: Buffer.byteLength(JSON.stringify(manifest)) };
}

/** Builds a minimal binary package with dpkg-deb (no payload but its control file). */
export function buildDeb(dir: string, name: string, version: string): void {
  const root = path.join(dir, "build", `${name}_${version}`);
  fs.mkdirSync(path.join(root, "DEBIAN"), { recursive: true });
  fs.writeFileSync(
    path.join(root, "DEBIAN", "control"),
    `Package: ${name}\nVersion: ${version}\nArchitecture: amd64\nMaintainer: KeyBuzz tests <tests@keybuzz.invalid>\nDescription: preflight test package\n`,
  );
  const pool = path.join(dir, "pool");
  fs.mkdirSync(pool, { recursive: true });
  const built = run(requireTool("dpkg-deb"), [
    "--build",
    "--root-owner-group",
    root,
    path.join(pool, `${name}_${version.replace(/:/g, "%3a")}_amd64.deb`),
  ]);
  if (built.status !== 0) throw new Error(`dpkg-deb: ${built.stderr}`);
}

/** Lays an index out with apt-ftparchive: `Packages` and, unless `plainOnly`, `Packages.gz`. */
export function ftparchive(repoRoot: string, indexDir: string, plainOnly = false): void {
  const index = run(requireTool("apt-ftparchive"), ["packages", "pool"], { cwd: repoRoot });
  if (index.status !== 0) throw new Error(`apt-ftparchive: ${index.stderr}`);
  fs.mkdirSync(indexDir, { recursive: true });
  fs.writeFileSync(path.join(indexDir, "Packages"), index.stdout);
  if (!plainOnly) fs.writeFileSync(path.join(indexDir, "Packages.gz"), gzipSync(index.stdout));
}
