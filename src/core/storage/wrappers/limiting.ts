/**
 * At most `limit` calls in flight on the backend it wraps (restic's connection-limited backend), so a
 * command that fans out (restore, check --read-data, a mongodb backup of many collections) cannot open
 * more connections than the storage or the local network stack take well. It sits above the retry
 * wrapper: a call keeps its slot while it backs off, so a throttling service sees fewer requests, not a
 * queue of new ones. A save of a large object is one call, with up to LIFEBOAT_UPLOAD_CONCURRENCY parts
 * in flight inside it.
 *
 * A listing holds a slot only while it fetches, never while its caller works on what it yielded (which
 * would deadlock a caller that loads each listed object under a limit of 1).
 */
import { interrupted, throwIfAborted, type Backend } from '../backend.ts';
import { BackendWrapper, stepwise, type Attempt, type Call, type Listing } from './wrapper.ts';

export const DEFAULT_STORAGE_CONCURRENCY = 8;

export class LimitingBackend extends BackendWrapper {
  readonly limit: number;
  private free: number;
  /** Callers waiting for a slot, first come first served. */
  private readonly queue: Array<() => void> = [];

  constructor(inner: Backend, limit = DEFAULT_STORAGE_CONCURRENCY) {
    super(inner);
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`invalid concurrency limit ${limit}`);
    this.limit = limit;
    this.free = limit;
  }

  protected async call<T>(call: Call, attempt: Attempt<T>): Promise<T> {
    await this.acquire(call);
    try {
      return await attempt(call.signal);
    } finally {
      this.release();
    }
  }

  protected listing<T>(call: Call, _key: (entry: T) => string, open: Listing<T>): AsyncIterable<T> {
    return stepwise(open(call.signal), async (next) => {
      await this.acquire(call);
      try {
        return await next();
      } finally {
        this.release();
      }
    });
  }

  private acquire(call: Call): Promise<void> {
    throwIfAborted(call.signal, call.what);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    const signal = call.signal;
    return new Promise((resolve, reject) => {
      const granted = () => {
        signal?.removeEventListener('abort', cancelled);
        resolve();
      };
      // Interrupted while queued: leave the queue at once, holding nothing.
      const cancelled = () => {
        this.queue.splice(this.queue.indexOf(granted), 1);
        reject(interrupted(signal, call.what));
      };
      this.queue.push(granted);
      signal?.addEventListener('abort', cancelled, { once: true });
    });
  }

  private release(): void {
    const next = this.queue.shift();
    // The slot passes straight to the next in line, so `free` only grows when nobody waits.
    if (next) next();
    else this.free++;
  }
}
