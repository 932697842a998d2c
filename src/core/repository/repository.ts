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
import { hostname } from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { FILE_CHUNKING, RECORD_CHUNKING, gearTable, type ChunkerParams } from '../chunker.ts';
import { compress, decompress, type Codec } from '../compression.ts';
import { discard } from '../memory.ts';
import { deriveKeys, newMasterKey, open, randomId, seal, sha256Hex, type RepositoryKeys } from '../crypto.ts';
import { throwIfAborted, type Backend, type ObjectType } from '../storage/backend.ts';
import { CancellableBackend } from '../storage/cancellable.ts';
import type { KeyRecord, Keystore } from '../keystore/keystore.ts';
import { systemClock, type Clock } from '../clock.ts';
import { Records } from './records.ts';
import { ItemChecks, blobMismatch, checkBlobId, type OpenedBlob } from './item-check.ts';
import { Lock, isStale, listLocks, type ListedLock, type LockMode, type LockStore } from './lock.ts';
import type { BlobType, PackedBlob } from './pack.ts';
import {
  SNAPSHOT_TYPES,
  type Item,
  type Snapshot,
  type SnapshotFilter,
  type SnapshotPurpose,
} from './model.ts';

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

export interface IndexFile {
  packs: { id: string; size: number; blobs: [string, 0 | 1, number, number, number][] }[];
}

export interface StoredKey {
  id: string;
  record: KeyRecord;
  /** Set when the record is unreadable or fails its checksum: it can open nothing. */
  damaged?: string;
}

/** An object that failed its checks: only what depends on it is affected. */
export interface Damage {
  /** `snapshots/<id>`, `index/<id>`, … */
  object: string;
  reason: string;
}

export interface OpenOptions {
  /** Cancels every storage call of this repository (SIGINT/SIGTERM); a lost lock cancels it too. */
  signal?: AbortSignal;
  /** For locks; tests pass a fake one. */
  clock?: Clock;
  /** Called once per damaged object found while listing (the CLI prints a warning line). */
  onDamage?: (d: Damage) => void;
}

/** What `resolveRef` found: an intact snapshot, or the id of one that cannot be read. */
export interface ResolvedRef {
  id: string;
  snapshot?: Snapshot;
  damage?: string;
}

/** A handle on the repository lock; nested holders share one lock object (see Repository.lock). */
export interface LockHandle {
  readonly mode: LockMode;
  release(): Promise<void>;
}

const HEX64 = /^[0-9a-f]{64}$/;

function damaged(what: string, detail: string): LifeboatError {
  return new LifeboatError('INTEGRITY', `${what} is damaged (${detail})`, {
    hint: 'run `lifeboat check`; restore the object from a copy of the repository if you have one',
  });
}

/** Parses an index file's plain JSON; anything not shaped like one is INTEGRITY naming it. */
export function decodeIndexFile(plain: Buffer, what: string): IndexFile {
  let v: unknown;
  try {
    v = JSON.parse(plain.toString());
  } catch {
    throw damaged(what, 'not valid JSON');
  }
  const packs = (v as IndexFile | null)?.packs;
  if (!Array.isArray(packs)) throw damaged(what, 'no pack list');
  for (const p of packs) {
    if (!p || typeof p.id !== 'string' || !HEX64.test(p.id) || !Number.isSafeInteger(p.size) || p.size < 0)
      throw damaged(what, 'a pack entry is malformed');
    if (!Array.isArray(p.blobs)) throw damaged(what, `pack ${p.id.slice(0, 12)} has no blob list`);
    for (const b of p.blobs) {
      if (
        !Array.isArray(b) ||
        b.length !== 5 ||
        typeof b[0] !== 'string' ||
        !HEX64.test(b[0]) ||
        (b[1] !== 0 && b[1] !== 1) ||
        ![b[2], b[3], b[4]].every((n) => Number.isSafeInteger(n) && n >= 0)
      )
        throw damaged(what, `a blob entry of pack ${p.id.slice(0, 12)} is malformed`);
    }
  }
  return v as IndexFile;
}

