import type { Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

interface UnlockResult {
  removed: number;
  /** Temp files of interrupted writes: reported here, removed by prune once no lock can own them. */
  leftovers: { count: number; bytes: number };
}

export const unlockCommand: Command<UnlockResult> = {
  path: ['unlock'],
  summary: 'remove stale locks (of dead processes, or older than 30 min); --remove-all removes every lock',
  options: {
    'remove-all': {
      type: 'boolean',
      flagOnly: true,
      description: 'remove all locks, even live ones (only when sure nothing runs)',
    },
  },
  async run(ctx, values) {
    const repo = await openRepository(ctx);
    const removed = await repo.removeLocks(Boolean(values['remove-all']));
    const leftovers = { count: 0, bytes: 0 };
    for await (const l of repo.backend.listLeftovers?.() ?? []) {
      leftovers.count++;
      leftovers.bytes += l.size;
    }
    return { removed, leftovers };
  },
  human(r, out) {
    out.line(`removed ${r.removed} lock(s)`);
    if (r.leftovers.count)
      out.line(
        `${r.leftovers.count} leftover(s) of interrupted writes (temp files, unfinished uploads; ${formatBytes(r.leftovers.bytes)}) remain; \`lifeboat prune\` removes them`,
      );
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({ items: r.removed, details: { removed: r.removed, leftovers: r.leftovers.count } }),
};
