/**
 * `pvc-snapshots`: CSI VolumeSnapshots of PVCs, recorded in the repository so `lifeboat snapshots` lists
 * this layer too, and restores of PVCs from them.
 *
 * The data stays in the cloud's snapshots (Azure Disk incremental snapshots); the repository records which
 * VolumeSnapshot belongs to which PVC and workload, with the PVC spec needed to recreate it.
 */
import type { BackupSession, Snapshot } from '../../core/repository/model.ts';
import type { Repository } from '../../core/repository/repository.ts';
import { timestampLabel } from '../../core/repository/repository.ts';
import { LifeboatError } from '../../core/errors.ts';
import { type KubeClient, type ResourceInfo } from './client.ts';
import { canonicalJson, stripObject, type KubeObject } from './objects.ts';

export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_TIMESTAMP = 'lifeboat.io/timestamp';
export const LABEL_PVC = 'lifeboat.io/pvc';
export const LABEL_RUN = 'lifeboat.io/run';
/** PVC annotation naming the VolumeSnapshotClass to use; class label marking Lifeboat's preferred class. */
export const ANNOTATION_CLASS = 'lifeboat.io/snapshot-class';
export const LABEL_CLASS = 'lifeboat.io/snapshot-class';
export const DEFAULT_CLASS_ANNOTATION = 'snapshot.storage.kubernetes.io/is-default-class';

export interface Workload {
  kind: 'Deployment' | 'StatefulSet';
  name: string;
}

/** Picks the VolumeSnapshotClass: PVC annotation, then a class labelled for Lifeboat, then the default. */
export function chooseSnapshotClass(pvc: KubeObject, driver: string, classes: KubeObject[]): string {
  const forDriver = classes.filter((c) => c.driver === driver);
  const wanted = pvc.metadata.annotations?.[ANNOTATION_CLASS];
  const where = `PVC ${pvc.metadata.namespace}/${pvc.metadata.name}`;
  if (wanted) {
    const c = classes.find((x) => x.metadata.name === wanted);
    if (!c)
      throw new LifeboatError(
        'NOT_FOUND',
        `${where} asks for VolumeSnapshotClass "${wanted}", which does not exist`,
        { hint: 'fix the lifeboat.io/snapshot-class annotation or create the class' },
      );
    if (c.driver !== driver)
      throw new LifeboatError(
        'CONFIG',
        `${where}: VolumeSnapshotClass "${wanted}" is for driver ${String(c.driver)}, the volume uses ${driver}`,
        { hint: 'annotate the PVC with a class of its own driver' },
      );
    return wanted;
  }
  const labelled = forDriver.filter((c) => c.metadata.labels?.[LABEL_CLASS] === 'true');
  if (labelled.length === 1) return labelled[0].metadata.name;
  if (labelled.length > 1)
    throw new LifeboatError(
      'CONFIG',
      `${labelled.length} VolumeSnapshotClasses for ${driver} are labelled ${LABEL_CLASS}=true`,
      { hint: 'keep the label on one class only' },
    );
  const defaults = forDriver.filter((c) => c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  if (defaults.length === 1) return defaults[0].metadata.name;
  throw new LifeboatError('NOT_FOUND', `no VolumeSnapshotClass for driver ${driver} (needed by ${where})`, {
    hint: `create one (driver: ${driver}) and annotate it ${DEFAULT_CLASS_ANNOTATION}: "true", or label it ${LABEL_CLASS}: "true"`,
  });
}

/** The workload that mounts a PVC: a StatefulSet through its claim templates, or any pod template's volumes. */
export function owningWorkload(pvc: KubeObject, workloads: KubeObject[]): Workload | undefined {
  const name = pvc.metadata.name;
  for (const w of workloads) {
    if (w.metadata.namespace !== pvc.metadata.namespace) continue;
    const spec = w.spec as {
      volumeClaimTemplates?: { metadata: { name: string } }[];
      template?: { spec?: { volumes?: { persistentVolumeClaim?: { claimName: string } }[] } };
    };
    if (w.kind === 'StatefulSet') {
      for (const t of spec.volumeClaimTemplates ?? []) {
        if (new RegExp(`^${t.metadata.name}-${w.metadata.name}-\\d+$`).test(name))
          return { kind: 'StatefulSet', name: w.metadata.name };
      }
    }
    if (spec.template?.spec?.volumes?.some((v) => v.persistentVolumeClaim?.claimName === name))
      return { kind: w.kind as Workload['kind'], name: w.metadata.name };
  }
  return undefined;
}

/** `YYYYMMDD_HHMMSS` labels parse back to a Date (UTC). */
export function parseTimestampLabel(s: string | undefined): Date | undefined {
  const m = s ? /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(s) : null;
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}

/** Which Lifeboat-made VolumeSnapshots fall out of a keep-N-days policy (never ones without our label). */
export function expiredSnapshots(
  snapshots: KubeObject[],
  retentionDays: number,
  now: Date,
  keep: Set<string>,
): KubeObject[] {
  const cutoff = now.getTime() - retentionDays * 86_400_000;
  return snapshots.filter((s) => {
    if (
      s.metadata.labels?.[MANAGED_BY] !== 'lifeboat' ||
      keep.has(`${s.metadata.namespace}/${s.metadata.name}`)
    )
      return false;
    const t = parseTimestampLabel(s.metadata.labels?.[LABEL_TIMESTAMP]);
    return t !== undefined && t.getTime() < cutoff;
  });
}

/** Kubernetes quantities to bytes (enough for storage sizes: plain, decimal and binary suffixes). */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.exec(String(q).trim());
  if (!m) throw new LifeboatError('USAGE', `"${q}" is not a storage quantity`, { hint: 'use e.g. 10Gi' });
  const mult: Record<string, number> = {
    '': 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    Ei: 2 ** 60,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
  };
  return Number(m[1]) * mult[m[2] ?? ''];
}

