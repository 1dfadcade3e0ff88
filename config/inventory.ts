import * as ipaddr from "ipaddr.js";
import { z } from "zod";
import { ConfigError, formatZodError } from "./errors";
import { LOAD_BALANCER_LIMITS, RETIRED_SERVER_TYPES, SERVER_TYPE_MEMORY_GB } from "./server-types";

/**
 * The inventory: the stack config under the `keybuzz:` namespace of `Pulumi.<stack>.yaml`,
 * validated and turned into typed objects. Source of the shape: DESIGN.md "Configuration" and
 * spec 001 (inventory, load balancers), spec 000 (roles and subroles).
 */

/**
 * Server groups: one per role/subrole pair of the spec's `servers.tsv` (ROLE, SUBROLE columns).
 * Modules select their hosts by group.
 */
export type ServerGroup =
  "haproxy" | "postgres" | "mariadb" | "proxysql" | "redis" | "rabbitmq" | "minio" | "k8s-master" | "k8s-worker" | "admin" | "backup";

/** role → subrole → group. The first subrole listed is the default when none is given. */
const ROLE_TABLE: Readonly<Record<string, Readonly<Record<string, ServerGroup>>>> = {
  lb: { haproxy: "haproxy" },
  db: { postgres: "postgres", mariadb: "mariadb", proxysql: "proxysql" },
  redis: { redis: "redis" },
  queue: { rabbitmq: "rabbitmq" },
  storage: { minio: "minio" },
  k8s: { master: "k8s-master", worker: "k8s-worker" },
  admin: { admin: "admin" },
  backup: { backup: "backup" },
};

/** Groups every stack must have (the platform cannot run without them). */
export const REQUIRED_GROUPS: readonly ServerGroup[] = [
  "haproxy",
  "postgres",
  "redis",
  "rabbitmq",
  "minio",
  "mariadb",
  "proxysql",
  "k8s-master",
  "k8s-worker",
];

/** Groups that form a quorum cluster: an odd count of at least 3 (spec 001, modules 3–7). */
export const QUORUM_GROUPS: readonly ServerGroup[] = ["postgres", "redis", "rabbitmq", "minio", "mariadb"];

/**
 * Groups whose data lives on an XFS Hetzner volume: PostgreSQL and MariaDB (spec 001, "Volumes
 * XFS"), MinIO (issue 19: the operators ran a 200 GB data volume per MinIO node).
 */
export const VOLUME_GROUPS: readonly ServerGroup[] = ["postgres", "mariadb", "minio"];

/**
 * Size in GB of a group's data volume when the server sets no `volumeSizeGb`; a group of
 * {@link VOLUME_GROUPS} without an entry requires the key. MinIO: 200 GB per node (issue 19, the
 * operators' size).
 */
export const DEFAULT_VOLUME_SIZE_GB: Readonly<Partial<Record<ServerGroup, number>>> = { minio: 200 };

const ipv4 = z.string().refine((value) => ipaddr.IPv4.isValidFourPartDecimal(value), {
  message: "must be an IPv4 address such as 10.0.0.11",
});
const cidr = z.string().refine((value) => isIpv4Cidr(value), {
  message: "must be an IPv4 CIDR such as 10.0.0.0/16",
});
const hostName = z.string().regex(/^[a-z][a-z0-9-]{0,40}[a-z0-9]$/, "must be a lowercase host name such as db-master-01");
/** An OpenSSH public key line: `<type> <base64 key> [comment]`. */
const publicKeyLine = z
  .string()
  .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/, "must be an OpenSSH public key line or { existing: <name> }");
/** A key already in the Hetzner project, by its name there (Hetzner refuses a second key with one fingerprint). */
const existingSshKey = z.strictObject({
  existing: z.string().min(1, "must name an SSH key of the Hetzner project"),
});

const serverSchema = z.strictObject({
  name: hostName,
  privateIp: ipv4,
  role: z.string(),
  subrole: z.string().optional(),
  serverType: z.string(),
  volumeSizeGb: z.number().int().min(10).max(10240).optional(),
});

const serviceSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]*$/, "must be a short lowercase name such as postgres-write"),
  listenPort: z.number().int().min(1).max(65535),
  destinationPort: z.number().int().min(1).max(65535).optional(),
  proxyProtocol: z.boolean().optional(),
});

