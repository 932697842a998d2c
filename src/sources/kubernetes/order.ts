/** The order in which a cluster-state restore creates objects. Pure: no I/O. */
import { apiGroup, objectKey, type KubeObject } from './objects.ts';
import { guessPlural, matches } from './resources.ts';

/**
 * Resources in restore order (Velero's, extended for cert-manager), group-qualified like
 * --include-resources. `cluster-state.restore.priorities` in lifeboat.yaml (or --priorities) replaces the
 * list; anything it does not name comes after, by group-qualified name. CRDs and Namespaces always
 * come first, whatever the list says: nothing else can be created before them.
 */
export const DEFAULT_PRIORITIES: readonly string[] = [
  // Definitions first: custom resources cannot be created before their CRD is Established.
  'customresourcedefinitions.apiextensions.k8s.io',
  // Everything namespaced needs its Namespace.
  'namespaces',
  // Cluster-wide policy and storage that PVCs, Ingresses and workloads refer to by name.
  'storageclasses.storage.k8s.io',
  'volumesnapshotclasses.snapshot.storage.k8s.io',
  'priorityclasses.scheduling.k8s.io',
  'ingressclasses.networking.k8s.io',
  // Snapshot objects before the PVCs whose dataSource names them.
  'volumesnapshotcontents.snapshot.storage.k8s.io',
  'volumesnapshots.snapshot.storage.k8s.io',
  // Volumes before anything mounts them.
  'persistentvolumes',
  'persistentvolumeclaims',
  // Identities and their rights before the workloads that run as them.
  'serviceaccounts',
  'clusterroles.rbac.authorization.k8s.io',
  'clusterrolebindings.rbac.authorization.k8s.io',
  'roles.rbac.authorization.k8s.io',
  'rolebindings.rbac.authorization.k8s.io',
  // Data the workloads read at start. cert-manager: TLS Secrets before Certificates, so the restored
  // certificate is reused instead of re-issued (Let's Encrypt rate limits).
  'secrets',
  'configmaps',
  'limitranges',
  'resourcequotas',
  // Issuers before the Certificates that reference them.
  'clusterissuers.cert-manager.io',
  'issuers.cert-manager.io',
  'certificates.cert-manager.io',
  // Workloads.
  'deployments.apps',
  'statefulsets.apps',
  'daemonsets.apps',
  'replicasets.apps',
  'pods',
  'cronjobs.batch',
  'jobs.batch',
  'horizontalpodautoscalers.autoscaling',
  'poddisruptionbudgets.policy',
  // Networking last: a Service or Ingress pointing at nothing yet is harmless, and an Ingress controller
  // sees its backends exist. Custom resources not named here (ServiceMonitors, IngressRoutes, …) follow.
  'services',
  'endpoints',
  'networkpolicies.networking.k8s.io',
  'ingresses.networking.k8s.io',
];

/** What the order needs of an object: its kind, group and (when the backup recorded it) its plural. */
export type Orderable = Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>;

export type PluralOf = (o: Orderable) => string | undefined;

/** The group-qualified resource name of an object (plural guessed for snapshots that recorded none). */
export function resourceNameOf(
  o: Orderable,
  pluralOf?: PluralOf,
): { group: string; resource: string; kind: string } {
  return { group: apiGroup(o.apiVersion), resource: pluralOf?.(o) ?? guessPlural(o.kind), kind: o.kind };
}

export function restoreRank(
  o: Orderable,
  priorities: readonly string[] = DEFAULT_PRIORITIES,
  pluralOf?: PluralOf,
): number {
  const name = resourceNameOf(o, pluralOf);
  if (o.kind === 'CustomResourceDefinition' && name.group === 'apiextensions.k8s.io') return -2;
  if (o.kind === 'Namespace' && name.group === '') return -1;
  const i = priorities.findIndex((p) => matches(p, name, true));
  return i === -1 ? priorities.length : i;
}

/** Stable sort into restore order; unlisted resources by name, then by key, so runs are reproducible. */
export function sortForRestore<T extends Orderable>(
  objects: T[],
  priorities: readonly string[] = DEFAULT_PRIORITIES,
  pluralOf?: PluralOf,
): T[] {
  const rank = new Map(objects.map((o) => [o, restoreRank(o, priorities, pluralOf)]));
  const qualified = (o: T) => {
    const n = resourceNameOf(o, pluralOf);
    return n.group ? `${n.resource}.${n.group}` : n.resource;
  };
  return [...objects].sort((a, b) => {
    const r = rank.get(a)! - rank.get(b)!;
    if (r !== 0) return r;
    const q = qualified(a).localeCompare(qualified(b));
    if (q !== 0) return q;
    return objectKey(a).localeCompare(objectKey(b));
  });
}