export interface SnapshotVolume {
  namespace: string;
  pvc: string;
  volumeSnapshot: string;
  class: string;
  driver: string;
  restoreSize?: string;
  workload?: Workload;
}

export interface PvcSnapshotOptions {
  client: KubeClient;
  session: BackupSession;
  namespaces: string[];
  selector?: string;
  retentionDays?: number;
  timeoutMs: number;
  pollMs?: number;
  now?: Date;
  tags?: string[];
  signal?: AbortSignal;
  /**
   * Quiesces the application's data (e.g. MongoDB's fsyncLock) before the first VolumeSnapshot is created;
   * the release it returns is awaited, in a finally, once every snapshot is cut (creationTime set, or
   * readyToUse) — on success, failure, timeout or abort alike. A release that throws fails the run.
   */
  freeze?: () => Promise<{ release(): Promise<void> }>;
}

export interface PvcSnapshotResult {
  snapshot: Snapshot;
  timestamp: string;
  volumes: SnapshotVolume[];
  skipped: { namespace: string; pvc: string; reason: string }[];
  deleted: string[];
}

export interface Resources {
  pvc: ResourceInfo;
  pv: ResourceInfo;
  vs: ResourceInfo;
  vsc: ResourceInfo;
  sts: ResourceInfo;
  deploy: ResourceInfo;
}

/** Every namespace except the system ones (what "all PVCs in the cluster" means for the guide's script). */
export async function allNamespaces(client: KubeClient): Promise<string[]> {
  const ns = await client.mustResource('v1', 'Namespace');
  return (await client.list(ns))
    .map((n) => n.metadata.name)
    .filter((n) => !['kube-system', 'kube-public', 'kube-node-lease'].includes(n));
}

