/**
 * `lifeboat validate` for the Kubernetes layers.
 *
 * pvc: the data of a `pvc-snapshots` backup lives in the cluster's VolumeSnapshots (Azure Disk
 * snapshots), not in the repository — so the check is there: every VolumeSnapshot the newest record
 * names must still exist and be readyToUse. The reverse — VolumeSnapshots Lifeboat made (labelled
 * app.kubernetes.io/managed-by=lifeboat) that no record names — is a warning: they cost money and no
 * restore will find them. Older records whose VolumeSnapshots are gone are a warning too (retention
 * forgets the records of what it deletes; anything else deleting them leaves records behind).
 * Without cluster access the layer says `not checked: no cluster access`.
 *
 * cluster-state: every object item (and Helm release item) is read back — they are small — and must
 * decode to the object its item names.
 */
import { isLifeboatError, type ErrorCode } from '../../core/errors.ts';
import type { Snapshot } from '../../core/repository/model.ts';
import { NoAccess, type LayerValidator } from '../../operations/validate.ts';
import type { KubeClient } from './client.ts';
import { MANAGED_BY, kubeResources } from './pvc.ts';

/** Errors that mean "cannot look", not "looked and found a problem". */
const NO_ACCESS: ErrorCode[] = ['CONFIG', 'UNREACHABLE', 'AUTH', 'PERMISSION', 'UNSUPPORTED'];

export async function withCluster<T>(
  open: () => Promise<KubeClient>,
  fn: (c: KubeClient) => Promise<T>,
): Promise<T> {
  try {
    return await fn(await open());
  } catch (e) {
    if (NO_ACCESS.some((code) => isLifeboatError(e, code)))
      throw new NoAccess(`no cluster access (${(e as Error).message})`);
    throw e;
  }
}

interface RecordedVolume {
  namespace: string;
  pvc: string;
  volumeSnapshot: string;
}

function volumesOf(s: Snapshot): RecordedVolume[] {
  const v = s.meta.volumes;
  return Array.isArray(v)
    ? (v as RecordedVolume[]).filter(
        (x) => typeof x?.namespace === 'string' && typeof x.volumeSnapshot === 'string',
      )
    : [];
}

const MAX_NAMED = 5;
const names = (list: string[]) =>
  list.slice(0, MAX_NAMED).join(', ') +
  (list.length > MAX_NAMED ? ` and ${list.length - MAX_NAMED} more` : '');

export const pvcValidator: LayerValidator = {
  layer: 'pvc',
  appliesTo: 'pvc-snapshots',
  async validate(ctx) {
    const snap = ctx.snapshot!;
    const volumes = volumesOf(snap);
    if (!volumes.length) {
      ctx.fail('metadata', 'the record names no VolumeSnapshot');
      return;
    }
    await withCluster(ctx.peers.kube, async (client) => {
      const r = await kubeResources(client);
      let ready = 0;
      for (const v of volumes) {
        const vs = await client.get(r.vs, v.namespace, v.volumeSnapshot);
        const st = vs?.status as { readyToUse?: boolean; error?: { message?: string } } | undefined;
        if (!vs)
          ctx.fail(
            'cluster',
            `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} (PVC ${v.pvc}) no longer exists: PVC ${v.pvc} cannot be restored from snapshot ${snap.timestamp}`,
          );
        else if (!st?.readyToUse)
          ctx.fail(
            'cluster',
            `VolumeSnapshot ${v.namespace}/${v.volumeSnapshot} (PVC ${v.pvc}) is not readyToUse${st?.error?.message ? `: ${st.error.message}` : ''}`,
          );
        else ready++;
      }
      // Older records whose VolumeSnapshots are gone (deleted outside retention, which forgets its own):
      // each offers a restore that cannot happen.
      const stale: string[] = [];
      for (const older of ctx.history) {
        if (older.id === snap.id) continue;
        const missing: string[] = [];
        for (const v of volumesOf(older))
          if (!(await client.get(r.vs, v.namespace, v.volumeSnapshot)))
            missing.push(`${v.namespace}/${v.volumeSnapshot}`);
        if (missing.length) stale.push(`${older.id.slice(0, 8)} (${names(missing)})`);
      }
      if (stale.length)
        ctx.warn(
          'cluster',
          `${stale.length} older record(s) point to VolumeSnapshots the cluster no longer has: ${names(stale)}; those restores cannot happen — \`lifeboat forget\` the records`,
        );
      // The reverse: ours, in the namespaces the records cover, but named by no record.
      const known = new Set(
        ctx.history.flatMap((s) => volumesOf(s).map((v) => `${v.namespace}/${v.volumeSnapshot}`)),
      );
      const namespaces = [
        ...new Set(ctx.history.flatMap((s) => volumesOf(s).map((v) => v.namespace))),
      ].sort();
      const orphans: string[] = [];
      for (const ns of namespaces)
        for (const vs of await client.list(r.vs, ns, `${MANAGED_BY}=lifeboat`)) {
          const key = `${ns}/${vs.metadata.name}`;
          if (!known.has(key)) orphans.push(key);
        }
      if (orphans.length)
        ctx.warn(
          'cluster',
          `${orphans.length} VolumeSnapshot(s) made by Lifeboat are named by no record in the repository (${names(orphans)}): no restore will use them; delete them or find the repository that recorded them`,
        );
      ctx.note(`${ready} of ${volumes.length} VolumeSnapshot(s) readyToUse`);
    });
  },
};

/** Items up to this size are read back; Kubernetes objects are at most ~1.5 MiB (etcd's limit). */
const SMALL_ITEM = 4 * 1024 * 1024;

export const clusterStateValidator: LayerValidator = {
  layer: 'cluster-state',
  appliesTo: 'cluster-state',
  async validate(ctx) {
    const snap = ctx.snapshot!;
    let objects = 0;
    let releases = 0;
    const bad: string[] = [];
    for (const item of snap.items) {
      if (item.kind !== 'resource' && item.kind !== 'helm-release') continue;
      if (item.size > SMALL_ITEM) continue;
      ctx.signal.throwIfAborted();
      let decoded: { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } } & Record<
        string,
        unknown
      >;
      try {
        decoded = JSON.parse((await ctx.repo.readItemBuffer(item)).toString('utf8'));
      } catch (e) {
        bad.push(
          `${item.name}: ${isLifeboatError(e, 'INTEGRITY') ? (e as Error).message : 'is not valid JSON'}`,
        );
        continue;
      }
      if (item.kind === 'helm-release') {
        if (typeof decoded?.name !== 'string' || typeof decoded.namespace !== 'string')
          bad.push(`${item.name}: not a Helm release history`);
        else releases++;
        continue;
      }
      const m = item.meta as { kind?: string; apiVersion?: string; name?: string };
      if (
        decoded?.kind !== m.kind ||
        decoded.apiVersion !== m.apiVersion ||
        decoded.metadata?.name !== m.name
      )
        bad.push(
          `${item.name}: decodes to ${String(decoded?.kind)} ${String(decoded?.metadata?.name)}, not the object its item names`,
        );
      else objects++;
    }
    for (const b of bad.slice(0, MAX_NAMED)) ctx.fail('metadata', `item ${b}`);
    if (bad.length > MAX_NAMED)
      ctx.fail('metadata', `and ${bad.length - MAX_NAMED} more item(s) that do not decode`);
    if (!objects && !bad.length) ctx.warn('metadata', 'the snapshot holds no Kubernetes object');
    ctx.note(`${objects} object(s), ${releases} Helm release(s) decode`);
  },
};
