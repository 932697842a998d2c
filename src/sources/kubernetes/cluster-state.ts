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
  normalizeObject,
  objectKey,
  prepareForRestore,
  type KubeObject,
  type NamespaceMap,
  type RestoreChoices,
} from './objects.ts';
import { DEFAULT_PRIORITIES, sortForRestore } from './order.ts';
import {
  CLUSTER_DEPENDENCY_RESOURCES,
  clusterDependencies,
  guessPlural,
  matches,
  objectExclusion,
  qualifiedName,
  selectResource,
  type ResourceFilter,
  type ResourceName,
} from './resources.ts';
import { diffObjects, planRestore, type Change, type ExistingPolicy } from './diff.ts';

const SYSTEM_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease']);

export interface BackupFilter extends ResourceFilter {
  /** Also the cluster-scoped objects the namespaces depend on (resources.ts, clusterDependencies). */
  includeClusterResources?: boolean;
}

/** One line of what a backup left out: a whole resource, or objects of it (counted, a few named). */
export interface SkipRecord {
  resource: string;
  namespace?: string;
  reason: string;
  count?: number;
  examples?: string[];
}

export interface ClusterStateBackupOptions {
  client: KubeClient;
  session: BackupSession;
  /** Namespaces to back up; empty = every namespace except kube-system, kube-public, kube-node-lease. */
  namespaces: string[];
  filter: BackupFilter;
  name?: string;
  tags?: string[];
}

export interface ClusterStateBackupResult {
  snapshot: Snapshot;
  namespaces: string[];
  counts: Record<string, number>;
  helmReleases: HelmReleaseSummary[];
  skipped: SkipRecord[];
}

export interface Collected {
  object: KubeObject;
  /** Plural resource name, recorded so a restore orders and filters by group-qualified name. */
  resource: string;
  /** For cluster-scoped objects: why the backup took it. */
  because?: string;
}

/** Is a Namespace or CRD object: kept whatever --include-resources says (the rest cannot be restored without them). */
function structural(r: ResourceName): boolean {
  return (
    (r.group === '' && r.resource === 'namespaces') ||
    (r.group === 'apiextensions.k8s.io' && r.resource === 'customresourcedefinitions')
  );
}

function selectedStructural(r: ResourceName, f: ResourceFilter): boolean {
  return !f.exclude.some((p) => matches(p, r));
}

/**
 * Discovers and lists what the namespaces hold, without touching the repository: every namespaced
 * resource that supports list and get, less the filter's and the default exclusions, objects that
 * controllers own or the cluster generates left out (each recorded in `skipped`), the CRDs of the custom
 * resources taken, and with includeClusterResources the cluster-scoped objects the namespaces use.
 * A 403 on a list fails the backup: a backup that silently misses a resource is worse than none.
 */
