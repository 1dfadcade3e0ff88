import { checkImages, parseBearerChallenge } from "../../scripts/preflight/registry";
import { OCI, startRegistry, TestRegistry, tinyImage } from "../support/preflight-servers";

/**
 * The image check against Debian's distribution registry on loopback, behind Docker's token
 * authentication: an image pushed by hand (config blob + layer + manifests), a missing tag, and a
 * tag that exists only for arm64.
 */
describe("preflight: container images through the OCI distribution API", () => {
  let registry: TestRegistry;
  let indexDigest: string;
  const domain = "registry.keybuzz.test";

  beforeAll(async () => {
    registry = await startRegistry();
    const amd64 = tinyImage("amd64", "etcd amd64 layer");
    const arm64 = tinyImage("arm64", "etcd arm64 layer");
    for (const image of [amd64, arm64])
      await registry.pushManifest("keybuzz/etcd", image.digest, image.manifest, OCI.manifest, image.blobs);
    indexDigest = await registry.pushManifest(
      "keybuzz/etcd",
      "v3.5.21",
      {
        schemaVersion: 2,
        mediaType: OCI.index,
        manifests: [
          { mediaType: OCI.manifest, digest: amd64.digest, size: amd64.size, platform: { os: "linux", architecture: "amd64" } },
          { mediaType: OCI.manifest, digest: arm64.digest, size: arm64.size, platform: { os: "linux", architecture: "arm64" } },
        ],
      },
      OCI.index,
    );
    const armOnly = tinyImage("arm64", "arm-only layer");
    await registry.pushManifest("keybuzz/armonly", "1.0.0", armOnly.manifest, OCI.manifest, armOnly.blobs);
  });
  afterAll(async () => registry?.stop());

  it("refuses an anonymous request and names its token realm (the flow the check follows)", async () => {
    const answer = await fetch(`${registry.base}/v2/keybuzz/etcd/manifests/v3.5.21`, { method: "HEAD" });
    expect(answer.status).toBe(401);
    const challenge = parseBearerChallenge(answer.headers.get("www-authenticate") ?? "");
    expect(challenge).toMatchObject({
      realm: expect.stringMatching(/^http:\/\/127\.0\.20\.2:\d+\/token$/),
      service: "keybuzz-test-registry",
    });
  });

  it("resolves a pushed multi-platform tag to its index digest, with an anonymous pull token", async () => {
    const [row] = await checkImages(
      [{ key: "images.etcd", reference: `${domain}/keybuzz/etcd:v3.5.21` }],
      { [domain]: registry.base },
      5000,
    );
    expect(row).toMatchObject({ status: "ok", digest: indexDigest });
    expect(row.detail).toContain("2 platforms");
    expect(registry.tokenScopes).toContain("repository:keybuzz/etcd:pull");
  });

  it("fails on a tag that is not there", async () => {
    const [row] = await checkImages(
      [{ key: "images.etcd", reference: `${domain}/keybuzz/etcd:v3.5.99` }],
      { [domain]: registry.base },
      5000,
    );
    expect(row.status).toBe("fail");
    expect(row.detail).toContain("tag v3.5.99 not found");
  });

  it("fails on a tag without a linux/amd64 image, reading the single manifest's config blob", async () => {
    const [row] = await checkImages([{ key: "images.x", reference: `${domain}/keybuzz/armonly:1.0.0` }], { [domain]: registry.base }, 5000);
    expect(row.status).toBe("fail");
    expect(row.detail).toBe("no linux/amd64 manifest (has linux/arm64)");
  });
});
