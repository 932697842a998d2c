import type { ExportedNamespace } from '../sources/mongodb/transfer.ts';
import { str, usageError, type Command } from './command.ts';
import { openRepository } from './repo.ts';
import { NS_OPTIONS, nsFilter } from './mongodb-options.ts';

export interface ExportResult {
  snapshot: string;
  out: string;
  format: 'directory' | 'archive';
  gzip: boolean;
  namespaces: ExportedNamespace[];
}

export const mongodbExportCommand: Command<ExportResult> = {
  path: ['mongodb', 'export'],
  summary: 'write a MongoDB snapshot as a mongodump directory or archive (mongorestore reads both)',
  usage: 'SNAPSHOT (--out DIR | --archive FILE) [--gzip]',
  options: {
    out: {
      type: 'string',
      arg: 'DIR',
      description: 'write a dump directory (db/coll.bson + coll.metadata.json)',
    },
    archive: { type: 'string', arg: 'FILE', description: 'write a mongodump --archive file' },
    gzip: { type: 'boolean', description: 'gzip (like mongodump --gzip)' },
    ...NS_OPTIONS,
  },
  async run(ctx, values, args) {
    const { exportToArchive, exportToDir } = await import('../sources/mongodb/transfer.ts');
    const out = str(values.out);
    const archive = str(values.archive);
    if (!!out === !!archive) throw usageError('give exactly one of --out DIR or --archive FILE');
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const repo = await openRepository(ctx, { lock: 'shared' });
    const snapshot = await repo.resolveSnapshot(args[0] ?? 'latest', { type: 'mongodb' });
    const gzip = Boolean(values.gzip);
    const filter = await nsFilter(values);
    const namespaces = out
      ? await exportToDir(repo, snapshot, out, { gzip, filter })
      : await exportToArchive(repo, snapshot, archive!, { gzip, filter });
    return {
      snapshot: snapshot.id,
      out: (out ?? archive)!,
      format: out ? 'directory' : 'archive',
      gzip,
      namespaces,
    };
  },
  human(r, out) {
    const docs = r.namespaces.reduce((n, x) => n + x.documents, 0);
    out.line(
      `exported ${r.namespaces.length} namespace(s), ${docs} documents from ${r.snapshot.slice(0, 8)} to ${r.format} ${r.out}${r.gzip ? ' (gzip)' : ''}`,
    );
  },
  effect: 'change',
  layer: 'mongodb',
  event: (r) => ({
    snapshot: r.snapshot,
    items: r.namespaces.length,
    bytesProcessed: r.namespaces.reduce((n, x) => n + x.bytes, 0),
    details: {
      format: r.format,
      gzip: r.gzip,
      documents: r.namespaces.reduce((n, x) => n + x.documents, 0),
    },
  }),
};
