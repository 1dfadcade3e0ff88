import { createHash } from "crypto";
import { FactResult, Source, SourceError, UnreachableError } from "./source";

/**
 * Hetzner Cloud facts, read with the project's API token. Response shapes: Hetzner Cloud API
 * reference (https://docs.hetzner.cloud), as mirrored by hcloud-go `hcloud/schema/*.go`:
 * `locations[].network_zone`; `server_types[].locations[] {name, deprecation}` (per-location
 * availability since 2025-09, the top-level `deprecation` kept); `load_balancer_types[].prices[].location`;
 * `images[] {status, deprecated}`; `ssh_keys[] {name, fingerprint}` (MD5, colon-separated hex);
 * list pagination in `meta.pagination.next_page`; errors as `{error: {code, message}}`.
 */

/** Default API base (hcloud CLI and the Pulumi provider use the same; `HCLOUD_ENDPOINT` overrides it there too). */
export const HCLOUD_API = "https://api.hetzner.cloud/v1";

/** The kinds of resources whose per-project limits the plan must fit. */
export const LIMIT_KINDS = ["servers", "load_balancers", "placement_groups", "primary_ips", "volumes"] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

/** What the program will create in the project, by Hetzner name. */
export interface HetznerPlan {
  readonly location: string;
  readonly networkZone: string;
  readonly image: string;
  readonly serverTypes: readonly string[];
  readonly loadBalancerTypes: readonly string[];
  /** SSH keys the program uploads: Hetzner name and OpenSSH public key line. */
  readonly sshKeys: readonly { name: string; publicKey: string }[];
  /** Hetzner names per resource kind; `primary_ips` holds one entry per address a new server gets. */
  readonly names: Readonly<Record<Exclude<LimitKind, "primary_ips">, readonly string[]>>;
  /** Primary IPs each new server gets (IPv4 + IPv6 enabled: 2). */
  readonly primaryIpsPerServer: number;
}

/** Options of {@link checkHetzner}. */
export interface HetznerOptions {
  /** API base URL, e.g. {@link HCLOUD_API}. */
  readonly baseUrl: string;
  /** API token; undefined gives a failed `token works` row. */
  readonly token: string | undefined;
  readonly timeoutMs: number;
  /**
   * The project's limits per kind, as Hetzner's Console shows them (Project → Limits). The API has
   * no endpoint for them, so a kind without a value is reported `skipped` with the count needed.
   */
  readonly limits: Partial<Record<LimitKind, number>>;
}

/** MD5 fingerprint of an OpenSSH public key line, as Hetzner lists it (`b7:2f:30:…`). */
export function sshFingerprint(publicKey: string): string {
  const blob = Buffer.from(publicKey.trim().split(/\s+/)[1] ?? "", "base64");
  return createHash("md5").update(blob).digest("hex").match(/../g)!.join(":");
}

interface Deprecation {
  announced?: string;
  unavailable_after?: string;
}

/** A failed API call with Hetzner's error code (`unauthorized`, `not_found`, …). */
class HetznerApiError extends SourceError {
  constructor(
    readonly code: string,
    message: string,
    status: number,
  ) {
    super(`${code}: ${message} (HTTP ${status})`, status);
  }
}

class HetznerClient {
  constructor(
    private readonly options: HetznerOptions,
    readonly source: Source,
  ) {}

  async get<T>(path: string): Promise<T> {
    const { response, body } = await this.source.request(`${this.options.baseUrl.replace(/\/+$/, "")}${path}`, {
      headers: { authorization: `Bearer ${this.options.token ?? ""}`, accept: "application/json" },
    });
    const parsed = body.length > 0 ? (JSON.parse(body.toString("utf8")) as T & { error?: { code?: string; message?: string } }) : ({} as T);
    if (!response.ok) {
      const error = (parsed as { error?: { code?: string; message?: string } }).error;
      throw new HetznerApiError(error?.code ?? "http_error", error?.message ?? "no error body", response.status);
    }
    return parsed;
  }

  /** Every item of a paginated list (`?page=N&per_page=50`, until `meta.pagination.next_page` is null). */
  async list<T>(path: string, key: string): Promise<T[]> {
    const items: T[] = [];
    for (let page: number | null = 1; page !== null;) {
      const separator = path.includes("?") ? "&" : "?";
      const answer: Record<string, unknown> & { meta?: { pagination?: { next_page?: number | null } } } = await this.get(
        `${path}${separator}page=${page}&per_page=50`,
      );
      items.push(...((answer[key] as T[] | undefined) ?? []));
      page = answer.meta?.pagination?.next_page ?? null;
    }
    return items;
  }
}

/** True when a deprecation is announced (any announced deprecation: the type is going away). */
function deprecationNote(deprecation: Deprecation | null | undefined): string | undefined {
  if (!deprecation) return undefined;
  return `deprecated (announced ${deprecation.announced ?? "?"}, unavailable after ${deprecation.unavailable_after ?? "?"})`;
}

/**
 * Checks the Hetzner facts of a plan. The first call doubles as the token check: a refused token
 * skips the rest (nothing else can be read), an unreachable API marks every row unreachable.
 */
