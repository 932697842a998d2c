/**
 * Retries transient failures of the backend it wraps (restic's RetryBackend, kopia's retrying storage):
 * the one retry loop there is. Backends make one attempt and mark errors `transient`; the SDKs' own
 * retry policies are off, so attempts do not multiply and fault tests see exactly what happened.
 *
 * Rules (also stated in the Backend contract, backend.ts):
 * - only errors marked transient are retried; anything else is final at once;
 * - exponential backoff with full jitter (a random wait up to base × 2^(attempt-1), capped), so writers
 *   that failed together do not retry together; bounded by attempts and by elapsed time;
 * - the wait is cut short by the call's signal: INTERRUPTED at once;
 * - giving up rethrows the last error with "after N attempts" appended, no longer transient (so a step
 *   that gave up does not have its whole upload retried as well);
 * - each request of a multi-part upload is retried alone (SaveOptions.eachStep, see `runStep`);
 * - a write-once save that answers ALREADY_EXISTS after an earlier attempt failed transiently may be
 *   meeting its own first attempt, which landed with its answer lost: the object is loaded and, if its
 *   bytes are ours, the save succeeded (the lost-write check);
 * - a listing that fails is restarted from the beginning, skipping names already yielded.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { LifeboatError, isLifeboatError, isTransient } from '../../errors.ts';
import { interrupted, type Backend, type Handle, type StepRunner, type SaveOptions } from '../backend.ts';
import { BackendWrapper, describe, type Attempt, type Call, type Listing } from './wrapper.ts';

export interface RetryPolicy {
  /** Total attempts including the first (default 6). */
  maxAttempts: number;
  /** Upper bound of the first backoff in ms (default 200); doubles per attempt. */
  baseDelayMs: number;
  /** Cap for one backoff in ms (default 10 s). */
  maxDelayMs: number;
  /** No further attempt once this much time would have passed since the first (default 2 min). */
  maxElapsedMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxElapsedMs: 120_000,
};

export interface RetryOptions extends Partial<RetryPolicy> {
  /** Waits `ms`, rejecting once `signal` fires; tests pass a fake one that returns at once. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  /** In [0, 1): the jitter. */
  random?: () => number;
}

export class RetryingBackend extends BackendWrapper {
  readonly policy: RetryPolicy;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(inner: Backend, options: RetryOptions = {}) {
    super(inner);
    const { sleep, now, random, ...policy } = options;
    this.policy = { ...DEFAULT_RETRY, ...policy };
    this.sleep = sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
    this.now = now ?? Date.now;
    this.random = random ?? Math.random;
  }

  protected async call<T>(call: Call, attempt: Attempt<T>): Promise<T> {
    const started = this.now();
    for (let n = 1; ; n++) {
      try {
        return await attempt(call.signal);
      } catch (e) {
        await this.backOff(call, e, n, started);
      }
    }
  }

  protected async *listing<T>(call: Call, key: (entry: T) => string, open: Listing<T>): AsyncIterable<T> {
    // A backend cannot resume a listing from the outside; restarting it is safe because the caller
    // only ever sees each name once (restic's RetryBackend.List does the same).
    const yielded = new Set<string>();
    const started = this.now();
    for (let n = 1; ; n++) {
      try {
        for await (const entry of open(call.signal)) {
          const k = key(entry);
          if (yielded.has(k)) continue;
          yielded.add(k);
          yield entry;
        }
        return;
      } catch (e) {
        await this.backOff(call, e, n, started);
      }
    }
  }

  override save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    // Set once an attempt or a step failed in a way that says nothing about whether it was stored.
    let mayHaveLanded = false;
    const noting = async <T>(request: Promise<T>): Promise<T> => {
      try {
        return await request;
      } catch (e) {
        if (isTransient(e)) mayHaveLanded = true;
        throw e;
      }
    };
    const eachStep: StepRunner = (step, request) => this.call(step, (signal) => noting(request(signal)));
    return this.call(
      { what: `save ${describe(h)}`, signal: options.signal, bytes: data.byteLength },
      async (signal) => {
        try {
          await noting(this.inner.save(h, data, { ...options, signal, eachStep }));
        } catch (e) {
          const lostWrite = mayHaveLanded && !options.overwrite && isLifeboatError(e, 'ALREADY_EXISTS');
          if (lostWrite && (await this.holds(h, data, signal))) return;
          throw e;
        }
      },
    );
  }

  /** The lost-write check: is what is stored under `h` byte for byte `data`? */
  private async holds(h: Handle, data: Uint8Array, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      const stored = await this.load(h, undefined, { signal });
      return Buffer.compare(stored, data) === 0;
    } catch (e) {
      // Gone again (a concurrent remove): not ours to claim. Anything else: the outcome is unknown.
      if (isLifeboatError(e, 'NOT_FOUND')) return false;
      throw e;
    }
  }

  /** After attempt `n` failed with `e`: waits for the next attempt, or throws if there is none. */
  private async backOff(call: Call, e: unknown, n: number, started: number): Promise<void> {
    if (call.signal?.aborted) throw interrupted(call.signal, call.what);
    if (!isTransient(e)) throw e;
    const { maxAttempts, baseDelayMs, maxDelayMs, maxElapsedMs } = this.policy;
    const wait = this.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
    if (n >= maxAttempts || this.now() - started + wait > maxElapsedMs) throw gaveUp(e as LifeboatError, n);
    try {
      await this.sleep(wait, call.signal);
    } catch (sleepError) {
      throw call.signal?.aborted ? interrupted(call.signal, call.what) : sleepError;
    }
  }
}

/** The last error, saying how hard we tried. */
function gaveUp(e: LifeboatError, attempts: number): LifeboatError {
  return new LifeboatError(e.code, `${e.message} after ${attempts} attempt${attempts === 1 ? '' : 's'}`, {
    hint: e.hint,
    details: e.details,
    cause: e,
  });
}
