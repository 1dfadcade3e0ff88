import { fetch, type RequestInit, type Response } from "undici";

/** How one fact came out. `unreachable`: its source did not answer in time, so the fact is unverified. */
export type FactStatus = "ok" | "fail" | "unreachable" | "skipped";

/** One checked fact: a row of the preflight table. */
export interface FactResult {
  /** What must hold, e.g. `image quay.io/coreos/etcd:v3.5.21 for linux/amd64`. */
  readonly fact: string;
  /** Where it was checked: the registry, repository index or API it was read from. */
  readonly source: string;
  readonly status: FactStatus;
  /** Why it holds or not, e.g. the digest found or `tag not found (404)`. */
  readonly detail: string;
  /** The manifest digest an image tag resolved to (images only). */
  readonly digest?: string;
}

/** A source that did not answer: refused, unresolvable, or slower than the per-request bound. */
export class UnreachableError extends Error {
  constructor(
    public readonly source: string,
    public readonly reason: string,
  ) {
    super(`${source} unreachable: ${reason}`);
    this.name = "UnreachableError";
  }
}

/** A source that answered, but not as its protocol says it should (an HTTP error, a malformed body). */
export class SourceError extends Error {
  constructor(
    message: string,
    public readonly status?: number,
  ) {
    super(message);
    this.name = "SourceError";
  }
}

/** A source's whole time budget, in request timeouts (a registry needs ~3 requests per image). */
export const REQUESTS_PER_SOURCE = 6;

/**
 * One upstream source (a registry, an apt repository, a chart repository, the Hetzner API), with a
 * time bound on every request. Once a request found it unreachable, every later request fails at
 * once with the same reason, so an offline run costs one timeout per source, not one per fact.
 */
export class Source {
  private unreachableReason: string | undefined;
  private readonly deadline: number;

  /**
   * @param name shown in the table's source column (e.g. `registry quay.io`).
   * @param timeoutMs bound of each request, connection and body included, ms; the source as a whole
   *   gets {@link REQUESTS_PER_SOURCE} times this, so a slow source cannot hold the run either.
   */
  constructor(
    public readonly name: string,
    private readonly timeoutMs: number,
  ) {
    this.deadline = Date.now() + REQUESTS_PER_SOURCE * timeoutMs;
  }

  /**
   * Sends one request. Redirects are followed (registries send blobs to a CDN, chart repositories
   * live on GitHub Pages).
   *
   * @throws {UnreachableError} when the connection is refused or reset, the name does not resolve,
   *   or no complete answer came within the bound.
   */
  async request(url: string, init: RequestInit = {}): Promise<{ response: Response; body: Buffer }> {
    if (this.unreachableReason !== undefined) throw new UnreachableError(this.name, this.unreachableReason);
    const remaining = this.deadline - Date.now();
    if (remaining <= 0) {
      this.unreachableReason = `too slow: over its ${(REQUESTS_PER_SOURCE * this.timeoutMs) / 1000} s budget`;
      throw new UnreachableError(this.name, this.unreachableReason);
    }
    const signal = AbortSignal.timeout(Math.min(this.timeoutMs, remaining));
    try {
      const response = await fetch(url, { ...init, signal, redirect: "follow" });
      const body = Buffer.from(await response.arrayBuffer());
      return { response, body };
    } catch (error) {
      this.unreachableReason = describeNetworkError(error, this.timeoutMs);
      throw new UnreachableError(this.name, this.unreachableReason);
    }
  }

  /** GET that must answer 2xx; returns the body. @throws {SourceError} on another status. */
  async get(url: string, init: RequestInit = {}): Promise<Buffer> {
    const { response, body } = await this.request(url, init);
    if (!response.ok) throw new SourceError(`${url} answered HTTP ${response.status}`, response.status);
    return body;
  }
}

/** The short reason a request failed at the network level: `connection refused (127.0.0.1:9)`, `no answer within 10 s`. */
function describeNetworkError(error: unknown, timeoutMs: number): string {
  const name = (error as { name?: string }).name;
  if (name === "TimeoutError" || name === "AbortError") return `no answer within ${timeoutMs / 1000} s`;
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  switch (cause?.code) {
    case "ECONNREFUSED":
      return `connection refused (${cause.message?.replace(/^connect ECONNREFUSED /, "") ?? ""})`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `name does not resolve (${cause.message ?? cause.code})`;
    case "UND_ERR_CONNECT_TIMEOUT":
      return `no connection within ${timeoutMs / 1000} s`;
    default:
      return cause?.message ?? (error instanceof Error ? error.message : String(error));
  }
}

/**
 * Runs one check and turns its errors into a row: an unreachable source gives `unreachable`, a
 * protocol error gives `fail` with the error's message.
 */
export async function settleFact(
  fact: string,
  source: Source,
  check: () => Promise<Omit<FactResult, "fact" | "source">>,
): Promise<FactResult> {
  try {
    return { fact, source: source.name, ...(await check()) };
  } catch (error) {
    if (error instanceof UnreachableError) return { fact, source: source.name, status: "unreachable", detail: error.reason };
    return { fact, source: source.name, status: "fail", detail: error instanceof Error ? error.message : String(error) };
  }
}
