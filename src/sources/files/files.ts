/**
 * Files and directories (Terraform state, exports, ad-hoc data). Items are named `<top>/<relative path>`
 * where `<top>` is the base name of each path given. Restores write every file to a temporary name and
 * rename it into place only after its SHA-256 matched, so a damaged snapshot never leaves corrupt output
 * that looks like a good file.
 *
 * Backups follow restic's archiver: a file whose size, mtime, ctime and inode match the parent snapshot's
 * item is taken from it without being read, and a file that cannot be read is a warning (the snapshot is
 * committed, marked incomplete) rather than the end of the backup. docs/files.md has the operator's view.
 */
import { constants, type Stats } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import path from 'node:path';
import { mapLimit } from '../../core/concurrency.ts';
import { LifeboatError, fromSystemError, isLifeboatError } from '../../core/errors.ts';
import { discard } from '../../core/memory.ts';
import { Repository } from '../../core/repository/repository.ts';
import type {
  BackupSession,
  ExpectedItem,
  Item,
  ItemInput,
  ItemWriter,
  Snapshot,
  SnapshotType,
} from '../../core/repository/model.ts';
import { startBackup } from '../../core/repository/backup.ts';
import { excluder } from './exclude.ts';

export interface FilesBackupOptions {
  paths: string[];
  tags?: string[];
  type?: Extract<SnapshotType, 'files' | 'terraform'>;
  onItem?: (name: string) => void;
  session?: BackupSession;
  /** Glob patterns (see exclude.ts); a matching directory is not descended into. */
  exclude?: string[];
  /** Stay on each path's own filesystem; mount points below it are kept as empty directories. */
  oneFileSystem?: boolean;
  /** Snapshot (ref) to take unchanged files from; default: the newest one of this type, host and paths. */
  parent?: string;
  /** Read every file again, whatever an earlier snapshot says. */
  force?: boolean;
  /** A file or directory that could not be read; the backup goes on without it. */
  onWarning?: (message: string) => void;
}

export interface FilesBackupResult {
  snapshot: Snapshot;
  /** Id of the snapshot unchanged files were taken from. */
  parent?: string;
  files: number;
  filesNew: number;
  filesChanged: number;
  /** Files taken from the parent without being read (same size, mtime, ctime and inode). */
  filesUnchanged: number;
  bytesUnchanged: number;
  /** Files and directories left out because they could not be read (the snapshot is then incomplete). */
  errors: number;
}

interface FileMeta {
  mode: number;
  mtimeMs: number;
  target?: string;
  /** Regular files: what the next backup compares to decide whether to read the file again. */
  ctimeMs?: number;
  ino?: number;
}

/** Snapshot meta.errors keeps this many; meta.errorCount has them all. */
const MAX_RECORDED_ERRORS = 100;
const READ_SIZE = 1024 * 1024;
/**
 * File timestamps are coarse (a kernel tick, whole seconds on some filesystems, clock skew on NFS): a
 * file changed this close to the start of the parent backup might change again with the very same ctime
 * after it was read, so it is read again rather than trusted (git's "racily clean" entries).
 */
const RACY_MS = 2000;
/** Running out of these is not about one file: carrying on would only skip every file after it. */
const SYSTEMIC_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOSPC', 'EDQUOT']);

type Entry =
  | { kind: 'file'; abs: string; rel: string; st: Stats }
  | { kind: 'dir' | 'symlink'; abs: string; rel: string; meta: FileMeta };

interface Walk {
  excluded(abs: string): boolean;
  /** With --one-file-system: the device of the path being walked. */
  device?: number;
  /** Records a file's read error as a warning, or rethrows one that is not about that file. */
  skip(abs: string, e: unknown): void;
  /** A warning: `abs` is left out of the snapshot, for `reason`. */
  leaveOut(abs: string, reason: string): void;
}

const baseMeta = (st: Stats): FileMeta => ({ mode: st.mode & 0o7777, mtimeMs: st.mtimeMs });

