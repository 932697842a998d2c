/**
 * Which discovered resources a cluster-state backup takes, and which objects of them it leaves out. Pure:
 * the caller does the discovery and the listing; everything here decides on names and object contents,
 * so the rules can be tested without a cluster and read in one place.
 *
 * Names are Velero's: a resource is named by its plural, group-qualified (`ingresses.networking.k8s.io`;
 * core resources have no group: `configmaps`). For convenience a pattern may also be the bare plural
 * (any group), the kind (`Ingress`, any group), `Kind.group`, or `*`; matching ignores case.
 */
import type { KubeObject } from './objects.ts';
import { apiGroup } from './objects.ts';

export interface ResourceName {
  group: string;
  resource: string;
  kind: string;
}

export interface ResourceFilter {
  include: string[];
  exclude: string[];
}

export function qualifiedName(r: Pick<ResourceName, 'group' | 'resource'>): string {
  return r.group ? `${r.resource}.${r.group}` : r.resource;
}

/**
 * Whether a pattern names a resource. `strict` (the restore order): a bare name means a core resource,
 * since the order must place `secrets` and some `secrets.example.com` apart; for the filters a bare plural
 * or kind names it in any group, which is what an operator typing `--exclude-resources ingresses` means.
 */
export function matches(pattern: string, r: ResourceName, strict = false): boolean {
  const p = pattern.trim().toLowerCase();
  if (p === '*') return true;
  const plural = r.resource.toLowerCase();
  const kind = r.kind.toLowerCase();
  const g = r.group.toLowerCase();
  if (p === qualifiedName(r).toLowerCase() || (g !== '' && p === `${kind}.${g}`)) return true;
  if (strict && g !== '') return false;
  // `Secrets`, `Ingresses` as kinds in the plural (the old --include accepted them).
  return p === plural || p === kind || p === `${kind}s`;
}

/**
 * Left out unless named in --include-resources (a `*` does not name them). Each has a reason a backup
 * would be wrong to hold it, which the backup records next to what it skipped.
 */
export const DEFAULT_EXCLUSIONS: readonly { resource: string; why: string }[] = [
  // A history of what happened, not state: whoever acts in the new cluster writes its own.
  { resource: 'events', why: 'Events record what happened, they are not state' },
  { resource: 'events.events.k8s.io', why: 'Events record what happened, they are not state' },
  // Derived from Services and their Pods by the EndpointSlice controllers, in every cluster.
  {
    resource: 'endpointslices.discovery.k8s.io',
    why: 'EndpointSlices are maintained by controllers from Services and Pods',
  },
  // Leader election and heartbeats: valid only for the processes holding them right now.
  { resource: 'leases.coordination.k8s.io', why: 'Leases belong to the processes holding them now' },
  // Revision history the StatefulSet/DaemonSet controllers write for their own rollbacks.
  {
    resource: 'controllerrevisions.apps',
    why: 'ControllerRevisions are written by the StatefulSet/DaemonSet controllers',
  },
  // Published by the CSI driver for its current node topology.
  {
    resource: 'csistoragecapacities.storage.k8s.io',
    why: 'CSIStorageCapacities are published by the CSI driver',
  },
  // The pvc layer owns them (`lifeboat pvc snapshot`); a VolumeSnapshot created in another cluster would
  // snapshot whatever PVC has that name there, not bring the data back.
  {
    resource: 'volumesnapshots.snapshot.storage.k8s.io',
    why: 'VolumeSnapshots belong to the pvc layer (lifeboat pvc snapshot/restore)',
  },
  // Issuance in progress: replaying it re-runs ACME orders (Let's Encrypt rate limits); cert-manager
  // recreates what a Certificate needs.
  {
    resource: 'certificaterequests.cert-manager.io',
    why: 'cert-manager creates CertificateRequests for its Certificates',
  },
  { resource: 'orders.acme.cert-manager.io', why: 'ACME Orders would re-run certificate issuance' },
  { resource: 'challenges.acme.cert-manager.io', why: 'ACME Challenges would re-run certificate issuance' },
  // Live measurements served by metrics-server.
  { resource: 'pods.metrics.k8s.io', why: 'PodMetrics are live measurements' },
];