export async function collectClusterState(
  client: KubeClient,
  namespaces: string[],
  filter: BackupFilter,
): Promise<{ namespaces: string[]; objects: Collected[]; skipped: SkipRecord[] }> {
  const nsRes = await client.mustResource('v1', 'Namespace');
  let selected = namespaces;
  if (selected.length === 0) {
    selected = (await client.list(nsRes))
      .map((n) => n.metadata.name)
      .filter((n) => !SYSTEM_NAMESPACES.has(n));
  }
  const objects: Collected[] = [];
  const skipped: SkipRecord[] = [];
  const namespaceObjects: KubeObject[] = [];
  for (const ns of selected) {
    const live = await client.get(nsRes, undefined, ns);
    if (!live)
      throw new LifeboatError('NOT_FOUND', `namespace "${ns}" does not exist`, {
        hint: 'check --namespace (kubectl get namespaces)',
      });
    namespaceObjects.push({ ...live, apiVersion: 'v1', kind: 'Namespace' });
  }
  if (selectedStructural(nsRes, filter))
    for (const o of namespaceObjects) objects.push({ object: o, resource: 'namespaces' });

  const { resources, unavailable } = await client.discoverAll();
  for (const u of unavailable)
    skipped.push({ resource: u.groupVersion, reason: `API group not available: ${u.reason}` });

  const raw: { r: ResourceInfo; o: KubeObject }[] = [];
  const core = new Set(
    resources
      .filter((r) => r.group === '')
      .flatMap((r) => [r.resource, r.kind.toLowerCase(), `${r.kind.toLowerCase()}s`]),
  );
  for (const r of resources) {
    if (!r.namespaced) continue;
    const sel = selectResource(r, filter, core);
    if (!sel.selected) {
      skipped.push({ resource: qualifiedName(r), reason: sel.reason });
      continue;
    }
    for (const ns of selected) for (const o of await client.list(r, ns)) raw.push({ r, o });
  }
  // Per object: what controllers own or the cluster generates, counted per resource, namespace and reason.
  const services = raw.filter((x) => x.o.kind === 'Service' && x.r.group === '').map((x) => x.o);
  const objectSkips = new Map<string, SkipRecord>();
  for (const { r, o } of raw) {
    const why = objectExclusion(
      o,
      services.filter((s) => s.metadata.namespace === o.metadata.namespace),
    );
    if (!why) {
      objects.push({ object: o, resource: r.resource });
      continue;
    }
    const k = `${qualifiedName(r)}\0${o.metadata.namespace}\0${why}`;
    const rec = objectSkips.get(k) ?? {
      resource: qualifiedName(r),
      namespace: o.metadata.namespace,
      reason: why,
      count: 0,
      examples: [],
    };
    rec.count!++;
    if (rec.examples!.length < 5) rec.examples!.push(o.metadata.name);
    objectSkips.set(k, rec);
  }
  skipped.push(...objectSkips.values());

  // The CRDs of the custom resources taken, so a new cluster can serve them (Velero does the same
  // without being asked: a custom resource without its definition cannot be restored).
  const crdRes = resources.find((r) => structural(r) && r.resource === 'customresourcedefinitions');
  const taken = new Set(objects.map((c) => `${c.resource}.${apiGroup(c.object.apiVersion)}`));
  if (
    crdRes &&
    selectedStructural(crdRes, filter) &&
    objects.some((c) => apiGroup(c.object.apiVersion) !== '')
  ) {
    for (const crd of await client.list(crdRes)) {
      if (taken.has(crd.metadata.name))
        objects.push({
          object: crd,
          resource: crdRes.resource,
          because: 'defines backed-up custom resources',
        });
    }
  }

  if (filter.includeClusterResources) {
    const cluster: { r: ResourceInfo; o: KubeObject }[] = [];
    for (const name of CLUSTER_DEPENDENCY_RESOURCES) {
      const r = resources.find((x) => !x.namespaced && qualifiedName(x) === name);
      if (!r) continue;
      if (filter.exclude.some((p) => matches(p, r))) {
        skipped.push({ resource: name, reason: 'excluded by --exclude-resources' });
        continue;
      }
      for (const o of await client.list(r)) cluster.push({ r, o });
    }
    const deps = clusterDependencies(
      objects.map((c) => c.object),
      selected,
      cluster.map((c) => c.o),
    );
    for (const { r, o } of cluster) {
      const because = deps.get(o);
      if (because) objects.push({ object: o, resource: r.resource, because });
    }
  } else {
    skipped.push({
      resource: 'cluster-scoped resources',
      reason:
        'not requested: only the CRDs of backed-up custom resources are taken; --include-cluster-resources adds the ClusterRoles/Bindings, StorageClasses and IngressClasses the namespaces use',
    });
  }
  return {
    namespaces: selected,
    objects: objects.map((c) => ({ ...c, object: normalizeObject(c.object) })),
    skipped,
  };
}

