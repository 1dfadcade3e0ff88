import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import * as semver from "semver";
import { z } from "zod";
import { ConfigError, formatZodError } from "./errors";

/** Where the pins live; the only place a version is written. */
export const VERSIONS_FILE = path.join(__dirname, "versions.yaml");

const notLatest = (value: string) => !/(^|[:/@\s])latest$/i.test(value) && !/^latest/i.test(value);

/**
 * A container image reference pinned to a release: a tag that carries a full version
 * (`haproxy:2.8.27`, `redis:7.2.16-alpine`) or a digest. Floating tags such as `redis:7` or
 * `rabbitmq:3.13-management` are refused.
 */
const pinnedImage = pinnedImageWith(/^v?\d+\.\d+\.\d+[\w.+-]*$/);

/**
 * MinIO names its releases by their UTC build time, seconds included (`RELEASE.2025-09-07T16-13-09Z`,
 * the git tags of minio/minio); a tag without seconds names no release. Docker Hub's `minio/minio`
 * no longer exists (deleted by MinIO in September 2026); quay.io keeps the images (docs/minio.md).
 */
const pinnedMinioImage = pinnedImageWith(
  /^RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/,
  "must name a MinIO release tag RELEASE.YYYY-MM-DDTHH-MM-SSZ (e.g. RELEASE.2025-09-07T16-13-09Z, seconds included) or a digest",
).refine((value) => !/^(docker\.io\/)?minio\/minio[:@]/.test(value), {
  message: "Docker Hub's minio/minio was deleted in September 2026 and no longer pulls: use quay.io/minio/minio",
});

/**
 * PGDG's Debian revision suffix per Debian release (`pgdg12+N` on bookworm, `pgdg13+N` on trixie,
 * as in apt.postgresql.org's pool: `postgresql-16-pgvector_0.8.6-1.pgdg12+1`).
 */
const PGDG_DEBIAN_RELEASES: Readonly<Record<string, number>> = { bookworm: 12, trixie: 13 };

/**
 * PostgreSQL numbers its releases major.minor, and the Patroni image installs PGDG packages for the
 * base image's Debian release, so the tag names both: `postgres:16.15-bookworm` is exact,
 * `postgres:16` floats and `postgres:16.15` hides which Debian (and so which PGDG suffix) it is.
 */
const pinnedPostgresImage = pinnedImageWith(
  new RegExp(`^\\d+\\.\\d+-(${Object.keys(PGDG_DEBIAN_RELEASES).join("|")})$`),
  `must name a release tag with its Debian base, e.g. postgres:16.15-bookworm (${Object.keys(PGDG_DEBIAN_RELEASES).join(" or ")}); a floating tag such as postgres:16 is not pinned`,
);

function pinnedImageWith(
  tagPattern: RegExp,
  message = "must name a release tag with its full version (e.g. haproxy:2.8.27) or a digest; a floating tag such as redis:7 is not pinned",
) {
  return z
    .string()
    .refine(notLatest, { message: "`latest` is not a version; pin a release tag" })
    .refine((value) => /@sha256:[0-9a-f]{64}$/.test(value) || tagPattern.test(value.split(":").pop() ?? ""), { message });
}

/** A PGDG package version with its Debian revision: `0.8.6-1.pgdg12+1`. */
const pgdgPackageVersion = z
  .string()
  .regex(/^\d+\.\d+\.\d+-\d+\.pgdg\d+\+\d+$/, "must be a PGDG package version with its Debian revision, e.g. 0.8.6-1.pgdg12+1");

/** An exact package or chart version (`1.33.5`, `v3.30.3`, `5:27.5.1-1~ubuntu.24.04~noble`). */
const exactVersion = z
  .string()
  .refine(notLatest, { message: "`latest` is not a version; pin a release" })
  .refine((value) => /^(\d+:)?v?\d+\.\d+\.\d+([-.~+][\w.~+-]*)?$/.test(value), {
    message: "must be an exact version such as 1.33.5 (no ranges, no wildcards)",
  });

const chartSchema = z.strictObject({
  repo: z.string().url(),
  chart: z.string().min(1),
  version: exactVersion,
});

