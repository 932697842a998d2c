/**
 * `cluster-state` snapshots: the objects that make up an application in Kubernetes (Helm releases,
 * ConfigMaps, Secrets, workloads, Services, Ingresses, RBAC, PVC specs, cert-manager objects, the CRDs in use),
 * each stored as one item of canonical JSON with server-managed fields stripped, so unchanged objects
 * deduplicate against earlier backups. Secrets are items like the rest: encrypted by the repository, never
 * printed or logged.
 *
 * Restore: filter -> map namespaces -> strip -> order (order.ts) -> per object plan (diff.ts) -> apply.
 * Planning reads only; `--dry-run` and `--diff` stop there. Every object gets its own result line.
 */
import type { BackupSession, Snapshot } from '../../core/repository/model.ts';
import type { Repository } from '../../core/repository/repository.ts';
import { LifeboatError } from '../../core/errors.ts';
import { KubeApiError, type KubeClient, type ResourceInfo } from './client.ts';
import { releaseHistories, type HelmReleaseSummary } from './helm.ts';
import {
  apiGroup,
  canonicalJson,
  isGenerated,
  mapNamespace,
  objectKey,
  stripObject,
  type KubeObject,
  type NamespaceMap,
} from './objects.ts';
import { NEVER_RESTORE, sortForRestore } from './order.ts';
import { diffObjects, planRestore, type Change, type ExistingPolicy } from './diff.ts';

