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