/**
 * A chart that ships or runs the Prometheus operator: `operatorAppVersion` is the `appVersion` of
 * the chart's Chart.yaml at that version (prometheus-community/helm-charts), written down so the
 * CRD chart and the stack can be checked against each other offline.
 */
const operatorChartSchema = chartSchema.extend({
  operatorAppVersion: z.string().regex(/^v\d+\.\d+\.\d+$/, "must be the chart's appVersion, the operator release such as v0.85.0"),
});

/**
 * Known vulnerabilities fixed in a patch of a pinned release line: a pin on that line below the fix
 * is refused, so an old pin copied back (or a revert) fails before any resource is declared.
 */
const SECURITY_FLOORS: readonly { key: ["images" | "packages", string]; line: string; fixedIn: string; advisory: string }[] = [
  // Redis 7.2.6 release notes (redis.io): unbounded pattern matching, Lua bit library, ACL selectors.
  { key: ["images", "redis"], line: "7.2", fixedIn: "7.2.6", advisory: "CVE-2024-31228, CVE-2024-31449, CVE-2024-31227" },
  // CVE records of the PostgreSQL CNA: affected "through 1.25.2" (unauthenticated crash and DoS).
  { key: ["packages", "pgbouncer"], line: "1", fixedIn: "1.26.0", advisory: "CVE-2026-19888, CVE-2026-6668, CVE-2026-6669" },
];

/** The x.y.z a pin carries (`redis:7.2.16-alpine` → 7.2.16), or null. */
function releaseOf(pin: string): semver.SemVer | null {
  return semver.coerce(pin.split(":").pop() ?? pin);
}

const versionsSchema = z
  .strictObject({
    os: z.strictObject({ image: z.string().regex(/^ubuntu-\d\d\.\d\d$/, "must be a Hetzner image name such as ubuntu-24.04") }),
    docker: z.strictObject({
      /**
       * Where Docker comes from (DESIGN.md "Docker source"): `docker-ce`, Docker CE from Docker's apt
       * repository (`docker-ce`, `docker-ce-cli`, `containerd.io`); `distribution`, the OS's own
       * `docker.io` and `containerd` packages. `engine` and `containerd` are those packages' versions.
       */
      source: z.enum(["docker-ce", "distribution"]).default("docker-ce"),
      engine: exactVersion,
      containerd: exactVersion,
    }),
    images: z.strictObject({
      etcd: pinnedImage,
      postgres: pinnedPostgresImage,
      haproxy: pinnedImage,
      pgbouncer: pinnedImage,
      redis: pinnedImage,
      rabbitmq: pinnedImage,
      minio: pinnedMinioImage,
      // ProxySQL announces the MariaDB version to clients, read from this tag (even when a digest follows).
      mariadb: pinnedImage.refine((value) => /:\d+\.\d+\.\d+/.test(value), {
        message: "must carry its x.y.z tag (e.g. mariadb:10.11.18, optionally @sha256:…): ProxySQL's server_version is derived from it",
      }),
      proxysql: pinnedImage,
      nodeExporter: pinnedImage,
      redisExporter: pinnedImage,
      mysqldExporter: pinnedImage,
      postgresExporter: pinnedImage,
      pgbouncerExporter: pinnedImage,
    }),
    packages: z.strictObject({
      patroni: exactVersion,
      pgvector: pgdgPackageVersion,
      pgbouncer: exactVersion,
      // pgBackRest from PGDG: in the Patroni image (its Debian release) and on backup-01 (Ubuntu noble).
      pgbackrest: pgdgPackageVersion,
      pgbackrestRepoHost: z
        .string()
        .regex(/^\d+\.\d+(\.\d+)?-\d+\.pgdg24\.04\+\d+$/, "must be PGDG's Ubuntu 24.04 build, e.g. 2.59.1-1.pgdg24.04+1"),
    }),
    kubernetes: z.strictObject({
      // pkgs.k8s.io names its packages `<major.minor.patch>-<revision>` and its channels `v<major.minor>`:
      // no epoch, no leading v, no pre-release (the k8s cluster module derives the channel from it).
      version: exactVersion.refine((value) => semver.valid(value) === value && semver.prerelease(value) === null, {
        message: "must be a Kubernetes release as pkgs.k8s.io names it, e.g. 1.33.5 (no epoch, no leading v, no pre-release)",
      }),
      packageRevision: z.string().regex(/^\d+\.\d+$/, "must be the pkgs.k8s.io revision such as 1.1"),
    }),
    charts: z.strictObject({
      tigeraOperator: chartSchema,
      ingressNginx: chartSchema,
      prometheusOperatorCrds: operatorChartSchema,
      kubePrometheusStack: operatorChartSchema,
      hcloudCsi: chartSchema,
      metricsServer: chartSchema,
      blackboxExporter: chartSchema,
    }),
  })
  .superRefine((versions, context) => {
    const debian = versions.images.postgres.split(":").pop()?.split("-").pop() ?? "";
    const pgdg = /\.pgdg(\d+)\+/.exec(versions.packages.pgvector)?.[1];
    const expected = PGDG_DEBIAN_RELEASES[debian];
    if (expected !== undefined && pgdg !== undefined && Number(pgdg) !== expected) {
      context.addIssue({
        code: "custom",
        path: ["packages", "pgvector"],
        message: `${versions.packages.pgvector} is PGDG's build for Debian ${pgdg}, but images.postgres (${versions.images.postgres}) is Debian ${expected} (${debian}): pin the .pgdg${expected}+N build`,
      });
    }
    for (const floor of SECURITY_FLOORS) {
      const [section, key] = floor.key;
      const pin = (versions[section] as Readonly<Record<string, string>>)[key];
      const release = releaseOf(pin);
      if (release && semver.satisfies(release, `${floor.line}.x`) && semver.lt(release, floor.fixedIn)) {
        context.addIssue({
          code: "custom",
          path: [section, key],
          message: `${pin} has ${floor.advisory}, fixed in ${floor.fixedIn}: pin ${floor.fixedIn} or later`,
        });
      }
    }
    const { prometheusOperatorCrds: crds, kubePrometheusStack: stack } = versions.charts;
    if (crds.operatorAppVersion !== stack.operatorAppVersion) {
      context.addIssue({
        code: "custom",
        path: ["charts", "prometheusOperatorCrds"],
        message: `prometheus-operator-crds ${crds.version} carries the CRDs of operator ${crds.operatorAppVersion}, but kube-prometheus-stack ${stack.version} runs operator ${stack.operatorAppVersion}: pin the CRD chart whose appVersion is ${stack.operatorAppVersion}`,
      });
    }
  });

