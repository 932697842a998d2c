/**
 * Local filesystem backend (`./path`, `/abs/path`, `file:///abs/path`).
 * Writes go to a temp file in the same directory, are fsynced, then renamed into place (atomic on POSIX),
 * and the directory is fsynced so the rename survives a power loss. Write-once is enforced with a hard
 * link (link fails if the target exists), which is atomic where rename-if-absent is not available.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  link,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import path from 'node:path';
import { LifeboatError, fromSystemError } from '../errors.ts';
import {
  OBJECT_TYPES,
  objectPath,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type Leftover,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
  interrupted,
  throwIfAborted,
} from './backend.ts';

/** Prefix of the temp files `save` writes before the rename; anything so named is an interrupted write. */
const TMP_PREFIX = '.tmp-';

/** Open pack files kept for ranged reads: a restore reads many small blobs from the same few packs. */
const HANDLE_CACHE = 16;

interface CachedHandle {
  fh: FileHandle;
  users: number;
}

export class LocalBackend implements Backend {
  readonly location: string;
  private readonly root: string;
  private readonly handles = new Map<string, CachedHandle>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  private file(h: Handle): string {
    return path.join(this.root, objectPath(h));
  }

  async create(options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal, 'create');
    try {
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      for (const t of OBJECT_TYPES)
        if (t !== 'config') await mkdir(path.join(this.root, t), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw fromSystemError(e, `creating repository at ${this.root}`);
    }
  }

