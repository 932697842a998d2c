import path from 'node:path';
import { startBackup } from '../core/repository/backup.ts';
import type { CollectionSummary } from '../sources/mongodb/backup.ts';
import { list, str, usageError, type Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

export interface ImportResult {
  id: string;
  timestamp: string;
  source: string;
  collections: CollectionSummary[];
  bytesAdded: number;
}

export const mongodbImportCommand: Command<ImportResult> = {
  path: ['mongodb', 'import'],
  summary: 'import a mongodump directory or archive into the repository as a mongodb snapshot',
  usage: '(--archive FILE | --dir DIR)',
  options: {
    archive: { type: 'string', arg: 'FILE', description: 'a mongodump --archive file (gzipped or not)' },
    dir: { type: 'string', arg: 'DIR', description: 'a mongodump output directory' },
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
  },
  async run(ctx, values) {
    const { importArchive, importDir, HASH_ALGORITHM } = await import('../sources/mongodb/transfer.ts');
    const { summaryOf } = await import('../sources/mongodb/backup.ts');
    const archive = str(values.archive);
    const dir = str(values.dir);
    if (!!archive === !!dir) throw usageError('give exactly one of --archive FILE or --dir DIR');
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'mongodb import');
    try {
      const source = path.resolve((archive ?? dir)!);
      const r = archive
        ? await importArchive(session, archive)
        : { ...(await importDir(session, dir!)), server: '', tool: '' };
      const snapshot = await session.commit({
        type: 'mongodb',
        // Not a backup of this system: `latest` and retention leave it alone; restore it by id.
        purpose: 'import',
        tags: ['imported', ...list(values.tag)],
        paths: [source],
        meta: { importedFrom: source, server: r.server, tool: r.tool, hashAlgorithm: HASH_ALGORITHM },
        items: r.items,
      });
      return {
        id: snapshot.id,
        timestamp: snapshot.timestamp,
        source,
        collections: r.items.map(summaryOf),
        bytesAdded: snapshot.summary.bytesAdded,
      };
    } catch (e) {
      await session.abort();
      throw e;
    }
  },
  human(r, out) {
    out.line(
      `imported ${r.collections.length} namespace(s) from ${r.source} as snapshot ${r.id.slice(0, 8)} (${r.timestamp}), ${formatBytes(r.bytesAdded)} added`,
    );
  },
  effect: 'change',
  layer: 'mongodb',
  event: (r) => ({
    snapshot: r.id,
    bytesAdded: r.bytesAdded,
    items: r.collections.length,
    details: { collections: r.collections.length },
  }),
};
