import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as path from "path";
import { clusterNodes, lockedImage } from "../../../config";
import { ModuleArgs, ModuleOutputs, waitsFor } from "../../lib/contract";
import { Host, HostFile, remoteStep, secretRef } from "../../lib/remote";
import { ETCD_CLIENT_PORT, KEYBUZZ_K8S_DIR, renderEtcdClientCertScript } from "../../k8s/cluster/render";
import { NodeCertificate } from "../../security/pki";
import {
  DEFAULT_ETCD_BACKUP_PATHS,
  EtcdBackupCluster,
  etcdBackupTls,
  EtcdClusterName,
  etcdSnapshotScriptPath,
  pemCertificates,
  renderClusterSnapshotScript,
  renderEtcdBackupStepBody,
  renderEtcdSnapshotUnits,
} from "./render";
import { EtcdBackupSettings } from "./settings";

/** The module's slice of the platform's credentials. */
export interface EtcdBackupSecrets {
  /** The platform CA (public): Patroni's etcd trusts it (`Pki.caCertPem`). */
  readonly platformCaCertPem: pulumi.Input<string>;
  /** backup-01's certificate of the platform CA (`Pki.issue`, the same one pgBackRest's TLS uses): its client identity for Patroni's etcd. */
  readonly backupHostCertificate: NodeCertificate;
}

/**
 * Arguments of {@link EtcdBackup}: `hosts` are the clusters to snapshot, then backup-01: the DB
 * nodes (Patroni's etcd; only when `keybuzz:postgres.dcs` is `etcd3`), the control planes
 * (Kubernetes' etcd) and the backup host, each group in inventory order.
 */
export interface EtcdBackupArgs extends ModuleArgs<EtcdBackupSettings, EtcdBackupSecrets> {
  /** Client port of Patroni's etcd members (the PostgreSQL module's `DEFAULT_POSTGRES_LAYOUT.ports.etcdClient`). */
  readonly patroniEtcdClientPort: number;
  /**
   * `keybuzz:k8s.certificateRenewal` (an operator's label): when it changes, kubeadm's certificates
   * are renewed and backup-01's client certificate of kubeadm's etcd CA is issued again with them.
   */
  readonly kubernetesCertificateRenewal?: string;
}

/** Placeholder keys of a cluster's TLS files on backup-01. */
function tlsSecretKeys(cluster: EtcdClusterName): { ca: string; cert: string; key: string } {
  return { ca: `etcd-backup-${cluster}-ca`, cert: `etcd-backup-${cluster}-cert`, key: `etcd-backup-${cluster}-key` };
}

/**
 * etcd snapshots (`keybuzz:backup:EtcdBackup`; docs/backups.md): backup-01 runs `etcdctl snapshot
 * save` of Patroni's etcd (DB nodes, the platform CA: backup-01's own certificate) and of
 * Kubernetes' etcd (control planes, kubeadm's etcd CA: a client certificate that the first control
 * plane signs for a key generated here, which never leaves Pulumi and backup-01) from systemd
 * timers, keeping the newest `keep` of each. backup-01's step ends with a snapshot of each
 * cluster: that step is `verified`.
 */
export class EtcdBackup extends pulumi.ComponentResource implements ModuleOutputs {
  public readonly verified: command.remote.Command;

