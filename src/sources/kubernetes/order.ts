/** The order in which a cluster-state restore creates objects. Pure: no I/O. */
import { objectKey, type KubeObject } from './objects.ts';

/**
 * Kinds in restore order (Velero's order, extended for cert-manager). Anything not listed comes after,
 * alphabetically. Why each place:
 */
export const RESTORE_ORDER: readonly string[] = [
  // Definitions first: custom resources cannot be created before their CRD is Established.
  'CustomResourceDefinition',
  // Everything namespaced needs its Namespace.
  'Namespace',
  // Cluster-wide policy and storage that PVCs and workloads refer to by name.
  'StorageClass',
  'VolumeSnapshotClass',
  'PriorityClass',
  // Snapshot objects before the PVCs whose dataSource names them.
  'VolumeSnapshotContent',
  'VolumeSnapshot',
  // Volumes before anything mounts them.
  'PersistentVolume',
  'PersistentVolumeClaim',
  // Identities and their rights before the workloads that run as them.
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  // Data the workloads read at start. cert-manager: TLS Secrets before Certificates, so the restored
  // certificate is reused instead of re-issued (Let's Encrypt rate limits).
  'Secret',
  'ConfigMap',
  'LimitRange',
  'ResourceQuota',
  // Issuers before the Certificates that reference them.
  'ClusterIssuer',
  'Issuer',
  'Certificate',
  // Workloads.
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'CronJob',
  'Job',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  // Networking last: a Service or Ingress pointing at nothing yet is harmless, and an Ingress controller
  // sees its backends exist.
  'Service',
  'NetworkPolicy',
  'Ingress',
];

/** Kinds never restored: controllers recreate them, and replaying them does harm (ACME Orders/Challenges
 * would re-run certificate issuance; Pods/ReplicaSets/Endpoints belong to their owners). */
export const NEVER_RESTORE: ReadonlySet<string> = new Set([
  'Order',
  'Challenge',
  'CertificateRequest',
  'Pod',
  'ReplicaSet',
  'Endpoints',
  'EndpointSlice',
  'Event',
  'Lease',
  'ControllerRevision',
]);

export function restoreRank(kind: string): number {
  const i = RESTORE_ORDER.indexOf(kind);
  return i === -1 ? RESTORE_ORDER.length : i;
}

/** Stable sort into restore order; within a kind, by key, so runs are reproducible. */
export function sortForRestore<T extends Pick<KubeObject, 'kind' | 'metadata'>>(objects: T[]): T[] {
  return [...objects].sort((a, b) => {
    const r = restoreRank(a.kind) - restoreRank(b.kind);
    if (r !== 0) return r;
    if (restoreRank(a.kind) === RESTORE_ORDER.length && a.kind !== b.kind)
      return a.kind.localeCompare(b.kind);
    return objectKey(a).localeCompare(objectKey(b));
  });
}
