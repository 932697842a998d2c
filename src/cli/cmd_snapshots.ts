import {
  SNAPSHOT_PURPOSES,
  SNAPSHOT_TYPES,
  type Snapshot,
  type SnapshotPurpose,
  type SnapshotFilter,
  type SnapshotType,
} from '../core/repository/model.ts';
import { list, str, usageError, type Command, type OptionValues } from './command.ts';
import { formatBytes } from './output.ts';
import { snapshotPurpose } from '../core/repository/repository.ts';
import { openRepository } from './repo.ts';

export interface SnapshotSummaryRow {
  id: string;
  shortId: string;
  type: string;
  /** backup, pre-restore, import or drill. */
  purpose: string;
  timestamp: string;
  time: string;
  host: string;
  tags: string[];
  paths: string[];
  items: number;
  size: number;
  bytesAdded: number;
  /** A files backup that could not read everything (see `show` for which paths). */
  incomplete: boolean;
}

/** `defaultPurpose`: what to list without --purpose (`snapshots` lists all; `forget` only backups). */
export function filterFrom(
  values: OptionValues,
  defaultPurpose: SnapshotFilter['purpose'] = 'backup',
): SnapshotFilter {
  const type = str(values.type);
  if (type && !SNAPSHOT_TYPES.includes(type as SnapshotType))
    throw usageError(`--type must be one of ${SNAPSHOT_TYPES.join(', ')}`);
  const purpose = str(values.purpose);
  if (purpose && purpose !== 'any' && !SNAPSHOT_PURPOSES.includes(purpose as SnapshotPurpose))
    throw usageError(`--purpose must be one of ${SNAPSHOT_PURPOSES.join(', ')} or any`);
  return {
    type: type as SnapshotType | undefined,
    tags: list(values.tag),
    host: str(values.host),
    purpose: (purpose as SnapshotFilter['purpose']) ?? defaultPurpose,
  };
}

export const FILTER_OPTIONS = {
  type: { type: 'string', arg: 'TYPE', description: `only this type: ${SNAPSHOT_TYPES.join(', ')}` },
  tag: {
    type: 'string',
    multiple: true,
    arg: 'TAG',
    description: 'only snapshots with this tag (repeatable)',
  },
  host: { type: 'string', arg: 'HOST', description: 'only snapshots taken on this host' },
  purpose: {
    type: 'string',
    arg: 'PURPOSE',
    description: `only this purpose: ${SNAPSHOT_PURPOSES.join(', ')} or any (default: backup; \`snapshots\` lists all)`,
  },
} as const;

export function summarize(s: Snapshot): SnapshotSummaryRow {
  return {
    id: s.id,
    shortId: s.id.slice(0, 8),
    type: s.type,
    purpose: snapshotPurpose(s),
    timestamp: s.timestamp,
    time: s.time,
    host: s.host,
    tags: s.tags,
    paths: s.paths,
    items: s.items.length,
    size: s.items.reduce((n, i) => n + i.size, 0),
    bytesAdded: s.summary.bytesAdded,
    incomplete: s.meta?.incomplete === true,
  };
}

export const snapshotsCommand: Command<SnapshotSummaryRow[]> = {
  path: ['snapshots'],
  summary: 'list snapshots of every layer (mongodb, pvc-snapshots, cluster-state, files, …)',
  options: { ...FILTER_OPTIONS },
  async run(ctx, values) {
    const repo = await openRepository(ctx);
    return (await repo.listSnapshots(filterFrom(values, 'any'))).map(summarize);
  },
  human(rows, out) {
    if (rows.length === 0) {
      out.line('no snapshots');
      return;
    }
    out.table(
      rows.map((r) => [
        r.shortId,
        r.timestamp,
        r.type,
        r.purpose,
        r.host,
        String(r.items),
        formatBytes(r.size),
        [...r.tags, ...(r.incomplete ? ['(incomplete)'] : [])].join(','),
      ]),
      ['ID', 'TIMESTAMP', 'TYPE', 'PURPOSE', 'HOST', 'ITEMS', 'SIZE', 'TAGS'],
    );
  },
};
