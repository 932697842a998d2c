import { startBackup } from '../core/repository/backup.ts';
import type { CollectionSummary } from '../sources/mongodb/backup.ts';
import { int, list, usageError, type Command } from './command.ts';
import type { OplogWindow } from '../sources/mongodb/oplog.ts';
import { followBackup } from './backup-progress.ts';
import { formatBytes, formatDuration } from './output.ts';
import { openRepository } from './repo.ts';
import {
  printRetention,
  PRE_RESTORE_RETENTION_OPTIONS,
  retentionAfterBackup,
  retentionOptionsForBackup,
  type ForgetResult,
} from './retention.ts';
import { CONNECTION_OPTIONS, NS_OPTIONS, connectFromOptions, nsFilter } from './mongodb-options.ts';
import { formatPosition } from '../sources/mongodb/position.ts';

export interface MongoBackupResult {
  dryRun: boolean;
  id?: string;
  timestamp?: string;
  collections: CollectionSummary[] | { ns: string; type: string }[];
  totals: { collections: number; documents: number; bytes: number };
  bytesAdded: number;
  durationMs: number;
  /** With --oplog: the captured window (replayed by `restore --oplog-replay`). */
  oplog?: OplogWindow;
  retention?: ForgetResult;
}

export const mongodbBackupCommand: Command<MongoBackupResult> = {
  path: ['mongodb', 'backup'],
  summary: 'back up MongoDB databases (raw BSON, deduplicated, encrypted) into the repository',
  options: {
    ...CONNECTION_OPTIONS,
    ...NS_OPTIONS,
    parallel: { type: 'string', arg: 'N', default: '4', description: 'collections copied at once' },
    'batch-size': { type: 'string', arg: 'N', default: '1000', description: 'documents per cursor batch' },
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
    'include-users': {
      type: 'boolean',
      description: 'also back up users and roles (admin.system.users/roles, with their credential hashes)',
    },
    oplog: {
      type: 'boolean',
      description:
        'also capture the oplog written during the dump (replica sets), for a restore consistent to one point in time',
    },
    'dry-run': { type: 'boolean', description: 'list what would be backed up, read no data' },
    'allow-empty': {
      type: 'boolean',
      description: 'commit a snapshot even when no collection matches (by default that is an error)',
    },
    ...retentionOptionsForBackup(7),
    ...PRE_RESTORE_RETENTION_OPTIONS,
  },
  help: `All databases except admin, local and config are backed up unless --ns-include narrows it.
Examples:
  lifeboat mongodb backup --uri mongodb://backup:PASS@mongo:27017/?authSource=admin
  lifeboat mongodb backup --ns-include 'rocketchat.*' --ns-exclude 'rocketchat.rocketchat_statistics'
  lifeboat mongodb backup --oplog     # replica set: consistent to the end of the dump`,
  async run(ctx, values) {
    const { backupMongo, planBackup } = await import('../sources/mongodb/backup.ts');
    const { warnInterrupted } = await import('../sources/mongodb/journal.ts');
    const started = Date.now();
    if (values.oplog && (list(values['ns-include']).length || list(values['ns-exclude']).length)) {
      throw usageError(
        '--oplog captures changes to every database, so it cannot be combined with --ns-include/--ns-exclude',
        'back up the whole instance with --oplog, or select namespaces without it',
      );
    }
    const { client, uri } = await connectFromOptions(ctx, values);
    try {
      // A half-swapped target is not what anyone means to back up: say so (the backup goes on).
      await warnInterrupted(client, (m) => ctx.out.note(m));
      const planned = await planBackup(client, await nsFilter(values), {
        includeUsers: Boolean(values['include-users']),
      });
      if (values['dry-run']) {
        return {
          dryRun: true,
          collections: planned.map((c) => ({ ns: `${c.db}.${c.collection}`, type: c.type })),
          totals: { collections: planned.length, documents: 0, bytes: 0 },
          bytesAdded: 0,
          durationMs: Date.now() - started,
        };
      }
      const repo = await openRepository(ctx);
      const session = await startBackup(repo, 'mongodb backup');
      // Per collection: how many are done, and the documents copied so far of those in progress.
      const copying = new Map<string, number>();
      let done = 0;
      const stop = followBackup(ctx.out, session, 'mongodb backup', undefined, () => {
        const now = [...copying].map(([ns, n]) => `${ns} ${n} docs`);
        return `${done}/${planned.length} collections${now.length ? ` · ${now.join(', ')}` : ''}`;
      });
      try {
        const { snapshot, collections, oplog } = await backupMongo({
          client,
          uri,
          session,
          collections: planned,
          parallel: int(values.parallel, 'parallel'),
          batchSize: int(values['batch-size'], 'batch-size'),
          tags: list(values.tag),
          oplog: Boolean(values.oplog),
          allowEmpty: Boolean(values['allow-empty']),
          signal: ctx.signal,
          onCollectionProgress: (ns, n) => copying.set(ns, n),
          onCollectionDone: (c) => {
            copying.delete(c.ns);
            done++;
          },
        });
        stop();
        const retention = await retentionAfterBackup(repo, snapshot, values);
        return {
          dryRun: false,
          id: snapshot.id,
          timestamp: snapshot.timestamp,
          collections,
          totals: {
            collections: collections.length,
            documents: collections.reduce((n, c) => n + c.count, 0),
            bytes: collections.reduce((n, c) => n + c.bytes, 0),
          },
          bytesAdded: snapshot.summary.bytesAdded,
          durationMs: Date.now() - started,
          ...(oplog ? { oplog } : {}),
          retention,
        };
      } finally {
        stop();
      }
    } finally {
      await client.close().catch(() => {});
    }
  },
  human(r, out) {
    if (r.dryRun) {
      out.line(`would back up ${r.totals.collections} collection(s):`);
      for (const c of r.collections) out.line(`  ${c.ns} (${c.type})`);
      return;
    }
    out.line(
      `snapshot ${r.id!.slice(0, 8)} (${r.timestamp}) saved: ${r.totals.collections} collections, ${r.totals.documents} documents, ` +
        `${formatBytes(r.totals.bytes)} processed, ${formatBytes(r.bytesAdded)} added, ${formatDuration(r.durationMs)}`,
    );
    if (r.oplog)
      out.line(
        `oplog: ${r.oplog.entries} entries captured` +
          (r.oplog.start && r.oplog.end
            ? ` (${formatPosition(r.oplog.start)} to ${formatPosition(r.oplog.end)})`
            : ''),
      );
    printRetention(out, r.retention);
  },
  effect: 'change',
  layer: 'mongodb',
  event: (r) => ({
    snapshot: r.id,
    bytesProcessed: r.totals.bytes,
    bytesAdded: r.bytesAdded,
    items: r.totals.collections,
    details: {
      collections: r.totals.collections,
      documents: r.totals.documents,
      oplog: Boolean(r.oplog),
      retentionRemoved: r.retention?.removed ?? 0,
    },
  }),
};