function isObject(v: unknown): boolean {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

function isItem(i: unknown): boolean {
  const it = i as Item | null;
  return (
    !!it &&
    typeof it.name === 'string' &&
    typeof it.kind === 'string' &&
    Number.isSafeInteger(it.size) &&
    it.size >= 0 &&
    typeof it.sha256 === 'string' &&
    // Sources read item.meta.<field> without further checks (files mode, pvc name, collection counts).
    isObject(it.meta) &&
    (it.chunks === undefined ||
      (Array.isArray(it.chunks) && it.chunks.every((c) => typeof c === 'string' && HEX64.test(c)))) &&
    (it.chunkLists === undefined ||
      (Array.isArray(it.chunkLists) && it.chunkLists.every((c) => typeof c === 'string' && HEX64.test(c))))
  );
}

/** Parses a snapshot manifest's plain JSON, checking the fields every reader relies on. */
export function decodeSnapshot(plain: Buffer, what: string): Omit<Snapshot, 'id'> {
  let v: unknown;
  try {
    v = JSON.parse(plain.toString());
  } catch {
    throw damaged(what, 'not valid JSON');
  }
  const s = v as Snapshot | null;
  if (!s || typeof s !== 'object') throw damaged(what, 'not an object');
  if (!SNAPSHOT_TYPES.includes(s.type)) throw damaged(what, `unknown type ${JSON.stringify(s.type)}`);
  if (typeof s.time !== 'string' || Number.isNaN(Date.parse(s.time))) throw damaged(what, 'no valid time');
  if (typeof s.timestamp !== 'string' || typeof s.host !== 'string')
    throw damaged(what, 'no timestamp or host');
  // Tags and paths are matched, joined and grouped as strings (filters, `snapshots`, retention).
  if (!isStrings(s.tags) || !isStrings(s.paths)) throw damaged(what, 'no tags or paths');
  if (!Array.isArray(s.items) || !s.items.every(isItem)) throw damaged(what, 'an item is malformed');
  if (!s.summary || typeof s.summary !== 'object') throw damaged(what, 'no summary');
  if (!s.meta || typeof s.meta !== 'object') s.meta = {};
  if (s.purpose === undefined) s.purpose = derivedPurpose(s.tags);
  else if (typeof s.purpose !== 'string') throw damaged(what, 'its purpose is not a string');
  return s;
}

/** The purpose of a snapshot written before snapshots had one: from the tags those writers set. */
export function derivedPurpose(tags: string[]): SnapshotPurpose {
  if (tags.includes('pre-restore')) return 'pre-restore';
  if (tags.includes('imported')) return 'import';
  return 'backup';
}

export function snapshotPurpose(s: Pick<Snapshot, 'purpose' | 'tags'>): SnapshotPurpose {
  return s.purpose ?? derivedPurpose(s.tags);
}

/**
 * A backup, as opposed to a restore's safety copy, an import or a drill's own snapshot. `listSnapshots`
 * lists only these by default; this is the same rule for snapshots that came from elsewhere.
 */
export function isBackup(s: Pick<Snapshot, 'purpose' | 'tags'>): boolean {
  return snapshotPurpose(s) === 'backup';
}

/** Whether a snapshot passes a filter's purpose (default: backups only). */
export function purposeMatches(s: Snapshot, wanted: SnapshotFilter['purpose']): boolean {
  if (wanted === 'any') return true;
  const list: string[] = wanted === undefined ? ['backup'] : Array.isArray(wanted) ? wanted : [wanted];
  return list.includes(snapshotPurpose(s));
}

/** A checksum over a key record's fields: tells a damaged record from a wrong passphrase. */
export function keyRecordChecksum(record: Record<string, unknown>): string {
  const { checksum: _ignored, ...rest } = record;
  const canonical = JSON.stringify(
    Object.keys(rest)
      .sort()
      .map((k) => [k, rest[k]]),
  );
  return sha256Hex(canonical);
}

/** Parses and checks a stored key record; `damaged` says why it cannot be used. */
export function decodeKeyRecord(raw: Buffer): { record: KeyRecord; damaged?: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString());
  } catch {
    return { record: { kind: 'unknown', created: '' }, damaged: 'not valid JSON' };
  }
  const r = v as KeyRecord | null;
  if (!r || typeof r !== 'object' || Array.isArray(r) || typeof r.kind !== 'string')
    return { record: { kind: 'unknown', created: '' }, damaged: 'not a key record' };
  if (typeof r.checksum === 'string') {
    if (r.checksum !== keyRecordChecksum(r))
      return { record: r, damaged: 'its checksum does not match (a byte changed)' };
    return { record: r };
  }
  // No `checksum` field: a record written before checksums existed — or one whose field *name* was hit
  // (`"checksum"` → `"bhecksum"`), which would otherwise pass as an old, unchecked record. Such a field
  // still holds the checksum of the other fields, which an old record's fields never do.
  for (const [name, value] of Object.entries(r)) {
    if (typeof value !== 'string' || !HEX64.test(value)) continue;
    const { [name]: _renamed, ...rest } = r;
    if (keyRecordChecksum(rest) === value)
      return { record: r, damaged: `its checksum field is damaged (found as "${name}")` };
  }
  return { record: r };
}

/** Chunk lists longer than this go into tree blobs instead of the manifest. */
export const INLINE_CHUNKS = 1000;
export const CHUNKS_PER_LIST = 8192;