  constructor(name: string, args: EtcdBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("keybuzz:backup:EtcdBackup", name, {}, opts);
    const backupHost = args.hosts.find((host) => host.spec.group === "backup");
    const dbHosts = args.hosts.filter((host) => host.spec.group === "postgres");
    const controlPlanes = args.hosts.filter((host) => host.spec.group === "k8s-master");
    if (!backupHost || dbHosts.length + controlPlanes.length === 0)
      throw new Error(`EtcdBackup ${name}: needs the backup host and an etcd cluster's members (a wiring bug)`);
    const image = lockedImage(args.versions, "etcd");
    const paths = DEFAULT_ETCD_BACKUP_PATHS;
    const membersOf = (hosts: readonly Host[]) => clusterNodes(hosts.map((host) => host.spec));

    const clusters: { cluster: EtcdBackupCluster; ca: pulumi.Input<string>; cert: pulumi.Input<string>; key: pulumi.Input<string> }[] = [];
    const issued: pulumi.Resource[] = [];
    if (dbHosts.length > 0) {
      clusters.push({
        cluster: { name: "patroni", members: membersOf(dbHosts), clientPort: args.patroniEtcdClientPort },
        ca: args.secrets.platformCaCertPem,
        cert: args.secrets.backupHostCertificate.certPem,
        key: args.secrets.backupHostCertificate.keyPem,
      });
    }
    const [firstControlPlane] = controlPlanes;
    if (firstControlPlane) {
      // kubeadm's etcd CA key stays on the control planes: the first one signs a request for a key made here.
      const key = new tls.PrivateKey(`${name}-kubernetes-client`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
      const request = new tls.CertRequest(
        `${name}-kubernetes-client`,
        { privateKeyPem: key.privateKeyPem, subject: { commonName: "keybuzz-etcd-backup", organization: "KeyBuzz" } },
        { parent: this },
      );
      const csrPath = path.posix.join(KEYBUZZ_K8S_DIR, "etcd-backup-client.csr");
      const csrKey = "etcd-backup-kubernetes-csr";
      const sign = remoteStep(
        `${firstControlPlane.spec.name}-etcd-backup-client-cert`,
        {
          host: firstControlPlane,
          files: [{ path: csrPath, content: secretRef(csrKey), mode: "0644" }],
          script: renderEtcdClientCertScript(csrPath, args.settings.kubernetesClientCertDays),
          secrets: { [csrKey]: request.certRequestPem },
          triggers: [args.kubernetesCertificateRenewal ?? "no renewal"],
          timeoutMinutes: 5,
        },
        { parent: this, dependsOn: waitsFor(args.after, firstControlPlane.spec.name) },
      );
      issued.push(sign);
      const certificates = sign.stdout.apply(pemCertificates);
      clusters.push({
        cluster: { name: "kubernetes", members: membersOf(controlPlanes), clientPort: ETCD_CLIENT_PORT },
        ca: pulumi.secret(certificates.apply((pems) => pems[1] ?? "")),
        cert: pulumi.secret(certificates.apply((pems) => pems[0] ?? "")),
        key: key.privateKeyPem,
      });
    }

    const files: HostFile[] = [];
    const secrets: Record<string, pulumi.Input<string>> = {};
    for (const { cluster, ca, cert, key } of clusters) {
      const tlsFiles = etcdBackupTls(cluster.name, paths);
      const keys = tlsSecretKeys(cluster.name);
      files.push(
        { path: tlsFiles.ca, content: secretRef(keys.ca), mode: "0600" },
        { path: tlsFiles.cert, content: secretRef(keys.cert), mode: "0600" },
        { path: tlsFiles.key, content: secretRef(keys.key), mode: "0600" },
        {
          path: etcdSnapshotScriptPath(cluster.name),
          content: renderClusterSnapshotScript(cluster, args.settings, image, paths),
          mode: "0755",
        },
        ...Object.entries(renderEtcdSnapshotUnits(cluster.name, args.settings)).map(([file, content]) => ({
          path: path.posix.join("/etc/systemd/system", file),
          content,
        })),
      );
      Object.assign(secrets, { [keys.ca]: ca, [keys.cert]: cert, [keys.key]: key });
    }
    this.verified = remoteStep(
      `${backupHost.spec.name}-etcd-backup`,
      {
        host: backupHost,
        files,
        script: renderEtcdBackupStepBody(
          clusters.map(({ cluster }) => cluster.name),
          image,
          paths,
        ),
        secrets,
        timeoutMinutes: 10,
      },
      { parent: this, dependsOn: waitsFor(args.after, backupHost.spec.name, ...issued) },
    );
    this.registerOutputs({ verified: this.verified });
  }
}
