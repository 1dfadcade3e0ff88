import { DockerfileParser } from "dockerfile-ast";
import * as fs from "fs";
import * as path from "path";
import type { Versions } from "../../config/versions";
import { reveal, type Registration } from "../lib/mock-engine";
import { placeholderCidrs, worldOpenCidrs, WORLD_OPEN_PREFIX } from "./admin-cidrs";
import { AptPin, checkAptPins } from "./apt";
import { checkCharts } from "./helm";
import { checkHetzner, HCLOUD_API, HetznerPlan, LimitKind } from "./hetzner";
import { checkImages } from "./registry";
import type { FactResult } from "./source";

/** Upstream base URLs, each overridable (`--endpoints FILE`; tests point them at loopback). */
export interface Endpoints {
  /** Hetzner Cloud API base. */
  readonly hcloud: string;
  /** Registry domain → API base (`docker.io` → `https://registry-1.docker.io` by default). */
  readonly registries: Readonly<Record<string, string>>;
  /** Docker's apt repository for Ubuntu (base-os.sh's `deb … https://download.docker.com/linux/ubuntu <codename> stable`). */
  readonly dockerApt: string;
  /** pkgs.k8s.io's core stable channels (components/k8s/cluster/render.ts: `…/core:/stable:/v<minor>/deb/ /`). */
  readonly kubernetesApt: string;
  /** The PostgreSQL Global Development Group repository (`deb … <codename>-pgdg main`). */
  readonly pgdgApt: string;
  /** Chart repository URL as pinned → URL fetched. */
  readonly charts: Readonly<Record<string, string>>;
}

/** The real upstream sources. */
export const DEFAULT_ENDPOINTS: Endpoints = {
  hcloud: HCLOUD_API,
  registries: {},
  dockerApt: "https://download.docker.com/linux/ubuntu",
  kubernetesApt: "https://pkgs.k8s.io/core:/stable:",
  pgdgApt: "https://apt.postgresql.org/pub/repos/apt",
  charts: {},
};

/** Ubuntu codename of a Hetzner image name (Docker's repository is laid out by codename). */
const UBUNTU_CODENAMES: Readonly<Record<string, string>> = { "ubuntu-22.04": "jammy", "ubuntu-24.04": "noble" };

/** The Patroni image's Dockerfile: its `FROM` lines are checked like versions.yaml's images. */
export const PATRONI_DOCKERFILE = path.resolve(__dirname, "..", "patroni", "Dockerfile");

/** Everything the preflight reads from the project for one stack. */
export interface PreflightInput {
  readonly versions: Versions;
  /** `keybuzz:adminCidrs` of the stack file. */
  readonly adminCidrs: readonly string[];
  /** The program's resources on the mock engine (what `pulumi up` would declare). */
  readonly registrations: readonly Registration[];
  /** Text of the Patroni Dockerfile. */
  readonly dockerfile: string;
}

/** Options of one preflight run. */
export interface PreflightOptions {
  readonly endpoints: Endpoints;
  readonly token: string | undefined;
  /** Bound of one request, ms. */
  readonly timeoutMs: number;
  readonly limits: Partial<Record<LimitKind, number>>;
}

/**
 * Base images of a Dockerfile: each `FROM`, with `${ARG}` / `$ARG` replaced by the ARG's default
 * (the values a build without `--build-arg` uses), stage names excluded.
 */
export function dockerfileBaseImages(text: string): string[] {
  const dockerfile = DockerfileParser.parse(text);
  const defaults = new Map<string, string>();
  for (const arg of dockerfile.getInitialARGs()) {
    const property = arg.getProperty();
    const value = property?.getValue();
    if (property && value) defaults.set(property.getName(), value);
  }
  const stages = new Set<string>();
  const images: string[] = [];
  for (const from of dockerfile.getFROMs()) {
    const image = (from.getImage() ?? "").replace(
      /\$\{(\w+)\}|\$(\w+)/g,
      (whole, braced: string, bare: string) => defaults.get(braced ?? bare) ?? whole,
    );
    if (image && !stages.has(image) && image !== "scratch") images.push(image);
    const stage = from.getBuildStage();
    if (stage) stages.add(stage);
  }
  return images;
}

