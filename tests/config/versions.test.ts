import { spawnSync } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { loadVersions, parseVersions, VERSIONS_FILE } from "../../config/versions";
import { PATRONI_DOCKERFILE } from "../../components/data/postgres/render";

/** A fresh copy of the project's pins, to break one at a time. */
function pins(): Record<string, Record<string, unknown>> {
  return yaml.load(fs.readFileSync(VERSIONS_FILE, "utf8")) as Record<string, Record<string, unknown>>;
}

/** The problems parseVersions reports for the pins after `edit`, one per line ([] when valid). */
function problemsAfter(edit: (raw: Record<string, Record<string, unknown>>) => void): string[] {
  const raw = pins();
  edit(raw);
  try {
    parseVersions(raw);
    return [];
  } catch (error) {
    return (error as { problems: string[] }).problems;
  }
}

describe("the project's pins", () => {
  it("load", () => {
    expect(() => loadVersions()).not.toThrow();
  });
});

describe("MinIO release tags", () => {
  it("accept a release tag with seconds, as minio/minio's git tags are named", () => {
    expect(problemsAfter((raw) => (raw.images.minio = "quay.io/minio/minio:RELEASE.2024-10-02T17-50-41Z"))).toEqual([]);
  });

  it.each(["RELEASE.2024-10-02T10-00Z", "RELEASE.2024-10-02", "RELEASE.latest", "RELEASE.2025-09-07T16-13-09Z.hotfix.7aa24e772"])(
    "refuse %s, which is not a release tag",
    (tag) => {
      expect(problemsAfter((raw) => (raw.images.minio = `quay.io/minio/minio:${tag}`))).toEqual([
        expect.stringMatching(/^versions\.yaml: images\.minio: must name a MinIO release tag RELEASE\.YYYY-MM-DDTHH-MM-SSZ/),
      ]);
    },
  );
});

