import {
  DEFAULT_ETCD_BACKUP_SETTINGS,
  etcdBackupTls,
  pemCertificates,
  productionEtcdctl,
  renderClusterSnapshotScript,
  renderEtcdSnapshotUnits,
} from "../../components/backup/etcd";
import { parseBackupSettings } from "../../components/backup/pgbackrest";
import { isSecretValue, runProgram } from "../../scripts/lib/mock-engine";

const dbNodes = [
  { name: "db-master-01", address: "10.0.0.120" },
  { name: "db-slave-01", address: "10.0.0.121" },
  { name: "db-slave-02", address: "10.0.0.122" },
];

describe("settings (keybuzz:backup.etcd)", () => {
  it("defaults to a snapshot every 6 hours, 28 kept; rejects a bad schedule or retention naming the key", () => {
    expect(parseBackupSettings(undefined).etcd).toEqual(DEFAULT_ETCD_BACKUP_SETTINGS);
    expect(DEFAULT_ETCD_BACKUP_SETTINGS).toEqual({ schedule: "*-*-* 00/6:20:00", keep: 28, kubernetesClientCertDays: 365 });
    expect(() => parseBackupSettings({ etcd: { keep: 0 } })).toThrow(/keybuzz:backup\.etcd\.keep/);
    expect(() => parseBackupSettings({ etcd: { schedule: "hourly; reboot" } })).toThrow(/keybuzz:backup\.etcd\.schedule/);
    expect(() => parseBackupSettings({ etcd: { kubernetesClientCertDays: 5 } })).toThrow(/keybuzz:backup\.etcd\.kubernetesClientCertDays/);
  });
});