/** Kinds whose objects are left out when a controller owns them: the owner is backed up and recreates them. */
const OWNED_BY_CONTROLLER = new Set(['Pod', 'ReplicaSet', 'Job']);

export type Selection = { selected: true } | { selected: false; reason: string };

/** Whether a discovered resource is backed up under the filter (before looking at its objects). */
export function selectResource(
  r: ResourceName & { verbs: string[] },
  filter: ResourceFilter,
  /** Plurals and kinds (lower case) of the core group: a bare name that is one of them means that one. */
  core: ReadonlySet<string> = new Set(),
): Selection {
  if (!r.verbs.includes('list') || !r.verbs.includes('get'))
    return { selected: false, reason: `cannot be listed (verbs: ${r.verbs.join(', ') || 'none'})` };
  const m = (p: string) => matches(p, r, core.has(p.trim().toLowerCase()));
  const excluded = filter.exclude.find(m);
  if (excluded) return { selected: false, reason: `excluded by --exclude-resources ${excluded}` };
  const named = filter.include.filter((p) => p.trim() !== '*').some(m);
  if (filter.include.length && !filter.include.some(m))
    return { selected: false, reason: 'not in --include-resources' };
  const q = qualifiedName(r);
  const d = DEFAULT_EXCLUSIONS.find((x) => x.resource === q);
  if (d && !named)
    return {
      selected: false,
      reason: `default exclusion: ${d.why}; name it in --include-resources to keep it`,
    };
  return { selected: true };
}

/**
 * Why one object of a selected resource is left out, or undefined to keep it. `services` are the Services
 * of the same namespace (an Endpoints object of a Service with a selector is the controller's).
 */
