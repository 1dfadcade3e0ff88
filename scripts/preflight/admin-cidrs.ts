import * as ipaddr from "ipaddr.js";
import { BROAD_ADMIN_PREFIX, DOCUMENTATION_RANGES } from "../../config/inventory";

/**
 * The admin-CIDR rule shared by the preflight and the policy pack: an admin CIDR broader than /16
 * opens SSH (22) and the Kubernetes API (6443) to the world at large. The config check's threshold
 * (`BROAD_ADMIN_PREFIX`, config/inventory.ts).
 */
export const WORLD_OPEN_PREFIX = BROAD_ADMIN_PREFIX;

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

/** The CIDRs of `cidrs` that lie inside a documentation range (`DOCUMENTATION_RANGES`, RFC 5737: placeholders). */
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
