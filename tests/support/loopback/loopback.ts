import * as crypto from "crypto";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { INVENTORY_KEYS, Inventory, parseInventory } from "../../../config";
import { DEFAULT_POSTGRES_LAYOUT, PostgresLayout } from "../../../components/data/postgres/settings";
import { debianPostgresBinDir } from "../tools";
import { clusterDirPrefix } from "./reaper";
import { assertLoopback } from "./supervisor";

/**
 * The loopback inventory: a stack's own `keybuzz:` configuration (Pulumi.<stack>.yaml) with its
 * private network moved to 127.0.10.0/24 — every server and load balancer keeps its last octet
 * (10.0.0.123 → 127.0.10.123) — and validated by the program's own `parseInventory`. The render
 * functions then see exactly the production inventory, on addresses that stay on this machine.
 */

const ROOT = path.join(__dirname, "..", "..", "..");

/** The subnet the loopback clusters live in. */
export const LOOPBACK_SUBNET = "127.0.10.0/24";

/** Moves an address of a /24 private subnet to the same host number in 127.0.10.0/24. */
export function toLoopback(address: string): string {
  const octets = address.split(".");
  if (octets.length !== 4) throw new Error(`loopback inventory: ${address} is not an IPv4 address`);
  const moved = `127.0.10.${octets[3]}`;
  assertLoopback(moved);
  return moved;
}

interface RawServer {
  privateIp: string;
  [key: string]: unknown;
}

/** Builds and validates the loopback inventory of `stack` (default prod: the real node counts). */
export function loopbackInventory(stack = "prod"): Inventory {
  const document = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(document.config)) {
    if (key.startsWith("keybuzz:") && key !== "keybuzz:sshPrivateKey") raw[key.slice("keybuzz:".length)] = value;
  }
  const network = raw.network as { subnet: string; ipRange: string; zone: string };
  if (!network.subnet.endsWith("/24")) throw new Error(`loopback inventory: subnet ${network.subnet} is not a /24`);
  raw.network = { ...network, ipRange: "127.0.0.0/8", subnet: LOOPBACK_SUBNET };
  raw.servers = (raw.servers as RawServer[]).map((server) => ({ ...server, privateIp: toLoopback(server.privateIp) }));
  raw.loadBalancers = (raw.loadBalancers as RawServer[]).map((lb) => ({ ...lb, privateIp: toLoopback(lb.privateIp) }));
  // Only the inventory keys; stack config of modules (keybuzz:redis, ...) is read by each suite.
  const inventory = parseInventory(Object.fromEntries(INVENTORY_KEYS.map((key) => [key, raw[key]])), { networkBlocks: ["127.0.0.0/8"] });
  for (const server of inventory.servers) assertLoopback(server.privateIp);
  for (const lb of inventory.loadBalancers) assertLoopback(lb.privateIp);
  return inventory;
}

/**
 * A fresh working directory for one cluster, traversable by the daemons' users (each daemon's own
 * subdirectory is then made private to it).
 */
export function clusterDir(prefix: string): string {
  const dir = fs.mkdtempSync(`${clusterDirPrefix()}${prefix}-`);
  fs.chmodSync(dir, 0o711);
  return dir;
}

/** A fresh random password per run (hex; nothing secret is committed). */
export function testPassword(): string {
  return crypto.randomBytes(16).toString("hex");
}

/** The stack config `keybuzz:<key>` of a module (e.g. `redis`), undefined when the stack leaves the defaults. */
export function stackModuleConfig(stack: string, key: string): unknown {
  const document = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  return document.config[`keybuzz:${key}`];
}

/**
 * The PostgreSQL layout of one loopback node: production ports, Debian's binaries, every path in
 * `base` (owned by postgres) or `etcdBase` (owned by etcd), clients from 127.0.0.0/8, and
 * replication from 127.0.0.1 — the source address the kernel gives every loopback connection.
 */
export function loopbackPostgresLayout(base: string, etcdBase: string): PostgresLayout {
  return {
    ...DEFAULT_POSTGRES_LAYOUT,
    clientCidr: "127.0.0.0/8",
    replicationSourceCidrs: ["127.0.0.1/32"],
    paths: {
      volumeMount: base,
      dataDir: path.join(base, "data"),
      walDir: path.join(base, "wal"),
      binDir: debianPostgresBinDir(),
      configDir: path.join(base, "config"),
      tlsDir: path.join(base, "config", "tls"),
      socketDir: path.join(base, "run"),
      raftDir: path.join(base, "raft"),
      pgpass: path.join(base, "pgpass"),
      etcdDataDir: path.join(etcdBase, "data"),
      etcdConfigDir: path.join(etcdBase, "config"),
    },
  };
}
