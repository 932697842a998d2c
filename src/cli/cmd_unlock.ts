import { removeLocks } from '../core/repository/lock.ts';
import type { Command } from './command.ts';
import { openRepository } from './repo.ts';

export const unlockCommand: Command<{ removed: number }> = {
  path: ['unlock'],
  summary: 'remove stale locks (of dead processes, or older than 30 min); --remove-all removes every lock',
  options: {
    'remove-all': {
      type: 'boolean',
      description: 'remove all locks, even live ones (only when sure nothing runs)',
    },
  },
  async run(ctx, values) {
    const repo = await openRepository(ctx);
    return { removed: await removeLocks(repo, Boolean(values['remove-all'])) };
  },
  human(r, out) {
    out.line(`removed ${r.removed} lock(s)`);
  },
};
