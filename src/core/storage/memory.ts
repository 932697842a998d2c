/**
 * A backend that keeps every object in process memory (restic's `internal/backend/mem`): a complete,
 * contract-following Backend for tests and for programs that embed the core and want a scratch
 * repository. Nothing survives the process.
 *
 * How it meets the contract in src/core/storage/backend.ts:
 * - write-once: the existence check and the insert happen in one synchronous step, so of several
 *   concurrent saves of one name exactly one wins and the others get ALREADY_EXISTS;
 * - atomic saves: the object appears whole in that same step, or not at all;
 * - bytes are copied on the way in and on the way out, so no caller can change a stored object by
 *   mutating a buffer it handed over or got back;
 * - every call checks its signal first and rejects with INTERRUPTED once it has fired;
 * - there is no debris from interrupted writes, so `listLeftovers`/`removeLeftover` are left out.
 */
import { LifeboatError } from '../errors.ts';
import {
  objectPath,
  throwIfAborted,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from './backend.ts';

export class MemoryBackend implements Backend {
  readonly location: string;
  /** Keyed by objectPath(): `config`, `keys/<id>`, `data/ab/<id>`, … */
  private readonly objects: Map<string, Buffer>;

  constructor(name = 'memory', objects: Map<string, Buffer> = new Map()) {
    this.location = `memory:${name}`;
    this.objects = objects;
  }

  /**
   * An independent copy of everything stored now (another "bucket" with the same content). Tests use it
   * to run the same operation many times against one starting state. Stored buffers are never mutated,
   * so the copy can share them.
   */
  clone(name = `${this.location.slice('memory:'.length)}-copy`): MemoryBackend {
    return new MemoryBackend(name, new Map(this.objects));
  }

  /** Number of stored objects of a type (or of all types). */
  count(type?: ObjectType): number {
    if (!type) return this.objects.size;
    let n = 0;
    for (const key of this.objects.keys()) if (typeOf(key) === type) n++;
    return n;
  }

  async create(options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal, 'create');
  }

  async save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const key = objectPath(h);
    throwIfAborted(options.signal, `writing ${key}`);
    const copy = Buffer.from(data);
    // A write takes a moment, as on any storage: a caller that aborts right after starting it stops it.
    await new Promise((r) => setImmediate(r));
    throwIfAborted(options.signal, `writing ${key}`);
    if (!options.overwrite && this.objects.has(key))
      throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
    this.objects.set(key, copy);
  }

  async load(h: Handle, range?: ByteRange, options: CallOptions = {}): Promise<Buffer> {
    const key = objectPath(h);
    throwIfAborted(options.signal, `reading ${key}`);
    const stored = this.objects.get(key);
    if (!stored) throw this.missing(key);
    if (!range) return Buffer.from(stored);
    // Buffer.subarray clamps a range past the end to what exists, as the contract asks.
    return Buffer.from(stored.subarray(range.offset, range.offset + range.length));
  }

  async stat(h: Handle, options: CallOptions = {}): Promise<ObjectInfo> {
    const key = objectPath(h);
    throwIfAborted(options.signal, `stat ${key}`);
    const stored = this.objects.get(key);
    if (!stored) throw this.missing(key);
    return { name: h.name, size: stored.length };
  }

  async *list(type: ObjectType, options: CallOptions = {}): AsyncIterable<ObjectInfo> {
    throwIfAborted(options.signal, `list ${type}`);
    // A copy of the entries: objects saved or removed while the caller iterates do not disturb the walk,
    // as with a paged listing of an object store.
    for (const [key, bytes] of [...this.objects]) {
      if (typeOf(key) !== type) continue;
      throwIfAborted(options.signal, `list ${type}`);
      yield { name: key.slice(key.lastIndexOf('/') + 1), size: bytes.length };
    }
  }

  async remove(h: Handle, options: CallOptions = {}): Promise<void> {
    const key = objectPath(h);
    throwIfAborted(options.signal, `removing ${key}`);
    this.objects.delete(key);
  }

  /** Keeps the objects: a repository closed and opened again on this backend finds them. */
  async close(): Promise<void> {}

  private missing(key: string): LifeboatError {
    return new LifeboatError('NOT_FOUND', `${key} is missing from ${this.location}`, {
      hint: 'run `lifeboat check` to see which snapshots are affected',
    });
  }
}

function typeOf(key: string): ObjectType {
  const slash = key.indexOf('/');
  return (slash < 0 ? key : key.slice(0, slash)) as ObjectType;
}
