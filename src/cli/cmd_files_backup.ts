import { startBackup } from '../core/repository/backup.ts';
import { backupFiles, backupStdin } from '../sources/files/files.ts';
import { list, str, usageError, type Command } from './command.ts';
import { followBackup } from './backup-progress.ts';
import { formatBytes, formatDuration } from './output.ts';
import { openRepository } from './repo.ts';
import {
  printRetention,
  retentionAfterBackup,
  retentionOptionsForBackup,
  type ForgetResult,
} from './retention.ts';

export interface BackupResult {
  id: string;
  timestamp: string;
  type: string;
  items: number;
  bytesProcessed: number;
  bytesAdded: number;
  durationMs: number;
  retention?: ForgetResult;
}

export const filesBackupCommand: Command<BackupResult> = {
  path: ['files', 'backup'],
  summary: 'back up files and directories (Terraform state, exports, ad-hoc data)',
  usage: 'PATH...',
  options: {
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
    type: { type: 'string', arg: 'TYPE', default: 'files', description: 'snapshot type: files | terraform' },
    stdin: {
      type: 'boolean',
      description: 'back up standard input as one file (e.g. `pg_dump | lifeboat files backup --stdin`)',
    },
    'stdin-filename': {
      type: 'string',
      arg: 'NAME',
      default: 'stdin',
      description: 'name of the file read from standard input',
    },
    ...retentionOptionsForBackup(),
  },
  async run(ctx, values, paths) {
    const fromStdin = Boolean(values.stdin);
    if (paths.length === 0 && !fromStdin)
      throw usageError('no PATH given', 'lifeboat files backup PATH... (or --stdin)');
    if (paths.length > 0 && fromStdin) throw usageError('give PATHs or --stdin, not both');
    const type = str(values.type);
    if (type !== 'files' && type !== 'terraform') throw usageError('--type must be files or terraform');
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'files backup');
    ctx.log.info('backup started: shared lock held', { repository: repo.id });
    const stop = followBackup(ctx.out, session, 'backup');
    try {
      const snap = fromStdin
        ? await backupStdin(session, { name: str(values['stdin-filename'])!, tags: list(values.tag), type })
        : await backupFiles(repo, { paths, tags: list(values.tag), type, session });
      stop();
      const retention = await retentionAfterBackup(repo, snap, values);
      return {
        id: snap.id,
        timestamp: snap.timestamp,
        type: snap.type,
        items: snap.items.length,
        bytesProcessed: snap.summary.bytesProcessed,
        bytesAdded: snap.summary.bytesAdded,
        durationMs: snap.summary.durationMs,
        retention,
      };
    } finally {
      stop();
    }
  },
  human(r, out) {
    out.line(
      `snapshot ${r.id.slice(0, 8)} (${r.timestamp}) saved: ${r.items} items, ${formatBytes(r.bytesProcessed)} processed, ${formatBytes(r.bytesAdded)} added, ${formatDuration(r.durationMs)}`,
    );
    printRetention(out, r.retention);
  },
};
