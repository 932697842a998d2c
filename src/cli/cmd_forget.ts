import { prune } from '../core/repository/prune.ts';
import type { Command } from './command.ts';
import { FILTER_OPTIONS, filterFrom } from './cmd_snapshots.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';
import { RETENTION_OPTIONS, forgetSnapshots, policyFrom, type ForgetResult } from './retention.ts';

export const forgetCommand: Command<ForgetResult & { reclaimedBytes?: number }> = {
  path: ['forget'],
  summary: 'remove snapshots by retention policy (per type, host and paths), or the snapshots named',
  usage: '[SNAPSHOT...]',
  options: {
    ...RETENTION_OPTIONS,
    ...FILTER_OPTIONS,
    'dry-run': { type: 'boolean', short: 'n', description: 'only print what would be removed' },
    prune: { type: 'boolean', description: 'prune unreferenced data afterwards' },
  },
  help: `Semantics follow restic: rules are OR-ed; keep-within counts back from the newest snapshot;
--retention-days N keeps snapshots younger than N days from now, and always the newest of each group.`,
  async run(ctx, values, refs) {
    const dryRun = Boolean(values['dry-run']);
    // Flags first: a typo in a policy must fail before anything is locked or read.
    const policy = refs.length ? undefined : policyFrom(values);
    const filter = filterFrom(values);
    const repo = await openRepository(ctx, { lock: dryRun ? 'shared' : 'exclusive' });
    if (refs.length) {
      // Named snapshots (e.g. ones `check` reported damaged — those can be named by id, too): resolve all
      // first, so a typo removes nothing.
      const named = [];
      for (const ref of refs) named.push(await repo.resolveRef(ref, filter));
      if (!dryRun) for (const s of named) await repo.removeSnapshot(s.id);
      const result: ForgetResult & { reclaimedBytes?: number } = {
        dryRun,
        removed: dryRun ? 0 : named.length,
        groups: [
          {
            group: 'named',
            keep: [],
            remove: named.map((s) => ({ id: s.id, timestamp: s.snapshot?.timestamp ?? `(damaged)` })),
          },
        ],
      };
      if (values.prune && !dryRun) result.reclaimedBytes = (await prune(repo)).result?.reclaimedBytes;
      return result;
    }
    const result: ForgetResult & { reclaimedBytes?: number } = await forgetSnapshots(
      repo,
      filter,
      policy!,
      dryRun,
    );
    if (values.prune && !dryRun) result.reclaimedBytes = (await prune(repo)).result?.reclaimedBytes;
    return result;
  },
  human(r, out) {
    for (const g of r.groups) {
      out.line(`${g.group}:`);
      for (const k of g.keep)
        out.line(`  keep   ${k.id.slice(0, 8)} ${k.timestamp}  ${k.reasons.join('; ')}`);
      for (const k of g.remove)
        out.line(`  ${r.dryRun ? 'would remove' : 'remove'} ${k.id.slice(0, 8)} ${k.timestamp}`);
    }
    out.line(r.dryRun ? 'dry run: nothing removed' : `${r.removed} snapshot(s) removed`);
    if (r.reclaimedBytes !== undefined) out.line(`prune reclaimed ${formatBytes(r.reclaimedBytes)}`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({
    items: r.removed,
    details: {
      removed: r.removed,
      ...(r.reclaimedBytes !== undefined ? { reclaimedBytes: r.reclaimedBytes } : {}),
    },
  }),
};