const loadBalancerSchema = z.strictObject({
  name: hostName,
  privateIp: ipv4,
  type: z.string(),
  public: z.boolean(),
  targets: z.string(),
  services: z.array(serviceSchema).min(1),
});

const networkSchema = z.strictObject({
  ipRange: cidr,
  subnet: cidr,
  zone: z.enum(["eu-central", "us-east", "us-west", "ap-southeast"]),
});

const kubernetesSchema = z.strictObject({
  apiLoadBalancer: hostName,
  podCidr: cidr,
  serviceCidr: cidr,
});

/** Raw shape of the `keybuzz:` config keys this module reads (before cross-field checks). */
export const stackConfigSchema = z.strictObject({
  location: z.enum(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]),
  network: networkSchema,
  adminCidrs: z.array(cidr).min(1, "must list at least one admin CIDR (the operators' public addresses)"),
  sshKeys: z.array(z.union([publicKeyLine, existingSshKey])).min(1, "must list at least one SSH key"),
  internalDomain: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/, "must be a DNS domain such as keybuzz.io"),
  protectData: z.boolean(),
  servers: z.array(serverSchema).min(1),
  loadBalancers: z.array(loadBalancerSchema).min(1),
  kubernetes: kubernetesSchema,
  /** Opt-in for admin CIDRs shorter than {@link BROAD_ADMIN_PREFIX} (they reach SSH and 6443 and escape fail2ban). */
  allowBroadAdminCidrs: z.boolean().optional(),
});

export type RawStackConfig = z.input<typeof stackConfigSchema>;

/** The `keybuzz:` keys that make the inventory; the namespace also holds module settings (`keybuzz:redis`, …). */
export const INVENTORY_KEYS = Object.keys(stackConfigSchema.shape) as (keyof RawStackConfig)[];

/**
 * An SSH key installed for root on every server: a public key the stack uploads to Hetzner, or a
 * key already in the Hetzner project, by name (`{ existing: <name> }` in the stack file).
 */
export type SshKeySpec = { readonly publicKey: string } | { readonly existing: string };

/** Admin CIDRs with a prefix shorter than this are "broad" and need `keybuzz:allowBroadAdminCidrs: true`. */
export const BROAD_ADMIN_PREFIX = 16;

/**
 * Documentation ranges (RFC 5737 §3, TEST-NET-1/2/3): never a real egress address, so the
 * placeholder admin CIDR of the shipped stack files is taken from them.
 */
export const DOCUMENTATION_RANGES: readonly string[] = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];

/**
 * Ports that must never face the internet through a public load balancer: a Hetzner load balancer
 * has no source filter, so it would bypass `keybuzz:adminCidrs`. Data ports from spec 001 (modules
 * 3–7) and DESIGN.md "Load balancers"; 6443 is the Kubernetes API (admin CIDRs only, spec 000).
 */
export const PRIVATE_ONLY_PORTS: Readonly<Record<number, string>> = {
  22: "SSH",
  2379: "etcd",
  2380: "etcd peers",
  3306: "MariaDB",
  5432: "PostgreSQL",
  5433: "PostgreSQL replicas",
  5672: "RabbitMQ",
  6379: "Redis",
  6432: "PgBouncer",
  6443: "the Kubernetes API",
  8008: "the Patroni REST API",
  9000: "MinIO",
  26379: "Redis Sentinel",
};

/** Groups whose services stay on the private network: never behind a public load balancer. */
export const PRIVATE_ONLY_GROUPS: readonly ServerGroup[] = [
  "haproxy",
  "postgres",
  "mariadb",
  "proxysql",
  "redis",
  "rabbitmq",
  "minio",
  "k8s-master",
];

