import { Inventory, ServerGroup, serversOf, Versions } from "../../../config";
import { HostFile } from "../../lib/remote";
import type { ScrapeJobSpec } from "../../observability/monitoring/render";
import { stepBody } from "../../lib/scripts";
import { BaseOsSettings } from "./settings";

/**
 * Pure render functions of the base OS (spec 000, "Module 2"): every file and step body that lands
 * on a server. Inventory, versions and settings in, text out; the scripts are files under
 * `scripts/base-os/`.
 */

/**
 * Where the SSH hardening lands. sshd keeps the first value it reads for each keyword (sshd_config(5):
 * "the first obtained value will be used") and Ubuntu's sshd_config includes `sshd_config.d/*.conf`
 * first, in name order, so `00-` is read before cloud-init's `50-cloud-init.conf`.
 */
export const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-keybuzz.conf";
/** Earlier name of {@link SSHD_DROP_IN}, read after cloud-init's file; the step removes it. */
export const OLD_SSHD_DROP_IN = "/etc/ssh/sshd_config.d/99-keybuzz.conf";

/**
 * Fingerprint of Docker's apt signing key ("Docker Release (CE deb)", docs.docker.com engine install
 * guide: 9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88); the downloaded key is refused otherwise.
 */
export const DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";

/** One UFW rule: a port or range and protocol, from anywhere or from one source CIDR. */
export interface UfwRule {
  /** `deny` for a port closed to a source the private network's blanket allow would let in. Default allow. */
  readonly action?: "deny";
  /** `6443` or a range `2379:2380`. */
  readonly port: string;
  readonly proto: "tcp" | "udp";
  /** Source CIDR; undefined = any source (the Hetzner firewall still filters public interfaces). */
  readonly from?: string;
  /** Why the port is open. */
  readonly purpose: string;
}

/**
 * Ports UFW opens per server group, on top of SSH and the private network (spec 000 §7, "Ouverture
 * des ports par rôle", adapted to K8s). Each entry names the spec's port; additions beyond the
 * spec's table say so. Every source is the private network, except the Kubernetes API (6443), which
 * the admin CIDRs reach too (the Hetzner firewall also limits public 6443 to them): etcd, the kubelet,
 * the scheduler, the controller manager and NodePorts are never open to the internet, even if the
 * Hetzner firewall were detached.
 */
export function ufwRulesFor(group: ServerGroup, privateCidr: string, adminCidrs: readonly string[]): UfwRule[] {
  const fromPrivate = (port: string, purpose: string): UfwRule => ({ port, proto: "tcp", from: privateCidr, purpose });
  switch (group) {
    case "postgres":
      return [fromPrivate("5432", "PostgreSQL"), fromPrivate("6432", "PgBouncer")];
    case "mariadb":
      return [fromPrivate("3306", "MariaDB")];
    case "proxysql":
      return [fromPrivate("3306", "ProxySQL (addition: the spec's table has no ProxySQL row)")];
    case "redis":
      return [fromPrivate("6379", "Redis"), fromPrivate("26379", "Sentinel")];
    case "rabbitmq":
      return [fromPrivate("5672", "RabbitMQ AMQP"), fromPrivate("15672", "RabbitMQ management")];
    case "minio":
      return [fromPrivate("9000", "MinIO S3 API"), fromPrivate("9001", "MinIO console")];
    case "k8s-master":
      return [
        fromPrivate("6443", "Kubernetes API server"),
        fromPrivate("10250", "kubelet API"),
        fromPrivate("2379:2380", "etcd client/peer"),
        fromPrivate("10259", "kube-scheduler"),
        fromPrivate("10257", "kube-controller-manager"),
        fromPrivate("179", "Calico BGP (addition: DESIGN.md)"),
        ...adminCidrs.map((cidr) => ({
          port: "6443",
          proto: "tcp" as const,
          from: cidr,
          purpose: "Kubernetes API server, admin CIDRs (addition)",
        })),
      ];
    case "k8s-worker":
      return [
        fromPrivate("10250", "kubelet API"),
        fromPrivate("30000:32767", "NodePort services"),
        fromPrivate("179", "Calico BGP (addition: DESIGN.md)"),
      ];
    case "haproxy":
      return [
        fromPrivate("5432", "PostgreSQL write"),
        fromPrivate("5672", "RabbitMQ"),
        fromPrivate("6379", "Redis"),
        fromPrivate("5433", "PostgreSQL read (addition: DESIGN.md)"),
        fromPrivate("6432", "PgBouncer (addition: DESIGN.md)"),
      ];
    case "admin":
    case "backup":
      return [];
  }
}