export function objectExclusion(o: KubeObject, services: KubeObject[]): string | undefined {
  if (o.kind === 'Secret' && o.type === 'kubernetes.io/service-account-token')
    return 'ServiceAccount token Secrets are issued by the cluster';
  if (o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt')
    return 'kube-root-ca.crt is published into every namespace by the cluster';
  if (o.kind === 'ServiceAccount' && o.metadata.name === 'default')
    return 'the default ServiceAccount exists in every namespace';
  if (
    (o.kind === 'Service' || o.kind === 'Endpoints') &&
    o.metadata.namespace === 'default' &&
    o.metadata.name === 'kubernetes'
  )
    return 'the kubernetes Service belongs to the API server';
  if (OWNED_BY_CONTROLLER.has(o.kind) && apiGroup(o.apiVersion) !== 'metrics.k8s.io') {
    const owner = (
      o.metadata.ownerReferences as { kind: string; name: string; controller?: boolean }[] | undefined
    )?.find((x) => x.controller);
    if (owner) return `owned by ${owner.kind} ${owner.name}, whose controller recreates it`;
  }
  if (o.kind === 'Endpoints') {
    const svc = services.find((s) => s.metadata.name === o.metadata.name);
    if ((svc?.spec as { selector?: Record<string, string> } | undefined)?.selector)
      return `maintained by the endpoints controller for Service ${o.metadata.name}`;
  }
  return undefined;
}

/**
 * The cluster-scoped objects the backed-up namespaces depend on, for --include-cluster-resources:
 * ClusterRoleBindings with a subject in the namespaces and the ClusterRoles they (or the namespaces'
 * RoleBindings) grant, the StorageClasses of PVCs and claim templates (the default class for claims
 * naming none), the IngressClasses of Ingresses (the default one likewise), VolumeSnapshotClasses and
 * cert-manager ClusterIssuers referenced by name. Returns the reason per kept object's key.
 */
export function clusterDependencies(
  namespaced: KubeObject[],
  namespaces: string[],
  cluster: KubeObject[],
): Map<KubeObject, string> {
  const keep = new Map<KubeObject, string>();
  const byKind = (k: string) => cluster.filter((o) => o.kind === k);
  const isDefault = (o: KubeObject, annotation: string) => o.metadata.annotations?.[annotation] === 'true';
  const ns = new Set(namespaces);
  const clusterRoles = new Map<string, string>();
  for (const crb of byKind('ClusterRoleBinding')) {
    const subjects = (crb.subjects as { kind: string; namespace?: string; name: string }[] | undefined) ?? [];
    const s = subjects.find((x) => x.namespace !== undefined && ns.has(x.namespace));
    if (!s) continue;
    keep.set(crb, `binds ${s.kind} ${s.namespace}/${s.name}`);
    const ref = crb.roleRef as { kind: string; name: string };
    if (ref.kind === 'ClusterRole')
      clusterRoles.set(ref.name, `granted by ClusterRoleBinding ${crb.metadata.name}`);
  }
  const storageClasses = new Map<string | undefined, string>();
  const ingressClasses = new Map<string | undefined, string>();
  const snapshotClasses = new Map<string, string>();
  const issuers = new Map<string, string>();
  for (const o of namespaced) {
    const where = `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- per-kind specs are untyped JSON
    const spec = (o.spec ?? {}) as Record<string, any>;
    if (o.kind === 'RoleBinding' && (o.roleRef as { kind: string }).kind === 'ClusterRole')
      clusterRoles.set((o.roleRef as { name: string }).name, `granted by ${where}`);
    if (o.kind === 'PersistentVolumeClaim') storageClasses.set(spec.storageClassName, `used by ${where}`);
    if (o.kind === 'StatefulSet')
      for (const t of spec.volumeClaimTemplates ?? [])
        storageClasses.set(t.spec?.storageClassName, `used by the claim templates of ${where}`);
    if (o.kind === 'Ingress') ingressClasses.set(spec.ingressClassName, `used by ${where}`);
    if (o.kind === 'VolumeSnapshot' && spec.volumeSnapshotClassName)
      snapshotClasses.set(spec.volumeSnapshotClassName, `used by ${where}`);
    if (o.kind === 'Certificate' && spec.issuerRef?.kind === 'ClusterIssuer')
      issuers.set(spec.issuerRef.name, `issues ${where}`);
    if (o.kind === 'Ingress') {
      const a = o.metadata.annotations?.['cert-manager.io/cluster-issuer'];
      if (a) issuers.set(a, `issues the certificates of ${where}`);
    }
  }
  const pick = (kind: string, wanted: Map<string | undefined, string>, defaultAnnotation?: string): void => {
    for (const o of byKind(kind)) {
      const why =
        wanted.get(o.metadata.name) ??
        (defaultAnnotation && isDefault(o, defaultAnnotation) ? wanted.get(undefined) : undefined);
      if (why) keep.set(o, why);
    }
  };
  pick('ClusterRole', clusterRoles);
  pick('StorageClass', storageClasses, 'storageclass.kubernetes.io/is-default-class');
  pick('IngressClass', ingressClasses, 'ingressclass.kubernetes.io/is-default-class');
  pick('VolumeSnapshotClass', snapshotClasses);
  pick('ClusterIssuer', issuers);
  return keep;
}

/** The cluster-scoped kinds --include-cluster-resources considers (by group-qualified resource). */
export const CLUSTER_DEPENDENCY_RESOURCES: readonly string[] = [
  'clusterroles.rbac.authorization.k8s.io',
  'clusterrolebindings.rbac.authorization.k8s.io',
  'storageclasses.storage.k8s.io',
  'ingressclasses.networking.k8s.io',
  'volumesnapshotclasses.snapshot.storage.k8s.io',
  'clusterissuers.cert-manager.io',
];

/** A kind's plural the way Kubernetes derives it, for snapshots that recorded no resource name. */
export function guessPlural(kind: string): string {
  const k = kind.toLowerCase();
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  return `${k}s`;
}
