/**
 * Pure helpers over Kubernetes objects (no I/O): identity keys, the fields a server owns and that must not
 * travel from one cluster to another, namespace mapping, and canonical JSON (so an unchanged object is
 * byte-identical between backups and deduplicates).
 */
import { LifeboatError } from '../../core/errors.ts';
import { decodeHelmRelease, encodeHelmRelease, isHelmReleaseSecret } from './helm.ts';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** `namespace/Kind/name`, or `_cluster/Kind/name` for cluster-scoped objects: the item name in a snapshot. */
export function objectKey(o: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return `${o.metadata.namespace ?? '_cluster'}/${o.kind}/${o.metadata.name}`;
}

export function apiGroup(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
}

/** Metadata the API server sets; Velero drops the same list on restore. */
const SERVER_METADATA = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
  'managedFields',
  'ownerReferences',
  'generateName',
  'finalizers',
];

/** Annotations written by controllers; they describe the old cluster's state and would confuse the new one. */
const SERVER_ANNOTATIONS = [
  'deployment.kubernetes.io/revision',
  'pv.kubernetes.io/bind-completed',
  'pv.kubernetes.io/bound-by-controller',
  'pv.kubernetes.io/provisioned-by',
  'volume.kubernetes.io/selected-node',
  'volume.kubernetes.io/storage-provisioner',
  'volume.beta.kubernetes.io/storage-provisioner',
  'kubectl.kubernetes.io/restartedAt',
];

function clone<T>(v: T): T {
  return structuredClone(v);
}

/**
 * Removes what the server owns so the object can be created anywhere: server metadata, status, and per-kind
 * fields that are assigned on creation (a Service's cluster IPs and node ports, a PVC's bound volume, a
 * ServiceAccount's generated token Secrets, a Job's generated selector).
 * Pure: returns a new object. Applying it twice changes nothing (backups strip; restores strip again).
 */
export function stripObject(input: KubeObject): KubeObject {
  const o = clone(input);
  for (const f of SERVER_METADATA) delete o.metadata[f];
  if (o.metadata.annotations) {
    for (const a of SERVER_ANNOTATIONS) delete o.metadata.annotations[a];
    if (Object.keys(o.metadata.annotations).length === 0) delete o.metadata.annotations;
  }
  if (o.metadata.labels && Object.keys(o.metadata.labels).length === 0) delete o.metadata.labels;
  delete o.status;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- per-kind specs are untyped JSON
  const spec = o.spec as Record<string, any> | undefined;
  switch (o.kind) {
    case 'Service':
      if (spec) {
        // Headless Services keep "None": that is a choice, not an assignment.
        if (spec.clusterIP !== 'None') {
          delete spec.clusterIP;
          delete spec.clusterIPs;
        }
        delete spec.healthCheckNodePort;
        for (const p of spec.ports ?? []) delete p.nodePort;
      }
      break;
    case 'PersistentVolumeClaim':
      if (spec) delete spec.volumeName;
      break;
    case 'PersistentVolume':
      if (spec) delete spec.claimRef;
      break;
    case 'ServiceAccount':
      delete o.secrets;
      break;
    case 'Job':
      if (spec) {
        delete spec.selector;
        const labels = spec.template?.metadata?.labels;
        if (labels) {
          for (const l of [
            'controller-uid',
            'batch.kubernetes.io/controller-uid',
            'job-name',
            'batch.kubernetes.io/job-name',
          ])
            delete labels[l];
        }
      }
      break;
    case 'Namespace':
      // spec.finalizers is set by the server; a Namespace carries nothing else of its own in spec.
      delete o.spec;
      if (o.metadata.labels) delete o.metadata.labels['kubernetes.io/metadata.name'];
      if (o.metadata.labels && Object.keys(o.metadata.labels).length === 0) delete o.metadata.labels;
      break;
  }
  return o;
}

/** Objects that controllers regenerate in every cluster: never backed up, never restored. */
export function isGenerated(o: KubeObject): boolean {
  if (o.kind === 'Secret' && o.type === 'kubernetes.io/service-account-token') return true;
  if (o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt') return true;
  if (o.kind === 'ServiceAccount' && o.metadata.name === 'default') return true;
  if (
    (o.kind === 'Service' || o.kind === 'Endpoints') &&
    o.metadata.namespace === 'default' &&
    o.metadata.name === 'kubernetes'
  )
    return true;
  return false;
}

/** JSON with object keys sorted at every level: equal objects give equal bytes. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

export type NamespaceMap = Map<string, string>;

/** Parses `--namespace-map a=b` values (repeatable or comma separated). */
export function parseNamespaceMap(specs: string[]): NamespaceMap {
  const map: NamespaceMap = new Map();
  const dns = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  for (const spec of specs) {
    const m = /^([^=]+)=([^=]+)$/.exec(spec.trim());
    if (!m || !dns.test(m[1]) || !dns.test(m[2]) || m[1].length > 63 || m[2].length > 63) {
      throw new LifeboatError('USAGE', `--namespace-map "${spec}" is not OLD=NEW with two namespace names`, {
        hint: 'write e.g. --namespace-map rocketchat=rocketchat-restore',
      });
    }
    if (map.has(m[1]))
      throw new LifeboatError('USAGE', `--namespace-map maps "${m[1]}" twice`, {
        hint: 'give each source namespace once',
      });
    map.set(m[1], m[2]);
  }
  return map;
}

/**
 * Moves an object into its mapped namespace, including the references that name a namespace: a Namespace's
 * own name, RoleBinding/ClusterRoleBinding ServiceAccount subjects, and a Helm release's namespace (so
 * `helm list -n NEW` finds it).
 */
export function mapNamespace(input: KubeObject, map: NamespaceMap): KubeObject {
  if (map.size === 0) return input;
  const o = clone(input);
  const to = (ns: string | undefined) => (ns !== undefined && map.has(ns) ? map.get(ns)! : ns);
  if (o.kind === 'Namespace') o.metadata.name = to(o.metadata.name)!;
  else if (o.metadata.namespace !== undefined) o.metadata.namespace = to(o.metadata.namespace);
  if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
    for (const s of (o.subjects as { kind: string; namespace?: string }[] | undefined) ?? []) {
      if (s.kind === 'ServiceAccount') s.namespace = to(s.namespace);
    }
  }
  if (o.kind === 'Secret' && isHelmReleaseSecret(o as never)) {
    const data = o.data as Record<string, string>;
    const release = decodeHelmRelease(data.release);
    const mapped = to(release.namespace);
    if (mapped !== release.namespace) {
      release.namespace = mapped!;
      data.release = encodeHelmRelease(release);
    }
  }
  return o;
}
