/**
 * Binds one operation's AbortSignal to every call made through a Backend, so that a repository opened for
 * a command hands the command's cancellation (SIGINT/SIGTERM, a lost lock) to each save, load and list
 * without every call site passing it. A call that fails after the signal fired reports INTERRUPTED, not
 * whatever the SDK said about its aborted socket.
 */
import {
  interrupted,
  throwIfAborted,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type Leftover,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from './backend.ts';

export class CancellableBackend implements Backend {
  readonly inner: Backend;
  private readonly signal: AbortSignal;

  constructor(inner: Backend, signal: AbortSignal) {
    this.inner = inner;
    this.signal = signal;
  }

  get location(): string {
    return this.inner.location;
  }

  private merged(options?: CallOptions): AbortSignal {
    return options?.signal ? AbortSignal.any([this.signal, options.signal]) : this.signal;
  }

  private async call<T>(what: string, options: CallOptions | undefined, fn: (s: AbortSignal) => Promise<T>) {
    const signal = this.merged(options);
    throwIfAborted(signal, what);
    try {
      return await fn(signal);
    } catch (e) {
      if (signal.aborted) throw interrupted(signal, what);
      throw e;
    }
  }

  create(options?: CallOptions): Promise<void> {
    return this.call('create', options, (signal) => this.inner.create({ signal }));
  }
  save(h: Handle, data: Uint8Array, options?: SaveOptions): Promise<void> {
    return this.call(`save ${h.type}/${h.name}`, options, (signal) =>
      this.inner.save(h, data, { ...options, signal }),
    );
  }
  load(h: Handle, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    return this.call(`load ${h.type}/${h.name}`, options, (signal) => this.inner.load(h, range, { signal }));
  }
  stat(h: Handle, options?: CallOptions): Promise<ObjectInfo> {
    return this.call(`stat ${h.type}/${h.name}`, options, (signal) => this.inner.stat(h, { signal }));
  }
  async *list(type: ObjectType, options?: CallOptions): AsyncIterable<ObjectInfo> {
    const signal = this.merged(options);
    throwIfAborted(signal, `list ${type}`);
    try {
      for await (const o of this.inner.list(type, { signal })) {
        throwIfAborted(signal, `list ${type}`);
        yield o;
      }
    } catch (e) {
      if (signal.aborted) throw interrupted(signal, `list ${type}`);
      throw e;
    }
  }
  remove(h: Handle, options?: CallOptions): Promise<void> {
    return this.call(`remove ${h.type}/${h.name}`, options, (signal) => this.inner.remove(h, { signal }));
  }
  get listLeftovers(): Backend['listLeftovers'] {
    const inner = this.inner;
    if (!inner.listLeftovers) return undefined;
    const signal = this.signal;
    return async function* (options?: CallOptions): AsyncIterable<Leftover> {
      yield* inner.listLeftovers!({
        signal: options?.signal ? AbortSignal.any([signal, options.signal]) : signal,
      });
    };
  }
  get removeLeftover(): Backend['removeLeftover'] {
    const inner = this.inner;
    if (!inner.removeLeftover) return undefined;
    return (id: string, options?: CallOptions) =>
      this.call(`remove leftover ${id}`, options, (signal) => inner.removeLeftover!(id, { signal }));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