export async function kubeResources(client: KubeClient): Promise<Resources> {
  const vs = await client.resourceFor('snapshot.storage.k8s.io/v1', 'VolumeSnapshot');
  const vsc = await client.resourceFor('snapshot.storage.k8s.io/v1', 'VolumeSnapshotClass');
  if (!vs || !vsc) {
    throw new LifeboatError(
      'UNSUPPORTED',
      'the cluster does not serve snapshot.storage.k8s.io/v1 VolumeSnapshots',
      {
        hint: 'install the CSI snapshot CRDs and snapshot controller (AKS has them with the Azure Disk CSI driver)',
      },
    );
  }
  return {
    pvc: await client.mustResource('v1', 'PersistentVolumeClaim'),
    pv: await client.mustResource('v1', 'PersistentVolume'),
    vs,
    vsc,
    sts: await client.mustResource('apps/v1', 'StatefulSet'),
    deploy: await client.mustResource('apps/v1', 'Deployment'),
  };
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  signal?.throwIfAborted();
}

/** Waits for every VolumeSnapshot to be readyToUse; surfaces status.error.message; times out clearly. */
async function waitReady(
  client: KubeClient,
  r: Resources,
  vols: SnapshotVolume[],
  timeoutMs: number,
  pollMs: number,
  signal?: AbortSignal,
  /** `cut`: until each snapshot has its point in time (creationTime) — or is readyToUse. */
  until: 'ready' | 'cut' = 'ready',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(vols);
  for (;;) {
    for (const v of [...pending]) {
      const vs = await client.get(r.vs, v.namespace, v.volumeSnapshot);
      const st = vs?.status as
        | { readyToUse?: boolean; restoreSize?: string; creationTime?: string; error?: { message?: string } }
        | undefined;
      if (!vs)
        throw new LifeboatError(
          'NOT_FOUND',
          `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} disappeared while waiting`,
          { hint: 'check who deletes it' },
        );
      if (st?.error?.message) {
        throw new LifeboatError(
          'INTEGRITY',
          `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} of PVC ${v.pvc} failed: ${st.error.message}`,
          {
            hint: 'fix the cause reported by the CSI driver (quota, permissions, class parameters) and run again',
          },
        );
      }
      if (st?.readyToUse) {
        v.restoreSize = st.restoreSize;
        pending.delete(v);
      } else if (until === 'cut' && st?.creationTime) pending.delete(v);
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      const names = [...pending].map((v) => `${v.namespace}/${v.volumeSnapshot}`).join(', ');
      throw new LifeboatError(
        'TIMEOUT',
        `VolumeSnapshot(s) ${names} not readyToUse after ${Math.round(timeoutMs / 1000)} s`,
        {
          hint: 'check the snapshot controller and CSI driver (kubectl describe volumesnapshot); raise --timeout for large or cross-region copies',
        },
      );
    }
    await sleep(pollMs, signal);
  }
}

