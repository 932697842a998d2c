/**
 * PVC restore drill: for every VolumeSnapshot of the pvc-snapshots record, a scratch PVC is created from
 * it (`dataSource: VolumeSnapshot`), waited on until Bound, its capacity checked against the snapshot's
 * restore size, and deleted again. The application's own PVCs and workloads are never touched (the
 * restore command's in-place path scales them down; a drill must not).
 *
 * The scratch PVC lives in the VolumeSnapshot's namespace, because a PVC's `dataSource` can only name a
 * VolumeSnapshot in its own namespace (cross-namespace sources need an alpha feature gate). It is
 * recognisable by name (`lifeboat-drill-<id>-<n>`) and by the labels `lifeboat.io/drill=<id>` and
 * `app.kubernetes.io/managed-by=lifeboat`; the next drill deletes those a killed drill left.
 */
import { LifeboatError } from '../../core/errors.ts';
import type { Snapshot } from '../../core/repository/model.ts';
import type { KubeClient } from '../../sources/kubernetes/client.ts';
import type { KubeObject } from '../../sources/kubernetes/objects.ts';
import {
  MANAGED_BY,
  kubeResources,
  quantityBytes,
  type Resources,
  type SnapshotVolume,
} from '../../sources/kubernetes/pvc.ts';
import type { LayerDrill, LayerDrillContext, LayerDrillResult } from './types.ts';

export const LABEL_DRILL = 'lifeboat.io/drill';

export interface PvcDrillOptions {
  /** How long a scratch PVC may take to bind. */
  timeoutMs?: number;
  pollMs?: number;
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  signal.throwIfAborted();
}

async function scratchPvcs(client: KubeClient, r: Resources): Promise<KubeObject[]> {
  return client.list(r.pvc, undefined, LABEL_DRILL);
}

