import * as ipaddr from "ipaddr.js";

/**
 * The admin-CIDR rule shared by the preflight and the policy pack: an admin CIDR broader than /16
 * opens SSH (22) and the Kubernetes API (6443) to the world at large. The same threshold as the
 * config check being added to config/inventory.ts (`BROAD_ADMIN_PREFIX`); once that lands, this
 * constant should import it (merge point).
 */
export const WORLD_OPEN_PREFIX = 16;

/**
 * The CIDRs of `cidrs` that are world-open: IPv4 shorter than /{@link WORLD_OPEN_PREFIX}, IPv6
 * shorter than /48, or not a CIDR at all (an unreadable source is not a restriction).
 */
export function worldOpenCidrs(cidrs: readonly string[]): string[] {
  return cidrs.filter((cidr) => {
    try {
      const [address, bits] = ipaddr.parseCIDR(cidr);
      return address.kind() === "ipv4" ? bits < WORLD_OPEN_PREFIX : bits < 48;
    } catch {
      return true;
    }
  });
}

/**
 * Documentation ranges (RFC 5737 §3, TEST-NET-1/2/3): never anyone's egress address, so an admin
 * CIDR inside one is a placeholder left in the stack file. Merge point: config/inventory.ts is
 * gaining the same list (`DOCUMENTATION_RANGES`).
 */
export const DOCUMENTATION_RANGES: readonly string[] = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];

/** The CIDRs of `cidrs` that lie inside a documentation range (placeholders). */
export function placeholderCidrs(cidrs: readonly string[]): string[] {
  return cidrs.filter((cidr) => {
    try {
      const [address, bits] = ipaddr.parseCIDR(cidr);
      return (
        address.kind() === "ipv4" &&
        DOCUMENTATION_RANGES.some((range) => {
          const [network, rangeBits] = ipaddr.IPv4.parseCIDR(range);
          return bits >= rangeBits && (address as ipaddr.IPv4).match(network, rangeBits);
        })
      );
    } catch {
      return false;
    }
  });
}
