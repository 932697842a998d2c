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

/**
 * Metadata the API server sets; Velero drops the same list on restore. ownerReferences are not here: the
 * backup keeps them so the restore can remap them to the restored owners (see RESTORE_ACTIONS).
 */
const SERVER_METADATA = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
  'managedFields',
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
 * What a backup stores: the object without what the server owns everywhere (server metadata, status,
 * controller annotations). Fields that only a restore must decide about — a Service's node ports, a PVC's
 * bound volume, owner references — are kept, so a restore can be asked to keep them.
 * Pure; applying it twice changes nothing.
 */
export function normalizeObject(input: KubeObject): KubeObject {
  const o = clone(input);
  for (const f of SERVER_METADATA) delete o.metadata[f];
  if (o.metadata.annotations) {
    for (const a of SERVER_ANNOTATIONS) delete o.metadata.annotations[a];
    if (Object.keys(o.metadata.annotations).length === 0) delete o.metadata.annotations;
  }
  if (o.metadata.labels && Object.keys(o.metadata.labels).length === 0) delete o.metadata.labels;
  delete o.status;
  if (o.kind === 'Namespace') {
    // spec.finalizers is set by the server; a Namespace carries nothing else of its own in spec.
    delete o.spec;
    if (o.metadata.labels) delete o.metadata.labels['kubernetes.io/metadata.name'];
    if (o.metadata.labels && Object.keys(o.metadata.labels).length === 0) delete o.metadata.labels;
  }
  return o;
}

/** Choices an operator makes per restore; the defaults are what a restore into another cluster needs. */
export interface RestoreChoices {
  /** Keep Services' nodePorts (firewall rules or DNS name them); default: the new cluster assigns them. */
  preserveNodePorts?: boolean;
  /** Keep Services' clusterIPs (only useful back into the same cluster, where they may be free). */
  preserveClusterIPs?: boolean;
}

export type ActionResult = { object: KubeObject; notes: string[] } | { skip: string };

/**
 * One rule of what a restore does to objects of some kinds (Velero's RestoreItemAction): `appliesTo`
 * names kinds, group-qualified (`Kind.group`; core kinds bare, `*` for every object). `run` gets a copy
 * it may change and returns it, or says why the object is not restored at all. Adding a kind is adding
 * one entry.
 */
export interface RestoreAction {
  name: string;
  appliesTo: readonly string[];
  /** For docs/kubernetes.md and --help: what and why. */
  why: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- per-kind specs are untyped JSON
  run(o: KubeObject & { spec?: Record<string, any> }, choices: RestoreChoices): ActionResult;
}

const keep = (object: KubeObject, ...notes: string[]): ActionResult => ({ object, notes });

