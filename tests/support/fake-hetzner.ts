import { listen, LOOPBACK } from "./preflight-servers";

/**
 * A loopback server answering like the Hetzner Cloud API for the GET calls the preflight makes.
 * Bodies follow the API reference's shapes (docs.hetzner.cloud; hcloud-go `hcloud/schema`):
 * `{ "<resources>": [...], "meta": { "pagination": { page, per_page, previous_page, next_page,
 * last_page, total_entries } } }`, errors as `{ "error": { "code", "message" } }`, list filters
 * `name=` and `fingerprint=`, `page` / `per_page`.
 */

type Item = Record<string, unknown>;

/** The project the fake serves, per list endpoint. */
export type FakeProject = Record<
  | "locations"
  | "server_types"
  | "load_balancer_types"
  | "images"
  | "ssh_keys"
  | "servers"
  | "load_balancers"
  | "placement_groups"
  | "primary_ips"
  | "volumes",
  Item[]
>;

/** A location as `GET /locations` lists it. */
export const location = (id: number, name: string, networkZone: string): Item => ({
  id,
  name,
  description: `${name} DC Park 1`,
  country: "DE",
  city: "Falkenstein",
  latitude: 50.47612,
  longitude: 12.370071,
  network_zone: networkZone,
});

/** A server type offered in `locations` (per-location entries, `deprecation` null unless given). */
export const serverType = (id: number, name: string, locations: { name: string; deprecation?: Item }[]): Item => ({
  id,
  name,
  description: name.toUpperCase(),
  category: "regular_purpose",
  cores: 2,
  memory: 4,
  disk: 40,
  storage_type: "local",
  cpu_type: "shared",
  architecture: "x86",
  deprecated: false,
  deprecation: null,
  prices: locations.map((entry) => ({
    location: entry.name,
    price_hourly: { net: "0.0050", gross: "0.0060" },
    price_monthly: { net: "3.49", gross: "4.15" },
  })),
  locations: locations.map((entry, index) => ({ id: index + 1, name: entry.name, deprecation: entry.deprecation ?? null })),
});

/** A load balancer type priced in `locations`. */
export const loadBalancerType = (id: number, name: string, locations: string[]): Item => ({
  id,
  name,
  description: name.toUpperCase(),
  max_connections: 10000,
  max_services: 5,
  max_targets: 25,
  max_assigned_certificates: 10,
  deprecated: null,
  deprecation: null,
  prices: locations.map((entry) => ({
    location: entry,
    price_hourly: { net: "0.0080", gross: "0.0095" },
    price_monthly: { net: "5.39", gross: "6.41" },
  })),
});

/** A system image. */
export const systemImage = (id: number, name: string): Item => ({
  id,
  type: "system",
  status: "available",
  name,
  description: name,
  image_size: null,
  disk_size: 5,
  created: "2024-04-25T00:00:00+00:00",
  created_from: null,
  bound_to: null,
  os_flavor: "ubuntu",
  os_version: name.replace(/^ubuntu-/, ""),
  architecture: "x86",
  rapid_deploy: true,
  protection: { delete: false },
  deprecated: null,
  deleted: null,
  labels: {},
});

/** A named resource of a counted kind (server, volume, …): only `id` and `name` matter to the preflight. */
export const named = (id: number, name: string): Item => ({ id, name, labels: {}, created: "2026-01-01T00:00:00+00:00" });

/** Starts the fake; `token` is the only one it accepts. Records every path asked. */
export async function startFakeHetzner(project: FakeProject, token: string) {
  const requests: string[] = [];
  const server = await listen(LOOPBACK.hetzner, (request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    requests.push(`${url.pathname}${url.search}`);
    const send = (status: number, body: unknown) =>
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (request.headers.authorization !== `Bearer ${token}`) {
      send(401, { error: { code: "unauthorized", message: "unable to authenticate", details: {} } });
      return;
    }
    const kind = url.pathname.replace(/^\/v1\//, "") as keyof FakeProject;
    if (!(kind in project)) {
      send(404, { error: { code: "not_found", message: `${url.pathname} not found`, details: {} } });
      return;
    }
    let items = project[kind];
    const name = url.searchParams.get("name");
    if (name !== null) items = items.filter((item) => item.name === name);
    const fingerprint = url.searchParams.get("fingerprint");
    if (fingerprint !== null) items = items.filter((item) => item.fingerprint === fingerprint);
    const perPage = Number(url.searchParams.get("per_page") ?? 25);
    const page = Number(url.searchParams.get("page") ?? 1);
    const lastPage = Math.max(1, Math.ceil(items.length / perPage));
    send(200, {
      [kind]: items.slice((page - 1) * perPage, page * perPage),
      meta: {
        pagination: {
          page,
          per_page: perPage,
          previous_page: page > 1 ? page - 1 : null,
          next_page: page < lastPage ? page + 1 : null,
          last_page: lastPage,
          total_entries: items.length,
        },
      },
    });
  });
  return { ...server, baseUrl: `${server.base}/v1`, requests };
}

/** A project in fsn1/eu-central where everything a plan with these server types needs holds: nothing in it yet. */
export function healthyProject(serverTypes: readonly string[]): FakeProject {
  return {
    locations: [location(1, "fsn1", "eu-central"), location(2, "nbg1", "eu-central"), location(5, "ash", "us-east")],
    server_types: serverTypes.map((name, index) => serverType(100 + index, name, [{ name: "fsn1" }, { name: "nbg1" }])),
    load_balancer_types: [loadBalancerType(1, "lb11", ["fsn1", "nbg1"]), loadBalancerType(2, "lb21", ["fsn1", "nbg1"])],
    images: [systemImage(161547269, "ubuntu-24.04"), systemImage(67794396, "ubuntu-22.04")],
    ssh_keys: [],
    servers: [],
    load_balancers: [],
    placement_groups: [],
    primary_ips: [],
    volumes: [],
  };
}