describe("renders", () => {
  it("runs etcdctl from the pinned etcd image, with the TLS files read-only and the snapshots at the host's paths", () => {
    expect(productionEtcdctl("quay.io/coreos/etcd:v3.5.33")).toBe(
      "docker run --rm --network host -v /etc/keybuzz/etcd-backup:/etc/keybuzz/etcd-backup:ro " +
        "-v /var/lib/keybuzz/etcd-backups:/var/lib/keybuzz/etcd-backups quay.io/coreos/etcd:v3.5.33 /usr/local/bin/etcdctl",
    );
  });

  it("snapshots every member of a cluster in inventory order, with that cluster's TLS files and the textfile metric", () => {
    const script = renderClusterSnapshotScript(
      { name: "patroni", members: dbNodes, clientPort: 2379 },
      { ...DEFAULT_ETCD_BACKUP_SETTINGS, keep: 5 },
      "quay.io/coreos/etcd:v3.5.33",
    );
    expect(script).toContain("KB_ENDPOINTS='https://10.0.0.120:2379,https://10.0.0.121:2379,https://10.0.0.122:2379'");
    expect(script).toContain("KB_CERT='/etc/keybuzz/etcd-backup/patroni/client.crt'");
    expect(script).toContain("KB_KEEP='5'");
    expect(script).toContain("KB_TEXTFILE_DIR='/var/lib/keybuzz/node-exporter'");
    expect(script).toContain("KB_ETCDCTL='docker run --rm --network host");
    expect(etcdBackupTls("kubernetes").ca).toBe("/etc/keybuzz/etcd-backup/kubernetes/ca.crt");
  });

  it("schedules each cluster's oneshot service from its own persistent timer", () => {
    const units = renderEtcdSnapshotUnits("kubernetes", { ...DEFAULT_ETCD_BACKUP_SETTINGS, schedule: "*-*-* *:10:00" });
    expect(Object.keys(units)).toEqual(["keybuzz-etcd-snapshot-kubernetes.service", "keybuzz-etcd-snapshot-kubernetes.timer"]);
    expect(units["keybuzz-etcd-snapshot-kubernetes.timer"]).toContain("OnCalendar=*-*-* *:10:00\nPersistent=true");
    expect(units["keybuzz-etcd-snapshot-kubernetes.service"]).toContain(
      "Type=oneshot\nExecStart=/usr/local/sbin/keybuzz-etcd-snapshot-kubernetes",
    );
  });

  it("reads the signing step's stdout as the client certificate, then the CA; nothing from an empty stdout", () => {
    const block = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`;
    expect(pemCertificates(`${block("client")}\n${block("ca")}\n`)).toEqual([`${block("client")}\n`, `${block("ca")}\n`]);
    expect(pemCertificates("")).toEqual([]);
  });
});

describe("the program", () => {
  it("prod: the first control plane signs backup-01's request, then backup-01 snapshots both clusters, after both are verified", async () => {
    const run = await runProgram("prod");
    const byName = new Map(run.registrations.map((registration) => [registration.name, registration]));
    expect(byName.get("etcd-backup")?.type).toBe("keybuzz:backup:EtcdBackup");
    const sign = byName.get("k8s-master-01-etcd-backup-client-cert");
    // After the whole Kubernetes cluster (its last join) and the PostgreSQL verification.
    expect(sign?.dependsOn).toEqual(
      expect.arrayContaining(["k8s-master-01-base-os-verify", "k8s-master-03-k8s-join", "db-master-01-postgres-verify"]),
    );
    const backupStep = byName.get("backup-01-etcd-backup");
    expect(backupStep?.dependsOn).toEqual(
      expect.arrayContaining([
        "backup-01-base-os-verify",
        "k8s-master-01-etcd-backup-client-cert",
        "db-master-01-postgres-verify",
        "k8s-master-03-k8s-join",
      ]),
    );
    const planned = run.steps.find((step) => step.step === "backup-01-etcd-backup");
    const paths = planned?.files.map((file) => file.path) ?? [];
    for (const cluster of ["patroni", "kubernetes"]) {
      expect(paths).toEqual(
        expect.arrayContaining([
          `/usr/local/sbin/keybuzz-etcd-snapshot-${cluster}`,
          `/etc/systemd/system/keybuzz-etcd-snapshot-${cluster}.timer`,
          `/etc/keybuzz/etcd-backup/${cluster}/client.key`,
        ]),
      );
    }
    const script = (cluster: string) =>
      planned?.files.find((file) => file.path === `/usr/local/sbin/keybuzz-etcd-snapshot-${cluster}`)?.content;
    expect(script("patroni")).toContain("KB_ENDPOINTS='https://10.0.0.120:2379,https://10.0.0.121:2379,https://10.0.0.122:2379'");
    expect(script("kubernetes")).toContain("KB_ENDPOINTS='https://10.0.0.100:2379,https://10.0.0.101:2379,https://10.0.0.102:2379'");
    expect(planned?.script).toContain("KB_UNITS='keybuzz-etcd-snapshot-patroni keybuzz-etcd-snapshot-kubernetes'");
    // Keys and certificates only through the steps' secret stdin; the signing step gets a request, never a key.
    expect(isSecretValue(backupStep?.inputs.stdin)).toBe(true);
    for (const file of planned?.files ?? []) expect(file.content).not.toMatch(/mock-secret|PRIVATE KEY/);
    const signPlanned = run.steps.find((step) => step.step === "k8s-master-01-etcd-backup-client-cert");
    expect(signPlanned?.files.map((file) => file.path)).toEqual(["/etc/kubernetes/keybuzz/etcd-backup-client.csr"]);
    expect(signPlanned?.script).toContain("KB_CA_KEY='/etc/kubernetes/pki/etcd/ca.key'");
    // The alerts watch etcd, each cluster separately.
    const rules = run.registrations.find((registration) => registration.type === "kubernetes:monitoring.coreos.com/v1:PrometheusRule");
    const backupGroup = (rules?.inputs.spec as { groups: { name: string; rules: { alert: string; expr: string }[] }[] }).groups.find(
      (group) => group.name === "keybuzz-backups",
    );
    expect(backupGroup?.rules[0].expr).toContain('max by (system, type) (keybuzz_backup_last_success_timestamp_seconds{system=~"etcd"})');
    expect(backupGroup?.rules[1].expr).toContain('absent(keybuzz_backup_last_success_timestamp_seconds{system="etcd"})');
  });

  it("a renewal of kubeadm's certificates issues backup-01's client certificate again", async () => {
    const triggers = async (config: Record<string, string>) =>
      (await runProgram("prod", config)).registrations.find((registration) => registration.name === "k8s-master-01-etcd-backup-client-cert")
        ?.inputs.triggers;
    expect(await triggers({})).toEqual(["no renewal"]);
    expect(await triggers({ "keybuzz:k8s": JSON.stringify({ certificateRenewal: "2027-10" }) })).toEqual(["2027-10"]);
  });

  it("with Patroni on Raft there is no Patroni etcd to snapshot: only Kubernetes'", async () => {
    const run = await runProgram("prod", { "keybuzz:postgres": JSON.stringify({ dcs: "raft" }) });
    const planned = run.steps.find((step) => step.step === "backup-01-etcd-backup");
    expect(planned?.script).toContain("KB_UNITS='keybuzz-etcd-snapshot-kubernetes'");
    expect(planned?.files.some((file) => file.path.includes("patroni"))).toBe(false);
  });

  it("staging (no backup server): no etcd backup", async () => {
    const run = await runProgram("staging");
    expect(run.registrations.filter((registration) => registration.name.includes("etcd-backup"))).toEqual([]);
  });
});
