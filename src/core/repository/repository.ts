/**
 * The repository: restic's layout and write order (packs -> index -> snapshot) over any Backend.
 *
 *   config            sealed JSON: id, chunker parameters, compression, pack size (fixed at init)
 *   keys/<id>         plain JSON KeyRecord: the master key wrapped by a keystore (never in clear)
 *   locks/<id>        sealed JSON LockInfo
 *   snapshots/<id>    sealed, compressed JSON manifest; id = SHA-256 of the stored bytes
 *   index/<id>        sealed, compressed JSON: pack -> blobs (offset, length); id = SHA-256 of stored bytes
 *   data/xx/<id>      pack files; id = SHA-256 of the pack
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { FILE_CHUNKING, RECORD_CHUNKING, gearTable, type ChunkerParams } from '../chunker.ts';
import { compress, decompress, type Codec } from '../compression.ts';
import {
  chunkId,
  deriveKeys,
  newMasterKey,
  open,
  randomId,
  seal,
  sha256Hex,
  type RepositoryKeys,
} from '../crypto.ts';
import type { Backend, ObjectType } from '../storage/backend.ts';
import type { KeyRecord, Keystore } from '../keystore/keystore.ts';
import { Lock, type LockInfo } from './lock.ts';
import type { BlobType, PackedBlob } from './pack.ts';
import { SNAPSHOT_TYPES, type Item, type Snapshot, type SnapshotFilter } from './model.ts';

export const REPOSITORY_VERSION = 1;

export interface RepositoryConfig {
  version: number;
  id: string;
  created: string;
  chunking: { file: ChunkerParams; records: ChunkerParams };
  compression: { codec: Codec; level?: number };
  /** Target pack size in bytes. */
  packSize: number;
}

export interface InitOptions {
  compression?: Codec;
  compressionLevel?: number;
  packSize?: number;
  chunking?: Partial<RepositoryConfig['chunking']>;
}

export interface IndexEntry {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
}

export interface IndexedPack {
  id: string;
  size: number;
  blobs: PackedBlob[];
}

interface IndexFile {
  packs: { id: string; size: number; blobs: [string, 0 | 1, number, number, number][] }[];
}

export interface StoredKey {
  id: string;
  record: KeyRecord;
}

/** Chunk lists longer than this go into tree blobs instead of the manifest. */
export const INLINE_CHUNKS = 1000;
export const CHUNKS_PER_LIST = 8192;