describe("the MinIO registry", () => {
  it.each(["minio/minio", "docker.io/minio/minio"])("refuses %s, deleted from Docker Hub", (repository) => {
    expect(problemsAfter((raw) => (raw.images.minio = `${repository}:RELEASE.2025-09-07T16-13-09Z`))).toEqual([
      expect.stringMatching(/^versions\.yaml: images\.minio: Docker Hub's minio\/minio was deleted .*use quay\.io\/minio\/minio$/),
    ]);
  });
});

describe("the pgvector pin and the PostgreSQL image's Debian release", () => {
  it("refuse the pre-2025 suffix .pgdg120+1, which PGDG no longer builds for bookworm", () => {
    expect(problemsAfter((raw) => (raw.packages.pgvector = "0.8.1-1.pgdg120+1"))).toEqual([
      expect.stringMatching(/^versions\.yaml: packages\.pgvector: .*Debian 12 \(bookworm\): pin the \.pgdg12\+N build/),
    ]);
  });

  it("refuse trixie's build on a bookworm image, and accept it on a trixie image", () => {
    expect(problemsAfter((raw) => (raw.packages.pgvector = "0.8.6-1.pgdg13+1"))).toEqual([
      expect.stringMatching(/^versions\.yaml: packages\.pgvector: 0\.8\.6-1\.pgdg13\+1 is PGDG's build for Debian 13/),
    ]);
    expect(
      problemsAfter((raw) => {
        raw.packages.pgvector = "0.8.6-1.pgdg13+1";
        raw.images.postgres = "postgres:16.15-trixie";
      }),
    ).toEqual([]);
  });

  it("refuse a version without PGDG's Debian revision", () => {
    expect(problemsAfter((raw) => (raw.packages.pgvector = "0.8.6"))).toEqual([
      expect.stringMatching(/^versions\.yaml: packages\.pgvector: must be a PGDG package version with its Debian revision/),
    ]);
  });

  it.each(["postgres:16.15", "postgres:16.15-alpine"])("refuse %s, whose tag names no Debian release", (image) => {
    expect(problemsAfter((raw) => (raw.images.postgres = image))).toEqual([
      expect.stringMatching(/^versions\.yaml: images\.postgres: must name a release tag with its Debian base/),
    ]);
  });
});

describe("the Prometheus operator CRDs and kube-prometheus-stack", () => {
  const charts = (raw: Record<string, Record<string, unknown>>) => raw.charts as Record<string, Record<string, string>>;

  it("refuse CRDs of another operator release than the stack's (24.0.1 is v0.86.1, 77.14.0 runs v0.85.0)", () => {
    expect(
      problemsAfter((raw) => {
        charts(raw).prometheusOperatorCrds.version = "24.0.1";
        charts(raw).prometheusOperatorCrds.operatorAppVersion = "v0.86.1";
      }),
    ).toEqual([
      expect.stringMatching(/^versions\.yaml: charts\.prometheusOperatorCrds: .*pin the CRD chart whose appVersion is v0\.85\.0$/),
    ]);
  });

  it("require each chart's appVersion to be written down", () => {
    expect(problemsAfter((raw) => delete charts(raw).kubePrometheusStack.operatorAppVersion)).toEqual([
      expect.stringMatching(/^versions\.yaml: charts\.kubePrometheusStack\.operatorAppVersion: /),
    ]);
  });
});

describe("pins with a known vulnerability fixed in a later patch", () => {
  it("refuse redis 7.2.5 (CVE-2024-31228, fixed in 7.2.6) and accept the fixed patch", () => {
    expect(problemsAfter((raw) => (raw.images.redis = "redis:7.2.5-alpine"))).toEqual([
      "versions.yaml: images.redis: redis:7.2.5-alpine has CVE-2024-31228, CVE-2024-31449, CVE-2024-31227, fixed in 7.2.6: pin 7.2.6 or later",
    ]);
    expect(problemsAfter((raw) => (raw.images.redis = "redis:7.2.6-alpine"))).toEqual([]);
  });

  it("refuse PgBouncer through 1.25.2 (unauthenticated crash CVE-2026-19888)", () => {
    for (const release of ["1.24.1", "1.25.2"]) {
      expect(problemsAfter((raw) => (raw.packages.pgbouncer = release))).toEqual([
        expect.stringMatching(/^versions\.yaml: packages\.pgbouncer: .* has CVE-2026-19888.*fixed in 1\.26\.0/),
      ]);
    }
  });

  it("leave other release lines alone", () => {
    expect(problemsAfter((raw) => (raw.images.redis = "redis:7.4.0-alpine"))).toEqual([]);
  });
});

describe("scripts/patroni/Dockerfile installs the pinned pgvector build", () => {
  /**
   * Runs the Dockerfile's RUN instruction that installs pgvector in bash (the Dockerfile's SHELL),
   * with /etc/os-release, /etc/apt/sources.list.d and /var/lib/apt/lists moved into a temporary
   * root (nothing of this machine's apt is touched) and a fake apt-get that records each call and
   * the apt sources it would read.
   */
  function runPgvectorInstall(codename: string): { calls: string[]; sources: string } {
    const dockerfile = fs.readFileSync(PATRONI_DOCKERFILE, "utf8");
    const start = dockerfile.search(/^RUN .*\n(?:.*\\\n)*.*postgresql-16-pgvector/m);
    expect(start).toBeGreaterThan(-1);
    const lines = dockerfile.slice(start).split("\n");
    const end = lines.findIndex((line) => !line.endsWith("\\"));
    const run = lines
      .slice(0, end + 1)
      .join("\n")
      .replace(/^RUN /, "");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "keybuzz-pgvector-"));
    fs.mkdirSync(path.join(root, "sources.list.d"));
    fs.mkdirSync(path.join(root, "bin"));
    fs.mkdirSync(path.join(root, "lists"));
    fs.writeFileSync(path.join(root, "os-release"), `ID=debian\nVERSION_CODENAME=${codename}\n`);
    fs.writeFileSync(
      path.join(root, "bin", "apt-get"),
      `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >>"${root}/calls"\n[ "$1" != update ] || cat "${root}"/sources.list.d/*.list >"${root}/sources-at-update"\n`,
      { mode: 0o755 },
    );
    const moved: [string, string][] = [
      ["/etc/os-release", `${root}/os-release`],
      ["/etc/apt/sources.list.d/", `${root}/sources.list.d/`],
      ["/var/lib/apt/lists/", `${root}/lists/`],
    ];
    const body = moved.reduce((text, [from, to]) => {
      expect(text).toContain(from);
      return text.split(from).join(to);
    }, run);
    // The only absolute path left is the keyring named inside the sources line.
    expect(body.replace(/signed-by=\/usr\/local\/share\/keyrings\/postgres\.gpg\.asc/, "").replace(new RegExp(root, "g"), "")).not.toMatch(
      /[\s>"]\/(etc|var|usr)\//,
    );
    const result = spawnSync("bash", ["-o", "pipefail", "-c", body], {
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${root}/bin:${process.env.PATH}`,
        PGVECTOR_VERSION: "0.8.4-1.pgdg12+1",
        PGBACKREST_VERSION: "2.59.1-1.pgdg12+1",
      },
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return {
      calls: fs.readFileSync(path.join(root, "calls"), "utf8").trim().split("\n"),
      sources: fs.readFileSync(path.join(root, "sources-at-update"), "utf8"),
    };
  }

  it("reads PGDG's archive for the image's own Debian release before apt-get update, with the base image's keyring", () => {
    for (const codename of ["bookworm", "trixie"]) {
      expect(runPgvectorInstall(codename).sources.trim()).toBe(
        `deb [ signed-by=/usr/local/share/keyrings/postgres.gpg.asc ] http://apt-archive.postgresql.org/pub/repos/apt ${codename}-pgdg-archive main`,
      );
    }
  });

  it("asks apt for exactly the pinned build", () => {
    expect(runPgvectorInstall("bookworm").calls).toEqual([
      "update",
      "install -y --no-install-recommends postgresql-16-pgvector=0.8.4-1.pgdg12+1 pgbackrest=2.59.1-1.pgdg12+1 python3-venv",
    ]);
  });

  it("defaults its build arguments to the pins of config/versions.yaml", () => {
    const dockerfile = fs.readFileSync(PATRONI_DOCKERFILE, "utf8");
    const versions = loadVersions();
    expect(dockerfile).toContain(`ARG POSTGRES_IMAGE=${versions.images.postgres}\n`);
    expect(dockerfile).toContain(`ARG PATRONI_VERSION=${versions.packages.patroni}\n`);
    expect(dockerfile).toContain(`ARG PGVECTOR_VERSION=${versions.packages.pgvector}\n`);
    expect(dockerfile).toContain(`ARG PGBACKREST_VERSION=${versions.packages.pgbackrest}\n`);
  });
});

describe("the Kubernetes release", () => {
  it.each(["1:1.33.5", "v1.33.5", "1.34.0-rc.1"])(
    "refuses %s before any resource, since the cluster module derives pkgs.k8s.io's channel from it",
    (version) => {
      expect(problemsAfter((raw) => (raw.kubernetes.version = version))).toEqual([
        expect.stringMatching(/^versions\.yaml: kubernetes\.version: must be a Kubernetes release as pkgs\.k8s\.io names it/),
      ]);
    },
  );

  it("accepts a plain release", () => {
    expect(problemsAfter((raw) => (raw.kubernetes.version = "1.33.6"))).toEqual([]);
  });
});