/** The apt pins of versions.yaml, each with the repository its hosts install it from. */
export function aptPins(versions: Versions, endpoints: Endpoints): { pins: AptPin[]; problems: FactResult[] } {
  const problems: FactResult[] = [];
  const pins: AptPin[] = [];
  const codename = UBUNTU_CODENAMES[versions.os.image];
  if (codename) {
    const docker = { label: `Docker CE (${codename})`, indexUrl: `${endpoints.dockerApt}/dists/${codename}/stable/binary-amd64` };
    pins.push(
      { repository: docker, packageName: "docker-ce", version: versions.docker.engine, key: "docker.engine" },
      { repository: docker, packageName: "docker-ce-cli", version: versions.docker.engine, key: "docker.engine" },
      { repository: docker, packageName: "containerd.io", version: versions.docker.containerd, key: "docker.containerd" },
    );
  } else {
    problems.push({
      fact: "docker.engine / docker.containerd",
      source: "versions.yaml",
      status: "fail",
      detail: `no Ubuntu codename known for os.image ${versions.os.image}`,
    });
  }
  const minor = versions.kubernetes.version.split(".").slice(0, 2).join(".");
  const kubernetes = { label: `pkgs.k8s.io v${minor}`, indexUrl: `${endpoints.kubernetesApt}/v${minor}/deb` };
  const kubernetesVersion = `${versions.kubernetes.version}-${versions.kubernetes.packageRevision}`;
  for (const packageName of ["kubeadm", "kubelet", "kubectl"]) {
    pins.push({ repository: kubernetes, packageName, version: kubernetesVersion, key: "kubernetes.version" });
  }
  // The Patroni image installs pgvector from the PGDG suite of its base image's Debian release.
  const baseTag = versions.images.postgres.split(":").pop() ?? "";
  const debian = /-([a-z]+)$/.exec(baseTag)?.[1];
  const major = /^(\d+)/.exec(baseTag)?.[1];
  if (debian && major) {
    const pgdg = { label: `PGDG ${debian}-pgdg`, indexUrl: `${endpoints.pgdgApt}/dists/${debian}-pgdg/main/binary-amd64` };
    pins.push(
      { repository: pgdg, packageName: `postgresql-${major}-pgvector`, version: versions.packages.pgvector, key: "packages.pgvector" },
      // pgBackRest in the Patroni image (scripts/patroni/Dockerfile), from the same suite.
      { repository: pgdg, packageName: "pgbackrest", version: versions.packages.pgbackrest, key: "packages.pgbackrest" },
    );
  } else {
    problems.push({
      fact: "packages.pgvector",
      source: "versions.yaml",
      status: "fail",
      detail: `images.postgres ${versions.images.postgres} names no Debian release (e.g. 16.10-bookworm): the PGDG suite is unknown`,
    });
  }
  // backup-01 installs pgBackRest from PGDG's suite of its Ubuntu release (scripts/pgbackrest/repo-host.sh).
  if (codename) {
    const pgdgUbuntu = { label: `PGDG ${codename}-pgdg`, indexUrl: `${endpoints.pgdgApt}/dists/${codename}-pgdg/main/binary-amd64` };
    pins.push({
      repository: pgdgUbuntu,
      packageName: "pgbackrest",
      version: versions.packages.pgbackrestRepoHost,
      key: "packages.pgbackrestRepoHost",
    });
  }
  return { pins, problems };
}