export class Repository {
  /** Storage for everything this repository does: every call carries the repository's cancellation. */
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly keys: RepositoryKeys;
  readonly gear: Int32Array;
  /** The key record this process opened the repository with. */
  readonly keyId: string;
  private index: Map<string, IndexEntry> | undefined;
  private readonly master: Buffer;
  /** The same storage without cancellation: locks must be releasable after an interrupt. */
  private readonly storage: Backend;
  private readonly controller = new AbortController();
  readonly clock: Clock;
  /** Pipeline runs, drills, recoveries, copies, audit entries (records.ts). */
  readonly records: Records;
  private readonly damageSeen = new Map<string, string>();
  private readonly onDamage: (d: Damage) => void;
  private held: { lock: Lock; users: number } | undefined;
  /** Named mutual-exclusion locks this process holds (lockNamed), released on close. */
  private readonly named = new Set<Lock>();
  /** How readItem verifies, with the worker threads it may start. */
  private readonly itemChecks: ItemChecks;

  private constructor(
    backend: Backend,
    config: RepositoryConfig,
    master: Buffer,
    keyId: string,
    options: OpenOptions,
  ) {
    const keys = deriveKeys(master);
    this.master = master;
    this.storage = backend;
    this.backend = new CancellableBackend(backend, this.controller.signal);
    this.config = config;
    this.keys = keys;
    this.keyId = keyId;
    this.gear = gearTable(keys.chunker);
    this.itemChecks = new ItemChecks(keys.id);
    this.clock = options.clock ?? systemClock;
    this.records = new Records(this);
    this.onDamage = options.onDamage ?? (() => {});
    const external = options.signal;
    if (external) {
      if (external.aborted) this.cancel(external.reason);
      else external.addEventListener('abort', () => this.cancel(external.reason), { once: true });
    }
  }

  get id(): string {
    return this.config.id;
  }

