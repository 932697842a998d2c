import { repairSnapshots, type RepairSnapshotsResult } from '../core/repository/repair.ts';
import type { Command } from './command.ts';
import { EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { openRepository } from './repo.ts';

export const repairSnapshotsCommand: Command<RepairSnapshotsResult & { dryRun: boolean }> = {
  path: ['repair', 'snapshots'],
  summary: 'list snapshots whose data is gone or damaged; --forget removes them so the rest stays usable',
  options: {
    forget: { type: 'boolean', description: 'remove the broken snapshots (takes an exclusive lock)' },
    'read-data': {
      type: 'boolean',
      description: 'read every pack too, to find damaged (not only missing) data',
    },
  },
  help: `Run \`lifeboat repair index\` first when \`check\` reports a damaged index file. Without --forget nothing
is changed and the exit code is 3 when broken snapshots exist. Restoring a damaged object from a copy of
the repository, when you have one, saves the snapshot instead of forgetting it.`,
  async run(ctx, values) {
    const forget = Boolean(values.forget);
    const repo = await openRepository(ctx, { lock: forget ? 'exclusive' : 'shared', warnOnDamage: false });
    const bar = ctx.out.progress('read-data', undefined, 'count');
    try {
      const r = await repairSnapshots(repo, {
        forget,
        readData: Boolean(values['read-data']),
        onProgress: (done, total) => bar.update(done, `of ${total} packs`),
      });
      return { ...r, dryRun: !forget };
    } finally {
      bar.finish();
    }
  },
  exitCode: (r) => (r.broken.length > r.forgotten ? EXIT_INTEGRITY : EXIT_OK),
  human(r, out) {
    for (const b of r.broken)
      out.line(
        `${r.dryRun ? 'broken' : 'forgot'}: ${b.id.slice(0, 8)} ${b.type ?? ''} ${b.timestamp ?? ''} — ${b.problem}`.replace(
          /\s+/g,
          ' ',
        ),
      );
    if (r.broken.length === 0) out.line(`all ${r.snapshots} snapshot(s) are intact`);
    else if (r.dryRun)
      out.line(
        `${r.broken.length} broken snapshot(s); run with --forget to remove them, then \`lifeboat prune\``,
      );
    else out.line(`${r.forgotten} broken snapshot(s) removed; run \`lifeboat prune\` to reclaim their space`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({
    items: r.snapshots,
    details: { snapshots: r.snapshots, broken: r.broken.length, forgotten: r.forgotten, forget: !r.dryRun },
  }),
};
