/**
 * Hetzner Cloud server types the inventory may use, with their memory in GB.
 *
 * Memory drives derived settings (Redis `maxmemory`, PostgreSQL buffers). Source: Hetzner Cloud
 * server type list (shared vCPU `cx*3`, `cpx*2` generation and dedicated `ccx*3`). The older
 * `cx22` and `cpx11`–`cpx51` are being retired by Hetzner and are rejected with a pointer to the
 * replacement class.
 */
export const SERVER_TYPE_MEMORY_GB: Readonly<Record<string, number>> = {
  cx23: 4,
  cx33: 8,
  cx43: 16,
  cx53: 32,
  cpx12: 2,
  cpx22: 4,
  cpx32: 8,
  cpx42: 16,
  cpx52: 24,
  cpx62: 32,
  ccx13: 8,
  ccx23: 16,
  ccx33: 32,
  ccx43: 64,
  ccx53: 128,
  ccx63: 192,
};

/** Retired types and the current type of the same size to use instead. */
export const RETIRED_SERVER_TYPES: Readonly<Record<string, string>> = {
  cx22: "cx23",
  cx32: "cx33",
  cx42: "cx43",
  cx52: "cx53",
  cpx11: "cpx12",
  cpx21: "cpx22",
  cpx31: "cpx32",
  cpx41: "cpx42",
  cpx51: "cpx52",
};

/**
 * Hetzner load balancer types and how many services / targets each holds.
 * Source: Hetzner Cloud load balancer types (lb11: 5 services, 25 targets).
 */
export const LOAD_BALANCER_LIMITS: Readonly<Record<string, { services: number; targets: number }>> = {
  lb11: { services: 5, targets: 25 },
  lb21: { services: 15, targets: 75 },
  lb31: { services: 30, targets: 150 },
};
