import { startBackup } from '../core/repository/backup.ts';
import type { SnapshotVolume } from '../sources/kubernetes/pvc.ts';
import { int, list, str, usageError, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { openRepository } from './repo.ts';

export interface PvcSnapshotCliResult {
  id: string;
  timestamp: string;
  volumes: SnapshotVolume[];
  skipped: { namespace: string; pvc: string; reason: string }[];
  deleted: string[];
  /** Records removed from the repository because retention deleted all their VolumeSnapshots. */
  forgotten: string[];
}

export const pvcSnapshotCommand: Command<PvcSnapshotCliResult> = {
  path: ['pvc', 'snapshot'],
  summary: 'take CSI VolumeSnapshots of bound PVCs, wait until ready, record them, apply retention',
  options: {
    ...KUBE_OPTIONS,
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description: "namespace (repeatable; default: the context's namespace)",
    },
    'all-namespaces': {
      type: 'boolean',
      short: 'A',
      description: 'every namespace except kube-system, kube-public, kube-node-lease',
    },
    selector: {
      type: 'string',
      short: 'l',
      arg: 'LABELS',
      description: 'only PVCs matching this label selector',
    },
    'retention-days': {
      type: 'string',
      arg: 'DAYS',
      default: '7',
      description: 'delete Lifeboat-made VolumeSnapshots older than this',
    },
    timeout: {
      type: 'string',
      arg: 'SECONDS',
      default: '600',
      description: 'how long to wait for readyToUse',
    },
    'poll-ms': {
      type: 'string',
      arg: 'MS',
      default: '2000',
      description: 'how often to check snapshot status',
    },
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the record (repeatable)' },
    'mongodb-uri': {
      type: 'string',
      arg: 'URI',
      description:
        'fsyncLock this MongoDB (writes flushed and held) while the snapshots are cut, fsyncUnlock after — on failure, timeout and signal too',
    },
    'no-fsync-lock': {
      type: 'boolean',
      description:
        'with --mongodb-uri: snapshot without fsyncLock (for servers that lack it; crash-consistent only)',
    },
    'fsync-lock-max': {
      type: 'string',
      arg: 'SECONDS',
      default: '120',
      description: 'the longest fsyncLock is held; past it MongoDB is unlocked and the run fails',
    },
  },
  help: `The VolumeSnapshotClass per driver: the PVC's lifeboat.io/snapshot-class annotation, else the class labelled
lifeboat.io/snapshot-class=true, else the driver's default class. Retention only deletes VolumeSnapshots
labelled app.kubernetes.io/managed-by=lifeboat.
Examples:
  lifeboat pvc snapshot --namespace rocketchat --retention-days 14`,
  async run(ctx, values) {
    const { allNamespaces, forgetDeletedRecords, snapshotPvcs } =
      await import('../sources/kubernetes/pvc.ts');
    const { connectMongo, credentialsFromEnv } = await import('../sources/mongodb/connect.ts');
    const { fsyncLock } = await import('../sources/mongodb/fsync-lock.ts');
    const client = await kubeClient(ctx, values);
    let namespaces = list(values.namespace);
    if (values['all-namespaces']) {
      if (namespaces.length) throw usageError('give --namespace or --all-namespaces, not both');
      namespaces = await allNamespaces(client);
    }
    const mongoUri = str(values['mongodb-uri']);
    if (values['no-fsync-lock'] && !mongoUri) throw usageError('--no-fsync-lock goes with --mongodb-uri');
    const maxLockMs = (int(values['fsync-lock-max'], 'fsync-lock-max') ?? 120) * 1000;
    // Connected (and a sharded cluster refused) before anything is created.
    const mongo = mongoUri
      ? await connectMongo({
          uri: mongoUri,
          ...credentialsFromEnv(ctx.env),
          appName: 'lifeboat pvc snapshot',
        })
      : undefined;
    if (mongo && values['no-fsync-lock'])
      ctx.out.note('lifeboat: --no-fsync-lock: snapshots taken without fsyncLock (crash-consistent only)');
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'pvc snapshot');
    try {
      const r = await snapshotPvcs({
        client,
        session,
        namespaces: namespaces.length ? namespaces : [client.defaultNamespace()],
        selector: str(values.selector),
        retentionDays: int(values['retention-days'], 'retention-days'),
        timeoutMs: (int(values.timeout, 'timeout') ?? 600) * 1000,
        pollMs: int(values['poll-ms'], 'poll-ms'),
        tags: list(values.tag),
        signal: ctx.signal,
        ...(mongo && !values['no-fsync-lock']
          ? {
              freeze: async () => {
                const lock = await fsyncLock(mongo, { maxLockMs, note: (m) => ctx.out.note(m) });
                ctx.out.note('lifeboat: MongoDB fsyncLocked for the snapshots');
                return lock;
              },
            }
          : {}),
      });
      // The records of what retention deleted go too, so no restore is offered from a snapshot that is gone.
      const forgotten = await forgetDeletedRecords(repo, r.deleted);
      return {
        id: r.snapshot.id,
        timestamp: r.timestamp,
        volumes: r.volumes,
        skipped: r.skipped,
        deleted: r.deleted,
        forgotten,
      };
    } catch (e) {
      await session.abort().catch(() => {});
      throw e;
    } finally {
      await mongo?.close().catch(() => {});
    }
  },
  human(r, out) {
    out.line(`recorded ${r.volumes.length} VolumeSnapshot(s) as ${r.id.slice(0, 8)} (${r.timestamp}):`);
    for (const v of r.volumes)
      out.line(
        `  ${v.namespace}/${v.pvc} -> ${v.volumeSnapshot} (${v.class}, ${v.restoreSize ?? '?'})${v.workload ? ` used by ${v.workload.kind}/${v.workload.name}` : ''}`,
      );
    for (const s of r.skipped) out.line(`  skipped ${s.namespace}/${s.pvc}: ${s.reason}`);
    if (r.deleted.length) out.line(`retention deleted ${r.deleted.length}: ${r.deleted.join(', ')}`);
    if (r.forgotten.length)
      out.line(
        `forgot ${r.forgotten.length} record(s) of them: ${r.forgotten.map((id) => id.slice(0, 8)).join(', ')}`,
      );
  },
  effect: 'change',
  layer: 'pvc-snapshots',
  event: (r) => ({
    snapshot: r.id,
    items: r.volumes.length,
    details: { volumes: r.volumes.length, skipped: r.skipped.length, retentionDeleted: r.deleted.length },
  }),
};