export async function checkHetzner(plan: HetznerPlan, options: HetznerOptions): Promise<FactResult[]> {
  const source = new Source(`Hetzner API ${options.baseUrl}`, options.timeoutMs);
  const client = new HetznerClient(options, source);
  const rows: FactResult[] = [];
  const row = (fact: string, status: FactResult["status"], detail: string) => rows.push({ fact, source: source.name, status, detail });

  if (!options.token) {
    row("token works", "fail", "no token: set HCLOUD_TOKEN (read & write API token of the project) or the stack's hcloud:token");
    return rows;
  }
  let locations: { name: string; network_zone: string }[];
  try {
    locations = await client.list("/locations", "locations");
    row("token works", "ok", "the API accepted it");
  } catch (error) {
    if (error instanceof UnreachableError) row("token works", "unreachable", error.reason);
    else row("token works", "fail", (error as Error).message);
    return rows;
  }

  const guarded = async (fact: string, check: () => Promise<[FactResult["status"], string]>) => {
    try {
      const [status, detail] = await check();
      row(fact, status, detail);
    } catch (error) {
      if (error instanceof UnreachableError) row(fact, "unreachable", error.reason);
      else row(fact, "fail", (error as Error).message);
    }
  };

  await guarded(`location ${plan.location} in network zone ${plan.networkZone}`, async () => {
    const location = locations.find((entry) => entry.name === plan.location);
    if (!location) return ["fail", `no such location (the API lists ${locations.map((entry) => entry.name).join(", ")})`];
    if (location.network_zone !== plan.networkZone) return ["fail", `${plan.location} is in network zone ${location.network_zone}`];
    return ["ok", `${plan.location} is in ${location.network_zone}`];
  });

  for (const serverType of plan.serverTypes) {
    await guarded(`server type ${serverType} offered in ${plan.location}, not deprecated`, async () => {
      type ServerType = {
        name: string;
        deprecation?: Deprecation | null;
        locations?: { name: string; deprecation?: Deprecation | null; available?: boolean }[];
        prices?: { location: string }[];
      };
      const [found] = await client.list<ServerType>(`/server_types?name=${encodeURIComponent(serverType)}`, "server_types");
      if (!found) return ["fail", "no such server type"];
      const perLocation = found.locations?.find((entry) => entry.name === plan.location);
      const offered = found.locations ? perLocation !== undefined : (found.prices ?? []).some((price) => price.location === plan.location);
      if (!offered) return ["fail", `not offered in ${plan.location}`];
      if (perLocation?.available === false) return ["fail", `not available in ${plan.location} right now`];
      const deprecated = deprecationNote(perLocation?.deprecation) ?? deprecationNote(found.deprecation);
      return deprecated ? ["fail", deprecated] : ["ok", `offered in ${plan.location}`];
    });
  }

  for (const loadBalancerType of plan.loadBalancerTypes) {
    await guarded(`load balancer type ${loadBalancerType} offered in ${plan.location}, not deprecated`, async () => {
      type LbType = { name: string; deprecation?: Deprecation | null; prices?: { location: string }[] };
      const [found] = await client.list<LbType>(`/load_balancer_types?name=${encodeURIComponent(loadBalancerType)}`, "load_balancer_types");
      if (!found) return ["fail", "no such load balancer type"];
      if (!(found.prices ?? []).some((price) => price.location === plan.location))
        return ["fail", `no price in ${plan.location}: not offered there`];
      const deprecated = deprecationNote(found.deprecation);
      return deprecated ? ["fail", deprecated] : ["ok", `offered in ${plan.location}`];
    });
  }

  await guarded(`OS image ${plan.image} (x86)`, async () => {
    type Image = { name: string | null; status: string; deprecated: string | null };
    const images = await client.list<Image>(`/images?type=system&architecture=x86&name=${encodeURIComponent(plan.image)}`, "images");
    const image = images.find((entry) => entry.name === plan.image);
    if (!image) return ["fail", "no such system image"];
    if (image.status !== "available") return ["fail", `image status is ${image.status}`];
    if (image.deprecated) return ["fail", `image deprecated since ${image.deprecated}`];
    return ["ok", "available"];
  });

  for (const key of plan.sshKeys) {
    const fingerprint = sshFingerprint(key.publicKey);
    await guarded(`SSH key ${key.name} (${fingerprint}) not in the project under another name`, async () => {
      const existing = await client.list<{ name: string }>(`/ssh_keys?fingerprint=${encodeURIComponent(fingerprint)}`, "ssh_keys");
      const other = existing.find((entry) => entry.name !== key.name);
      if (other)
        return ["fail", `already uploaded as "${other.name}": Hetzner refuses a second copy; delete it or import it into the stack`];
      return ["ok", existing.length > 0 ? "already present under this name" : "not in the project yet"];
    });
  }

  const existingNames: Partial<Record<LimitKind, string[]>> = {};
  for (const kind of LIMIT_KINDS) {
    await guarded(`project limit of ${kind.replace(/_/g, " ")} fits the plan`, async () => {
      const existing = (await client.list<{ name: string }>(`/${kind}`, kind)).map((entry) => entry.name);
      existingNames[kind] = existing;
      let newCount: number;
      if (kind === "primary_ips") {
        const existingServers = new Set(existingNames.servers ?? []);
        newCount = plan.names.servers.filter((name) => !existingServers.has(name)).length * plan.primaryIpsPerServer;
      } else {
        const have = new Set(existing);
        newCount = plan.names[kind].filter((name) => !have.has(name)).length;
      }
      const needed = existing.length + newCount;
      const limit = options.limits[kind];
      const counted = `${needed} needed (${existing.length} in the project + ${newCount} new)`;
      if (limit === undefined) return ["skipped", `${counted}; the API has no limits endpoint: pass --limits with the Console's value`];
      return needed <= limit ? ["ok", `${counted} ≤ limit ${limit}`] : ["fail", `${counted} > limit ${limit}: ask Hetzner to raise it`];
    });
  }
  return rows;
}