export class Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly keys: RepositoryKeys;
  readonly gear: Int32Array;
  /** The key record this process opened the repository with. */
  readonly keyId: string;
  private index: Map<string, IndexEntry> | undefined;
  private readonly master: Buffer;

  private constructor(backend: Backend, config: RepositoryConfig, master: Buffer, keyId: string) {
    const keys = deriveKeys(master);
    this.master = master;
    this.backend = backend;
    this.config = config;
    this.keys = keys;
    this.keyId = keyId;
    this.gear = gearTable(keys.chunker);
  }

  get id(): string {
    return this.config.id;
  }

  static async init(backend: Backend, keystore: Keystore, options: InitOptions = {}): Promise<Repository> {
    if ((await first(backend.list('keys'))) || (await first(backend.list('config')))) {
      throw new LifeboatError('ALREADY_EXISTS', `a repository already exists at ${backend.location}`, {
        hint: 'use it as it is, or choose another --repo',
      });
    }
    await backend.create();
    const config: RepositoryConfig = {
      version: REPOSITORY_VERSION,
      id: randomId(),
      created: new Date().toISOString(),
      chunking: {
        file: options.chunking?.file ?? FILE_CHUNKING,
        records: options.chunking?.records ?? RECORD_CHUNKING,
      },
      compression: { codec: options.compression ?? 'zstd', level: options.compressionLevel },
      packSize: options.packSize ?? 16 * 1024 * 1024,
    };
    const master = newMasterKey();
    const keys = deriveKeys(master);
    const keyId = randomId();
    // Key first, config second: a repository without config is "not initialised" and init can be re-run.
    const record = await keystore.wrap(master, { repositoryId: config.id });
    await backend.save(
      { type: 'keys', name: keyId },
      Buffer.from(JSON.stringify({ ...record, repositoryId: config.id })),
    );
    const repo = new Repository(backend, config, master, keyId);
    await backend.save(
      { type: 'config', name: 'config' },
      seal(keys.encryption, Buffer.from(JSON.stringify(config)), 'config'),
    );
    return repo;
  }

  static async open(backend: Backend, keystore: Keystore): Promise<Repository> {
    const stored = await Repository.listKeyRecords(backend);
    if (stored.length === 0) {
      throw new LifeboatError('NO_REPOSITORY', `no Lifeboat repository at ${backend.location}`, {
        hint: 'check --repo / LIFEBOAT_REPO, or create one with `lifeboat init`',
      });
    }
    const candidates = stored.filter((k) => k.record.kind === keystore.kind);
    if (candidates.length === 0) {
      throw new LifeboatError(
        'WRONG_KEY',
        `this repository has no ${keystore.kind} key (it has: ${[...new Set(stored.map((k) => k.record.kind))].join(', ')})`,
        { hint: 'choose the matching --keystore, or add a key with `lifeboat key add`' },
      );
    }
    let lastError: unknown;
    for (const k of candidates) {
      try {
        const master = await keystore.unwrap(k.record, { repositoryId: String(k.record.repositoryId) });
        const keys = deriveKeys(master);
        const raw = await backend.load({ type: 'config', name: 'config' }).catch((e) => {
          if (isLifeboatError(e, 'NOT_FOUND')) {
            throw new LifeboatError(
              'NO_REPOSITORY',
              `repository at ${backend.location} has keys but no config (interrupted init)`,
              {
                hint: 'remove the directory/container and run `lifeboat init` again',
              },
            );
          }
          throw e;
        });
        const config = JSON.parse(
          open(keys.encryption, raw, 'repository config', 'config').toString(),
        ) as RepositoryConfig;
        if (config.version > REPOSITORY_VERSION) {
          throw new LifeboatError(
            'UNSUPPORTED',
            `repository format v${config.version} is newer than this Lifeboat (v${REPOSITORY_VERSION})`,
            {
              hint: 'upgrade Lifeboat',
            },
          );
        }
        return new Repository(backend, config, master, k.id);
      } catch (e) {
        if (!isLifeboatError(e, 'WRONG_KEY')) throw e;
        lastError = e;
      }
    }
    throw lastError;
  }

  static async listKeyRecords(backend: Backend): Promise<StoredKey[]> {
    const out: StoredKey[] = [];
    for await (const o of backend.list('keys')) {
      const raw = await backend.load({ type: 'keys', name: o.name });
      try {
        out.push({ id: o.name, record: JSON.parse(raw.toString()) as KeyRecord });
      } catch {
        throw new LifeboatError('INTEGRITY', `key record keys/${o.name} is not valid JSON`, {
          hint: 'restore it from a copy of the repository or remove it if another key works',
        });
      }
    }
    return out;
  }

  /** Adds a key record for another keystore (same master key). Returns its id. */
  async addKey(keystore: Keystore): Promise<string> {
    const record = await keystore.wrap(this.master, { repositoryId: this.id });
    const id = randomId();
    await this.backend.save(
      { type: 'keys', name: id },
      Buffer.from(JSON.stringify({ ...record, repositoryId: this.id })),
    );
    return id;
  }

  /** Removes a key record; refuses to remove the last one (that would lose the repository). */
  async removeKey(id: string, keystore?: Keystore): Promise<void> {
    const all = await Repository.listKeyRecords(this.backend);
    const target = all.find((k) => k.id === id || k.id.startsWith(id));
    if (!target)
      throw new LifeboatError('NOT_FOUND', `no key ${id} in this repository`, {
        hint: 'see `lifeboat key list`',
      });
    if (all.length === 1) {
      throw new LifeboatError('USAGE', 'refusing to remove the only key of the repository', {
        hint: 'add another key first',
      });
    }
    await this.backend.remove({ type: 'keys', name: target.id });
    if (keystore?.forget && target.record.kind === keystore.kind)
      await keystore.forget(target.record, { repositoryId: this.id });
  }

  // ---- sealed objects -------------------------------------------------------------------------------

  async saveSealed(type: ObjectType, name: string, value: unknown, overwrite = false): Promise<void> {
    await this.backend.save(
      { type, name },
      seal(this.keys.encryption, Buffer.from(JSON.stringify(value)), type),
      { overwrite },
    );
  }

  async loadSealed<T>(type: ObjectType, name: string): Promise<T> {
    const raw = await this.backend.load({ type, name });
    return JSON.parse(open(this.keys.encryption, raw, `${type}/${name}`, type).toString()) as T;
  }

  /** Compressed + sealed, named by the SHA-256 of the stored bytes (snapshots, index files). */
  async saveContentAddressed(type: 'snapshots' | 'index', value: unknown): Promise<string> {
    const packed = await compress(Buffer.from(JSON.stringify(value)), { codec: 'zstd' });
    const sealed = seal(this.keys.encryption, packed, type);
    const id = sha256Hex(sealed);
    await this.backend.save({ type, name: id }, sealed);
    return id;
  }

  async loadContentAddressed<T>(type: 'snapshots' | 'index', id: string): Promise<T> {
    const raw = await this.backend.load({ type, name: id });
    if (sha256Hex(raw) !== id) {
      throw new LifeboatError('INTEGRITY', `${type}/${id} does not match its name (damaged)`, {
        hint: 'run `lifeboat check --read-data`; restore the object from a copy of the repository if you have one',
      });
    }
    const plain = await decompress(open(this.keys.encryption, raw, `${type}/${id}`, type), `${type}/${id}`);
    return JSON.parse(plain.toString()) as T;
  }

  // ---- index ------------------------------------------------------------------------------------------

  async loadIndex(force = false): Promise<Map<string, IndexEntry>> {
    if (this.index && !force) return this.index;
    const index = new Map<string, IndexEntry>();
    for await (const o of this.backend.list('index')) {
      const file = await this.loadContentAddressed<IndexFile>('index', o.name);
      for (const p of file.packs) {
        for (const [id, t, offset, length, rawLength] of p.blobs) {
          index.set(id, { pack: p.id, type: t === 0 ? 'data' : 'tree', offset, length, rawLength });
        }
      }
    }
    this.index = index;
    return index;
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  /** Whether the loaded index knows this blob (call loadIndex first). */
  hasBlob(id: string): boolean {
    return this.index?.has(id) ?? false;
  }

  /** All packs known to the index, with their blobs. */
  async indexedPacks(): Promise<Map<string, IndexedPack>> {
    const packs = new Map<string, IndexedPack>();
    for await (const o of this.backend.list('index')) {
      const file = await this.loadContentAddressed<IndexFile>('index', o.name);
      for (const p of file.packs) {
        const blobs = p.blobs.map(([id, t, offset, length, rawLength]) => ({
          id,
          type: (t === 0 ? 'data' : 'tree') as BlobType,
          offset,
          length,
          rawLength,
        }));
        const existing = packs.get(p.id);
        if (existing) {
          const seen = new Set(existing.blobs.map((b) => b.id));
          for (const b of blobs) if (!seen.has(b.id)) existing.blobs.push(b);
        } else packs.set(p.id, { id: p.id, size: p.size, blobs });
      }
    }
    return packs;
  }

  async writeIndex(packs: IndexedPack[]): Promise<string> {
    const file: IndexFile = {
      packs: packs.map((p) => ({
        id: p.id,
        size: p.size,
        blobs: p.blobs.map((b) => [b.id, b.type === 'data' ? 0 : 1, b.offset, b.length, b.rawLength]),
      })),
    };
    const id = await this.saveContentAddressed('index', file);
    if (this.index) {
      for (const p of packs)
        for (const b of p.blobs)
          this.index.set(b.id, {
            pack: p.id,
            type: b.type,
            offset: b.offset,
            length: b.length,
            rawLength: b.rawLength,
          });
    }
    return id;
  }

  // ---- blobs ------------------------------------------------------------------------------------------

  /** Reads, authenticates, decompresses and re-hashes one blob. */
  async loadBlob(id: string): Promise<Buffer> {
    const index = await this.loadIndex();
    const entry = index.get(id);
    if (!entry) {
      throw new LifeboatError('INTEGRITY', `blob ${id.slice(0, 12)} is referenced but not in the index`, {
        hint: 'run `lifeboat check` to list affected snapshots',
      });
    }
    const what = `blob ${id.slice(0, 12)} in pack ${entry.pack}`;
    let sealed: Buffer;
    try {
      sealed = await this.backend.load(
        { type: 'data', name: entry.pack },
        { offset: entry.offset, length: entry.length },
      );
    } catch (e) {
      if (isLifeboatError(e, 'NOT_FOUND')) {
        throw new LifeboatError('INTEGRITY', `pack ${entry.pack} is missing (needed for ${what})`, {
          hint: 'run `lifeboat check` to list affected snapshots',
        });
      }
      throw e;
    }
    if (sealed.length !== entry.length) {
      throw new LifeboatError('INTEGRITY', `pack ${entry.pack} is truncated (${what})`, {
        hint: 'run `lifeboat check --read-data` to list affected snapshots',
      });
    }
    return this.openBlob(sealed, id, entry.rawLength, what);
  }

  /** Authenticates, decompresses and re-hashes one sealed blob; INTEGRITY naming `what` on any mismatch. */
  async openBlob(sealed: Buffer, id: string, rawLength: number, what: string): Promise<Buffer> {
    const plain = await decompress(open(this.keys.encryption, sealed, what), what);
    if (plain.length !== rawLength || chunkId(this.keys.id, plain) !== id) {
      throw new LifeboatError('INTEGRITY', `${what} does not match its id`, {
        hint: 'run `lifeboat check --read-data`',
      });
    }
    return plain;
  }

  /** The chunk ids of an item, in order, expanding tree blobs. */
  async *chunkIds(item: Item): AsyncIterable<string> {
    if (item.chunks) yield* item.chunks;
    for (const list of item.chunkLists ?? []) {
      const bytes = await this.loadBlob(list);
      for (let o = 0; o < bytes.length; o += 32) yield bytes.subarray(o, o + 32).toString('hex');
    }
  }

  /**
   * Streams an item's plain content, fetching ahead with bounded concurrency. Throws INTEGRITY (before the
   * last buffer is yielded) if the content does not match the item's SHA-256, so callers that write to a
   * temp file and rename on success never publish corrupt output.
   */
  async *readItem(item: Item, readAhead = 8): AsyncIterable<Buffer> {
    const hash = createHash('sha256');
    const queue: Promise<Buffer>[] = [];
    let size = 0;
    const ids = this.chunkIds(item)[Symbol.asyncIterator]();
    let done = false;
    const fill = async () => {
      while (!done && queue.length < readAhead) {
        const next = await ids.next();
        if (next.done) {
          done = true;
          break;
        }
        const p = this.loadBlob(next.value);
        p.catch(() => {});
        queue.push(p);
      }
    };
    await fill();
    let pending: Buffer | undefined;
    while (queue.length) {
      const buf = await queue.shift()!;
      await fill();
      hash.update(buf);
      size += buf.length;
      if (pending) yield pending;
      pending = buf;
    }
    if (size !== item.size || hash.digest('hex') !== item.sha256) {
      throw new LifeboatError(
        'INTEGRITY',
        `${item.name}: restored content does not match the snapshot's SHA-256`,
        {
          hint: 'run `lifeboat check --read-data`',
        },
      );
    }
    if (pending) yield pending;
  }

  /** A whole small item (a manifest, a record set) in memory, verified like readItem. */
  async readItemBuffer(item: Item): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of this.readItem(item)) parts.push(b);
    return Buffer.concat(parts);
  }

  // ---- snapshots -------------------------------------------------------------------------------------

  async listSnapshots(filter: SnapshotFilter = {}): Promise<Snapshot[]> {
    const out: Snapshot[] = [];
    for await (const o of this.backend.list('snapshots')) {
      const s = {
        ...(await this.loadContentAddressed<Omit<Snapshot, 'id'>>('snapshots', o.name)),
        id: o.name,
      };
      if (filter.type && s.type !== filter.type) continue;
      if (filter.host && s.host !== filter.host) continue;
      if (filter.tags?.length && !filter.tags.every((t) => s.tags.includes(t))) continue;
      out.push(s);
    }
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  /** SNAPSHOT = full id, unique id prefix, `latest`, or a `YYYYMMDD_HHMMSS` timestamp. */
  async resolveSnapshot(ref: string | undefined, filter: SnapshotFilter = {}): Promise<Snapshot> {
    const all = await this.listSnapshots(filter);
    const what = filter.type ? `${filter.type} snapshot` : 'snapshot';
    if (!ref || ref === 'latest') {
      const s = all.at(-1);
      if (!s)
        throw new LifeboatError('NOT_FOUND', `no ${what} in ${this.backend.location}`, {
          hint: 'run a backup first, or check --repo',
        });
      return s;
    }
    let matches: Snapshot[];
    if (/^\d{8}_\d{6}$/.test(ref)) matches = all.filter((s) => s.timestamp === ref);
    else if (/^[0-9a-f]{4,64}$/.test(ref)) matches = all.filter((s) => s.id.startsWith(ref));
    else {
      throw new LifeboatError(
        'USAGE',
        `"${ref}" is not a snapshot id, id prefix, "latest" or YYYYMMDD_HHMMSS timestamp`,
        {
          hint: 'list snapshots with `lifeboat snapshots`',
        },
      );
    }
    if (matches.length === 0) {
      const near = all
        .slice(-3)
        .map((s) => s.timestamp)
        .join(', ');
      throw new LifeboatError('NOT_FOUND', `no ${what} matches "${ref}"`, {
        hint: near ? `latest ones: ${near} — see \`lifeboat snapshots\`` : 'the repository has none yet',
      });
    }
    if (matches.length > 1) {
      throw new LifeboatError(
        'USAGE',
        `"${ref}" matches ${matches.length} snapshots (${matches.map((s) => s.id.slice(0, 8)).join(', ')})`,
        {
          hint: 'use a longer id prefix, or --type to narrow the search',
        },
      );
    }
    return matches[0];
  }

  async saveSnapshot(snapshot: Omit<Snapshot, 'id'>): Promise<Snapshot> {
    if (!SNAPSHOT_TYPES.includes(snapshot.type))
      throw new LifeboatError('INTERNAL', `unknown snapshot type ${snapshot.type}`);
    const id = await this.saveContentAddressed('snapshots', snapshot);
    return { ...snapshot, id };
  }

  async removeSnapshot(id: string): Promise<void> {
    await this.backend.remove({ type: 'snapshots', name: id });
  }

  // ---- locks ------------------------------------------------------------------------------------------

  async listLocks(): Promise<{ id: string; info: LockInfo }[]> {
    const out: { id: string; info: LockInfo }[] = [];
    for await (const o of this.backend.list('locks')) {
      try {
        out.push({ id: o.name, info: await this.loadSealed<LockInfo>('locks', o.name) });
      } catch (e) {
        // A lock removed between list and load is simply gone.
        if (!isLifeboatError(e, 'NOT_FOUND')) throw e;
      }
    }
    return out;
  }

  lock(exclusive: boolean, purpose: string): Promise<Lock> {
    return Lock.acquire(this, exclusive, purpose);
  }

  static hostname(): string {
    return process.env.LIFEBOAT_HOST ?? hostname();
  }
}

async function first<T>(it: AsyncIterable<T>): Promise<T | undefined> {
  for await (const x of it) return x;
  return undefined;
}

/** `YYYYMMDD_HHMMSS` in UTC. */
export function timestampLabel(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}
