import { parseFamiliarName } from "@swimlane/docker-reference";
import { FactResult, settleFact, Source, SourceError } from "./source";

/**
 * Container images: does each pinned tag exist for linux/amd64, and what digest does it name?
 *
 * Protocol: the OCI distribution spec (`HEAD /v2/<name>/manifests/<reference>`, the digest in
 * `Docker-Content-Digest`) and Docker's token authentication spec (a 401 with
 * `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, then an anonymous
 * `GET <realm>?service=…&scope=repository:<name>:pull` answering `{"token"}` or `{"access_token"}`),
 * as Docker Hub and Quay use. Sources: distribution `docs/spec/api.md`, `docs/spec/auth/token.md`
 * (v2.8.2), `docs/spec/manifest-v2-2.md`.
 */

/** Manifest media types asked for: multi-platform indexes first, then single-platform manifests. */
const INDEX_TYPES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
const MANIFEST_TYPES = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];
const ACCEPT = [...INDEX_TYPES, ...MANIFEST_TYPES].join(", ");

/** The platform every KeyBuzz server runs (Hetzner x86 server types). */
const PLATFORM = { os: "linux", architecture: "amd64" };

/** Registry API base of a reference's domain: Docker Hub's API is not served on docker.io itself. */
export const DEFAULT_REGISTRY_ENDPOINTS: Readonly<Record<string, string>> = { "docker.io": "https://registry-1.docker.io" };

/** Parts of an image reference as the registry API needs them. */
export interface ImageRef {
  /** The reference as pinned (`postgres:16.10-bookworm`). */
  readonly reference: string;
  /** Registry domain after normalisation (`docker.io`, `quay.io`). */
  readonly domain: string;
  /** Repository path (`library/postgres`). */
  readonly repository: string;
  /** Tag or digest to resolve. */
  readonly tagOrDigest: string;
}

/** Parses a pinned reference with Docker's normalisation (`redis:7.2.5` → `docker.io/library/redis`). @throws on a malformed reference. */
export function parseImageRef(reference: string): ImageRef {
  const parsed = parseFamiliarName(reference);
  const tagOrDigest = parsed.digest ?? parsed.tag;
  if (!parsed.domain || !parsed.repository || !tagOrDigest) throw new Error(`${reference} is not a tagged image reference`);
  return { reference, domain: parsed.domain, repository: parsed.repository, tagOrDigest };
}

/** Parses `Bearer realm="…",service="…",scope="…"` into its parameters (lower-cased names). */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  const match = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const [, key, quoted, bare] of match[1].matchAll(/([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^,\s]+))/g))
    params[key.toLowerCase()] = quoted ?? bare;
  return params;
}