/** The `images.<key>` names of versions.yaml (`redis`, `etcd`, …). */
export type ImageKey = keyof z.infer<typeof versionsSchema>["images"];

/** Manifest digest (`sha256:<64 hex>`) of each image the digest lock names, by `images.<key>` (config/lock.ts). */
export type ImageDigests = Readonly<Partial<Record<ImageKey, string>>>;

/**
 * Every pinned version of the platform, as validated from `config/versions.yaml`, with the digests
 * of `config/versions.lock.yaml` when the program's config pass found one (absent: deploy the tags).
 */
export type Versions = z.infer<typeof versionsSchema> & { readonly digests?: ImageDigests };

/** A Helm chart pin: repository URL, chart name, exact version (and, for the operator charts, its appVersion). */
export type ChartPin = Versions["charts"][keyof Versions["charts"]];

/**
 * Validates parsed versions data.
 *
 * @throws {ConfigError} naming each bad key (`versions.yaml: images.redis: …`), e.g. a `latest`
 *   or floating tag, a version range, a missing or unknown key.
 */
export function parseVersions(raw: unknown): Versions {
  const parsed = versionsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, "versions.yaml: "));
  return parsed.data;
}

/**
 * Reads and validates `config/versions.yaml` (js-yaml).
 *
 * @param file path of the YAML file; defaults to the project's own.
 * @throws {ConfigError} when the file is not valid YAML or a pin is missing, unpinned or `latest`.
 */
export function loadVersions(file: string = VERSIONS_FILE): Versions {
  let raw: unknown;
  try {
    raw = yaml.load(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError([`${file}: cannot be read as YAML: ${(error as Error).message}`]);
  }
  return parseVersions(raw);
}
