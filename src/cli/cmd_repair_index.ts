import { repairIndex, type RepairIndexResult } from '../core/repository/repair.ts';
import type { Command } from './command.ts';
import { EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { openRepository } from './repo.ts';

export const repairIndexCommand: Command<RepairIndexResult> = {
  path: ['repair', 'index'],
  summary: 'rebuild the index from the pack files (after a damaged or deleted index file)',
  options: {
    'read-all-packs': {
      type: 'boolean',
      description: 'read the header of every pack, not only of those no intact index lists',
    },
  },
  help: `Takes an exclusive lock. New index files are written before the old ones are removed, so an
interrupted repair leaves a usable repository; run it again to finish. Exit code 3 when some pack's
header cannot be read: those packs stay unindexed — run \`lifeboat repair snapshots\` next.`,
  async run(ctx, values) {
    const repo = await openRepository(ctx, { lock: 'exclusive', warnOnDamage: false });
    const bar = ctx.out.progress('repair index', undefined, 'count');
    try {
      return await repairIndex(repo, {
        readAllPacks: Boolean(values['read-all-packs']),
        onProgress: (done, total) => bar.update(done, `of ${total} packs`),
      });
    } finally {
      bar.finish();
    }
  },
  exitCode: (r) => (r.damagedPacks.length ? EXIT_INTEGRITY : EXIT_OK),
  human(r, out) {
    for (const d of r.damagedPacks) out.line(`damaged: pack ${d.pack}: ${d.reason} (left out of the index)`);
    out.line(
      `index rebuilt: ${r.packs} pack(s) indexed (${r.headersRead} header(s) read), ${r.writtenIndexFiles} index file(s) written, ${r.removedIndexFiles} old one(s) removed`,
    );
    if (r.damagedPacks.length)
      out.line('next: lifeboat repair snapshots (lists the snapshots that needed the damaged packs)');
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({
    ...(r.damagedPacks.length ? { result: 'partial' as const } : {}),
    details: {
      packs: r.packs,
      damagedPacks: r.damagedPacks.length,
      writtenIndexFiles: r.writtenIndexFiles,
      removedIndexFiles: r.removedIndexFiles,
    },
  }),
};
