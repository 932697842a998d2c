/**
 * Files and directories (Terraform state, exports, ad-hoc data). Items are named `<top>/<relative path>`
 * where `<top>` is the base name of each path given. Restores write every file to a temporary name and
 * rename it into place only after its SHA-256 matched, so a damaged snapshot never leaves corrupt output
 * that looks like a good file.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, rename, rm, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { LifeboatError, fromSystemError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository/repository.ts';
import type { BackupSession, Item, Snapshot, SnapshotType } from '../../core/repository/model.ts';
import { startBackup } from '../../core/repository/backup.ts';

export interface FilesBackupOptions {
  paths: string[];
  tags?: string[];
  type?: Extract<SnapshotType, 'files' | 'terraform'>;
  onItem?: (name: string) => void;
  session?: BackupSession;
}

interface FileMeta {
  mode: number;
  mtimeMs: number;
  target?: string;
}

async function* walk(
  abs: string,
  rel: string,
): AsyncGenerator<{
  abs: string;
  rel: string;
  kind: 'file' | 'dir' | 'symlink';
  meta: FileMeta;
  size: number;
}> {
  let st;
  try {
    st = await lstat(abs);
  } catch (e) {
    throw fromSystemError(e, `reading ${abs}`);
  }
  const meta: FileMeta = { mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
  if (st.isSymbolicLink()) {
    yield { abs, rel, kind: 'symlink', meta: { ...meta, target: await readlink(abs) }, size: 0 };
  } else if (st.isDirectory()) {
    yield { abs, rel, kind: 'dir', meta, size: 0 };
    const names = (await readdir(abs)).sort();
    for (const n of names) yield* walk(path.join(abs, n), `${rel}/${n}`);
  } else if (st.isFile()) {
    yield { abs, rel, kind: 'file', meta, size: st.size };
  }
  // Sockets, FIFOs and devices are skipped: they hold no data to restore.
}

export async function backupFiles(repo: Repository, options: FilesBackupOptions): Promise<Snapshot> {
  if (options.paths.length === 0)
    throw new LifeboatError('USAGE', 'no paths given', { hint: 'lifeboat files backup PATH...' });
  const tops = new Set<string>();
  for (const p of options.paths) {
    const top = path.basename(path.resolve(p));
    if (tops.has(top))
      throw new LifeboatError('USAGE', `two paths share the name "${top}"`, {
        hint: 'back them up in separate snapshots',
      });
    tops.add(top);
  }
  const session = options.session ?? (await startBackup(repo, 'files backup'));
  const items: Item[] = [];
  try {
    for (const p of options.paths) {
      const abs = path.resolve(p);
      for await (const entry of walk(abs, path.basename(abs))) {
        options.onItem?.(entry.rel);
        if (entry.kind === 'file') {
          const stream = createReadStream(entry.abs, { highWaterMark: 1024 * 1024 });
          try {
            items.push(
              await session.addItem(
                { name: entry.rel, kind: 'file', meta: { ...entry.meta } },
                stream,
                'file',
              ),
            );
          } catch (e) {
            throw fromSystemError(e, `reading ${entry.abs}`);
          }
        } else {
          items.push(
            await session.addItem(
              { name: entry.rel, kind: entry.kind, meta: { ...entry.meta } },
              new Uint8Array(0),
              'file',
            ),
          );
        }
      }
    }
    return await session.commit({
      type: options.type ?? 'files',
      tags: options.tags,
      paths: options.paths.map((p) => path.resolve(p)),
      items,
    });
  } catch (e) {
    await session.abort();
    throw e;
  }
}

/** Backs up a stream (standard input) as a single file item. */
export async function backupStdin(
  session: BackupSession,
  options: {
    name: string;
    tags?: string[];
    type?: Extract<SnapshotType, 'files' | 'terraform'>;
    input?: AsyncIterable<Uint8Array>;
  },
): Promise<Snapshot> {
  if (!/^[^/][^\0]*$/.test(options.name) || options.name.split('/').includes('..')) {
    throw new LifeboatError(
      'USAGE',
      `--stdin-filename "${options.name}" must be a relative path without ".."`,
    );
  }
  try {
    const item = await session.addItem(
      { name: options.name, kind: 'file', meta: { mode: 0o600, mtimeMs: Date.now() } },
      options.input ?? process.stdin,
      'file',
    );
    return await session.commit({
      type: options.type ?? 'files',
      tags: options.tags,
      paths: [`stdin:${options.name}`],
      items: [item],
    });
  } catch (e) {
    await session.abort();
    throw e;
  }
}

export interface FilesRestoreOptions {
  target: string;
  /** Only items whose name equals or lies under one of these. */
  include?: string[];
  onItem?: (name: string, bytes: number) => void;
}

export interface FilesRestoreResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

function safeJoin(root: string, name: string): string {
  const p = path.resolve(root, name);
  if (p !== root && !p.startsWith(root + path.sep)) {
    throw new LifeboatError('INTEGRITY', `snapshot item "${name}" would escape the target directory`, {
      hint: 'refusing to restore it',
    });
  }
  return p;
}

export async function restoreFiles(
  repo: Repository,
  snapshot: Snapshot,
  options: FilesRestoreOptions,
): Promise<FilesRestoreResult> {
  const root = path.resolve(options.target);
  const wanted = (name: string) =>
    !options.include?.length || options.include.some((i) => name === i || name.startsWith(i + '/'));
  const result: FilesRestoreResult = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const dirs: { p: string; meta: FileMeta }[] = [];
  try {
    await mkdir(root, { recursive: true });
    for (const item of snapshot.items) {
      if (!wanted(item.name)) continue;
      const dest = safeJoin(root, item.name);
      const meta = item.meta as unknown as FileMeta;
      await mkdir(path.dirname(dest), { recursive: true });
      if (item.kind === 'dir') {
        await mkdir(dest, { recursive: true });
        dirs.push({ p: dest, meta });
        result.dirs++;
      } else if (item.kind === 'symlink') {
        await rm(dest, { force: true });
        await symlink(String(meta.target), dest);
        result.symlinks++;
      } else {
        const tmp = `${dest}.lifeboat-partial`;
        try {
          await pipeline(Readable.from(repo.readItem(item)), createWriteStream(tmp, { mode: 0o600 }));
        } catch (e) {
          await rm(tmp, { force: true });
          throw e;
        }
        await chmod(tmp, meta.mode ?? 0o644);
        await utimes(tmp, new Date(meta.mtimeMs), new Date(meta.mtimeMs));
        await rename(tmp, dest);
        result.files++;
        result.bytes += item.size;
        options.onItem?.(item.name, item.size);
      }
    }
    // Directory modes and times last: restoring children would change them again.
    for (const d of dirs.reverse()) {
      await chmod(d.p, d.meta.mode ?? 0o755);
      await utimes(d.p, new Date(d.meta.mtimeMs), new Date(d.meta.mtimeMs));
    }
  } catch (e) {
    const err = fromSystemError(e, `restoring into ${root}`);
    if (err.code === 'NO_SPACE') {
      // The backup-side hint ("nothing was committed") would be false here: files are already written.
      throw new LifeboatError(
        'NO_SPACE',
        `restoring into ${root}: no space left on device after ${result.files} file(s) (${result.bytes} bytes)`,
        {
          hint: 'the files restored so far are complete and the one being written was removed; free space or choose another --target, then run the restore again (it rewrites every file)',
          cause: e,
        },
      );
    }
    throw err;
  }
  return result;
}
