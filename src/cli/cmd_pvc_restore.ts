import type { PvcRestoreResult } from '../sources/kubernetes/pvc.ts';
import type { Snapshot } from '../core/repository/model.ts';
import { LifeboatError } from '../core/errors.ts';
import { int, list, str, usageError, type Command } from './command.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { openRepository } from './repo.ts';

export const pvcRestoreCommand: Command<PvcRestoreResult> = {
  path: ['pvc', 'restore'],
  summary:
    'recreate PVCs from their VolumeSnapshots (scale down, keep old volumes, scale up; rolled back on failure)',
  usage: '[SNAPSHOT | latest]',
  options: {
    ...KUBE_OPTIONS,
    timestamp: {
      type: 'string',
      arg: 'YYYYMMDD_HHMMSS',
      description: 'restore the snapshot set taken at this time',
    },
    pvc: { type: 'string', multiple: true, arg: 'NAME', description: 'only this PVC (repeatable)' },
    'dry-run': { type: 'boolean', description: 'print the plan, change nothing' },
    timeout: {
      type: 'string',
      arg: 'SECONDS',
      default: '600',
      description: 'wait limit for deletion and binding',
    },
    'poll-ms': { type: 'string', arg: 'MS', default: '1000', description: 'how often to check progress' },
  },
  help: `Workloads that mount the PVCs are scaled to 0 and back to their replica counts. Old volumes get reclaim
policy Retain so nothing is lost; a failure part-way restores the previous PVCs and replicas.
Examples:
  lifeboat pvc restore --timestamp 20241201_120000 --dry-run
  lifeboat pvc restore latest --pvc datadir-mongodb-0`,
  async run(ctx, values, args) {
    const { restorePvcs } = await import('../sources/kubernetes/pvc.ts');
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const ts = str(values.timestamp);
    if (ts && args.length) throw usageError('give either SNAPSHOT or --timestamp, not both');
    if (ts && !/^\d{8}_\d{6}$/.test(ts))
      throw usageError(`--timestamp "${ts}" is not YYYYMMDD_HHMMSS`, 'e.g. --timestamp 20241201_120000');
    const repo = await openRepository(ctx, { lock: 'shared' });
    let snapshot: Snapshot;
    if (ts) {
      // The label timestamp on the VolumeSnapshots, or the record's own timestamp.
      const all = await repo.listSnapshots({ type: 'pvc-snapshots' });
      const m = all.filter((s) => s.meta.timestamp === ts || s.timestamp === ts);
      if (m.length === 0)
        throw new LifeboatError('NOT_FOUND', `no pvc-snapshots record for ${ts}`, {
          hint: `latest: ${
            all
              .slice(-3)
              .map((s) => s.meta.timestamp ?? s.timestamp)
              .join(', ') || 'none'
          }`,
        });
      snapshot = m.at(-1)!;
    } else snapshot = await repo.resolveSnapshot(args[0], { type: 'pvc-snapshots' });
    return restorePvcs({
      client: await kubeClient(ctx, values),
      repo,
      snapshot,
      pvcs: list(values.pvc),
      dryRun: values['dry-run'] === true,
      timeoutMs: (int(values.timeout, 'timeout') ?? 600) * 1000,
      pollMs: int(values['poll-ms'], 'poll-ms'),
      signal: ctx.signal,
    });
  },
  human(r, out) {
    for (const w of r.workloads)
      out.line(`workload ${w.namespace}/${w.kind}/${w.name}: replicas ${w.replicas}`);
    for (const p of r.pvcs)
      out.line(
        `${p.result.padEnd(14)} ${p.namespace}/${p.pvc} from ${p.volumeSnapshot} (${p.size})${p.retainedVolume ? `, old volume ${p.retainedVolume} retained` : ''}`,
      );
  },
  effect: 'change',
  layer: 'pvc-snapshots',
  event: (r) => {
    const failed = r.pvcs.filter((p) => p.result === 'failed' || p.result === 'rolled-back').length;
    return {
      snapshot: r.snapshot,
      items: r.pvcs.length,
      ...(failed ? { result: 'failure' as const } : {}),
      details: { pvcs: r.pvcs.length, failed, workloads: r.workloads.length },
    };
  },
};