/**
 * The exporter ports a server serves: every scrape job listing it (`deployedScrapeJobs`), but a
 * port that is also its service's own ({@link ScrapeJobSpec.servicePort}). Sorted. Pure.
 */
export function exporterPortsOf(serverName: string, jobs: readonly ScrapeJobSpec[]): number[] {
  const ports = jobs.filter((job) => !job.servicePort && job.servers.some((server) => server.name === serverName)).map((job) => job.port);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * UFW rules of a server's exporter ports (issue 16 item 2): each open to the Kubernetes nodes'
 * private addresses (Prometheus's pods reach other servers from their node's address: Calico's
 * outgoing NAT) and the pod CIDR, then denied to the rest of the private network, which the
 * blanket private allow would otherwise let in. base-os.sh applies these before that allow (UFW
 * keeps the first matching rule). Pure.
 */
export function exporterUfwRules(ports: readonly number[], inventory: Inventory): UfwRule[] {
  const scrapers = [
    ...[...serversOf(inventory, "k8s-master"), ...serversOf(inventory, "k8s-worker")].map((server) => `${server.privateIp}/32`),
    inventory.kubernetes.podCidr,
  ];
  return ports.flatMap((port): UfwRule[] => [
    ...scrapers.map((from): UfwRule => ({
      port: String(port),
      proto: "tcp",
      from,
      purpose: "exporter, scraped from Kubernetes (addition: issue 16)",
    })),
    { action: "deny", port: String(port), proto: "tcp", from: inventory.network.ipRange, purpose: "exporter, closed to the other servers" },
  ]);
}

/** One rule as base-os.sh reads it from KB_UFW_RULES: `[deny:]port/proto[@source]`. Pure. */
function ufwRuleLine(rule: UfwRule): string {
  return `${rule.action ? `${rule.action}:` : ""}${rule.port}/${rule.proto}${rule.from ? `@${rule.from}` : ""}`;
}

/** `/etc/sysctl.d/99-keybuzz.conf`, spec 000 §4 verbatim. */
export function renderSysctl(): string {
  return [
    "net.core.somaxconn = 65535",
    "net.ipv4.tcp_fin_timeout = 15",
    "net.ipv4.tcp_keepalive_time = 300",
    "net.ipv4.tcp_tw_reuse = 1",
    "",
    "fs.inotify.max_user_instances = 8192",
    "fs.inotify.max_user_watches = 524288",
    "",
    "vm.swappiness = 10",
    "",
  ].join("\n");
}

/**
 * `/etc/docker/daemon.json`: spec 000 §5 plus `mtu: 1450`, the MTU of the Hetzner private
 * network (DESIGN.md), so bridged containers never send oversized packets over it, and
 * `live-restore: true` (docs.docker.com "Live restore"), so a Docker upgrade or restart does not stop
 * the data containers.
 */
export function renderDockerDaemonJson(): string {
  const daemon = {
    "log-driver": "json-file",
    "log-opts": { "max-size": "20m", "max-file": "3" },
    "storage-driver": "overlay2",
    "exec-opts": ["native.cgroupdriver=systemd"],
    mtu: 1450,
    "live-restore": true,
  };
  return `${JSON.stringify(daemon, null, 2)}\n`;
}

/** {@link SSHD_DROP_IN}, spec 000 §6 verbatim (key-only root login). */
export function renderSshdDropIn(): string {
  return [
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "PermitEmptyPasswords no",
    "ChallengeResponseAuthentication no",
    "AllowTcpForwarding no",
    "X11Forwarding no",
    "UseDNS no",
    "ClientAliveInterval 300",
    "ClientAliveCountMax 2",
    "MaxAuthTries 3",
    "MaxSessions 4",
    "",
  ].join("\n");
}

/**
 * The lines `sshd -T` must print once {@link renderSshdDropIn} is in force: sshd's own spelling of
 * each setting (lower-case keyword, `ChallengeResponseAuthentication` as its newer name
 * `kbdinteractiveauthentication`; OpenSSH 9 prints `prohibit-password` as `without-password`, which
 * `scripts/common/sshd.sh` reads as the same). The base OS step and the verification step check
 * every one of them.
 */
export function sshdEffectiveSettings(): string[] {
  return [
    "permitrootlogin prohibit-password",
    "passwordauthentication no",
    "permitemptypasswords no",
    "kbdinteractiveauthentication no",
    "allowtcpforwarding no",
    "x11forwarding no",
    "usedns no",
    "clientaliveinterval 300",
    "clientalivecountmax 2",
    "maxauthtries 3",
    "maxsessions 4",
  ];
}

/** `/etc/systemd/journald.conf.d/limit.conf`, spec 000 §9 (the sizes are `keybuzz:baseOs.journald`). */
export function renderJournaldLimits(settings: BaseOsSettings): string {
  return `[Journal]\nSystemMaxUse=${settings.journald.systemMaxUse}\nSystemKeepFree=${settings.journald.systemKeepFree}\n`;
}

/**
 * `/etc/fail2ban/jail.d/keybuzz.conf`: the SSH jail (its limits are `keybuzz:baseOs.fail2ban`),
 * never banning the admin CIDRs or the private network (a ban of the operators' bastion would cut
 * `pulumi up` off).
 */
export function renderFail2banJail(adminCidrs: readonly string[], privateCidr: string, settings: BaseOsSettings): string {
  return [
    "[sshd]",
    "enabled = true",
    `maxretry = ${settings.fail2ban.maxRetry}`,
    `findtime = ${settings.fail2ban.findTime}`,
    `bantime = ${settings.fail2ban.banTime}`,
    `ignoreip = 127.0.0.1/8 ::1 ${privateCidr} ${adminCidrs.join(" ")}`,
    "",
  ].join("\n");
}

/**
 * The managed `/etc/hosts` block: every inventory name at its private IP, plus the aliases the
 * modules rely on — `<name>.<domain>` for MinIO nodes (MinIO's sequential hostnames) and
 * `s3.<domain>` for the first MinIO node (spec 001, design section B).
 */
export function renderHostsBlock(inventory: Inventory): string {
  const firstMinio = serversOf(inventory, "minio")[0]?.name;
  const lines = inventory.servers.map((server) => {
    const aliases = [server.name];
    if (server.group === "minio") aliases.push(`${server.name}.${inventory.internalDomain}`);
    if (server.name === firstMinio) aliases.push(`s3.${inventory.internalDomain}`);
    return `${server.privateIp} ${aliases.join(" ")}`;
  });
  return ["# BEGIN KeyBuzz managed block", ...lines, "# END KeyBuzz managed block", ""].join("\n");
}

/**
 * The `x.y.z` release inside a Debian package version, as `docker version` reports it:
 * `5:27.5.1-1~ubuntu.24.04~noble` (Docker CE), `27.5.1-0ubuntu3~24.04.2` (Ubuntu's docker.io) and
 * `26.1.5+dfsg1-9+b9` (Debian's) → `27.5.1` / `26.1.5`.
 *
 * @throws Error when the version carries no `x.y.z`.
 */
export function upstreamRelease(packageVersion: string): string {
  const match = /^(?:\d+:)?(\d+\.\d+\.\d+)/.exec(packageVersion);
  if (!match) throw new Error(`no x.y.z release in the package version ${packageVersion}`);
  return match[1];
}

/** The Debian packages of each Docker source (versions.yaml `docker.source`): engine, CLI, containerd. */
export const DOCKER_PACKAGES = {
  "docker-ce": { engine: "docker-ce", cli: "docker-ce-cli", containerd: "containerd.io" },
  distribution: { engine: "docker.io", cli: "", containerd: "containerd" },
} as const;

/** The files the base OS step writes on every server (the same on each). */
export function baseOsFiles(inventory: Inventory, settings: BaseOsSettings): HostFile[] {
  return [
    { path: "/etc/sysctl.d/99-keybuzz.conf", content: renderSysctl() },
    { path: "/etc/docker/daemon.json", content: renderDockerDaemonJson() },
    { path: SSHD_DROP_IN, content: renderSshdDropIn() },
    { path: "/etc/systemd/journald.conf.d/limit.conf", content: renderJournaldLimits(settings) },
    {
      path: "/etc/fail2ban/jail.d/keybuzz.conf",
      content: renderFail2banJail(inventory.adminCidrs, inventory.network.ipRange, settings),
    },
    { path: "/etc/keybuzz/hosts.block", content: renderHostsBlock(inventory) },
  ];
}

/**
 * The base OS script body for one server: its variables, the shared apt, sshd and host helpers
 * (`scripts/common/`), then `scripts/base-os/base-os.sh`. `exporterPorts`: the server's exporter
 * ports ({@link exporterPortsOf}), open to the Kubernetes nodes only.
 */
export function renderBaseOsScript(
  hostName: string,
  group: ServerGroup,
  inventory: Inventory,
  versions: Versions,
  exporterPorts: readonly number[],
): string {
  const isKubernetesNode = group === "k8s-master" || group === "k8s-worker";
  const dockerPackages = DOCKER_PACKAGES[versions.docker.source];
  const rules = [...exporterUfwRules(exporterPorts, inventory), ...ufwRulesFor(group, inventory.network.ipRange, inventory.adminCidrs)].map(
    ufwRuleLine,
  );
  const variables = {
    KB_HOSTNAME: hostName,
    KB_PRIVATE_CIDR: inventory.network.ipRange,
    KB_ADMIN_CIDRS: inventory.adminCidrs.join(" "),
    KB_DOCKER_SOURCE: versions.docker.source,
    KB_DOCKER_PACKAGE: dockerPackages.engine,
    KB_DOCKER_CLI_PACKAGE: dockerPackages.cli,
    KB_CONTAINERD_PACKAGE: dockerPackages.containerd,
    KB_DOCKER_VERSION: versions.docker.engine,
    KB_CONTAINERD_VERSION: versions.docker.containerd,
    KB_DOCKER_KEY_FINGERPRINT: DOCKER_APT_KEY_FINGERPRINT,
    KB_SSHD_DROP_IN: SSHD_DROP_IN,
    KB_OLD_SSHD_DROP_IN: OLD_SSHD_DROP_IN,
    KB_SSHD_EXPECTED: sshdEffectiveSettings().join("\n"),
    KB_UFW_RULES: rules.join("\n"),
    // Pods' traffic is routed through the node: Kubernetes nodes forward it, and accept it from
    // pods on other nodes (source in the pod CIDR: Prometheus scraping node-exporter, kubelet).
    KB_UFW_ROUTED: isKubernetesNode ? "allow" : "deny",
    KB_POD_CIDR: isKubernetesNode ? inventory.kubernetes.podCidr : "",
  };
  return stepBody("base-os", ["base-os.sh"], { variables, common: ["apt.sh", "sshd.sh", "host.sh"] });
}

/**
 * The verification script for one server: spec 000's 8 tests (`docker_pinned` checks the pinned
 * package of the configured Docker source and the release the running daemon reports), then a
 * bounded wait (300 s) until the platform's containers on the server run and are healthy, which the
 * next server of its group waits for (BaseOs rolls a change one server at a time per group).
 */
export function renderVerifyScript(hostName: string, versions: Versions): string {
  const variables = {
    KB_HOSTNAME: hostName,
    KB_DOCKER_PACKAGE: DOCKER_PACKAGES[versions.docker.source].engine,
    KB_DOCKER_VERSION: versions.docker.engine,
    KB_DOCKER_RELEASE: upstreamRelease(versions.docker.engine),
    KB_SSHD_EXPECTED: sshdEffectiveSettings().join("\n"),
  };
  return stepBody("base-os", ["containers-running.sh", "verify-base-os.sh"], { variables, common: ["sshd.sh", "host.sh"] });
}
