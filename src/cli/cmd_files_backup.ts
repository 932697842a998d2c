import { startBackup } from '../core/repository/backup.ts';
import { list, str, usageError, type Command, type OptionValues } from './command.ts';
import { followBackup } from './backup-progress.ts';
import { EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
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
  /** Every byte of every file in the snapshot, read or taken unchanged from the parent. */
  bytesProcessed: number;
  /** Bytes actually read from disk this time. */
  bytesRead: number;
  bytesAdded: number;
  durationMs: number;
  /** The snapshot unchanged files were taken from, if any. */
  parent?: string;
  files: number;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  bytesUnchanged: number;
  /** Some files or directories could not be read: they are missing from the snapshot (exit code 3). */
  incomplete: boolean;
  errors: number;
  retention?: ForgetResult;
}

/** Repeatable string option, taken whole: a pattern may contain a comma. */
function strings(v: OptionValues[string]): string[] {
  if (v === undefined || typeof v === 'boolean') return [];
  return Array.isArray(v) ? v : [v];
}

export const filesBackupCommand: Command<BackupResult> = {
  path: ['files', 'backup'],
  summary: 'back up files and directories (Terraform state, exports, ad-hoc data)',
  usage: 'PATH...',
  options: {
    tag: { type: 'string', multiple: true, arg: 'TAG', description: 'tag the snapshot (repeatable)' },
    type: {
      type: 'string',
      arg: 'TYPE',
      default: 'files',
      description: 'snapshot type: files | terraform (raw files; `terraform backup` is the recommended way)',
    },
    exclude: {
      type: 'string',
      multiple: true,
      arg: 'PATTERN',
      description:
        'leave out paths matching PATTERN, e.g. `*.log`, `node_modules`, `/srv/app/cache` (repeatable)',
    },
    'exclude-file': {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      description: 'read exclude patterns from FILE, one per line, `#` for comments (repeatable)',
    },
    'one-file-system': {
      type: 'boolean',
      short: 'x',
      description: 'do not cross into other filesystems (mount points are kept as empty directories)',
    },
    parent: {
      type: 'string',
      arg: 'SNAPSHOT',
      description:
        'take unchanged files from this snapshot (default: the newest with the same type, host and paths)',
    },
    force: {
      type: 'boolean',
      description: 'read every file again, even if unchanged since the parent snapshot',
    },
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
  help: [
    'A file whose size, modification time, change time and inode match the parent snapshot is not read',
    'again: its data is taken from the parent. A file or directory that cannot be read (permission denied,',
    'vanished, I/O error) is a warning: the backup goes on without it, the snapshot is marked incomplete',
    'and the exit code is 3. Patterns: `*`, `?`, `[...]` within one path component, `**` for any number of',
    'directories; a pattern starting with `/` matches from the root, any other at any depth. An excluded',
    'directory is not read at all. See docs/files.md.',
  ].join('\n'),
  async run(ctx, values, paths) {
    const { backupFiles, backupStdin } = await import('../sources/files/files.ts');
    const { excluder, readExcludeFile } = await import('../sources/files/exclude.ts');
    const fromStdin = Boolean(values.stdin);
    if (paths.length === 0 && !fromStdin)
      throw usageError('no PATH given', 'lifeboat files backup PATH... (or --stdin)');
    if (paths.length > 0 && fromStdin) throw usageError('give PATHs or --stdin, not both');
    const type = str(values.type);
    if (type !== 'files' && type !== 'terraform') throw usageError('--type must be files or terraform');
    const parent = str(values.parent);
    const force = Boolean(values.force);
    if (parent && force) throw usageError('give --parent or --force, not both');
    const exclude = strings(values.exclude);
    for (const f of strings(values['exclude-file'])) exclude.push(...(await readExcludeFile(f)));
    excluder(exclude); // a malformed pattern fails here, before the repository is opened
    const repo = await openRepository(ctx);
    const session = await startBackup(repo, 'files backup');
    ctx.log.info('backup started: shared lock held', { repository: repo.id });
    const stop = followBackup(ctx.out, session, 'backup');
    try {
      const r = fromStdin
        ? undefined
        : await backupFiles(repo, {
            paths,
            tags: list(values.tag),
            type,
            session,
            exclude,
            oneFileSystem: Boolean(values['one-file-system']),
            parent,
            force,
            onWarning: (m) => {
              // Off the progress bar's line first, or the warning is drawn over (it is on stderr too).
              if (process.stderr.isTTY && !ctx.globals.json && !ctx.globals.quiet)
                process.stderr.write('\r\x1b[2K');
              ctx.warn(m);
            },
          });
      const snap =
        r?.snapshot ??
        (await backupStdin(session, { name: str(values['stdin-filename'])!, tags: list(values.tag), type }));
      stop();
      const retention = await retentionAfterBackup(repo, snap, values);
      const bytesUnchanged = r?.bytesUnchanged ?? 0;
      return {
        id: snap.id,
        timestamp: snap.timestamp,
        type: snap.type,
        items: snap.items.length,
        bytesProcessed: snap.summary.bytesProcessed,
        bytesRead: snap.summary.bytesProcessed - bytesUnchanged,
        bytesAdded: snap.summary.bytesAdded,
        durationMs: snap.summary.durationMs,
        parent: r?.parent,
        files: r?.files ?? 1,
        filesNew: r?.filesNew ?? 1,
        filesChanged: r?.filesChanged ?? 0,
        filesUnchanged: r?.filesUnchanged ?? 0,
        bytesUnchanged,
        incomplete: Boolean(r?.errors),
        errors: r?.errors ?? 0,
        retention,
      };
    } finally {
      stop();
    }
  },
  exitCode: (r) => (r.incomplete ? EXIT_INTEGRITY : EXIT_OK),
  human(r, out) {
    out.line(
      `snapshot ${r.id.slice(0, 8)} (${r.timestamp}) saved: ${r.items} items, ${formatBytes(r.bytesProcessed)} processed, ${formatBytes(r.bytesAdded)} added, ${formatDuration(r.durationMs)}`,
    );
    out.line(
      `files: ${r.filesNew} new, ${r.filesChanged} changed, ${r.filesUnchanged} unchanged` +
        (r.parent
          ? ` (${formatBytes(r.bytesUnchanged)} not read again, taken from ${r.parent.slice(0, 8)})`
          : ''),
    );
    if (r.incomplete)
      out.line(
        `incomplete: ${r.errors} path(s) could not be read and are missing from this snapshot (see the warnings)`,
      );
    printRetention(out, r.retention);
  },
  effect: 'change',
  layer: 'files',
  event: (r) => ({
    layer: r.type,
    snapshot: r.id,
    bytesProcessed: r.bytesProcessed,
    bytesAdded: r.bytesAdded,
    items: r.items,
    ...(r.incomplete ? { result: 'partial' as const } : {}),
    details: {
      files: r.files,
      filesNew: r.filesNew,
      filesChanged: r.filesChanged,
      filesUnchanged: r.filesUnchanged,
      errors: r.errors,
      retentionRemoved: r.retention?.removed ?? 0,
    },
  }),
};