export async function snapshotPvcs(opts: PvcSnapshotOptions): Promise<PvcSnapshotResult> {
  const { client } = opts;
  const r = await kubeResources(client);
  const now = opts.now ?? new Date();
  const ts = timestampLabel(now);
  const classes = await client.list(r.vsc);
  const volumes: SnapshotVolume[] = [];
  const skipped: PvcSnapshotResult['skipped'] = [];
  const records = new Map<SnapshotVolume, KubeObject>();
  const planned: { pvc: KubeObject; v: SnapshotVolume }[] = [];
  for (const ns of opts.namespaces) {
    const workloads = [...(await client.list(r.sts, ns)), ...(await client.list(r.deploy, ns))];
    for (const pvc of await client.list(r.pvc, ns, opts.selector)) {
      const name = pvc.metadata.name;
      const phase = (pvc.status as { phase?: string } | undefined)?.phase;
      const volumeName = (pvc.spec as { volumeName?: string }).volumeName;
      if (phase !== 'Bound' || !volumeName) {
        skipped.push({ namespace: ns, pvc: name, reason: `not bound (phase ${phase ?? 'unknown'})` });
        continue;
      }
      const pv = await client.get(r.pv, undefined, volumeName);
      const driver = (pv?.spec as { csi?: { driver?: string } } | undefined)?.csi?.driver;
      if (!driver) {
        skipped.push({ namespace: ns, pvc: name, reason: 'not a CSI volume (no VolumeSnapshot possible)' });
        continue;
      }
      const v: SnapshotVolume = {
        namespace: ns,
        pvc: name,
        volumeSnapshot: `${name.slice(0, 200)}-${ts.replace('_', '-')}`,
        class: chooseSnapshotClass(pvc, driver, classes),
        driver,
        workload: owningWorkload(pvc, workloads),
      };
      planned.push({ pvc, v });
    }
  }
  if (planned.length === 0) {
    throw new LifeboatError(
      'NOT_FOUND',
      `no bound CSI PVCs in ${opts.namespaces.join(', ')}${opts.selector ? ` matching ${opts.selector}` : ''}`,
      {
        hint: skipped.length
          ? `skipped: ${skipped.map((s) => `${s.pvc} (${s.reason})`).join('; ')}`
          : 'check --namespace and --selector',
      },
    );
  }
  const created: SnapshotVolume[] = [];
  try {
    const frozen = opts.freeze ? await opts.freeze() : undefined;
    try {
      await createSnapshots();
      // Held only until every snapshot is cut, not until the (possibly long) copy is readyToUse.
      if (frozen)
        await waitReady(client, r, volumes, opts.timeoutMs, opts.pollMs ?? 2000, opts.signal, 'cut');
    } finally {
      await frozen?.release();
    }
    await waitReady(client, r, volumes, opts.timeoutMs, opts.pollMs ?? 2000, opts.signal);
  } catch (e) {
    // A partial set is no consistent backup: remove what this run created, record nothing.
    for (const v of created) await client.delete(r.vs, v.namespace, v.volumeSnapshot).catch(() => {});
    throw e;
  }
  async function createSnapshots(): Promise<void> {
    for (const { pvc, v } of planned) {
      const vs: KubeObject = {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: {
          name: v.volumeSnapshot,
          namespace: v.namespace,
          labels: {
            [MANAGED_BY]: 'lifeboat',
            [LABEL_TIMESTAMP]: ts,
            ...(v.pvc.length <= 63 ? { [LABEL_PVC]: v.pvc } : {}),
          },
          annotations: {
            'lifeboat.io/pvc': v.pvc,
            ...(v.workload ? { 'lifeboat.io/workload': `${v.workload.kind}/${v.workload.name}` } : {}),
          },
        },
        spec: { volumeSnapshotClassName: v.class, source: { persistentVolumeClaimName: v.pvc } },
      };
      await client.create(r.vs, vs);
      created.push(v);
      records.set(v, pvc);
      volumes.push(v);
    }
  }
  const items = [];
  for (const v of volumes) {
    const body = { volume: v, pvc: stripObject(records.get(v)!) };
    items.push(
      await opts.session.addItem(
        {
          name: `${v.namespace}/VolumeSnapshot/${v.volumeSnapshot}`,
          kind: 'volume-snapshot',
          meta: {
            namespace: v.namespace,
            pvc: v.pvc,
            volumeSnapshot: v.volumeSnapshot,
            restoreSize: v.restoreSize ?? null,
          },
        },
        Buffer.from(canonicalJson(body)),
        'file',
      ),
    );
  }
  const snapshot = await opts.session.commit({
    type: 'pvc-snapshots',
    tags: opts.tags ?? [],
    paths: opts.namespaces.map((n) => `k8s://${n}`),
    meta: {
      server: client.server,
      timestamp: ts,
      volumes: volumes.map((v) => ({
        namespace: v.namespace,
        pvc: v.pvc,
        volumeSnapshot: v.volumeSnapshot,
        restoreSize: v.restoreSize ?? null,
      })),
    },
    items,
  });
  const deleted: string[] = [];
  if (opts.retentionDays !== undefined) {
    const keep = new Set(volumes.map((v) => `${v.namespace}/${v.volumeSnapshot}`));
    for (const ns of opts.namespaces) {
      const ours = await client.list(r.vs, ns, `${MANAGED_BY}=lifeboat`);
      for (const old of expiredSnapshots(ours, opts.retentionDays, now, keep)) {
        await client.delete(r.vs, ns, old.metadata.name);
        deleted.push(`${ns}/${old.metadata.name}`);
      }
    }
  }
  return { snapshot, timestamp: ts, volumes, skipped, deleted };
}