export function pvcDrill(client: KubeClient, options: PvcDrillOptions = {}): LayerDrill {
  const pollMs = options.pollMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  let resources: Resources | undefined;
  const res = async () => (resources ??= await kubeResources(client));
  return {
    layer: 'pvc',
    async cleanupLeftovers(ctx: LayerDrillContext) {
      const r = await res();
      const removed: string[] = [];
      for (const pvc of await scratchPvcs(client, r)) {
        const id = pvc.metadata.labels?.[LABEL_DRILL];
        if (!id || id === ctx.drillId || !(await ctx.isAbandoned(id))) continue;
        await client.delete(r.pvc, pvc.metadata.namespace, pvc.metadata.name);
        removed.push(`PVC ${pvc.metadata.namespace}/${pvc.metadata.name} (drill ${id})`);
      }
      return removed;
    },
    async run(ctx: LayerDrillContext, snapshot: Snapshot): Promise<LayerDrillResult> {
      const r = await res();
      const items = snapshot.items.filter((i) => i.kind === 'volume-snapshot');
      if (items.length === 0)
        throw new LifeboatError(
          'NOT_FOUND',
          `pvc-snapshots ${snapshot.id.slice(0, 8)} names no VolumeSnapshot`,
          {
            hint: 'take one with `lifeboat pvc snapshot`',
          },
        );
      const created: { namespace: string; name: string }[] = [];
      const removeAll = async () => {
        for (const c of created) await client.delete(r.pvc, c.namespace, c.name);
      };
      ctx.defer(removeAll);
      const warnings: string[] = [];
      let bound = 0;
      let bytes = 0;
      try {
        for (const [n, item] of items.entries()) {
          ctx.signal.throwIfAborted();
          const { volume: v, pvc } = JSON.parse((await ctx.repo.readItemBuffer(item)).toString('utf8')) as {
            volume: SnapshotVolume;
            pvc: KubeObject;
          };
          const vs = await client.get(r.vs, v.namespace, v.volumeSnapshot);
          const st = vs?.status as { readyToUse?: boolean; restoreSize?: string } | undefined;
          if (!vs)
            throw new LifeboatError(
              'NOT_FOUND',
              `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} (PVC ${v.pvc}) of the newest pvc-snapshots record no longer exists`,
              {
                hint: 'something deleted it (retention of VolumeSnapshots?); take a new one with `lifeboat pvc snapshot`',
              },
            );
          if (!st?.readyToUse)
            throw new LifeboatError(
              'VERIFY_FAILED',
              `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} is not readyToUse`,
              {
                hint: 'check the snapshot controller and CSI driver (kubectl describe volumesnapshot)',
              },
            );
          const spec = (pvc.spec ?? {}) as {
            accessModes?: string[];
            storageClassName?: string;
            volumeMode?: string;
            resources?: { requests?: { storage?: string } };
          };
          const requested = spec.resources?.requests?.storage ?? '0';
          const restoreSize = st.restoreSize ?? v.restoreSize;
          const size =
            restoreSize && quantityBytes(restoreSize) > quantityBytes(requested) ? restoreSize : requested;
          const name = `lifeboat-drill-${ctx.drillId}-${n}`;
          const scratch: KubeObject = {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: {
              name,
              namespace: v.namespace,
              labels: { [LABEL_DRILL]: ctx.drillId, [MANAGED_BY]: 'lifeboat' },
              annotations: { 'lifeboat.io/drill-of': `${v.namespace}/${v.pvc}` },
            },
            spec: {
              accessModes: spec.accessModes ?? ['ReadWriteOnce'],
              ...(spec.storageClassName ? { storageClassName: spec.storageClassName } : {}),
              ...(spec.volumeMode ? { volumeMode: spec.volumeMode } : {}),
              resources: { requests: { storage: size } },
              dataSource: {
                apiGroup: 'snapshot.storage.k8s.io',
                kind: 'VolumeSnapshot',
                name: v.volumeSnapshot,
              },
            },
          };
          created.push({ namespace: v.namespace, name });
          await client.create(r.pvc, scratch);
          ctx.note(`lifeboat: scratch PVC ${v.namespace}/${name} from VolumeSnapshot ${v.volumeSnapshot}`);
          // WaitForFirstConsumer classes bind only once a pod uses the claim: nothing to wait for.
          const sc = spec.storageClassName
            ? await client
                .get(
                  await client.mustResource('storage.k8s.io/v1', 'StorageClass'),
                  undefined,
                  spec.storageClassName,
                )
                .catch(() => undefined)
            : undefined;
          if (
            (sc as { volumeBindingMode?: string } | undefined)?.volumeBindingMode === 'WaitForFirstConsumer'
          ) {
            warnings.push(
              `${v.namespace}/${v.pvc}: storage class ${spec.storageClassName} binds only with a consumer; the PVC was accepted but not bound`,
            );
            continue;
          }
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const cur = await client.get(r.pvc, v.namespace, name);
            const status = cur?.status as { phase?: string; capacity?: { storage?: string } } | undefined;
            if (status?.phase === 'Bound') {
              const capacity = status.capacity?.storage;
              if (!capacity || quantityBytes(capacity) < quantityBytes(size))
                throw new LifeboatError(
                  'VERIFY_FAILED',
                  `scratch PVC of ${v.namespace}/${v.pvc} bound with ${capacity ?? 'no'} capacity, less than the ${size} restored`,
                  { hint: 'check the CSI driver: the volume restored from the snapshot is too small' },
                );
              bound++;
              bytes += quantityBytes(capacity);
              break;
            }
            if (status?.phase === 'Lost')
              throw new LifeboatError('VERIFY_FAILED', `scratch PVC of ${v.namespace}/${v.pvc} is Lost`, {
                hint: 'kubectl describe pvc ' + name + ' -n ' + v.namespace,
              });
            if (Date.now() > deadline)
              throw new LifeboatError(
                'TIMEOUT',
                `scratch PVC of ${v.namespace}/${v.pvc} from VolumeSnapshot ${v.volumeSnapshot} not Bound after ${Math.round(timeoutMs / 1000)} s`,
                { hint: 'check the CSI driver and the VolumeSnapshot (kubectl describe pvc)' },
              );
            await sleep(pollMs, ctx.signal);
          }
        }
        return {
          summary: { volumeSnapshots: items.length, pvcsBound: bound, bytes },
          warnings,
        };
      } finally {
        await removeAll();
        ctx.note(`lifeboat: deleted ${created.length} scratch PVC(s)`);
      }
    },
    close: async () => {},
  };
}
