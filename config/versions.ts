import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { z } from "zod";
import { ConfigError, formatZodError } from "./errors";

/** Where the pins live; the only place a version is written. */
export const VERSIONS_FILE = path.join(__dirname, "versions.yaml");

const notLatest = (value: string) => !/(^|[:/@\s])latest$/i.test(value) && !/^latest/i.test(value);

/**
 * A container image reference pinned to a release: a tag that carries a full version
 * (`haproxy:2.8.15`, `minio/minio:RELEASE.2024-10-02T10-00Z`) or a digest. Floating tags such as
 * `redis:7` or `rabbitmq:3.13-management` are refused.
 */
const pinnedImage = pinnedImageWith(/^v?\d+\.\d+\.\d+[\w.+-]*$|^RELEASE\.[\w-]+$/);

/** PostgreSQL numbers its releases major.minor: `postgres:16.10-bookworm` is exact, `postgres:16` floats. */
const pinnedPostgresImage = pinnedImageWith(/^\d+\.\d+(-[a-z]+)?$/);

function pinnedImageWith(tagPattern: RegExp) {
  return z
    .string()
    .refine(notLatest, { message: "`latest` is not a version; pin a release tag" })
    .refine((value) => /@sha256:[0-9a-f]{64}$/.test(value) || tagPattern.test(value.split(":").pop() ?? ""), {
      message:
        "must name a release tag with its full version (e.g. haproxy:2.8.15) or a digest; a floating tag such as redis:7 is not pinned",
    });
}

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

const versionsSchema = z.strictObject({
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
    minio: pinnedImage,
    mariadb: pinnedImage,
    proxysql: pinnedImage,
  }),
  packages: z.strictObject({ patroni: exactVersion, pgvector: exactVersion }),
  kubernetes: z.strictObject({
    version: exactVersion,
    packageRevision: z.string().regex(/^\d+\.\d+$/, "must be the pkgs.k8s.io revision such as 1.1"),
  }),
  charts: z.strictObject({
    tigeraOperator: chartSchema,
    ingressNginx: chartSchema,
    prometheusOperatorCrds: chartSchema,
    kubePrometheusStack: chartSchema,
    hcloudCsi: chartSchema,
  }),
});

/** Every pinned version of the platform, as validated from `config/versions.yaml`. */
export type Versions = z.infer<typeof versionsSchema>;

/** A Helm chart pin: repository URL, chart name, exact version. */
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
