/**
 * An in-memory Backend for the storage wrapper tests (test/core/storage-wrappers.test.ts): it keeps the
 * Backend contract (write-once, atomic save, idempotent remove, paged listing, signals honoured, large
 * saves in parts through `runStep`) and lets a test script faults and hold calls in flight. A test
 * double, not a product backend: should src/core/storage/memory.ts appear, this stays the scriptable one.
 */
import { LifeboatError } from '../../src/core/errors.ts';
import {
  interrupted,
  listConfig,
  objectPath,
  runStep,
  throwIfAborted,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from '../../src/core/storage/backend.ts';

export type MemoryMethod = 'create' | 'save' | 'part' | 'load' | 'stat' | 'list' | 'remove';

export interface MemoryCall {
  method: MemoryMethod;
  /** The object's path (`data/ab/ab12…`), for calls on one object. */
  path?: string;
  /** Part number (saves in parts) or page number (listings), from 0. */
  index?: number;
  signal?: AbortSignal;
}

export interface MemoryTestBackendOptions {
  listPageSize?: number;
  /** Saves larger than this go in parts of this size (default 5 MiB). */
  partSize?: number;
}

export class MemoryTestBackend implements Backend {
  readonly location = 'memory://test';
  readonly objects = new Map<string, Buffer>();
  /** Every call and part, in the order they started. */
  readonly calls: MemoryCall[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Runs as a call starts, before it acts: throw to fail it, await to hold it in flight. */
  before: (call: MemoryCall) => void | Promise<void> = () => {};
  /** Runs after a call acted, before it answers: throw to lose the answer of a call that landed. */
  after: (call: MemoryCall) => void | Promise<void> = () => {};
  private readonly listPageSize: number;
  private readonly partSize: number;

  constructor(options: MemoryTestBackendOptions = {}) {
    this.listPageSize = options.listPageSize ?? 1000;
    this.partSize = options.partSize ?? 5 * 1024 * 1024;
  }

  /** One request: the hooks around `act`, the signal honoured throughout (even while a hook holds it). */
  private async request<T>(call: MemoryCall, act: () => T): Promise<T> {
    const what = `${call.method} ${call.path ?? ''}`.trim();
    throwIfAborted(call.signal, what);
    this.calls.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await untilAborted(Promise.resolve(this.before(call)), call.signal, what);
      throwIfAborted(call.signal, what);
      const result = act();
      await untilAborted(Promise.resolve(this.after(call)), call.signal, what);
      return result;
    } finally {
      this.inFlight--;
    }
  }

  async create(options: CallOptions = {}): Promise<void> {
    await this.request({ method: 'create', signal: options.signal }, () => {});
  }

  async save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const path = objectPath(h);
    const copy = Buffer.from(data);
    const store = () => {
      if (!options.overwrite && this.objects.has(path)) {
        throw new LifeboatError('ALREADY_EXISTS', `${path} already exists in ${this.location}`);
      }
      this.objects.set(path, copy);
    };
    if (data.byteLength <= this.partSize) {
      await this.request({ method: 'save', path, signal: options.signal }, store);
      return;
    }
    // Parts are invisible until the commit stores the whole object, as a block list commit does; every
    // request is a step, as in the cloud backends.
    const count = Math.ceil(data.byteLength / this.partSize);
    for (let i = 0; i < count; i++) {
      const bytes = Math.min(this.partSize, data.byteLength - i * this.partSize);
      await runStep(options, `save ${path} part ${i + 1}/${count}`, bytes, (signal) =>
        this.request({ method: 'part', path, index: i, signal }, () => {}),
      );
    }
    await runStep(options, `save ${path} commit`, 0, (signal) =>
      this.request({ method: 'save', path, signal }, store),
    );
  }

  load(h: Handle, range?: ByteRange, options: CallOptions = {}): Promise<Buffer> {
    const path = objectPath(h);
    return this.request({ method: 'load', path, signal: options.signal }, () => {
      const data = this.objects.get(path);
      if (!data) throw new LifeboatError('NOT_FOUND', `${path} does not exist in ${this.location}`);
      if (!range) return Buffer.from(data);
      return Buffer.from(data.subarray(range.offset, range.offset + range.length));
    });
  }

  stat(h: Handle, options: CallOptions = {}): Promise<ObjectInfo> {
    const path = objectPath(h);
    return this.request({ method: 'stat', path, signal: options.signal }, () => {
      const data = this.objects.get(path);
      if (!data) throw new LifeboatError('NOT_FOUND', `${path} does not exist in ${this.location}`);
      return { name: h.name, size: data.length };
    });
  }

  async *list(type: ObjectType, options: CallOptions = {}): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      yield* listConfig((h, o) => this.stat(h, o), options);
      return;
    }
    const prefix = type === 'data' ? 'data/' : `${type}/`;
    const names = [...this.objects.keys()].filter((p) => p.startsWith(prefix));
    for (let page = 0; page * this.listPageSize < names.length || page === 0; page++) {
      const entries = await this.request({ method: 'list', index: page, signal: options.signal }, () =>
        names.slice(page * this.listPageSize, (page + 1) * this.listPageSize).flatMap((p) => {
          const data = this.objects.get(p);
          return data ? [{ name: p.slice(p.lastIndexOf('/') + 1), size: data.length }] : [];
        }),
      );
      yield* entries;
    }
  }

  async remove(h: Handle, options: CallOptions = {}): Promise<void> {
    const path = objectPath(h);
    await this.request({ method: 'remove', path, signal: options.signal }, () => {
      this.objects.delete(path);
    });
  }

  async close(): Promise<void> {}

  /** Calls of one method, for counting attempts. */
  callsOf(method: MemoryMethod): MemoryCall[] {
    return this.calls.filter((c) => c.method === method);
  }
}

/** `p`, or INTERRUPTED as soon as `signal` fires, whichever comes first. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(interrupted(signal, what));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A transient failure, as a cloud backend reports a 503. */
export function busy(what = 'request'): LifeboatError {
  return new LifeboatError('UNREACHABLE', `${what}: storage is busy or failing (503 ServerBusy)`, {
    transient: true,
  });
}