  /** Fires when the operation is cancelled: by the caller's signal or because the lock was lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops every storage call in flight and every one after it; `reason` is what they reject with. */
  cancel(reason: unknown): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(
      isLifeboatError(reason)
        ? reason
        : new LifeboatError('INTERRUPTED', 'operation cancelled', {
            hint: 'run the command again',
            cause: reason,
          }),
    );
  }

  /** Throws the cancellation reason if the operation was cancelled; long loops call it per step. */
  throwIfCancelled(what?: string): void {
    throwIfAborted(this.controller.signal, what);
  }

  /** Objects found damaged so far (each reported once through `onDamage`). */
  get damage(): Damage[] {
    return [...this.damageSeen].map(([object, reason]) => ({ object, reason }));
  }

  private noteDamage(object: string, e: unknown): void {
    if (this.damageSeen.has(object)) return;
    const reason = (e as Error).message;
    this.damageSeen.set(object, reason);
    this.onDamage({ object, reason });
  }

  static async init(
    backend: Backend,
    keystore: Keystore,
    options: InitOptions = {},
    openOptions: OpenOptions = {},
  ): Promise<Repository> {
    if (await first(backend.list('config'))) {
      throw new LifeboatError('ALREADY_EXISTS', `a repository already exists at ${backend.location}`, {
        hint: 'use it as it is, or choose another --repo',
      });
    }
    const orphanKeys: string[] = [];
    for await (const o of backend.list('keys')) orphanKeys.push(o.name);
    if (orphanKeys.length) {
      // Keys without a config: either an init that was interrupted (nothing else there, safe to redo) or a
      // repository whose config was lost (data there: re-initialising would orphan it for good).
      for (const t of ['snapshots', 'index', 'data'] as const) {
        if (await first(backend.list(t))) {
          throw new LifeboatError(
            'ALREADY_EXISTS',
            `${backend.location} holds a repository whose config object is missing (it has keys and ${t})`,
            {
              hint: 'do not init over it: restore `config` from a copy of the repository (or a storage snapshot/version) — `lifeboat init` would make its data unreadable',
            },
          );
        }
      }
      for (const name of orphanKeys) await backend.remove({ type: 'keys', name });
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
    await backend.save({ type: 'keys', name: keyId }, storedKeyRecord(record, config.id));
    const repo = new Repository(backend, config, master, keyId, openOptions);
    await backend.save(
      { type: 'config', name: 'config' },
      seal(keys.encryption, Buffer.from(JSON.stringify(config)), 'config'),
    );
    return repo;
  }

  static async open(backend: Backend, keystore: Keystore, options: OpenOptions = {}): Promise<Repository> {
    const stored = await Repository.listKeyRecords(backend);
    if (stored.length === 0) {
      if (await first(backend.list('config'))) {
        throw new LifeboatError(
          'NO_REPOSITORY',
          `the repository at ${backend.location} has a config but no key records (keys/ was deleted)`,
          {
            hint: 'restore keys/ from a copy of the repository (or a storage snapshot/version); without a key record its data cannot be decrypted — do not run `lifeboat init` over it',
          },
        );
      }
      throw new LifeboatError('NO_REPOSITORY', `no Lifeboat repository at ${backend.location}`, {
        hint: 'check --repo / LIFEBOAT_REPO, or create one with `lifeboat init`',
      });
    }
    const usable = stored.filter((k) => !k.damaged);
    const candidates = usable.filter((k) => k.record.kind === keystore.kind);
    const damagedKeys = stored.filter((k) => k.damaged);
    if (candidates.length === 0) {
      if (damagedKeys.length) throw damagedKeyError(damagedKeys);
      throw new LifeboatError(
        'WRONG_KEY',
        `this repository has no ${keystore.kind} key (it has: ${[...new Set(stored.map((k) => k.record.kind))].join(', ')})`,
        { hint: 'choose the matching --keystore, or add a key with `lifeboat key add`' },
      );
    }
    let lastError: unknown;
    for (const k of candidates) {
      let master: Buffer;
      try {
        master = await keystore.unwrap(k.record, { repositoryId: String(k.record.repositoryId) });
      } catch (e) {
        // INTEGRITY: the record's own fields are unusable (an old, unchecksummed record that was
        // damaged): another key may still open the repository; if none does, it is named below.
        if (isLifeboatError(e, 'INTEGRITY')) {
          damagedKeys.push({ ...k, damaged: e.message });
          continue;
        }
        if (!isLifeboatError(e, 'WRONG_KEY')) throw e;
        lastError = e;
        continue;
      }
      const keys = deriveKeys(master);
      const raw = await backend.load({ type: 'config', name: 'config' }).catch((e) => {
        if (isLifeboatError(e, 'NOT_FOUND')) {
          throw new LifeboatError(
            'NO_REPOSITORY',
            `the repository at ${backend.location} has keys but its config object is missing`,
            {
              hint: 'restore `config` from a copy of the repository (or a storage snapshot/version); if the repository was never used, `lifeboat init` may be run again — init refuses when data is there',
            },
          );
        }
        throw e;
      });
      let config: RepositoryConfig;
      try {
        config = JSON.parse(
          open(keys.encryption, raw, 'repository config', 'config').toString(),
        ) as RepositoryConfig;
      } catch (e) {
        throw new LifeboatError(
          'INTEGRITY',
          `the repository config at ${backend.location} is damaged (${(e as Error).message})`,
          {
            hint: 'restore `config` from a copy of the repository (or a storage snapshot/version); the key opened, so the passphrase is right',
            cause: e,
          },
        );
      }
      if (config.version > REPOSITORY_VERSION) {
        throw new LifeboatError(
          'UNSUPPORTED',
          `repository format v${config.version} is newer than this Lifeboat (v${REPOSITORY_VERSION})`,
          {
            hint: 'upgrade Lifeboat',
          },
        );
      }
      return new Repository(backend, config, master, k.id, options);
    }
    // Every intact key refused the secret; if a key of this kind is damaged, that may be the one.
    const sameKindDamaged = damagedKeys.filter(
      (k) => k.record.kind === keystore.kind || k.record.kind === 'unknown',
    );
    if (sameKindDamaged.length) throw damagedKeyError(sameKindDamaged, lastError);
    throw lastError;
  }

  static async listKeyRecords(backend: Backend): Promise<StoredKey[]> {
    const out: StoredKey[] = [];
    for await (const o of backend.list('keys')) {
      let raw: Buffer;
      try {
        raw = await backend.load({ type: 'keys', name: o.name });
      } catch (e) {
        if (isLifeboatError(e, 'NOT_FOUND')) continue;
        throw e;
      }
      const { record, damaged } = decodeKeyRecord(raw);
      out.push({ id: o.name, record, damaged });
    }
    return out;
  }

  /** Adds a key record for another keystore (same master key). Returns its id. */
  async addKey(keystore: Keystore): Promise<string> {
    const record = await keystore.wrap(this.master, { repositoryId: this.id });
    const id = randomId();
    await this.backend.save({ type: 'keys', name: id }, storedKeyRecord(record, this.id));
    return id;
  }

  /**
   * Finds a key record by id or unambiguous prefix of at least 4 characters (an empty prefix would match
   * every key).
   */
  async findKey(ref: string): Promise<StoredKey> {
    if (!/^[0-9a-f]{4,64}$/.test(ref)) {
      throw new LifeboatError('USAGE', `"${ref}" is not a key id (at least 4 hex characters)`, {
        hint: 'see `lifeboat key list` for the ids',
      });
    }
    const all = await Repository.listKeyRecords(this.backend);
    const matches = all.filter((k) => k.id.startsWith(ref));
    if (matches.length === 0)
      throw new LifeboatError('NOT_FOUND', `no key ${ref} in this repository`, {
        hint: 'see `lifeboat key list`',
      });
    if (matches.length > 1)
      throw new LifeboatError('USAGE', `"${ref}" matches ${matches.length} keys`, {
        hint: 'give more characters of the id (see `lifeboat key list`)',
      });
    return matches[0];
  }

  /**
   * Removes a key record. Never the last usable one (that would lose the repository) and never the one
   * this process opened with — unless `rotating`, where the caller has just proved a new key opens it.
   */
  async removeKey(
    ref: string,
    options: { keystore?: Keystore; rotating?: boolean } = {},
  ): Promise<StoredKey> {
    const target = await this.findKey(ref);
    const all = await Repository.listKeyRecords(this.backend);
    if (target.id === this.keyId && !options.rotating) {
      throw new LifeboatError(
        'USAGE',
        `key ${target.id.slice(0, 12)} is the key in use; refusing to remove it`,
        {
          hint: 'open the repository with another key to remove this one, or use `lifeboat key rotate`',
        },
      );
    }
    if (all.filter((k) => !k.damaged && k.id !== target.id).length === 0) {
      throw new LifeboatError('USAGE', 'refusing to remove the last usable key of the repository', {
        hint: 'add another key first (`lifeboat key add`)',
      });
    }
    await this.backend.remove({ type: 'keys', name: target.id });
    const ks = options.keystore;
    if (ks?.forget && target.record.kind === ks.kind)
      await ks.forget(target.record, { repositoryId: this.id });
    return target;
  }

  // ---- sealed objects -------------------------------------------------------------------------------

  /**
   * The same storage without this operation's cancellation, each call bounded by `signal` instead: for
   * the one record a cancelled command still owes (its audit entry), written under a fresh short deadline.
   */
  detached(signal: AbortSignal): Backend {
    return new CancellableBackend(this.storage, signal);
  }

  /** `via`: another binding of this repository's storage (see `detached`). */
  async saveSealed(
    type: ObjectType,
    name: string,
    value: unknown,
    overwrite = false,
    via: Backend = this.backend,
  ): Promise<void> {
    await via.save({ type, name }, seal(this.keys.encryption, Buffer.from(JSON.stringify(value)), type), {
      overwrite,
    });
  }

  async loadSealed<T>(type: ObjectType, name: string, via: Backend = this.backend): Promise<T> {
    const raw = await via.load({ type, name });
    const plain = open(this.keys.encryption, raw, `${type}/${name}`, type);
    try {
      return JSON.parse(plain.toString()) as T;
    } catch {
      throw damaged(`${type}/${name}`, 'not valid JSON');
    }
  }

  /** Compressed + sealed, named by the SHA-256 of the stored bytes (snapshots, index files). */
  async saveContentAddressed(type: 'snapshots' | 'index', value: unknown): Promise<string> {
    const packed = await compress(Buffer.from(JSON.stringify(value)), { codec: 'zstd' });
    const sealed = seal(this.keys.encryption, packed, type);
    const id = sha256Hex(sealed);
    await this.backend.save({ type, name: id }, sealed);
    return id;
  }

  /** Reads, checks the name, authenticates and decompresses; INTEGRITY naming the object otherwise. */
  async loadContentAddressedRaw(type: 'snapshots' | 'index', id: string): Promise<Buffer> {
    const raw = await this.backend.load({ type, name: id });
    if (sha256Hex(raw) !== id) {
      throw new LifeboatError('INTEGRITY', `${type}/${id} does not match its name (damaged)`, {
        hint: 'run `lifeboat check`; restore the object from a copy of the repository if you have one',
      });
    }
    return decompress(open(this.keys.encryption, raw, `${type}/${id}`, type), `${type}/${id}`);
  }

  async loadSnapshot(id: string): Promise<Snapshot> {
    const plain = await this.loadContentAddressedRaw('snapshots', id);
    return { ...decodeSnapshot(plain, `snapshots/${id}`), id };
  }

  async loadIndexFile(id: string): Promise<IndexFile> {
    return decodeIndexFile(await this.loadContentAddressedRaw('index', id), `index/${id}`);
  }

  // ---- index ------------------------------------------------------------------------------------------

  /**
   * Every readable index file. A damaged one is reported (once) and skipped: only blobs it alone lists
   * become unfindable, and whatever needs them says so; `lifeboat repair index` rebuilds it from the packs.
   */
  async *readIndexFiles(): AsyncIterable<{ name: string; file: IndexFile }> {
    for await (const o of this.backend.list('index')) {
      let file: IndexFile;
      try {
        file = await this.loadIndexFile(o.name);
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
        this.noteDamage(`index/${o.name}`, e);
        continue;
      }
      yield { name: o.name, file };
    }
  }

  /** Index files found damaged (after loadIndex/indexedPacks). */
  get damagedIndexFiles(): string[] {
    return [...this.damageSeen.keys()].filter((k) => k.startsWith('index/')).map((k) => k.slice(6));
  }

  async loadIndex(force = false): Promise<Map<string, IndexEntry>> {
    if (this.index && !force) return this.index;
    await this.indexedPacks();
    return this.index!;
  }

  async close(): Promise<void> {
    await this.itemChecks.close();
    await this.releaseHeldLock();
    for (const l of [...this.named]) await l.release().catch(() => {});
    this.named.clear();
    await this.storage.close();
  }

  /** Whether the loaded index knows this blob (call loadIndex first). */
  hasBlob(id: string): boolean {
    return this.index?.has(id) ?? false;
  }

  /**
   * All packs known to the index, with their blobs. Reads every index file once and refreshes the loaded
   * blob index from the same pass, so callers that need both (check, prune, repair) read them once.
   */
  async indexedPacks(): Promise<Map<string, IndexedPack>> {
    const packs = new Map<string, IndexedPack>();
    const index = new Map<string, IndexEntry>();
    for await (const { file } of this.readIndexFiles()) {
      for (const p of file.packs) {
        const blobs = p.blobs.map(([id, t, offset, length, rawLength]) => ({
          id,
          type: (t === 0 ? 'data' : 'tree') as BlobType,
          offset,
          length,
          rawLength,
        }));
        // A blob listed twice (two concurrent backups stored it) is found where it was listed last.
        for (const b of blobs)
          index.set(b.id, {
            pack: p.id,
            type: b.type,
            offset: b.offset,
            length: b.length,
            rawLength: b.rawLength,
          });
        const existing = packs.get(p.id);
        if (existing) {
          const seen = new Set(existing.blobs.map((b) => b.id));
          for (const b of blobs) if (!seen.has(b.id)) existing.blobs.push(b);
        } else packs.set(p.id, { id: p.id, size: p.size, blobs });
      }
    }
    this.index = index;
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
    const { plain, what } = await this.loadOpened(id);
    return checkBlobId(this.keys.id, plain, id, what);
  }

  /** loadBlob but for the id check, which is the caller's (readItem's ItemCheck). */
  private async loadOpened(id: string): Promise<OpenedBlob> {
    const index = await this.loadIndex();
    const entry = index.get(id);
    if (!entry) {
      const badIndex = this.damagedIndexFiles;
      throw new LifeboatError('INTEGRITY', `blob ${id.slice(0, 12)} is referenced but not in the index`, {
        hint: badIndex.length
          ? `index file ${badIndex[0].slice(0, 12)} is damaged and may have listed it: run \`lifeboat repair index\``
          : 'run `lifeboat check` to list affected snapshots',
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
    try {
      if (sealed.length !== entry.length) {
        throw new LifeboatError('INTEGRITY', `pack ${entry.pack} is truncated (${what})`, {
          hint: 'run `lifeboat check --read-data` to list affected snapshots',
        });
      }
      return { plain: await this.openUnchecked(sealed, entry.rawLength, what), what };
    } finally {
      // Loaded for this blob alone (Backend.load gives the caller its own buffer), and opened by now.
      discard(sealed);
    }
  }

  /**
   * Authenticates, decompresses and re-hashes one sealed blob; INTEGRITY naming `what` on any mismatch.
   * The result is the caller's alone: nothing else holds its memory.
   */
  async openBlob(sealed: Buffer, id: string, rawLength: number, what: string): Promise<Buffer> {
    return checkBlobId(this.keys.id, await this.openUnchecked(sealed, rawLength, what), id, what);
  }

  /** openBlob but for the id check. */
  private async openUnchecked(sealed: Buffer, rawLength: number, what: string): Promise<Buffer> {
    const decrypted = open(this.keys.encryption, sealed, what);
    let plain: Buffer | undefined;
    try {
      plain = await decompress(decrypted, what, rawLength);
      if (plain.length !== rawLength) throw blobMismatch(what);
      return plain;
    } catch (e) {
      discard(plain);
      throw e;
    } finally {
      // A stored blob's plain bytes are a view of the decrypted ones; a compressed one's are not.
      if (plain?.buffer !== decrypted.buffer) discard(decrypted);
    }
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
   * temp file and rename on success never publish corrupt output. Each buffer yielded is the caller's:
   * nothing here reads it again, so a caller done with it may free it (memory.ts, discard).
   */
  async *readItem(item: Item, readAhead = 8): AsyncIterable<Buffer> {
    // Each blob is checked against its id before it is yielded, and the item's hash before the last is.
    const check = this.itemChecks.for(item);
    const queue: Promise<Buffer>[] = [];
    let size = 0;
    const ids = this.chunkIds(item)[Symbol.asyncIterator]();
    let done = false;
    let verified = false;
    const fill = async () => {
      while (!done && queue.length < readAhead) {
        const next = await ids.next();
        if (next.done) {
          done = true;
          break;
        }
        queue.push(check.add(this.loadOpened(next.value), next.value));
      }
    };
    try {
      await fill();
      let pending: Buffer | undefined;
      while (queue.length) {
        const buf = await queue.shift()!;
        await fill();
        size += buf.length;
        if (pending) yield pending;
        pending = buf;
      }
      const digest = await check.digest();
      verified = true;
      if (size !== item.size || digest !== item.sha256) {
        throw new LifeboatError(
          'INTEGRITY',
          `${item.name}: restored content does not match the snapshot's SHA-256`,
          {
            hint: 'run `lifeboat check --read-data`',
          },
        );
      }
      if (pending) yield pending;
    } finally {
      // A reader that stopped early, or failed: the check's state is let go.
      if (!verified) check.drop();
    }
  }

  /** A whole small item (a manifest, a record set) in memory, verified like readItem. */
  async readItemBuffer(item: Item): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of this.readItem(item)) parts.push(b);
    return Buffer.concat(parts);
  }

  // ---- snapshots -------------------------------------------------------------------------------------

  /**
   * Every readable snapshot matching `filter`, oldest first. A damaged snapshot object is reported once
   * (onDamage) and left out, so one bad object never hides the others.
   */
  async listSnapshots(filter: SnapshotFilter = {}): Promise<Snapshot[]> {
    return (await this.scanSnapshots(filter)).snapshots;
  }

  /** Snapshot ids whose object cannot be read, with why (after a listing). */
  get damagedSnapshots(): ResolvedRef[] {
    return [...this.damageSeen]
      .filter(([k]) => k.startsWith('snapshots/'))
      .map(([k, reason]) => ({ id: k.slice(10), damage: reason }));
  }

  private async scanSnapshots(
    filter: SnapshotFilter,
  ): Promise<{ snapshots: Snapshot[]; damaged: ResolvedRef[]; otherPurpose: Snapshot[] }> {
    const out: Snapshot[] = [];
    const bad: ResolvedRef[] = [];
    // Matching all but the purpose: ids name them, and "not found" says they are there.
    const other: Snapshot[] = [];
    for await (const o of this.backend.list('snapshots')) {
      let s: Snapshot;
      try {
        s = await this.loadSnapshot(o.name);
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
        this.noteDamage(`snapshots/${o.name}`, e);
        bad.push({ id: o.name, damage: (e as Error).message });
        continue;
      }
      if (filter.type && s.type !== filter.type) continue;
      if (filter.host && s.host !== filter.host) continue;
      if (filter.tags?.length && !filter.tags.every((t) => s.tags.includes(t))) continue;
      if (!purposeMatches(s, filter.purpose)) {
        other.push(s);
        continue;
      }
      out.push(s);
    }
    return {
      snapshots: out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id)),
      damaged: bad,
      otherPurpose: other,
    };
  }

  /** SNAPSHOT = full id, unique id prefix, `latest`, or a `YYYYMMDD_HHMMSS` timestamp. */
  async resolveSnapshot(ref: string | undefined, filter: SnapshotFilter = {}): Promise<Snapshot> {
    const r = await this.resolveRef(ref, filter);
    if (!r.snapshot) {
      throw new LifeboatError('INTEGRITY', `cannot restore from snapshot ${r.id.slice(0, 8)}: ${r.damage}`, {
        hint: `restore snapshots/${r.id} from a copy of the repository, or remove it with \`lifeboat forget ${r.id.slice(0, 8)}\` (\`lifeboat repair snapshots\` lists every damaged one)`,
      });
    }
    return r.snapshot;
  }

  /**
   * Like resolveSnapshot, but an id (prefix) may also name a snapshot whose object is damaged: `forget`
   * must be able to remove it. `latest` and timestamps only ever pick intact snapshots.
   */
  async resolveRef(ref: string | undefined, filter: SnapshotFilter = {}): Promise<ResolvedRef> {
    const { snapshots: all, damaged: bad, otherPurpose } = await this.scanSnapshots(filter);
    const purposes =
      filter.purpose === undefined
        ? 'backup'
        : Array.isArray(filter.purpose)
          ? filter.purpose.join('/')
          : filter.purpose;
    // "backup" is said only where it tells something: a purpose asked for, or others left out.
    const what = (othersLeftOut: Snapshot[]) =>
      [
        filter.type,
        purposes === 'any' || (filter.purpose === undefined && !othersLeftOut.length) ? '' : purposes,
        'snapshot',
      ]
        .filter(Boolean)
        .join(' ');
    // Not a backup, but what the user may have meant: named by id, it is found.
    const others = (list: Snapshot[]) =>
      list.length
        ? ` (not counted: ${list
            .slice(-3)
            .map((s) => `${s.id.slice(0, 8)} ${snapshotPurpose(s)}`)
            .join(', ')}${list.length > 3 ? ', …' : ''} — name one by id to use it)`
        : '';
    if (!ref || ref === 'latest') {
      const s = all.at(-1);
      if (!s)
        throw new LifeboatError(
          'NOT_FOUND',
          `no ${what(otherPurpose)} in ${this.backend.location}${others(otherPurpose)}`,
          {
            hint: bad.length
              ? `${bad.length} damaged snapshot(s) were skipped — see \`lifeboat repair snapshots\``
              : 'run a backup first, or check --repo',
          },
        );
      return { id: s.id, snapshot: s };
    }
    let matches: ResolvedRef[];
    if (/^\d{8}_\d{6}$/.test(ref))
      matches = all.filter((s) => s.timestamp === ref).map((s) => ({ id: s.id, snapshot: s }));
    else if (/^[0-9a-f]{4,64}$/.test(ref))
      matches = [
        ...[...all, ...otherPurpose]
          .filter((s) => s.id.startsWith(ref))
          .map((s) => ({ id: s.id, snapshot: s })),
        ...bad.filter((b) => b.id.startsWith(ref)),
      ];
    else {
      throw new LifeboatError(
        'USAGE',
        `"${ref}" is not a snapshot id (at least 4 hex characters), "latest" or YYYYMMDD_HHMMSS timestamp`,
        {
          hint: 'list snapshots with `lifeboat snapshots`',
        },
      );
    }
    if (matches.length === 0) {
      const sameTime = otherPurpose.filter((s) => s.timestamp === ref);
      const near = all
        .slice(-3)
        .map((s) => s.timestamp)
        .join(', ');
      throw new LifeboatError('NOT_FOUND', `no ${what(sameTime)} matches "${ref}"${others(sameTime)}`, {
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

  private get lockStore(): LockStore {
    return { backend: this.storage, key: this.keys.encryption, clock: this.clock };
  }

  listLocks(): Promise<ListedLock[]> {
    return listLocks(this.lockStore);
  }

  /** Removes stale and unreadable locks (every lock but this process's own with `all`). */
  async removeLocks(all = false): Promise<number> {
    let n = 0;
    const now = this.clock.now();
    for (const l of await this.listLocks()) {
      if (l.id === this.held?.lock.id || [...this.named].some((n) => n.id === l.id)) continue;
      if (all || !l.info || isStale(l.info, now)) {
        await this.storage.remove({ type: 'locks', name: l.id });
        n++;
      }
    }
    return n;
  }

  /**
   * Takes the repository lock for this process, or joins the one it already holds: a restore that backs
   * up the target first, or `forget --prune`, is one holder. A shared holder cannot upgrade to exclusive
   * (take the exclusive lock first). The cached index is dropped when a lock is newly taken, so the
   * index and snapshots are read *after* locking and cannot be pruned under the caller.
   */
  async lock(mode: LockMode, purpose: string): Promise<LockHandle> {
    this.throwIfCancelled(purpose);
    if (this.held) {
      if (mode === 'exclusive' && this.held.lock.mode !== 'exclusive')
        throw new LifeboatError('INTERNAL', `${purpose} needs an exclusive lock but a shared one is held`);
      this.held.users++;
    } else {
      const lock = await Lock.acquire(this.lockStore, mode, purpose, (e) => this.cancel(e));
      this.held = { lock, users: 1 };
      this.index = undefined;
    }
    const held = this.held;
    let released = false;
    return {
      mode: held.lock.mode,
      release: async () => {
        if (released) return;
        released = true;
        if (--held.users === 0 && this.held === held) await this.releaseHeldLock();
      },
    };
  }

  /**
   * Takes a named mutual-exclusion lock (lock.ts, `Lock.acquireNamed`): one holder of `name` per
   * repository, independent of the shared/exclusive data lock, which this process can still take. Throws
   * BUSY naming the holder. `onLost` fires when the lock can no longer be relied on; unlike the data lock
   * it does not cancel this repository (the holder decides what to stop).
   */
  async lockNamed(name: string, purpose: string, onLost?: (e: LifeboatError) => void): Promise<LockHandle> {
    this.throwIfCancelled(purpose);
    const lock = await Lock.acquireNamed(this.lockStore, name, purpose, onLost);
    this.named.add(lock);
    return {
      mode: lock.mode,
      release: async () => {
        if (!this.named.delete(lock)) return;
        await lock.release();
      },
    };
  }

  private async releaseHeldLock(): Promise<void> {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    await held.lock.release();
  }

  /** The lock itself, for tests that drive refreshes on a fake clock. */
  get heldLock(): Lock | undefined {
    return this.held?.lock;
  }

  static hostname(): string {
    return process.env.LIFEBOAT_HOST ?? hostname();
  }
}

function storedKeyRecord(record: KeyRecord, repositoryId: string): Buffer {
  const full: Record<string, unknown> = { ...record, repositoryId };
  full.checksum = keyRecordChecksum(full);
  return Buffer.from(JSON.stringify(full));
}

function damagedKeyError(keys: StoredKey[], cause?: unknown): LifeboatError {
  const k = keys[0];
  return new LifeboatError('INTEGRITY', `key record keys/${k.id.slice(0, 12)} is damaged (${k.damaged})`, {
    hint: 'restore keys/ from a copy of the repository, or open it with another key (`--keystore`, `--key-file`) and remove this one with `lifeboat key remove`',
    cause,
  });
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