/** One server of the inventory, validated. */
export interface ServerSpec {
  /** Inventory name, also the machine's hostname (e.g. `db-master-01`). */
  readonly name: string;
  /** Fixed address on the private network (e.g. `10.0.0.120`). */
  readonly privateIp: string;
  /** The spec's ROLE column (`db`, `lb`, `k8s`, …). */
  readonly role: string;
  /** The spec's SUBROLE column (`postgres`, `master`, …), defaulted when the role has one only. */
  readonly subrole: string;
  /** The group modules select hosts by, derived from role and subrole. */
  readonly group: ServerGroup;
  /** Hetzner server type (e.g. `cx33`). */
  readonly serverType: string;
  /** Memory of the server type, GB. */
  readonly memoryGb: number;
  /** Size of the XFS data volume, GB; set exactly on the nodes of {@link VOLUME_GROUPS} (PostgreSQL, MariaDB, MinIO). */
  readonly volumeSizeGb?: number;
}

/** One service of a load balancer: a TCP port forwarded to the same or another port on the targets. */
export interface LoadBalancerServiceSpec {
  readonly name: string;
  /** Port the load balancer listens on. */
  readonly listenPort: number;
  /** Port on the targets (defaults to `listenPort`); the health check probes it. */
  readonly destinationPort: number;
  /** PROXY protocol towards the targets; on only where the backend expects it. */
  readonly proxyProtocol: boolean;
}

/** One Hetzner load balancer, validated. */
export interface LoadBalancerSpec {
  readonly name: string;
  readonly privateIp: string;
  readonly type: string;
  /** Whether the public interface is enabled (false for the internal 10.0.0.10 / 10.0.0.20). */
  readonly public: boolean;
  /** The server group the targets are taken from, by private IP. */
  readonly targetGroup: ServerGroup;
  readonly services: readonly LoadBalancerServiceSpec[];
}

/** The validated inventory of one stack. */
export interface Inventory {
  readonly location: string;
  readonly network: { readonly ipRange: string; readonly subnet: string; readonly zone: string; readonly gateway: string };
  readonly adminCidrs: readonly string[];
  readonly sshKeys: readonly SshKeySpec[];
  readonly internalDomain: string;
  /** `protect` + Hetzner `deleteProtection` on data volumes (true in prod). */
  readonly protectData: boolean;
  readonly servers: readonly ServerSpec[];
  readonly loadBalancers: readonly LoadBalancerSpec[];
  readonly kubernetes: { readonly apiLoadBalancer: string; readonly podCidr: string; readonly serviceCidr: string };
}

function isIpv4Cidr(value: string): boolean {
  try {
    const [address] = ipaddr.parseCIDR(value);
    return address.kind() === "ipv4";
  } catch {
    return false;
  }
}

function inCidr(ip: string, range: string): boolean {
  return ipaddr.IPv4.parse(ip).match(ipaddr.IPv4.parseCIDR(range));
}

function cidrsOverlap(a: string, b: string): boolean {
  const [aAddress, aBits] = ipaddr.IPv4.parseCIDR(a);
  const [bAddress, bBits] = ipaddr.IPv4.parseCIDR(b);
  const shorter = Math.min(aBits, bBits);
  return aAddress.match(bAddress, shorter);
}

/** `network/bits` of a CIDR, e.g. `10.0.0.0/24` for `10.0.0.5/24`. */
function canonicalCidr(value: string): string {
  const [, bits] = ipaddr.IPv4.parseCIDR(value);
  return `${ipaddr.IPv4.networkAddressFromCIDR(value).toString()}/${bits}`;
}

/** A problem when `value` has host bits set (`10.0.0.5/24`), naming the CIDR it probably means. */
function hostBitsProblem(value: string, where: string, problems: string[], alternative = ""): void {
  const canonical = canonicalCidr(value);
  if (canonical !== value) problems.push(`${where}: ${value} has host bits set; write ${canonical}${alternative}`);
}

/** True when CIDR `inner` lies wholly inside CIDR `outer`. */
function cidrInside(inner: string, outer: string): boolean {
  const [innerAddress, innerBits] = ipaddr.IPv4.parseCIDR(inner);
  const [outerAddress, outerBits] = ipaddr.IPv4.parseCIDR(outer);
  return innerBits >= outerBits && innerAddress.match(outerAddress, outerBits);
}

/** The RFC 1918 blocks (10/8, 172.16/12, 192.168/16; ipaddr.js's `private` ranges): where a Hetzner network may lie. */
export const RFC1918_BLOCKS: readonly string[] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/** Options of {@link parseInventory}. */
export interface InventoryOptions {
  /**
   * The blocks `network.ipRange` must lie in; default {@link RFC1918_BLOCKS} (Hetzner's rule). Only
   * the loopback test clusters, which move the whole inventory to 127.0.0.0/8, pass another.
   */
  readonly networkBlocks?: readonly string[];
}