/** What a cluster-state backup collects, namespaced kinds per selected namespace. */
export const NAMESPACED_KINDS: { apiVersion: string; kind: string }[] = [
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { apiVersion: 'v1', kind: 'LimitRange' },
  { apiVersion: 'v1', kind: 'ResourceQuota' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  { apiVersion: 'batch/v1', kind: 'CronJob' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  { apiVersion: 'cert-manager.io/v1', kind: 'Issuer' },
  { apiVersion: 'cert-manager.io/v1', kind: 'Certificate' },
];

/** Cluster-scoped kinds taken whole (they are few and PVCs/Certificates refer to them by name). */
export const CLUSTER_KINDS: { apiVersion: string; kind: string }[] = [
  { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' },
  { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass' },
  { apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer' },
];

const SYSTEM_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease']);
const BUILTIN_GROUPS = new Set([
  '',
  'apps',
  'batch',
  'networking.k8s.io',
  'rbac.authorization.k8s.io',
  'policy',
  'autoscaling',
  'storage.k8s.io',
]);

export interface KindFilter {
  include: string[];
  exclude: string[];
}

function kindSelected(kind: string, f: KindFilter): boolean {
  const k = kind.toLowerCase();
  const match = (list: string[]) => list.some((x) => x.toLowerCase() === k || x.toLowerCase() === `${k}s`);
  if (f.include.length && !match(f.include) && kind !== 'Namespace' && kind !== 'CustomResourceDefinition')
    return false;
  return !match(f.exclude);
}

export interface ClusterStateBackupOptions {
  client: KubeClient;
  session: BackupSession;
  /** Namespaces to back up; empty = every namespace except kube-system, kube-public, kube-node-lease. */
  namespaces: string[];
  kinds: KindFilter;
  name?: string;
  tags?: string[];
}

export interface ClusterStateBackupResult {
  snapshot: Snapshot;
  namespaces: string[];
  counts: Record<string, number>;
  helmReleases: HelmReleaseSummary[];
}

/** Collects the objects (stripped, generated ones left out), without touching the repository. */
export async function collectClusterState(
  client: KubeClient,
  namespaces: string[],
  kinds: KindFilter,
): Promise<{ namespaces: string[]; objects: KubeObject[] }> {
  const nsRes = await client.mustResource('v1', 'Namespace');
  let selected = namespaces;
  if (selected.length === 0) {
    selected = (await client.list(nsRes))
      .map((n) => n.metadata.name)
      .filter((n) => !SYSTEM_NAMESPACES.has(n));
  }
  const objects: KubeObject[] = [];
  for (const ns of selected) {
    const live = await client.get(nsRes, undefined, ns);
    if (!live)
      throw new LifeboatError('NOT_FOUND', `namespace "${ns}" does not exist`, {
        hint: 'check --namespace (kubectl get namespaces)',
      });
    objects.push({ ...live, apiVersion: 'v1', kind: 'Namespace' });
  }
  for (const k of NAMESPACED_KINDS) {
    if (!kindSelected(k.kind, kinds)) continue;
    const r = await client.resourceFor(k.apiVersion, k.kind);
    if (!r) continue; // e.g. cert-manager not installed in this cluster
    for (const ns of selected) objects.push(...(await client.list(r, ns)));
  }
  for (const k of CLUSTER_KINDS) {
    if (!kindSelected(k.kind, kinds)) continue;
    const r = await client.resourceFor(k.apiVersion, k.kind);
    if (r) objects.push(...(await client.list(r)));
  }
  // CRDs in use: the definitions of every custom kind we hold an object of, so a new cluster can serve them.
  const customGroups = new Map<string, Set<string>>();
  for (const o of objects) {
    const g = apiGroup(o.apiVersion);
    if (!BUILTIN_GROUPS.has(g)) customGroups.set(g, (customGroups.get(g) ?? new Set()).add(o.kind));
  }
  if (customGroups.size && kindSelected('CustomResourceDefinition', kinds)) {
    const crdRes = await client.mustResource('apiextensions.k8s.io/v1', 'CustomResourceDefinition');
    for (const crd of await client.list(crdRes)) {
      const spec = crd.spec as { group: string; names: { kind: string } };
      if (customGroups.get(spec.group)?.has(spec.names.kind)) objects.push(crd);
    }
  }
  return { namespaces: selected, objects: objects.filter((o) => !isGenerated(o)).map(stripObject) };
}

export async function backupClusterState(opts: ClusterStateBackupOptions): Promise<ClusterStateBackupResult> {
  const { namespaces, objects } = await collectClusterState(opts.client, opts.namespaces, opts.kinds);
  const counts: Record<string, number> = {};
  const items = [];
  for (const o of objects) {
    counts[o.kind] = (counts[o.kind] ?? 0) + 1;
    items.push(
      await opts.session.addItem(
        {
          name: objectKey(o),
          kind: 'resource',
          meta: {
            apiVersion: o.apiVersion,
            kind: o.kind,
            namespace: o.metadata.namespace ?? null,
            name: o.metadata.name,
          },
        },
        Buffer.from(canonicalJson(o)),
        'file',
      ),
    );
  }
  // Helm releases, decoded: chart, values, manifest and history in one item per release (values may hold
  // passwords: encrypted in the repository like everything else; only the summary goes into metadata).
  const histories = releaseHistories(objects.filter((o) => o.kind === 'Secret') as never[]);
  for (const h of histories) {
    items.push(
      await opts.session.addItem(
        { name: `helm/${h.namespace}/${h.name}`, kind: 'helm-release', meta: { ...h.current } },
        Buffer.from(canonicalJson(h)),
        'file',
      ),
    );
  }
  const snapshot = await opts.session.commit({
    type: 'cluster-state',
    tags: [...(opts.name ? [opts.name] : []), ...(opts.tags ?? [])],
    paths: namespaces.map((n) => `k8s://${n}`),
    meta: { server: opts.client.server, namespaces, counts, helmReleases: histories.map((h) => h.current) },
    items,
  });
  return { snapshot, namespaces, counts, helmReleases: histories.map((h) => h.current) };
}

export type RestoreMode = 'apply' | 'dry-run' | 'diff';
export type ObjectOutcome =
  'created' | 'updated' | 'unchanged' | 'skipped' | 'failed' | 'would-create' | 'would-update' | 'would-skip';

export interface ObjectResult {
  key: string;
  kind: string;
  namespace?: string;
  name: string;
  result: ObjectOutcome;
  reason: string;
  /** --diff only. */
  changes?: Change[];
}

export interface ClusterStateRestoreOptions {
  client: KubeClient;
  repo: Repository;
  snapshot: Snapshot;
  namespaces: string[];
  kinds: KindFilter;
  namespaceMap: NamespaceMap;
  existing: ExistingPolicy;
  mode: RestoreMode;
  signal?: AbortSignal;
}

export interface ClusterStateRestoreResult {
  snapshot: string;
  mode: RestoreMode;
  objects: ObjectResult[];
  totals: Partial<Record<ObjectOutcome, number>>;
}

/** Reads the snapshot's objects and turns them into what would be applied, in restore order. */
export async function desiredObjects(
  opts: Pick<ClusterStateRestoreOptions, 'repo' | 'snapshot' | 'namespaces' | 'kinds' | 'namespaceMap'>,
): Promise<KubeObject[]> {
  if (opts.snapshot.type !== 'cluster-state') {
    throw new LifeboatError(
      'USAGE',
      `snapshot ${opts.snapshot.id.slice(0, 8)} is a ${opts.snapshot.type} snapshot, not cluster-state`,
      {
        hint: 'pick one from `lifeboat snapshots --type cluster-state`',
      },
    );
  }
  for (const ns of opts.namespaceMap.keys()) {
    if (
      !opts.snapshot.items.some(
        (i) => i.meta.namespace === ns || (i.meta.kind === 'Namespace' && i.meta.name === ns),
      )
    ) {
      throw new LifeboatError(
        'USAGE',
        `--namespace-map names "${ns}", which is not in snapshot ${opts.snapshot.id.slice(0, 8)}`,
        {
          hint: `it holds: ${(opts.snapshot.meta.namespaces as string[] | undefined)?.join(', ') ?? 'no namespaces'}`,
        },
      );
    }
  }
  const out: KubeObject[] = [];
  for (const item of opts.snapshot.items) {
    if (item.kind !== 'resource') continue;
    const kind = item.meta.kind as string;
    if (NEVER_RESTORE.has(kind) || !kindSelected(kind, opts.kinds)) continue;
    const ns =
      (item.meta.namespace as string | null) ?? (kind === 'Namespace' ? (item.meta.name as string) : null);
    if (opts.namespaces.length && ns !== null && !opts.namespaces.includes(ns)) continue;
    const obj = JSON.parse((await opts.repo.readItemBuffer(item)).toString('utf8')) as KubeObject;
    if (isGenerated(obj)) continue;
    out.push(stripObject(mapNamespace(obj, opts.namespaceMap)));
  }
  return sortForRestore(out);
}

async function waitEstablished(
  client: KubeClient,
  crdRes: ResourceInfo,
  name: string,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const crd = await client.get(crdRes, undefined, name);
    const conds =
      (crd?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
    if (conds.some((c) => c.type === 'Established' && c.status === 'True')) break;
    if (Date.now() > deadline)
      throw new LifeboatError('TIMEOUT', `CRD ${name} was not Established within 60 s`, {
        hint: 'check the API server',
      });
    signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, 250));
  }
  client.resetDiscovery();
}

export async function restoreClusterState(
  opts: ClusterStateRestoreOptions,
): Promise<ClusterStateRestoreResult> {
  const { client } = opts;
  const desired = await desiredObjects(opts);
  const results: ObjectResult[] = [];
  for (const obj of desired) {
    opts.signal?.throwIfAborted();
    const key = objectKey(obj);
    const base = { key, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name };
    try {
      let r = await client.resourceFor(obj.apiVersion, obj.kind);
      if (!r && opts.mode !== 'apply') {
        // The CRD is restored earlier in this same run; without applying, nothing serves the kind yet.
        results.push({
          ...base,
          result: 'would-create',
          reason: `${obj.kind} is not served yet; its CRD is created first`,
        });
        continue;
      }
      r ??= await client.mustResource(obj.apiVersion, obj.kind);
      const live = await client.get(r, obj.metadata.namespace, obj.metadata.name);
      const [plan] = planRestore([obj], live ? new Map([[key, live]]) : new Map(), opts.existing);
      if (opts.mode !== 'apply') {
        const result: ObjectResult = {
          ...base,
          result: `would-${plan.action}` as ObjectOutcome,
          reason: plan.reason,
        };
        if (opts.mode === 'diff' && live) {
          // What the object would become, computed by the server itself (defaults, merges, admission).
          const next = await client.apply(r, obj, { force: true, dryRun: true });
          result.changes = diffObjects(live, next);
          if (result.changes.length === 0) result.reason = 'identical to the snapshot';
          else result.reason = `${result.changes.length} field(s) differ`;
        }
        results.push(result);
        continue;
      }
      if (plan.action === 'skip') {
        const terminating = live?.metadata.deletionTimestamp ? ' and is being deleted (Terminating)' : '';
        results.push({
          ...base,
          result: 'skipped',
          reason: `already exists${terminating}; use --existing=update to overwrite`,
        });
        continue;
      }
      if (plan.action === 'create') {
        await client.create(r, obj);
        results.push({ ...base, result: 'created', reason: '' });
      } else {
        const after = await client.apply(r, obj, { force: true });
        const changed = after.metadata.resourceVersion !== live!.metadata.resourceVersion;
        results.push({
          ...base,
          result: changed ? 'updated' : 'unchanged',
          reason: changed ? 'server-side apply' : 'already identical',
        });
      }
      if (obj.kind === 'CustomResourceDefinition')
        await waitEstablished(client, r, obj.metadata.name, opts.signal);
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
      const why =
        e instanceof KubeApiError && e.status === 409 ? 'created by someone else meanwhile' : e.message;
      results.push({ ...base, result: 'failed', reason: why });
    }
  }
  const totals: Partial<Record<ObjectOutcome, number>> = {};
  for (const r of results) totals[r.result] = (totals[r.result] ?? 0) + 1;
  return { snapshot: opts.snapshot.id, mode: opts.mode, objects: results, totals };
}
