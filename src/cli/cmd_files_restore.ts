import type { FilesRestoreResult } from '../sources/files/files.ts';
import { list, str, usageError, type Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

export const filesRestoreCommand: Command<FilesRestoreResult & { snapshot: string; target: string }> = {
  path: ['files', 'restore'],
  summary: 'restore a files/terraform snapshot into a directory',
  usage: 'SNAPSHOT --target DIR',
  options: {
    target: { type: 'string', arg: 'DIR', description: 'directory to restore into (created if missing)' },
    include: {
      type: 'string',
      multiple: true,
      arg: 'PATH',
      description: 'restore only this path (repeatable)',
    },
  },
  help: 'SNAPSHOT is an id, a unique id prefix, `latest`, or a YYYYMMDD_HHMMSS timestamp.',
  async run(ctx, values, args) {
    const { restoreFiles } = await import('../sources/files/files.ts');
    const target = str(values.target);
    if (!target) throw usageError('--target DIR is required');
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const repo = await openRepository(ctx, { lock: 'shared' });
    const ref = args[0] ?? 'latest';
    const all = await repo.resolveSnapshot(ref, ref === 'latest' ? { type: 'files' } : {});
    if (all.type !== 'files' && all.type !== 'terraform') {
      throw usageError(
        `snapshot ${all.id.slice(0, 8)} is a ${all.type} snapshot`,
        `restore it with \`lifeboat ${all.type === 'mongodb' ? 'mongodb restore' : all.type + ' restore'}\``,
      );
    }
    const total = all.items.reduce((n, i) => n + i.size, 0);
    const bar = ctx.out.progress('restore', total);
    let done = 0;
    try {
      const r = await restoreFiles(repo, all, {
        target,
        include: list(values.include),
        onItem: (_n, bytes) => bar.update((done += bytes)),
      });
      return { snapshot: all.id, target, ...r };
    } finally {
      bar.finish();
    }
  },
  human(r, out) {
    out.line(
      `restored ${r.files} files, ${r.dirs} directories, ${r.symlinks} symlinks (${formatBytes(r.bytes)}) from ${r.snapshot.slice(0, 8)} into ${r.target}`,
    );
  },
  effect: 'change',
  layer: 'files',
  event: (r) => ({
    snapshot: r.snapshot,
    bytesProcessed: r.bytes,
    items: r.files,
    details: { files: r.files, dirs: r.dirs, symlinks: r.symlinks },
  }),
};
