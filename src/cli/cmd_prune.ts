import { prune } from '../core/repository/prune.ts';
import { int, usageError, type Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

interface PruneOutput {
  dryRun: boolean;
  packs: number;
  totalBytes: number;
  usedBytes: number;
  removePacks: number;
  repackPacks: number;
  unindexedPacks: number;
  leftovers: number;
  reclaimBytes: number;
}

export const pruneCommand: Command<PruneOutput> = {
  path: ['prune'],
  summary: 'delete data no snapshot references (repacking partly used packs); takes an exclusive lock',
  options: {
    'max-unused': {
      type: 'string',
      arg: 'PERCENT',
      default: '5',
      description: 'tolerated unused space in partly used packs',
    },
    'dry-run': { type: 'boolean', short: 'n', description: 'only print what would be done' },
  },
  async run(ctx, values) {
    const max = int(values['max-unused'], 'max-unused')!;
    if (max < 0 || max > 100) throw usageError('--max-unused must be between 0 and 100');
    const repo = await openRepository(ctx, { lock: 'exclusive' });
    const dryRun = Boolean(values['dry-run']);
    const { plan } = await prune(repo, { maxUnusedPercent: max, dryRun, onProgress: (m) => ctx.log.info(m) });
    return {
      dryRun,
      packs: plan.stats.packs,
      totalBytes: plan.stats.totalBytes,
      usedBytes: plan.stats.usedBytes,
      removePacks: plan.remove.length,
      repackPacks: plan.repack.length,
      unindexedPacks: plan.unindexed.length,
      leftovers: plan.leftovers.length,
      reclaimBytes: plan.stats.reclaimBytes,
    };
  },
  human(r, out) {
    out.line(`${r.packs} packs, ${formatBytes(r.totalBytes)} stored, ${formatBytes(r.usedBytes)} in use`);
    out.line(
      `${r.dryRun ? 'would remove' : 'removed'} ${r.removePacks} unused and ${r.unindexedPacks} unindexed pack(s)${r.leftovers ? ` and ${r.leftovers} leftover(s) of interrupted writes` : ''}, ${r.dryRun ? 'would repack' : 'repacked'} ${r.repackPacks}; ${formatBytes(r.reclaimBytes)} ${r.dryRun ? 'reclaimable' : 'reclaimed'}`,
    );
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({
    details: {
      packs: r.packs,
      removedPacks: r.removePacks,
      repackedPacks: r.repackPacks,
      unindexedPacks: r.unindexedPacks,
      leftovers: r.leftovers,
      reclaimedBytes: r.reclaimBytes,
      storedBytes: r.totalBytes,
    },
  }),
};
