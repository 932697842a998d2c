/**
 * `mongodb restore --time T` (point-in-time recovery): resolved here into the base backup to restore and
 * the oplog entries to replay after it (pitr.ts), so the restore itself only gains one option.
 */
import type { OptionSpec, OptionValues } from './command.ts';
import { list } from './command.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { Snapshot } from '../core/repository/model.ts';
import type { NamespaceFilter, NamespaceRenamer } from '../sources/mongodb/nsfilter.ts';
import type { PitrReplayStats } from '../sources/mongodb/pitr.ts';
import { formatPosition } from '../sources/mongodb/position.ts';

export const pitrTimeOption: Record<string, OptionSpec> = {
  time: {
    type: 'string',
    arg: 'ISO-TIME',
    description:
      'point-in-time recovery: the newest base backup at or before this time plus the oplog slices of `mongodb pitr run` up to it',
  },
};

export interface PointInTimeReport {
  time: string;
  replicaSet: string;
  base: string;
  slices: number;
  entries: number;
  /** The first entry after the time (not replayed), if the slices go beyond it. */
  stoppedBefore: string | null;
  last: string | null;
}

export async function resolveTimeOption(
  repo: Repository,
  text: string,
  values: OptionValues,
  filter: NamespaceFilter,
  renamer: NamespaceRenamer,
): Promise<{ base: Snapshot; entries: () => AsyncIterable<Uint8Array>; report: () => PointInTimeReport }> {
  // The PITR sources load only for a restore that asks for a time (lazy-imports.test.ts).
  const { parsePitrTime, pointInTimeEntries, resolvePointInTime } =
    await import('../sources/mongodb/pitr.ts');
  const time = parsePitrTime(text);
  const pit = await resolvePointInTime(repo, time);
  const base = await repo.loadSnapshot(pit.base.id);
  const selecting = ['ns-include', 'ns-exclude', 'ns-from', 'ns-to'].some((k) => list(values[k]).length > 0);
  const stats: PitrReplayStats = { slices: pit.slices.length, entries: 0 };
  return {
    base,
    entries: pointInTimeEntries(repo, pit, base, selecting ? { filter, renamer } : undefined, stats),
    report: () => ({
      time: new Date(time).toISOString(),
      replicaSet: pit.replicaSet,
      base: base.id,
      slices: stats.slices,
      entries: stats.entries,
      stoppedBefore: stats.stoppedBefore ? formatPosition(stats.stoppedBefore) : null,
      last: stats.last ? formatPosition(stats.last) : null,
    }),
  };
}