async function* walk(abs: string, rel: string, st: Stats, w: Walk): AsyncGenerator<Entry> {
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = await readlink(abs);
    } catch (e) {
      w.skip(abs, e);
      return;
    }
    yield { abs, rel, kind: 'symlink', meta: { ...baseMeta(st), target } };
  } else if (st.isDirectory()) {
    yield { abs, rel, kind: 'dir', meta: baseMeta(st) };
    // A mount point is kept, as tar and restic do, so a restore recreates it; its contents are not.
    if (w.device !== undefined && st.dev !== w.device) return;
    let names: string[];
    try {
      names = (await readdir(abs)).sort();
    } catch (e) {
      w.skip(abs, e);
      return;
    }
    for (const n of names) {
      const child = path.join(abs, n);
      if (w.excluded(child)) continue;
      let cst: Stats;
      try {
        cst = await lstat(child);
      } catch (e) {
        w.skip(child, e);
        continue;
      }
      if (w.device !== undefined && cst.dev !== w.device && !cst.isDirectory()) continue;
      yield* walk(child, `${rel}/${n}`, cst, w);
    }
  } else if (st.isFile()) {
    yield { abs, rel, kind: 'file', st };
  }
  // Sockets, FIFOs and devices are skipped: they hold no data to restore.
}

function isFileError(e: unknown): boolean {
  if (e instanceof LifeboatError) return false;
  const code = (e as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && !SYSTEMIC_ERRORS.has(code);
}

/** `permission denied (EACCES)`: node's message without the path (the warning names it) or syscall. */
function describeFileError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'vanished during the backup (ENOENT)';
  const reason = /^[A-Z0-9]+: (.*?)(?:, \w+(?: '.*')?)?$/s.exec(err.message)?.[1] ?? err.message;
  return `${reason} (${err.code})`;
}

/** Whether the parent's item can stand for the file as it is now, without reading it. */
function unchanged(previous: Item | undefined, st: Stats, parentStart: number): previous is Item {
  if (previous?.kind !== 'file') return false;
  const m = previous.meta as unknown as FileMeta;
  // Snapshots from before ctime and inode were recorded have nothing to compare: read again.
  if (m.ctimeMs === undefined || m.ino === undefined) return false;
  return (
    previous.size === st.size &&
    m.mtimeMs === st.mtimeMs &&
    m.ctimeMs === st.ctimeMs &&
    m.ino === st.ino &&
    m.ctimeMs < parentStart - RACY_MS
  );
}

const fileMeta = (st: Stats): FileMeta => ({ ...baseMeta(st), ctimeMs: st.ctimeMs, ino: st.ino });

/**
 * Reads one file into an item, or returns undefined (after `skip`) when the file cannot be read. Only
 * reading is guarded: a failure to store (the repository, a signal) aborts the whole backup. Chunks
 * already stored for a file that fails part-way are simply left unreferenced, for prune.
 */
