import type { Snapshot } from '../core/repository/model.ts';
import { usageError, type Command } from './command.ts';
import { FILTER_OPTIONS, filterFrom } from './cmd_snapshots.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

type Shown = Omit<Snapshot, 'items'> & {
  items: {
    name: string;
    kind: string;
    size: number;
    sha256: string;
    records: number;
    meta: Record<string, unknown>;
  }[];
};

export const showCommand: Command<Shown> = {
  path: ['show'],
  summary: 'show one snapshot: metadata and items',
  usage: 'SNAPSHOT',
  options: { type: FILTER_OPTIONS.type },
  help: 'SNAPSHOT is an id, a unique id prefix, `latest`, or a YYYYMMDD_HHMMSS timestamp.',
  async run(ctx, values, args) {
    if (args.length !== 1) throw usageError('give exactly one SNAPSHOT');
    const repo = await openRepository(ctx);
    const s = await repo.resolveSnapshot(args[0], filterFrom(values));
    return {
      ...s,
      items: s.items.map(({ name, kind, size, sha256, records, meta }) => ({
        name,
        kind,
        size,
        sha256,
        records,
        meta,
      })),
    };
  },
  human(s, out) {
    out.line(`snapshot ${s.id}`);
    out.line(`  type ${s.type}, taken ${s.time} (${s.timestamp}) on ${s.host}`);
    if (s.tags.length) out.line(`  tags ${s.tags.join(', ')}`);
    if (s.paths.length) out.line(`  paths ${s.paths.join(', ')}`);
    out.line(
      `  ${s.items.length} items, ${formatBytes(s.summary.bytesProcessed)} processed, ${formatBytes(s.summary.bytesAdded)} added`,
    );
    out.table(
      s.items.map((i) => [i.kind, formatBytes(i.size), i.records ? String(i.records) : '', i.name]),
      ['KIND', 'SIZE', 'RECORDS', 'NAME'],
    );
  },
};