/** What the program declares in Hetzner, read from the mock engine's registrations. */
export function hetznerPlan(registrations: readonly Registration[], versions: Versions): HetznerPlan {
  const inputsOf = (type: string) =>
    registrations
      .filter((registration) => registration.custom && registration.type === type)
      .map((registration) => reveal(registration.inputs) as Record<string, unknown>);
  const servers = inputsOf("hcloud:index/server:Server");
  const loadBalancers = inputsOf("hcloud:index/loadBalancer:LoadBalancer");
  const subnet = inputsOf("hcloud:index/networkSubnet:NetworkSubnet")[0];
  const names = (type: string) => inputsOf(type).map((inputs) => String(inputs.name));
  const publicNet = (servers[0]?.publicNets as { ipv4Enabled?: boolean; ipv6Enabled?: boolean }[] | undefined)?.[0];
  return {
    location: String(servers[0]?.location ?? ""),
    networkZone: String(subnet?.networkZone ?? ""),
    image: versions.os.image,
    serverTypes: [...new Set(servers.map((inputs) => String(inputs.serverType)))].sort(),
    loadBalancerTypes: [...new Set(loadBalancers.map((inputs) => String(inputs.loadBalancerType)))].sort(),
    sshKeys: inputsOf("hcloud:index/sshKey:SshKey").map((inputs) => ({ name: String(inputs.name), publicKey: String(inputs.publicKey) })),
    names: {
      servers: servers.map((inputs) => String(inputs.name)),
      load_balancers: loadBalancers.map((inputs) => String(inputs.name)),
      placement_groups: names("hcloud:index/placementGroup:PlacementGroup"),
      volumes: names("hcloud:index/volume:Volume"),
    },
    primaryIpsPerServer: publicNet ? Number(publicNet.ipv4Enabled !== false) + Number(publicNet.ipv6Enabled !== false) : 2,
  };
}

/** The admin CIDR fact: none world-open, none a documentation-range placeholder. */
export function adminCidrFact(adminCidrs: readonly string[]): FactResult {
  const fact = "admin CIDRs not world-open";
  const source = "stack config keybuzz:adminCidrs";
  const open = worldOpenCidrs(adminCidrs);
  if (open.length > 0) {
    const detail = `${open.join(", ")} broader than /${WORLD_OPEN_PREFIX}: SSH and 6443 would face that whole range; list your own egress addresses`;
    return { fact, source, status: "fail", detail };
  }
  const placeholders = placeholderCidrs(adminCidrs);
  if (placeholders.length > 0) {
    const detail = `${placeholders.join(", ")} is a documentation range (RFC 5737), a placeholder: put your own egress address(es)`;
    return { fact, source, status: "fail", detail };
  }
  return { fact, source, status: "ok", detail: `${adminCidrs.join(", ")} (each /${WORLD_OPEN_PREFIX} or narrower)` };
}

/** Runs every check of one stack; sources in parallel, each bounded in time. */
export async function runPreflight(input: PreflightInput, options: PreflightOptions): Promise<FactResult[]> {
  const { versions, registrations } = input;
  const images = Object.entries(versions.images).map(([key, reference]) => ({ key: `images.${key}`, reference }));
  for (const reference of dockerfileBaseImages(input.dockerfile)) {
    const same = images.find((image) => image.reference === reference);
    if (same) same.key = `${same.key} + Patroni Dockerfile FROM`;
    else images.push({ key: "Patroni Dockerfile FROM", reference });
  }
  const charts = Object.entries(versions.charts).map(([key, pin]) => ({ key: `charts.${key}`, ...pin }));
  const { pins, problems } = aptPins(versions, options.endpoints);
  const [imageRows, aptRows, chartRows, hetznerRows] = await Promise.all([
    checkImages(images, options.endpoints.registries, options.timeoutMs),
    checkAptPins(pins, options.timeoutMs),
    checkCharts(charts, options.endpoints.charts, options.timeoutMs),
    checkHetzner(hetznerPlan(registrations, versions), {
      baseUrl: options.endpoints.hcloud,
      token: options.token,
      timeoutMs: options.timeoutMs,
      limits: options.limits,
    }),
  ]);
  return [...imageRows, ...problems, ...aptRows, ...chartRows, ...hetznerRows, adminCidrFact(input.adminCidrs)];
}

/** Reads the Patroni Dockerfile. */
export function readPatroniDockerfile(file = PATRONI_DOCKERFILE): string {
  return fs.readFileSync(file, "utf8");
}