export async function backupClusterState(opts: ClusterStateBackupOptions): Promise<ClusterStateBackupResult> {
  const collected = await collectClusterState(opts.client, opts.namespaces, opts.filter);
  const { namespaces, skipped } = collected;
  const objects = collected.objects.map((c) => c.object);
  const counts: Record<string, number> = {};
  const items = [];
  for (const { object: o, resource, because } of collected.objects) {
    counts[o.kind] = (counts[o.kind] ?? 0) + 1;
    items.push(
      await opts.session.addItem(
        {
          name: objectKey(o),
          kind: 'resource',
          meta: {
            apiVersion: o.apiVersion,
            kind: o.kind,
            resource,
            namespace: o.metadata.namespace ?? null,
            name: o.metadata.name,
            ...(because ? { because } : {}),
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
    meta: {
      server: opts.client.server,
      namespaces,
      counts,
      helmReleases: histories.map((h) => h.current),
      includeClusterResources: !!opts.filter.includeClusterResources,
      skipped,
    },
    items,
  });
  return { snapshot, namespaces, counts, helmReleases: histories.map((h) => h.current), skipped };
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
  /** --include-resources / --exclude-resources, matched against the recorded resource names. */
  filter: ResourceFilter;
  namespaceMap: NamespaceMap;
  existing: ExistingPolicy;
  mode: RestoreMode;
  /** Restore order (group-qualified resources); default DEFAULT_PRIORITIES. */
  priorities?: readonly string[];
  choices?: RestoreChoices;
  /** How long to wait for a CRD to become Established (default 60 s). */
  crdTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ClusterStateRestoreResult {
  snapshot: string;
  mode: RestoreMode;
  objects: ObjectResult[];
  totals: Partial<Record<ObjectOutcome, number>>;
}

/** An object ready to apply, or one a restore action refused, with what the backup recorded about it. */
export interface PreparedObject {
  object: KubeObject;
  /** Plural resource name (recorded by the backup, guessed for older snapshots). */
  resource: string;
  /** ownerReferences from the backup, remapped at apply time. */
  owners: OwnerReference[];
  skip?: string;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/**
 * Reads the snapshot's objects and turns them into what would be applied, in restore order: filter,
 * namespace map, the restore actions (objects.ts), order. Reads only the repository.
 */
export async function prepareObjects(
  opts: Pick<
    ClusterStateRestoreOptions,
    'repo' | 'snapshot' | 'namespaces' | 'filter' | 'namespaceMap' | 'priorities' | 'choices'
  >,
): Promise<PreparedObject[]> {
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
  const out: PreparedObject[] = [];
  for (const item of opts.snapshot.items) {
    if (item.kind !== 'resource') continue;
    const kind = item.meta.kind as string;
    const name: ResourceName = {
      group: apiGroup(item.meta.apiVersion as string),
      kind,
      resource: (item.meta.resource as string | undefined) ?? guessPlural(kind),
    };
    const exempt = structural(name);
    if (opts.filter.exclude.some((p) => matches(p, name))) continue;
    if (!exempt && opts.filter.include.length && !opts.filter.include.some((p) => matches(p, name))) continue;
    const ns =
      (item.meta.namespace as string | null) ?? (kind === 'Namespace' ? (item.meta.name as string) : null);
    if (opts.namespaces.length && ns !== null && !opts.namespaces.includes(ns)) continue;
    const obj = JSON.parse((await opts.repo.readItemBuffer(item)).toString('utf8')) as KubeObject;
    if (isGenerated(obj)) continue;
    const mapped = mapNamespace(obj, opts.namespaceMap);
    const owners = ((mapped.metadata.ownerReferences as OwnerReference[] | undefined) ?? []).map((r) => ({
      ...r,
    }));
    const r = prepareForRestore(mapped, opts.choices);
    if ('skip' in r)
      out.push({ object: normalizeObject(mapped), resource: name.resource, owners, skip: r.skip });
    else out.push({ object: r.object, resource: name.resource, owners });
  }
  const plural = new Map(out.map((p) => [p.object, p.resource]));
  const order = sortForRestore(
    out.map((p) => p.object),
    opts.priorities ?? DEFAULT_PRIORITIES,
    (o) => plural.get(o as KubeObject),
  );
  const byObject = new Map(out.map((p) => [p.object, p]));
  return order.map((o) => byObject.get(o)!);
}

/** The objects a restore would apply (those no action refused), in restore order. */
export async function desiredObjects(
  opts: Pick<
    ClusterStateRestoreOptions,
    'repo' | 'snapshot' | 'namespaces' | 'filter' | 'namespaceMap' | 'priorities' | 'choices'
  >,
): Promise<KubeObject[]> {
  return (await prepareObjects(opts)).filter((p) => !p.skip).map((p) => p.object);
}

async function waitEstablished(
  client: KubeClient,
  crdRes: ResourceInfo,
  name: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const crd = await client.get(crdRes, undefined, name);
    const conds =
      (crd?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
    if (conds.some((c) => c.type === 'Established' && c.status === 'True')) break;
    if (!crd)
      throw new LifeboatError('NOT_FOUND', `CRD ${name} does not exist`, {
        hint: 'restore it with this snapshot (do not exclude customresourcedefinitions) or install it first',
      });
    if (Date.now() > deadline)
      throw new LifeboatError(
        'TIMEOUT',
        `CRD ${name} was not Established within ${Math.round(timeoutMs / 1000)} s`,
        {
          hint: 'check the API server (kubectl describe crd) and its conditions (NamesAccepted, NonStructuralSchema)',
        },
      );
    signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, 250));
  }
  client.resetDiscovery();
}

/**
 * The owner references the object gets in this cluster: each owner looked up by kind and name in the
 * object's namespace; found, it is pointed at the owner's uid here; missing, it is left out (a reference
 * to an absent uid would have the garbage collector delete the object).
 */
async function remapOwners(
  client: KubeClient,
  p: PreparedObject,
): Promise<{ refs: OwnerReference[]; dropped: string[] }> {
  const refs: OwnerReference[] = [];
  const dropped: string[] = [];
  for (const ref of p.owners) {
    const r = await client.resourceFor(ref.apiVersion, ref.kind);
    const owner = r
      ? await client.get(r, r.namespaced ? p.object.metadata.namespace : undefined, ref.name)
      : undefined;
    const uid = owner?.metadata.uid as string | undefined;
    if (uid) refs.push({ ...ref, uid });
    else dropped.push(`${ref.kind} ${ref.name}`);
  }
  return { refs, dropped };
}

export async function restoreClusterState(
  opts: ClusterStateRestoreOptions,
): Promise<ClusterStateRestoreResult> {
  const { client } = opts;
  const prepared = await prepareObjects(opts);
  const results: ObjectResult[] = [];
  const crdTimeout = opts.crdTimeoutMs ?? 60_000;
  let crdRes: ResourceInfo | undefined;
  for (const p of prepared) {
    opts.signal?.throwIfAborted();
    const obj = p.object;
    const key = objectKey(obj);
    const base = { key, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name };
    if (p.skip) {
      results.push({ ...base, result: opts.mode === 'apply' ? 'skipped' : 'would-skip', reason: p.skip });
      continue;
    }
    try {
      let r = await client.resourceFor(obj.apiVersion, obj.kind);
      const group = apiGroup(obj.apiVersion);
      if (!r && group) {
        // A custom resource whose CRD exists but is not served yet (just created, here or by someone
        // else): wait until it is Established rather than fail the object.
        crdRes ??= await client.mustResource('apiextensions.k8s.io/v1', 'CustomResourceDefinition');
        const crdName = `${p.resource}.${group}`;
        const crd = await client.get(crdRes, undefined, crdName);
        if (crd) {
          await waitEstablished(client, crdRes, crdName, crdTimeout, opts.signal);
          r = await client.resourceFor(obj.apiVersion, obj.kind);
        }
      }
      if (!r && opts.mode !== 'apply') {
        const crdPlanned = prepared.some(
          (x) =>
            x.object.kind === 'CustomResourceDefinition' &&
            x.object.metadata.name === `${p.resource}.${group}`,
        );
        if (crdPlanned) {
          // The CRD is restored earlier in this same run; without applying, nothing serves the kind yet.
          results.push({
            ...base,
            result: 'would-create',
            reason: `${obj.kind} is not served yet; its CRD is created first`,
          });
          continue;
        }
      }
      r ??= await client.mustResource(obj.apiVersion, obj.kind);
      const live = await client.get(r, obj.metadata.namespace, obj.metadata.name);
      const [plan] = planRestore([obj], live ? new Map([[key, live]]) : new Map(), opts.existing);
      const ownerNote = p.owners.length
        ? `; ownerReferences to ${p.owners.map((o) => `${o.kind} ${o.name}`).join(', ')} remapped to the owners in this cluster`
        : '';
      if (opts.mode !== 'apply') {
        const result: ObjectResult = {
          ...base,
          result: `would-${plan.action}` as ObjectOutcome,
          reason: plan.reason + (plan.action === 'skip' ? '' : ownerNote),
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
          reason: `already exists${terminating}; use --existing-resource-policy=update to overwrite`,
        });
        continue;
      }
      let toApply = obj;
      let ownerReason = '';
      if (p.owners.length) {
        const { refs, dropped } = await remapOwners(client, p);
        toApply = {
          ...obj,
          metadata: { ...obj.metadata, ...(refs.length ? { ownerReferences: refs } : {}) },
        };
        if (refs.length)
          ownerReason = `ownerReferences remapped to ${refs.map((x) => `${x.kind} ${x.name}`).join(', ')}`;
        if (dropped.length)
          ownerReason += `${ownerReason ? '; ' : ''}ownerReferences to ${dropped.join(', ')} dropped (not in the cluster)`;
      }
      if (plan.action === 'create') {
        await client.create(r, toApply);
        results.push({ ...base, result: 'created', reason: ownerReason });
      } else {
        const after = await client.apply(r, toApply, { force: true });
        const changed = after.metadata.resourceVersion !== live!.metadata.resourceVersion;
        results.push({
          ...base,
          result: changed ? 'updated' : 'unchanged',
          reason:
            (changed ? 'server-side apply' : 'already identical') + (ownerReason ? `; ${ownerReason}` : ''),
        });
      }
      if (obj.kind === 'CustomResourceDefinition')
        await waitEstablished(client, r, obj.metadata.name, crdTimeout, opts.signal);
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
