import { checkRepository, type CheckReport } from '../core/repository/check.ts';
import { str, type Command } from './command.ts';
import { EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { openRepository } from './repo.ts';

export const checkCommand: Command<CheckReport> = {
  path: ['check'],
  summary: 'verify repository structure; --read-data also decrypts and re-hashes every blob',
  options: {
    'read-data': { type: 'boolean', description: 'read all packs and verify every blob' },
    'read-data-subset': {
      type: 'string',
      arg: 'n/t|p%',
      description: 'read only a subset of packs (e.g. 1/7 or 10%)',
    },
  },
  help: 'Exit code 3 when damage is found; damaged packs are named with the snapshots that need them.',
  async run(ctx, values) {
    const repo = await openRepository(ctx, { lock: 'shared', warnOnDamage: false });
    const subset = str(values['read-data-subset']);
    const bar = ctx.out.progress('read-data', undefined, 'count');
    try {
      return await checkRepository(repo, {
        readData: Boolean(values['read-data']) || Boolean(subset),
        readDataSubset: subset,
        onProgress: (done, total) => bar.update(done, `of ${total} packs`),
      });
    } finally {
      bar.finish();
    }
  },
  exitCode: (r) => (r.ok ? EXIT_OK : EXIT_INTEGRITY),
  human(r, out) {
    for (const w of r.warnings) out.line(`warning: ${w}`);
    for (const e of r.errors) out.line(`error: ${e}`);
    out.line(
      `${r.snapshots} snapshots, ${r.packs} packs${r.packsRead ? `, ${r.packsRead} packs and ${r.blobsRead} blobs read` : ''}`,
    );
    if (r.ok) {
      out.line('no errors were found');
      return;
    }
    const parts = [
      r.damagedIndexFiles.length ? `${r.damagedIndexFiles.length} index file(s)` : '',
      r.damagedPacks.length ? `${r.damagedPacks.length} pack(s)` : '',
      `${r.damagedSnapshots.length} snapshot(s) affected`,
    ].filter(Boolean);
    out.line(`damage found: ${parts.join(', ')}`);
    for (const n of r.next) out.line(`next: ${n}`);
  },
  effect: 'verify',
  layer: 'repository',
  event: (r) => ({
    ...(r.ok && r.warnings.length ? { result: 'warning' as const } : {}),
    items: r.snapshots,
    details: {
      readData: r.packsRead > 0,
      snapshots: r.snapshots,
      packs: r.packs,
      packsRead: r.packsRead,
      blobsRead: r.blobsRead,
      errors: r.errors.length,
      warnings: r.warnings.length,
      damagedPacks: r.damagedPacks.length,
      damagedSnapshots: r.damagedSnapshots.length,
      damagedIndexFiles: r.damagedIndexFiles.length,
    },
  }),
};