  async save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const target = this.file(h);
    const dir = path.dirname(target);
    const tmp = path.join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    throwIfAborted(options.signal, `writing ${objectPath(h)}`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      try {
        await fh.writeFile(data, { signal: options.signal });
        await fh.sync();
        throwIfAborted(options.signal, `writing ${objectPath(h)}`);
      } finally {
        await fh.close();
      }
      if (options.overwrite) {
        await this.invalidate(target);
        await rename(tmp, target);
      } else {
        try {
          await link(tmp, target);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new LifeboatError('ALREADY_EXISTS', `${objectPath(h)} already exists in ${this.root}`);
          }
          throw e;
        } finally {
          await unlink(tmp).catch(() => {});
        }
      }
      await syncDir(dir);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      if (options.signal?.aborted) throw interrupted(options.signal, `writing ${objectPath(h)}`);
      throw this.mapError(e, `writing ${objectPath(h)}`);
    }
  }

  /** System errors, with the one a wrong --repo gives (a path through a file) named for what it is. */
  private mapError(e: unknown, what: string): LifeboatError {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      return new LifeboatError('NO_REPOSITORY', `${this.root} is a file, not a repository directory`, {
        hint: 'point --repo at a directory (a new one for `lifeboat init`)',
        cause: e,
      });
    }
    return fromSystemError(e, what);
  }

  async load(h: Handle, range?: ByteRange, options: CallOptions = {}): Promise<Buffer> {
    const file = this.file(h);
    let handle: CachedHandle | undefined;
    throwIfAborted(options.signal, `reading ${objectPath(h)}`);
    try {
      // Whole objects are read once (index, snapshots, packs in check); FileHandle.readFile would also
      // continue from a shared handle's position, so only ranged reads use the cache.
      if (!range) return await readFile(file, { signal: options.signal });
      handle = await this.acquire(file);
      const buf = Buffer.allocUnsafe(range.length);
      let got = 0;
      while (got < range.length) {
        const { bytesRead } = await handle.fh.read(buf, got, range.length - got, range.offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === range.length ? buf : buf.subarray(0, got);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new LifeboatError('NOT_FOUND', `${objectPath(h)} is missing from ${this.root}`, {
          hint: 'run `lifeboat check` to see which snapshots are affected',
        });
      }
      if (options.signal?.aborted) throw interrupted(options.signal, `reading ${objectPath(h)}`);
      throw this.mapError(e, `reading ${objectPath(h)}`);
    } finally {
      if (handle) await this.releaseHandle(file, handle);
    }
  }

  private async acquire(file: string): Promise<CachedHandle> {
    const cached = this.handles.get(file);
    if (cached) {
      cached.users++;
      // Re-insert to keep the map in least-recently-used order.
      this.handles.delete(file);
      this.handles.set(file, cached);
      return cached;
    }
    const entry = { fh: await open(file, 'r'), users: 1 };
    if (!this.handles.has(file)) this.handles.set(file, entry);
    return entry;
  }

  private async releaseHandle(file: string, handle: CachedHandle): Promise<void> {
    handle.users--;
    if (this.handles.get(file) !== handle) {
      if (handle.users === 0) await handle.fh.close();
      return;
    }
    for (const [name, h] of this.handles) {
      if (this.handles.size <= HANDLE_CACHE) break;
      if (h.users > 0) continue;
      this.handles.delete(name);
      await h.fh.close();
    }
  }

  /** Forgets a cached handle whose file is being replaced or removed. */
  private async invalidate(file: string): Promise<void> {
    const h = this.handles.get(file);
    if (!h) return;
    this.handles.delete(file);
    if (h.users === 0) await h.fh.close();
  }

  async stat(h: Handle, options: CallOptions = {}): Promise<ObjectInfo> {
    throwIfAborted(options.signal, `stat ${objectPath(h)}`);
    try {
      const s = await stat(this.file(h));
      return { name: h.name, size: s.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new LifeboatError('NOT_FOUND', `${objectPath(h)} is missing from ${this.root}`);
      }
      throw this.mapError(e, `stat ${objectPath(h)}`);
    }
  }

  async *list(type: ObjectType, options: CallOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(options.signal, `list ${type}`);
    if (type === 'config') {
      let size: number | undefined;
      try {
        size = (await stat(path.join(this.root, 'config'))).size;
      } catch (e) {
        // No config: nothing to list. A --repo that is a file is not "no repository here" but a mistake.
        if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw this.mapError(e, 'list config');
      }
      if (size !== undefined) yield { name: 'config', size };
      return;
    }
    const base = path.join(this.root, type);
    const dirs =
      type === 'data'
        ? (await readdirSafe(base)).filter((d) => /^[0-9a-f]{2}$/.test(d)).map((d) => path.join(base, d))
        : [base];
    for (const dir of dirs) {
      for (const name of await readdirSafe(dir)) {
        if (name.startsWith(TMP_PREFIX)) continue;
        throwIfAborted(options.signal, `list ${type}`);
        const s = await stat(path.join(dir, name)).catch(() => undefined);
        if (s?.isFile()) yield { name, size: s.size };
      }
    }
  }

  /** Temp files of saves that never reached their rename (the process was killed mid-write). */
  async *listLeftovers(options: CallOptions = {}): AsyncIterable<Leftover> {
    const dirs = [this.root];
    for (const t of OBJECT_TYPES) if (t !== 'config') dirs.push(path.join(this.root, t));
    const data = path.join(this.root, 'data');
    for (const d of await readdirSafe(data)) if (/^[0-9a-f]{2}$/.test(d)) dirs.push(path.join(data, d));
    for (const dir of dirs) {
      for (const name of await readdirSafe(dir)) {
        if (!name.startsWith(TMP_PREFIX)) continue;
        throwIfAborted(options.signal, 'list leftovers');
        const file = path.join(dir, name);
        const s = await stat(file).catch(() => undefined);
        if (s?.isFile()) yield { id: path.relative(this.root, file), size: s.size, modified: s.mtime };
      }
    }
  }

  async removeLeftover(id: string, options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal, 'remove leftover');
    // Only temp files inside the repository: the id came from listLeftovers, but never trust a path.
    const file = path.resolve(this.root, id);
    if (!file.startsWith(this.root + path.sep) || !path.basename(file).startsWith(TMP_PREFIX)) {
      throw new LifeboatError('INTERNAL', `refusing to remove ${id}: not a temp file of this repository`);
    }
    await unlink(file).catch((e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e, `removing ${id}`);
    });
  }

  async remove(h: Handle, options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal, `removing ${objectPath(h)}`);
    try {
      await this.invalidate(this.file(h));
      await unlink(this.file(h));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw fromSystemError(e, `removing ${objectPath(h)}`);
    }
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((h) => h.fh.close().catch(() => {})));
  }
}

async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new LifeboatError('NO_REPOSITORY', `${dir} is a file, not a repository directory`, {
        hint: 'point --repo at a directory (a new one for `lifeboat init`)',
        cause: e,
      });
    }
    throw fromSystemError(e, `listing ${dir}`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    /* some filesystems refuse fsync on directories */
  } finally {
    await fh.close();
  }
}