/**
 * The pvc-snapshots records whose every VolumeSnapshot is gone (`gone` holds `namespace/name`): their data
 * no longer exists, so a record left behind would offer a restore that cannot happen. Records with some
 * snapshots left are kept (validate names the missing ones). Pure.
 */
export function recordsToForget(records: Snapshot[], gone: Set<string>): Snapshot[] {
  return records.filter((s) => {
    if (s.type !== 'pvc-snapshots') return false;
    const vols = Array.isArray(s.meta.volumes)
      ? (s.meta.volumes as { namespace: string; volumeSnapshot: string }[])
      : [];
    return vols.length > 0 && vols.every((v) => gone.has(`${v.namespace}/${v.volumeSnapshot}`));
  });
}

/**
 * Keeps the repository in step with retention: removes the records of the VolumeSnapshots it deleted,
 * under the exclusive lock `forget` takes (only records go; they hold no pack data of their own).
 */
export async function forgetDeletedRecords(repo: Repository, deleted: string[]): Promise<string[]> {
  if (!deleted.length) return [];
  const lock = await repo.lock('exclusive', 'pvc snapshot retention');
  try {
    const doomed = recordsToForget(await repo.listSnapshots({ type: 'pvc-snapshots' }), new Set(deleted));
    for (const s of doomed) await repo.removeSnapshot(s.id);
    return doomed.map((s) => s.id);
  } finally {
    await lock.release();
  }
}

export interface PvcRestoreOptions {
  client: KubeClient;
  repo: Repository;
  snapshot: Snapshot;
  pvcs: string[];
  dryRun: boolean;
  /** How long to wait for PVC deletion, pods to stop and new PVCs to bind. */
  timeoutMs: number;
  pollMs?: number;
  signal?: AbortSignal;
}

export interface PvcRestoreEntry {
  namespace: string;
  pvc: string;
  volumeSnapshot: string;
  size: string;
  /** The old PersistentVolume, kept (reclaim policy Retain) for rollback. */
  retainedVolume?: string;
  result: 'restored' | 'would-restore' | 'rolled-back' | 'failed';
  reason?: string;
  /** After a failed restore: what the claim is now (rolled back, or what a failed rollback step left). */
  state?: string;
}

export interface PvcRestoreResult {
  snapshot: string;
  timestamp: string;
  pvcs: PvcRestoreEntry[];
  /** `replicas`: the count before the restore; `state` after a failed one (scaled back, or left at 0). */
  workloads: { namespace: string; kind: string; name: string; replicas: number; state?: string }[];
  error?: string;
}

async function waitGone(
  client: KubeClient,
  res: ResourceInfo,
  ns: string,
  name: string,
  timeoutMs: number,
  pollMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await client.get(res, ns, name)) {
    if (Date.now() > deadline) {
      throw new LifeboatError(
        'TIMEOUT',
        `${res.resource} ${ns}/${name} still exists ${Math.round(timeoutMs / 1000)} s after deletion`,
        {
          hint: 'a pod probably still mounts it (kubernetes.io/pvc-protection); stop it and run again',
        },
      );
    }
    await sleep(pollMs, signal);
  }
}