export const RESTORE_ACTIONS: readonly RestoreAction[] = [
  {
    name: 'owner-references',
    appliesTo: ['*'],
    why: "ownerReferences carry the old cluster's uids: dropped here; the apply step points them at the restored owner (new uid) when it is in the cluster, else leaves them out",
    run(o) {
      const refs = o.metadata.ownerReferences as unknown[] | undefined;
      delete o.metadata.ownerReferences;
      return refs?.length ? keep(o, `ownerReferences: ${refs.length}`) : keep(o);
    },
  },
  {
    name: 'never-restored',
    appliesTo: [
      'Order.acme.cert-manager.io',
      'Challenge.acme.cert-manager.io',
      'CertificateRequest.cert-manager.io',
      'Event',
      'Event.events.k8s.io',
      'EndpointSlice.discovery.k8s.io',
      'Lease.coordination.k8s.io',
      'ControllerRevision.apps',
    ],
    why: 'controllers recreate these, and replaying them does harm (ACME Orders/Challenges re-run issuance)',
    run(o) {
      return { skip: `${o.kind} objects are recreated by their controllers, never restored` };
    },
  },
  {
    name: 'service-addresses',
    appliesTo: ['Service'],
    why: 'clusterIP(s) and nodePorts are assigned by the cluster: dropped unless --preserve-cluster-ips / --preserve-node-ports; headless ("None") is a choice and stays',
    run(o, c) {
      const spec = o.spec;
      if (!spec) return keep(o);
      if (!c.preserveClusterIPs && spec.clusterIP !== 'None') {
        delete spec.clusterIP;
        delete spec.clusterIPs;
      }
      delete spec.healthCheckNodePort;
      if (!c.preserveNodePorts || spec.type === 'ClusterIP' || spec.type === undefined)
        for (const p of spec.ports ?? []) delete p.nodePort;
      return keep(o);
    },
  },
  {
    name: 'pvc-volume',
    appliesTo: ['PersistentVolumeClaim'],
    why: 'the bound volume belongs to the old cluster: the claim provisions its own (or is restored from a VolumeSnapshot by `lifeboat pvc restore`)',
    run(o) {
      if (o.spec) delete o.spec.volumeName;
      return keep(o);
    },
  },
  {
    name: 'bound-pv',
    appliesTo: ['PersistentVolume'],
    why: 'a PV that was bound to a claim is never recreated: the restored claim gets its own volume, and two PVs for one disk would let two claims write it',
    run(o) {
      const ref = o.spec?.claimRef as { namespace?: string; name?: string } | undefined;
      if (ref?.name)
        return { skip: `was bound to claim ${ref.namespace}/${ref.name}, which provisions its own volume` };
      return keep(o);
    },
  },
  {
    name: 'service-account',
    appliesTo: ['ServiceAccount'],
    why: 'the token Secrets listed in .secrets are issued per cluster',
    run(o) {
      delete o.secrets;
      return keep(o);
    },
  },
  {
    name: 'job-selector',
    appliesTo: ['Job.batch'],
    why: "the generated selector and controller-uid labels name the old Job's uid",
    run(o) {
      const spec = o.spec;
      if (!spec) return keep(o);
      delete spec.selector;
      const labels = spec.template?.metadata?.labels;
      if (labels)
        for (const l of [
          'controller-uid',
          'batch.kubernetes.io/controller-uid',
          'job-name',
          'batch.kubernetes.io/job-name',
        ])
          delete labels[l];
      return keep(o);
    },
  },
  {
    name: 'pod-node',
    appliesTo: ['Pod'],
    why: 'a standalone Pod is scheduled again: the old node name and the API-access volume the cluster injects are dropped',
    run(o) {
      const spec = o.spec;
      if (!spec) return keep(o);
      delete spec.nodeName;
      const injected = new Set(
        (spec.volumes ?? [])
          .filter(
            (v: { name: string; projected?: unknown }) =>
              v.projected && v.name.startsWith('kube-api-access-'),
          )
          .map((v: { name: string }) => v.name),
      );
      if (injected.size) {
        spec.volumes = spec.volumes.filter((v: { name: string }) => !injected.has(v.name));
        for (const ct of [...(spec.containers ?? []), ...(spec.initContainers ?? [])])
          if (ct.volumeMounts)
            ct.volumeMounts = ct.volumeMounts.filter((m: { name: string }) => !injected.has(m.name));
      }
      return keep(o);
    },
  },
];

/** `Kind` for core kinds, `Kind.group` otherwise: what RestoreAction.appliesTo names. */
export function groupKind(o: Pick<KubeObject, 'apiVersion' | 'kind'>): string {
  const g = apiGroup(o.apiVersion);
  return g ? `${o.kind}.${g}` : o.kind;
}

export function actionsFor(o: Pick<KubeObject, 'apiVersion' | 'kind'>): RestoreAction[] {
  const gk = groupKind(o);
  return RESTORE_ACTIONS.filter((a) => a.appliesTo.some((x) => x === '*' || x === gk));
}

/** Runs every action that applies, in table order; the first skip ends it. Pure. */
export function prepareForRestore(input: KubeObject, choices: RestoreChoices = {}): ActionResult {
  let o = normalizeObject(input);
  const notes: string[] = [];
  for (const a of actionsFor(o)) {
    const r = a.run(o, choices);
    if ('skip' in r) return r;
    o = r.object;
    notes.push(...r.notes);
  }
  return { object: o, notes };
}

/**
 * The object as a default restore would create it, or as comparisons see it: normalized, every action
 * applied with default choices (no owner references, no assigned addresses). Objects a restore skips are
 * returned normalized. Pure.
 */
export function stripObject(input: KubeObject): KubeObject {
  const r = prepareForRestore(input);
  return 'skip' in r ? normalizeObject(input) : r.object;
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