async function readFileItem(
  session: BackupSession,
  entry: { abs: string; rel: string },
  w: Walk,
  expected?: ExpectedItem,
): Promise<Item | undefined> {
  let fh: FileHandle;
  try {
    // O_NOFOLLOW and O_NONBLOCK: if the path became a symlink or a FIFO since it was listed, fail (and
    // warn) rather than follow it out of the tree or block on it forever.
    fh = await open(entry.abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    w.skip(entry.abs, e);
    return undefined;
  }
  try {
    let st: Stats;
    try {
      st = await fh.stat();
    } catch (e) {
      w.skip(entry.abs, e);
      return undefined;
    }
    if (!st.isFile()) {
      w.leaveOut(entry.abs, 'is no longer a regular file');
      return undefined;
    }
    // The handle's own stat is what is read, even if the path was replaced since it was listed.
    const input: ItemInput = { name: entry.rel, kind: 'file', meta: { ...fileMeta(st) } };
    if (expected) {
      const writer = session.newItem(input, 'file', expected);
      const failed = await readInto(writer, fh, st.size);
      if (failed) {
        w.skip(entry.abs, failed.error);
        return undefined;
      }
      if (await writer.matches()) return await writer.finish();
      // Changed, though its metadata says not: read it again from the start, hashing it this time.
      await writer.discard();
    }
    const writer = session.newItem(input, 'file');
    const failed = await readInto(writer, fh, st.size);
    if (failed) {
      w.skip(entry.abs, failed.error);
      return undefined;
    }
    return await writer.finish();
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Reads the file from its start into `writer`, up to its end or until the writer diverges from its
 * expected item. A read that fails discards the writer and is returned.
 */
async function readInto(
  writer: ItemWriter,
  fh: FileHandle,
  size: number,
): Promise<{ error: unknown } | undefined> {
  for (let done = 0; !writer.diverged;) {
    // Sized to what is left, so a small file does not take a whole READ_SIZE buffer.
    const length = Math.min(READ_SIZE, Math.max(size - done, 64 * 1024));
    let readFailed: { error: unknown } | undefined;
    const n = await writer.writeFrom(length, async (into) => {
      try {
        return (await fh.read(into, 0, into.length, done)).bytesRead;
      } catch (error) {
        readFailed = { error };
        return 0;
      }
    });
    if (readFailed) {
      await writer.discard();
      return readFailed;
    }
    if (n === 0) break;
    done += n;
  }
  return undefined;
}

/** The newest snapshot of this type, on this host, of exactly these paths (restic's parent). */
async function findParent(
  repo: Repository,
  type: SnapshotType,
  paths: string[],
  ref: string | undefined,
): Promise<Snapshot | undefined> {
  if (ref) {
    const s = await repo.resolveSnapshot(ref, ref === 'latest' ? { type } : {});
    if (s.type !== 'files' && s.type !== 'terraform')
      throw new LifeboatError(
        'USAGE',
        `--parent ${ref}: snapshot ${s.id.slice(0, 8)} is a ${s.type} snapshot`,
        {
          hint: 'give a files or terraform snapshot',
        },
      );
    return s;
  }
  const key = (p: string[]) => JSON.stringify([...p].sort());
  const want = key(paths);
  const candidates = await repo.listSnapshots({ type, host: Repository.hostname() });
  return candidates.filter((s) => key(s.paths) === want).at(-1);
}

export async function backupFiles(repo: Repository, options: FilesBackupOptions): Promise<FilesBackupResult> {
  const type = options.type ?? 'files';
  const absPaths = options.paths.map((p) => path.resolve(p));
  const session = options.session ?? (await startBackup(repo, 'files backup'));
  const items: Item[] = [];
  const errors: { path: string; error: string }[] = [];
  let errorCount = 0;
  const result = { files: 0, filesNew: 0, filesChanged: 0, filesUnchanged: 0, bytesUnchanged: 0 };
  const leaveOut = (abs: string, error: string) => {
    if (++errorCount <= MAX_RECORDED_ERRORS) errors.push({ path: abs, error });
    options.onWarning?.(`${abs}: ${error}; left out of the snapshot`);
  };
  const skip = (abs: string, e: unknown) => {
    if (!isFileError(e)) throw fromSystemError(e, `reading ${abs}`);
    leaveOut(abs, describeFileError(e));
  };
  try {
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
    const excludes = options.exclude ?? [];
    const excluded = excluder(excludes);
    // What was asked for must exist: a typo in a path is an error, not a warning and an empty snapshot.
    const topStats: Stats[] = [];
    for (const abs of absPaths) {
      try {
        topStats.push(await lstat(abs));
      } catch (e) {
        throw fromSystemError(e, `reading ${abs}`);
      }
    }
    const parent = options.force ? undefined : await findParent(repo, type, absPaths, options.parent);
    // With --force every file is read again. The newest snapshot of these paths then only says what
    // each unchanged-looking file should hold, so that it costs one hash pass instead of two
    // (BackupSession.newItem); a damaged one is no reason to fail.
    const expectFrom = options.force
      ? await findParent(repo, type, absPaths, undefined).catch((e: unknown) => {
          if (isLifeboatError(e, 'INTEGRITY')) return undefined;
          throw e;
        })
      : undefined;
    const earlier = parent ?? expectFrom;
    const previous = new Map(earlier?.items.map((i) => [i.name, i]));
    const parentStart = earlier ? Date.parse(earlier.time) - earlier.summary.durationMs : 0;
    for (const [i, abs] of absPaths.entries()) {
      if (excluded(abs)) continue;
      const w: Walk = {
        excluded,
        device: options.oneFileSystem ? topStats[i].dev : undefined,
        skip,
        leaveOut,
      };
      for await (const entry of walk(abs, path.basename(abs), topStats[i], w)) {
        options.onItem?.(entry.rel);
        if (entry.kind !== 'file') {
          items.push(
            await session.addItem(
              { name: entry.rel, kind: entry.kind, meta: { ...entry.meta } },
              new Uint8Array(0),
              'file',
            ),
          );
          continue;
        }
        const before = previous.get(entry.rel);
        const same = unchanged(before, entry.st, parentStart);
        if (same && parent) {
          const input: ItemInput = { name: entry.rel, kind: 'file', meta: { ...fileMeta(entry.st) } };
          const item = await session.reuseItem(input, before);
          if (item) {
            items.push(item);
            result.files++;
            result.filesUnchanged++;
            result.bytesUnchanged += item.size;
            continue;
          }
        }
        const expected = same && expectFrom ? await session.expectItem(before) : undefined;
        const item = await readFileItem(session, entry, w, expected);
        if (!item) continue;
        items.push(item);
        result.files++;
        // --force compares with no parent: every file it reads counts as new, as it always has.
        if (parent && before?.kind === 'file') result.filesChanged++;
        else result.filesNew++;
      }
    }
    const snapshot = await session.commit({
      type,
      tags: options.tags,
      paths: absPaths,
      meta: {
        ...(parent ? { parent: parent.id } : {}),
        ...(excludes.length ? { excludes } : {}),
        ...(options.oneFileSystem ? { oneFileSystem: true } : {}),
        ...(errorCount ? { incomplete: true, errors, errorCount } : {}),
      },
      items,
    });
    return { snapshot, parent: parent?.id, ...result, errors: errorCount };
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

/**
 * Writes an item's content to `file` (created 0600), freeing each buffer as soon as it is written:
 * readItem's buffers are the caller's, and freeing them at once instead of at V8's next collection is
 * what keeps a restore from stopping for full collections (memory.ts).
 */
async function writeContent(file: string, content: AsyncIterable<Buffer>): Promise<void> {
  const fh = await open(file, 'w', 0o600);
  try {
    for await (const buf of content) {
      for (let at = 0; at < buf.length;) at += (await fh.write(buf, at)).bytesWritten;
      discard(buf);
    }
  } finally {
    await fh.close();
  }
}

/** Files restored concurrently; each reads ahead its own blobs (Repository.readItem). */
const RESTORE_FILES_AT_ONCE = 3;
/** Blobs each of them fetches ahead: 12 in flight keep the thread pool busy; more only cost memory. */
const RESTORE_READ_AHEAD = 4;

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
    const contents: { item: Item; dest: string; meta: FileMeta }[] = [];
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
        contents.push({ item, dest, meta });
      }
    }
    // Several files at once: one file's blobs are fetched, opened and hashed while another's are written,
    // so both cores work even on a tree of small files (each waits on its own round trips otherwise).
    await mapLimit(contents, RESTORE_FILES_AT_ONCE, async ({ item, dest, meta }) => {
      const tmp = `${dest}.lifeboat-partial`;
      try {
        await writeContent(tmp, repo.readItem(item, RESTORE_READ_AHEAD));
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
    });
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