export async function restorePvcs(opts: PvcRestoreOptions): Promise<PvcRestoreResult> {
  const { client, snapshot } = opts;
  const pollMs = opts.pollMs ?? 1000;
  if (snapshot.type !== 'pvc-snapshots') {
    throw new LifeboatError(
      'USAGE',
      `snapshot ${snapshot.id.slice(0, 8)} is a ${snapshot.type} snapshot, not pvc-snapshots`,
      { hint: 'pick one from `lifeboat snapshots --type pvc-snapshots`' },
    );
  }
  const r = await kubeResources(client);
  let items = snapshot.items.filter((i) => i.kind === 'volume-snapshot');
  if (opts.pvcs.length) {
    const unknown = opts.pvcs.filter((p) => !items.some((i) => i.meta.pvc === p));
    if (unknown.length)
      throw new LifeboatError(
        'NOT_FOUND',
        `PVC ${unknown.join(', ')} is not in snapshot ${snapshot.timestamp}`,
        { hint: `it holds: ${items.map((i) => i.meta.pvc).join(', ')}` },
      );
    items = items.filter((i) => opts.pvcs.includes(i.meta.pvc as string));
  }
  // Check everything before changing anything: each VolumeSnapshot must still exist and be ready.
  const plan: { v: SnapshotVolume; pvc: KubeObject; size: string }[] = [];
  for (const item of items) {
    const { volume: v, pvc } = JSON.parse((await opts.repo.readItemBuffer(item)).toString('utf8')) as {
      volume: SnapshotVolume;
      pvc: KubeObject;
    };
    const vs = await client.get(r.vs, v.namespace, v.volumeSnapshot);
    const st = vs?.status as { readyToUse?: boolean; restoreSize?: string } | undefined;
    if (!vs)
      throw new LifeboatError(
        'NOT_FOUND',
        `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} (PVC ${v.pvc}) no longer exists`,
        { hint: 'it was deleted (retention?); pick a newer --timestamp' },
      );
    if (!st?.readyToUse)
      throw new LifeboatError(
        'CONFLICT',
        `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} is not readyToUse`,
        { hint: 'wait for the snapshot controller, then run again' },
      );
    const requested = ((pvc.spec as { resources?: { requests?: { storage?: string } } }).resources?.requests
      ?.storage ?? '0') as string;
    const restoreSize = st.restoreSize ?? v.restoreSize;
    const size =
      restoreSize && quantityBytes(restoreSize) > quantityBytes(requested) ? restoreSize : requested;
    plan.push({ v, pvc, size });
  }
  const workloadKeys = new Map<
    string,
    { namespace: string; kind: string; name: string; res: ResourceInfo }
  >();
  for (const { v } of plan) {
    if (v.workload)
      workloadKeys.set(`${v.namespace}/${v.workload.kind}/${v.workload.name}`, {
        namespace: v.namespace,
        ...v.workload,
        res: v.workload.kind === 'StatefulSet' ? r.sts : r.deploy,
      });
  }
  const result: PvcRestoreResult = {
    snapshot: snapshot.id,
    timestamp: snapshot.timestamp,
    pvcs: [],
    workloads: [],
  };
  for (const w of workloadKeys.values()) {
    const scale = await client.request<{ spec?: { replicas?: number } }>(
      'GET',
      `${workloadPath(w.res, w.namespace, w.name)}/scale`,
      `get scale of ${w.kind} ${w.namespace}/${w.name}`,
    );
    result.workloads.push({
      namespace: w.namespace,
      kind: w.kind,
      name: w.name,
      replicas: scale.spec?.replicas ?? 0,
    });
  }
  if (opts.dryRun) {
    result.pvcs = plan.map(({ v, size }) => ({
      namespace: v.namespace,
      pvc: v.pvc,
      volumeSnapshot: v.volumeSnapshot,
      size,
      result: 'would-restore',
    }));
    return result;
  }
  const setReplicas = async (w: PvcRestoreResult['workloads'][number], replicas: number) => {
    const res = w.kind === 'StatefulSet' ? r.sts : r.deploy;
    await client.request(
      'PATCH',
      `${workloadPath(res, w.namespace, w.name)}/scale`,
      `scale ${w.kind} ${w.namespace}/${w.name}`,
      { spec: { replicas } },
      { contentType: 'application/merge-patch+json' },
    );
  };
  // Journal of what was done, for rollback in reverse.
  const done: { v: SnapshotVolume; old?: KubeObject; oldPv?: string; created: boolean }[] = [];
  try {
    for (const w of result.workloads) await setReplicas(w, 0);
    for (const { v, pvc, size } of plan) {
      const step: (typeof done)[number] = { v, created: false };
      done.push(step);
      const old = await client.get(r.pvc, v.namespace, v.pvc);
      if (old) {
        step.old = old;
        step.oldPv = (old.spec as { volumeName?: string }).volumeName;
        // Keep the old disk: Retain survives the PVC's deletion and allows rollback.
        if (step.oldPv)
          await client.mergePatch(r.pv, undefined, step.oldPv, {
            spec: { persistentVolumeReclaimPolicy: 'Retain' },
          });
        await client.delete(r.pvc, v.namespace, v.pvc);
        await waitGone(client, r.pvc, v.namespace, v.pvc, opts.timeoutMs, pollMs, opts.signal);
      }
      const fresh = stripObject(pvc);
      const spec = fresh.spec as Record<string, unknown> & {
        resources?: { requests?: Record<string, string> };
      };
      spec.resources = {
        ...(spec.resources ?? {}),
        requests: { ...(spec.resources?.requests ?? {}), storage: size },
      };
      spec.dataSource = {
        apiGroup: 'snapshot.storage.k8s.io',
        kind: 'VolumeSnapshot',
        name: v.volumeSnapshot,
      };
      delete spec.dataSourceRef;
      await client.create(r.pvc, fresh);
      step.created = true;
      await waitBound(client, r, v.namespace, v.pvc, opts.timeoutMs, pollMs, opts.signal);
      result.pvcs.push({
        namespace: v.namespace,
        pvc: v.pvc,
        volumeSnapshot: v.volumeSnapshot,
        size,
        retainedVolume: step.oldPv,
        result: 'restored',
      });
    }
    for (const w of result.workloads) await setReplicas(w, w.replicas);
    return result;
  } catch (e) {
    const err = e instanceof LifeboatError ? e : new LifeboatError('INTERNAL', String(e));
    // Roll back: new PVCs out, old PVCs back on their retained volumes, replicas as they were. Every step
    // is attempted and its outcome recorded, so a failed step is named with the state it leaves behind
    // instead of being folded into "rolled back".
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (stepError) {
        failures.push(`${what}: ${(stepError as Error).message}`);
        return false;
      }
    };
    for (const step of done.reverse()) {
      const where = `PVC ${step.v.namespace}/${step.v.pvc}`;
      const stepFailures = failures.length;
      let state: string;
      let newGone = !step.created;
      if (step.created)
        newGone = await attempt(`${where}: delete the restored claim`, async () => {
          await client.delete(r.pvc, step.v.namespace, step.v.pvc);
          await waitGone(client, r.pvc, step.v.namespace, step.v.pvc, opts.timeoutMs, pollMs);
        });
      let oldBack = !step.old;
      if (step.old && newGone) {
        const old = step.old;
        oldBack = await attempt(`${where}: recreate the previous claim`, async () => {
          if (step.oldPv) {
            // The retained PV still points at the deleted claim's uid; clear it so the recreated claim binds.
            await client.mergePatch(r.pv, undefined, step.oldPv, {
              spec: { claimRef: { uid: null, resourceVersion: null } },
            });
          }
          const back = stripObject(old);
          if (step.oldPv) (back.spec as Record<string, unknown>).volumeName = step.oldPv;
          if (!(await client.get(r.pvc, step.v.namespace, step.v.pvc))) await client.create(r.pvc, back);
        });
      }
      const retained = step.oldPv
        ? `; its previous volume ${step.oldPv} is kept (reclaim policy Retain)`
        : '';
      if (!newGone) state = `the restored claim (from ${step.v.volumeSnapshot}) is still there${retained}`;
      else if (!oldBack) state = `no claim exists${retained}`;
      else if (step.old) state = `back on its previous volume ${step.oldPv ?? '(none)'}`;
      else state = 'removed again (it did not exist before)';
      const ok = failures.length === stepFailures;
      const entry = result.pvcs.find((p) => p.pvc === step.v.pvc && p.namespace === step.v.namespace);
      const fields = {
        result: (ok
          ? step.created || step.old
            ? 'rolled-back'
            : 'failed'
          : 'failed') as PvcRestoreEntry['result'],
        reason: ok ? err.message : `rollback failed: ${failures.slice(stepFailures).join('; ')}`,
        state,
      };
      if (entry) Object.assign(entry, fields);
      else
        result.pvcs.push({
          namespace: step.v.namespace,
          pvc: step.v.pvc,
          volumeSnapshot: step.v.volumeSnapshot,
          size: '',
          retainedVolume: step.oldPv,
          ...fields,
        });
    }
    for (const w of result.workloads) {
      const ok = await attempt(`${w.kind} ${w.namespace}/${w.name}: scale back to ${w.replicas}`, () =>
        setReplicas(w, w.replicas),
      );
      w.state = ok ? `scaled back to ${w.replicas}` : 'left scaled down to 0';
    }
    if (failures.length === 0)
      throw new LifeboatError(err.code, `PVC restore failed and was rolled back: ${err.message}`, {
        hint:
          err.hint ??
          'the previous PVCs and replica counts are back; old volumes are kept with reclaim policy Retain',
        details: { pvcs: result.pvcs, workloads: result.workloads },
      });
    const states = [
      ...result.pvcs
        .filter((p) => p.result === 'failed')
        .map((p) => `PVC ${p.namespace}/${p.pvc}: ${p.state}`),
      ...result.workloads
        .filter((w) => w.state !== `scaled back to ${w.replicas}`)
        .map((w) => `${w.kind} ${w.namespace}/${w.name}: ${w.state}`),
    ];
    throw new LifeboatError(
      err.code,
      `PVC restore failed (${err.message}) and ${failures.length} rollback step(s) failed: ${failures.join('; ')}. Now: ${states.join('; ')}`,
      {
        hint: 'fix the cause and run the restore again, or put the claims back by hand from the retained volumes (--json lists each PVC and workload)',
        details: { pvcs: result.pvcs, workloads: result.workloads, rollbackFailures: failures },
      },
    );
  }
}