/**
 * A registry client for one domain: anonymous pull tokens per repository, fetched on the first
 * 401 challenge and reused.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, string>();

  /**
   * @param baseUrl API base, e.g. `https://quay.io` (no trailing `/v2`).
   * @param source the time-bounded source every request goes through (token endpoint included).
   */
  constructor(
    private readonly baseUrl: string,
    readonly source: Source,
  ) {}

  /** A request to the registry with the repository's pull token, getting one on a Bearer challenge. */
  private async authorized(repository: string, path: string, method: "GET" | "HEAD", accept: string) {
    const url = `${this.baseUrl}/v2/${repository}/${path}`;
    const headers = (): Record<string, string> => {
      const token = this.tokens.get(repository);
      return { accept, ...(token ? { authorization: `Bearer ${token}` } : {}) };
    };
    let answer = await this.source.request(url, { method, headers: headers() });
    if (answer.response.status === 401 && !this.tokens.has(repository)) {
      await this.fetchToken(repository, answer.response.headers.get("www-authenticate") ?? "");
      answer = await this.source.request(url, { method, headers: headers() });
    }
    return answer;
  }

  /** The anonymous token flow of Docker's token authentication spec. @throws {SourceError} on a challenge that is not Bearer or a refused token. */
  private async fetchToken(repository: string, challengeHeader: string): Promise<void> {
    const challenge = parseBearerChallenge(challengeHeader);
    if (!challenge?.realm)
      throw new SourceError(`registry asked for credentials without a Bearer challenge (${challengeHeader || "no WWW-Authenticate"})`);
    const tokenUrl = new URL(challenge.realm);
    if (challenge.service) tokenUrl.searchParams.set("service", challenge.service);
    tokenUrl.searchParams.set("scope", `repository:${repository}:pull`);
    const body = JSON.parse((await this.source.get(tokenUrl.toString())).toString("utf8")) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new SourceError(`token endpoint ${tokenUrl.origin} gave no token`);
    this.tokens.set(repository, token);
  }

  /**
   * Checks that `image` resolves and has a linux/amd64 manifest.
   *
   * @returns `ok` with the manifest digest (an index's digest for a multi-platform tag), or `fail`
   *   naming what is missing (tag, platform).
   */
  async checkImage(image: ImageRef): Promise<Omit<FactResult, "fact" | "source">> {
    const head = await this.authorized(image.repository, `manifests/${image.tagOrDigest}`, "HEAD", ACCEPT);
    if (head.response.status === 404)
      return { status: "fail", detail: `tag ${image.tagOrDigest} not found in ${image.domain}/${image.repository} (HTTP 404)` };
    // Docker Hub answers 401 even with a pull token when the repository does not exist.
    if (head.response.status === 401)
      return { status: "fail", detail: `${image.domain}/${image.repository} not found or not public (HTTP 401 with a pull token)` };
    if (!head.response.ok) throw new SourceError(`manifest HEAD answered HTTP ${head.response.status}`, head.response.status);
    const digest = head.response.headers.get("docker-content-digest") ?? undefined;
    const mediaType = (head.response.headers.get("content-type") ?? "").split(";")[0].trim();
    const platforms = await this.platformsOf(image.repository, image.tagOrDigest, mediaType);
    const wanted = `${PLATFORM.os}/${PLATFORM.architecture}`;
    if (!platforms.includes(wanted))
      return { status: "fail", detail: `no ${wanted} manifest (has ${platforms.join(", ") || "none"})`, digest };
    return {
      status: "ok",
      detail: digest ? `${digest} (${platforms.length} platform${platforms.length === 1 ? "" : "s"})` : "present, no digest header",
      digest,
    };
  }

  /** `os/architecture` of each platform the tag serves: from the index, or from a single manifest's config blob. */
  private async platformsOf(repository: string, reference: string, mediaType: string): Promise<string[]> {
    const manifestAnswer = await this.authorized(
      repository,
      `manifests/${reference}`,
      "GET",
      INDEX_TYPES.includes(mediaType) ? INDEX_TYPES.join(", ") : ACCEPT,
    );
    if (!manifestAnswer.response.ok)
      throw new SourceError(`manifest GET answered HTTP ${manifestAnswer.response.status}`, manifestAnswer.response.status);
    const manifest = JSON.parse(manifestAnswer.body.toString("utf8")) as {
      manifests?: { platform?: { os?: string; architecture?: string } }[];
      config?: { digest?: string };
    };
    if (manifest.manifests) return manifest.manifests.map((entry) => `${entry.platform?.os ?? "?"}/${entry.platform?.architecture ?? "?"}`);
    if (!manifest.config?.digest) throw new SourceError("manifest has neither a platform list nor a config blob");
    const configAnswer = await this.authorized(repository, `blobs/${manifest.config.digest}`, "GET", "*/*");
    if (!configAnswer.response.ok)
      throw new SourceError(`config blob answered HTTP ${configAnswer.response.status}`, configAnswer.response.status);
    const config = JSON.parse(configAnswer.body.toString("utf8")) as { os?: string; architecture?: string };
    return [`${config.os ?? "?"}/${config.architecture ?? "?"}`];
  }
}

/**
 * Checks every image, one client (and one time-bounded source) per registry domain, domains in
 * parallel.
 *
 * @param images pinned references with the key that names them in the table (`images.etcd`).
 * @param endpoints domain → API base URL overrides (tests point them at loopback).
 */
export async function checkImages(
  images: readonly { key: string; reference: string }[],
  endpoints: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<FactResult[]> {
  const clients = new Map<string, RegistryClient>();
  const clientFor = (domain: string) => {
    let client = clients.get(domain);
    if (!client) {
      const base = endpoints[domain] ?? DEFAULT_REGISTRY_ENDPOINTS[domain] ?? `https://${domain}`;
      client = new RegistryClient(base.replace(/\/+$/, ""), new Source(`registry ${domain}`, timeoutMs));
      clients.set(domain, client);
    }
    return client;
  };
  const byDomain = new Map<string, { key: string; image: ImageRef }[]>();
  const results: FactResult[] = [];
  for (const { key, reference } of images) {
    let image: ImageRef;
    try {
      image = parseImageRef(reference);
    } catch (error) {
      results.push({ fact: `${key}: ${reference} for linux/amd64`, source: "reference", status: "fail", detail: (error as Error).message });
      continue;
    }
    byDomain.set(image.domain, [...(byDomain.get(image.domain) ?? []), { key, image }]);
  }
  const perDomain = await Promise.all(
    [...byDomain.entries()].map(async ([domain, entries]) => {
      const client = clientFor(domain);
      const domainResults: FactResult[] = [];
      for (const { key, image } of entries) {
        domainResults.push(await settleFact(`${key}: ${image.reference} for linux/amd64`, client.source, () => client.checkImage(image)));
      }
      return domainResults;
    }),
  );
  return [...results, ...perDomain.flat()];
}