/**
 * The admin CIDRs that lie in a documentation range ({@link DOCUMENTATION_RANGES}): the shipped
 * placeholder, or an example copied from a document. The offline plan accepts them with a warning;
 * a real preview/up refuses them (config/index.ts).
 */
export function documentationAdminCidrs(adminCidrs: readonly string[]): { key: string; cidr: string }[] {
  return adminCidrs
    .map((cidr, index) => ({ key: `keybuzz:adminCidrs[${index}]`, cidr }))
    .filter(({ cidr }) => isIpv4Cidr(cidr) && DOCUMENTATION_RANGES.some((range) => cidrInside(cidr, range)));
}

/** The key material of an OpenSSH public key line (type and base64 blob), which Hetzner's fingerprint covers; the comment is not part of it. */
function keyMaterial(line: string): string {
  return line.split(" ").slice(0, 2).join(" ");
}

/** First usable address of a subnet: Hetzner's gateway (e.g. `10.0.0.1`). */
function gatewayOf(subnet: string): string {
  const [address, bits] = ipaddr.IPv4.parseCIDR(subnet);
  const network = ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${bits}`).toByteArray();
  network[3] += 1;
  return ipaddr.fromByteArray(network).toString();
}

function resolveGroup(role: string, subrole: string | undefined, where: string, problems: string[]): ServerGroup | undefined {
  const subroles = ROLE_TABLE[role];
  if (!subroles) {
    problems.push(`${where}.role: "${role}" is not a role; use one of ${Object.keys(ROLE_TABLE).join(", ")}`);
    return undefined;
  }
  const chosen = subrole ?? Object.keys(subroles)[0];
  const group = subroles[chosen];
  if (!group) {
    problems.push(`${where}.subrole: "${chosen}" is not a subrole of ${role}; use one of ${Object.keys(subroles).join(", ")}`);
  }
  return group;
}

function checkServerType(serverType: string, where: string, problems: string[]): number | undefined {
  const memory = SERVER_TYPE_MEMORY_GB[serverType];
  if (memory !== undefined) return memory;
  const replacement = RETIRED_SERVER_TYPES[serverType];
  problems.push(
    replacement
      ? `${where}.serverType: "${serverType}" is being retired by Hetzner; use "${replacement}"`
      : `${where}.serverType: "${serverType}" is not a known server type; use one of ${Object.keys(SERVER_TYPE_MEMORY_GB).join(", ")}`,
  );
  return undefined;
}

/**
 * Validates the raw `keybuzz:` config of a stack and returns the typed inventory.
 *
 * @param raw the config values as read from `Pulumi.<stack>.yaml` (objects already parsed).
 * @throws {ConfigError} listing every problem found, each naming its key (e.g.
 *   `keybuzz:servers[3].privateIp`) and the fix: schema errors, duplicate names or IPs, an IP
 *   outside the subnet or on its gateway, network or broadcast address or on a load balancer's IP,
 *   a quorum group with an even or too small count, an even number of control planes, a missing
 *   group, an unknown or retired server type, a volume on a group that has none (or none where one
 *   is required), more services or targets than the load balancer type holds, a load balancer
 *   whose target group is empty, a public load balancer in front of the data tier or the
 *   Kubernetes API, overlapping Kubernetes CIDRs, a CIDR with host bits set, a network range
 *   outside RFC 1918, an admin CIDR broader than /16 without `allowBroadAdminCidrs`, the same SSH
 *   key listed twice (Hetzner's `uniqueness_error`).
 */
export function parseInventory(raw: unknown, options: InventoryOptions = {}): Inventory {
  const parsed = stackConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error));
  const config = parsed.data;
  const problems: string[] = [];

  hostBitsProblem(config.network.ipRange, "keybuzz:network.ipRange", problems);
  hostBitsProblem(config.network.subnet, "keybuzz:network.subnet", problems);
  const networkBlocks = options.networkBlocks ?? RFC1918_BLOCKS;
  if (!networkBlocks.some((block) => cidrInside(config.network.ipRange, block))) {
    problems.push(
      `keybuzz:network.ipRange: ${config.network.ipRange} is not a private (RFC 1918) range; Hetzner networks use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (e.g. 10.0.0.0/16)`,
    );
  } else if (ipaddr.IPv4.parseCIDR(config.network.ipRange)[1] > 24) {
    problems.push(
      `keybuzz:network.ipRange: ${config.network.ipRange} is smaller than a Hetzner network's minimum /24; use a /16 such as 10.0.0.0/16`,
    );
  }
  if (!cidrInside(config.network.subnet, config.network.ipRange)) {
    problems.push(`keybuzz:network.subnet: ${config.network.subnet} must lie inside ipRange ${config.network.ipRange}`);
  }
  const gateway = gatewayOf(config.network.subnet);
  const networkAddress = ipaddr.IPv4.networkAddressFromCIDR(config.network.subnet).toString();
  const broadcastAddress = ipaddr.IPv4.broadcastAddressFromCIDR(config.network.subnet).toString();
  /** Why `ip` cannot be a host's address in the subnet, or undefined when it can. */
  const reservedAddress = (ip: string): string | undefined => {
    if (ip === gateway) return "the network gateway";
    if (ip === networkAddress) return `the subnet's network address (${config.network.subnet})`;
    if (ip === broadcastAddress) return `the subnet's broadcast address (${config.network.subnet})`;
    return undefined;
  };

  config.adminCidrs.forEach((cidr, index) => {
    const where = `keybuzz:adminCidrs[${index}]`;
    hostBitsProblem(cidr, where, problems, ` (or ${ipaddr.IPv4.parseCIDR(cidr)[0].toString()}/32 for that one address)`);
    const bits = ipaddr.IPv4.parseCIDR(cidr)[1];
    if (bits < BROAD_ADMIN_PREFIX && config.allowBroadAdminCidrs !== true) {
      problems.push(
        `${where}: ${cidr} is broader than /${BROAD_ADMIN_PREFIX} (${2 ** (32 - bits)} addresses): it would open SSH (22) and the Kubernetes API (6443) to all of them and exempt them from fail2ban; list your own egress addresses (x.y.z.w/32), or set keybuzz:allowBroadAdminCidrs: true if you mean it`,
      );
    }
  });

  const seenKeys = new Map<string, string>();
  config.sshKeys.forEach((entry, index) => {
    const where = `keybuzz:sshKeys[${index}]`;
    const identity = typeof entry === "string" ? `key ${keyMaterial(entry)}` : `existing ${entry.existing}`;
    const previous = seenKeys.get(identity);
    if (previous) {
      problems.push(
        typeof entry === "string"
          ? `${where}: the same public key as ${previous}; Hetzner refuses a second key with one fingerprint (uniqueness_error): list it once`
          : `${where}: "${entry.existing}" is already listed at ${previous}; list it once`,
      );
    }
    seenKeys.set(identity, where);
  });
  const lbIps = new Map(config.loadBalancers.map((lb) => [lb.privateIp, lb.name]));

  const servers: ServerSpec[] = [];
  const seenNames = new Map<string, string>();
  const seenIps = new Map<string, string>();
  config.servers.forEach((server, index) => {
    const where = `keybuzz:servers[${index}]`;
    const previousName = seenNames.get(server.name);
    if (previousName) problems.push(`${where}.name: "${server.name}" is already used by ${previousName}; names must be unique`);
    seenNames.set(server.name, where);
    const previousIp = seenIps.get(server.privateIp);
    if (previousIp) {
      problems.push(`${where}.privateIp: ${server.privateIp} is already used by ${previousIp}; give each server its own address`);
    }
    seenIps.set(server.privateIp, `${where} (${server.name})`);
    if (!inCidr(server.privateIp, config.network.subnet)) {
      problems.push(`${where}.privateIp: ${server.privateIp} is outside the subnet ${config.network.subnet}; pick an address inside it`);
    } else if (reservedAddress(server.privateIp)) {
      problems.push(`${where}.privateIp: ${server.privateIp} is ${reservedAddress(server.privateIp)}; pick another address`);
    }
    const lbName = lbIps.get(server.privateIp);
    if (lbName) problems.push(`${where}.privateIp: ${server.privateIp} belongs to load balancer ${lbName}; pick another address`);

    const group = resolveGroup(server.role, server.subrole, where, problems);
    const memoryGb = checkServerType(server.serverType, where, problems);
    const volumeSizeGb = server.volumeSizeGb ?? (group ? DEFAULT_VOLUME_SIZE_GB[group] : undefined);
    if (group && VOLUME_GROUPS.includes(group) && volumeSizeGb === undefined) {
      problems.push(`${where}.volumeSizeGb: ${group} nodes keep their data on an XFS volume; set its size in GB (e.g. 100)`);
    }
    if (group && !VOLUME_GROUPS.includes(group) && server.volumeSizeGb !== undefined) {
      problems.push(`${where}.volumeSizeGb: only ${VOLUME_GROUPS.join(", ")} nodes get a data volume; remove the key`);
    }
    if (group && memoryGb !== undefined) {
      servers.push({
        name: server.name,
        privateIp: server.privateIp,
        role: server.role,
        subrole: server.subrole ?? Object.keys(ROLE_TABLE[server.role])[0],
        group,
        serverType: server.serverType,
        memoryGb,
        volumeSizeGb,
      });
    }
  });

  const countOf = (group: ServerGroup) => servers.filter((server) => server.group === group).length;
  for (const group of REQUIRED_GROUPS) {
    if (countOf(group) === 0) problems.push(`keybuzz:servers: no server has the ${group} role; add at least one`);
  }
  for (const group of QUORUM_GROUPS) {
    const count = countOf(group);
    if (count > 0 && (count < 3 || count % 2 === 0)) {
      problems.push(`keybuzz:servers: the ${group} cluster has ${count} nodes; a quorum needs an odd count of at least 3`);
    }
  }
  const controlPlanes = countOf("k8s-master");
  if (controlPlanes > 0 && controlPlanes % 2 === 0) {
    problems.push(`keybuzz:servers: ${controlPlanes} Kubernetes control planes; etcd needs an odd count (1, 3, 5)`);
  }

  const loadBalancers: LoadBalancerSpec[] = [];
  const seenLbNames = new Set<string>();
  const seenLbIps = new Set<string>();
  config.loadBalancers.forEach((lb, index) => {
    const where = `keybuzz:loadBalancers[${index}]`;
    if (seenLbNames.has(lb.name)) problems.push(`${where}.name: "${lb.name}" is used twice; names must be unique`);
    seenLbNames.add(lb.name);
    if (seenLbIps.has(lb.privateIp)) problems.push(`${where}.privateIp: ${lb.privateIp} is already used by another load balancer`);
    seenLbIps.add(lb.privateIp);
    if (!inCidr(lb.privateIp, config.network.subnet)) {
      problems.push(`${where}.privateIp: ${lb.privateIp} is outside the subnet ${config.network.subnet}; pick an address inside it`);
    } else if (reservedAddress(lb.privateIp)) {
      problems.push(`${where}.privateIp: ${lb.privateIp} is ${reservedAddress(lb.privateIp)}; pick another address`);
    }
    const limits = LOAD_BALANCER_LIMITS[lb.type];
    if (!limits) {
      problems.push(`${where}.type: "${lb.type}" is not a load balancer type; use one of ${Object.keys(LOAD_BALANCER_LIMITS).join(", ")}`);
    } else if (lb.services.length > limits.services) {
      problems.push(
        `${where}.services: ${lb.services.length} services but ${lb.type} holds ${limits.services}; use a larger type (lb21 holds 15) or split the load balancer`,
      );
    }
    const ports = lb.services.map((service) => service.listenPort);
    const duplicatePort = ports.find((port, portIndex) => ports.indexOf(port) !== portIndex);
    if (duplicatePort !== undefined) problems.push(`${where}.services: port ${duplicatePort} is listed twice`);
    const targetGroup = Object.values(ROLE_TABLE)
      .flatMap((subroles) => Object.values(subroles))
      .find((group) => group === lb.targets);
    if (!targetGroup) {
      problems.push(`${where}.targets: "${lb.targets}" is not a server group; use one of ${REQUIRED_GROUPS.join(", ")}`);
      return;
    }
    if (countOf(targetGroup) === 0) {
      problems.push(
        `${where}.targets: no server is in the ${targetGroup} group, so ${lb.name} would have no target; add servers to it or target another group`,
      );
    } else if (limits && countOf(targetGroup) > limits.targets) {
      problems.push(`${where}.targets: ${countOf(targetGroup)} targets but ${lb.type} holds ${limits.targets}; use a larger type`);
    }
    if (lb.public) {
      const privatePorts = lb.services
        .flatMap((service) => [service.listenPort, service.destinationPort ?? service.listenPort])
        .filter((port, portIndex, all) => PRIVATE_ONLY_PORTS[port] !== undefined && all.indexOf(port) === portIndex)
        .map((port) => `${port} (${PRIVATE_ONLY_PORTS[port]})`);
      const why =
        privatePorts.length > 0
          ? `serves ${privatePorts.join(", ")}`
          : PRIVATE_ONLY_GROUPS.includes(targetGroup)
            ? `targets the ${targetGroup} group`
            : undefined;
      if (why) {
        problems.push(
          `${where}.public: ${lb.name} ${why}, which must stay on the private network (a public load balancer has no source filter, it bypasses keybuzz:adminCidrs); set public: false`,
        );
      }
    }
    loadBalancers.push({
      name: lb.name,
      privateIp: lb.privateIp,
      type: lb.type,
      public: lb.public,
      targetGroup,
      services: lb.services.map((service) => ({
        name: service.name,
        listenPort: service.listenPort,
        destinationPort: service.destinationPort ?? service.listenPort,
        proxyProtocol: service.proxyProtocol ?? false,
      })),
    });
  });

  const apiLb = config.loadBalancers.find((lb) => lb.name === config.kubernetes.apiLoadBalancer);
  if (!apiLb) {
    problems.push(
      `keybuzz:kubernetes.apiLoadBalancer: no load balancer is named "${config.kubernetes.apiLoadBalancer}"; name the one that serves 6443`,
    );
  } else if (!apiLb.services.some((service) => service.listenPort === 6443)) {
    problems.push(`keybuzz:kubernetes.apiLoadBalancer: ${apiLb.name} has no service on port 6443; add one`);
  }
  for (const key of ["podCidr", "serviceCidr"] as const) {
    hostBitsProblem(config.kubernetes[key], `keybuzz:kubernetes.${key}`, problems);
    if (cidrsOverlap(config.kubernetes[key], config.network.ipRange)) {
      problems.push(
        `keybuzz:kubernetes.${key}: ${config.kubernetes[key]} overlaps the private network ${config.network.ipRange}; pick a range outside it`,
      );
    }
  }
  if (cidrsOverlap(config.kubernetes.podCidr, config.kubernetes.serviceCidr)) {
    problems.push(
      `keybuzz:kubernetes.podCidr: ${config.kubernetes.podCidr} overlaps serviceCidr ${config.kubernetes.serviceCidr}; pick disjoint ranges`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    location: config.location,
    network: { ...config.network, gateway },
    adminCidrs: config.adminCidrs,
    sshKeys: config.sshKeys.map((entry) => (typeof entry === "string" ? { publicKey: entry } : { existing: entry.existing })),
    internalDomain: config.internalDomain,
    protectData: config.protectData,
    servers,
    loadBalancers,
    kubernetes: config.kubernetes,
  };
}

/** Servers of one group, in inventory order (the first is the bootstrap node of its cluster). */
export function serversOf(inventory: Inventory, group: ServerGroup): ServerSpec[] {
  return inventory.servers.filter((server) => server.group === group);
}

/** A cluster member as the render functions see it. */
export interface ClusterNode {
  /** Inventory name = host name, e.g. `redis-01`. */
  readonly name: string;
  /** Address the node's services bind and advertise: the private IP (a 127.x address in the loopback tests). */
  readonly address: string;
}

/** The members of a cluster from their servers, in the same (inventory) order: the first bootstraps. */
export function clusterNodes(servers: readonly ServerSpec[]): ClusterNode[] {
  return servers.map((server) => ({ name: server.name, address: server.privateIp }));
}