function workloadPath(res: ResourceInfo, ns: string, name: string): string {
  return `/apis/${res.group}/${res.version}/namespaces/${encodeURIComponent(ns)}/${res.resource}/${encodeURIComponent(name)}`;
}

/** Waits for Bound where a binder will bind now; WaitForFirstConsumer classes bind only when a pod starts. */
async function waitBound(
  client: KubeClient,
  r: Resources,
  ns: string,
  name: string,
  timeoutMs: number,
  pollMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const pvc = await client.get(r.pvc, ns, name);
  const className = (pvc?.spec as { storageClassName?: string } | undefined)?.storageClassName;
  if (className) {
    const sc = await client
      .get(await client.mustResource('storage.k8s.io/v1', 'StorageClass'), undefined, className)
      .catch(() => undefined);
    if ((sc as { volumeBindingMode?: string } | undefined)?.volumeBindingMode === 'WaitForFirstConsumer')
      return;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const cur = await client.get(r.pvc, ns, name);
    if ((cur?.status as { phase?: string } | undefined)?.phase === 'Bound') return;
    if (Date.now() > deadline) {
      throw new LifeboatError(
        'TIMEOUT',
        `restored PVC ${ns}/${name} not Bound after ${Math.round(timeoutMs / 1000)} s`,
        {
          hint: 'check the CSI driver and the VolumeSnapshot (kubectl describe pvc); raise --timeout for large volumes',
        },
      );
    }
    await sleep(pollMs, signal);
  }
}
