/**
 * Base of the Backend wrappers (retry, timeout, concurrency limit): forwards every call to `inner`
 * through two hooks, one for calls that answer once and one for listings, so each wrapper states its
 * rule once instead of once per method.
 */
import type {
  Backend,
  ByteRange,
  CallOptions,
  Handle,
  Leftover,
  ObjectInfo,
  ObjectType,
  SaveOptions,
} from '../backend.ts';

/** What a wrapper knows about the call it is wrapping. */
export interface Call {
  /** For messages: `save data/1f2e…`, `list index`. */
  what: string;
  /** The caller's signal. */
  signal?: AbortSignal;
  /** Bytes the call sends (a save's payload), so deadlines can scale with it. */
  bytes?: number;
}

/** Makes the call on the inner backend, with the signal the wrapper wants passed on. */
export type Attempt<T> = (signal: AbortSignal | undefined) => Promise<T>;
export type Listing<T> = (signal: AbortSignal | undefined) => AsyncIterable<T>;

export abstract class BackendWrapper implements Backend {
  readonly inner: Backend;
  // Present only where the inner backend has them: callers test for their presence.
  readonly listLeftovers?: (options?: CallOptions) => AsyncIterable<Leftover>;
  readonly removeLeftover?: (id: string, options?: CallOptions) => Promise<void>;

  constructor(inner: Backend) {
    this.inner = inner;
    if (inner.listLeftovers) {
      this.listLeftovers = (options) =>
        this.listing(
          { what: 'list leftovers', signal: options?.signal },
          (l) => l.id,
          (signal) => inner.listLeftovers!({ signal }),
        );
    }
    if (inner.removeLeftover) {
      this.removeLeftover = (id, options) =>
        this.call({ what: `remove leftover ${id}`, signal: options?.signal }, (signal) =>
          inner.removeLeftover!(id, { signal }),
        );
    }
  }

  get location(): string {
    return this.inner.location;
  }

  /** Runs one call through the wrapper's rule. */
  protected abstract call<T>(call: Call, attempt: Attempt<T>): Promise<T>;

  /** Runs one listing through the wrapper's rule; `key` names an entry (to recognise it if seen again). */
  protected abstract listing<T>(call: Call, key: (entry: T) => string, open: Listing<T>): AsyncIterable<T>;

  create(options?: CallOptions): Promise<void> {
    return this.call({ what: 'create', signal: options?.signal }, (signal) => this.inner.create({ signal }));
  }

  save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    return this.call(
      { what: `save ${describe(h)}`, signal: options.signal, bytes: data.byteLength },
      (signal) => this.inner.save(h, data, { ...options, signal }),
    );
  }

  load(h: Handle, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    return this.call({ what: `load ${describe(h)}`, signal: options?.signal }, (signal) =>
      this.inner.load(h, range, { signal }),
    );
  }

  stat(h: Handle, options?: CallOptions): Promise<ObjectInfo> {
    return this.call({ what: `stat ${describe(h)}`, signal: options?.signal }, (signal) =>
      this.inner.stat(h, { signal }),
    );
  }

  list(type: ObjectType, options?: CallOptions): AsyncIterable<ObjectInfo> {
    return this.listing(
      { what: `list ${type}`, signal: options?.signal },
      (o) => o.name,
      (signal) => this.inner.list(type, { signal }),
    );
  }

  remove(h: Handle, options?: CallOptions): Promise<void> {
    return this.call({ what: `remove ${describe(h)}`, signal: options?.signal }, (signal) =>
      this.inner.remove(h, { signal }),
    );
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export function describe(h: Handle): string {
  return h.type === 'config' ? 'config' : `${h.type}/${h.name}`;
}

/**
 * Iterates `open(signal)` one step at a time, each `next()` run through `around` (which may time it or
 * hold a slot for it), so that nothing is held while the caller works on what was yielded.
 */
export async function* stepwise<T>(
  source: AsyncIterable<T>,
  around: (next: () => Promise<IteratorResult<T>>) => Promise<IteratorResult<T>>,
): AsyncIterable<T> {
  const it = source[Symbol.asyncIterator]();
  let done = false;
  try {
    while (true) {
      const step = await around(() => it.next());
      if (step.done) {
        done = true;
        return;
      }
      yield step.value;
    }
  } finally {
    // The caller stopped early (or a step threw): let the source release what it holds.
    if (!done) await it.return?.();
  }
}
