/**
 * The retry loop for calls that are not storage backends (the Kubernetes client): the same rules as the
 * storage RetryingBackend (storage/wrappers/retrying.ts), so every peer is retried alike — only errors
 * marked transient, exponential backoff with full jitter bounded by attempts and elapsed time, cut short
 * by the signal, and "after N attempts" on the error that made us give up.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { LifeboatError, isTransient } from './errors.ts';
import { DEFAULT_RETRY, type RetryOptions } from './storage/wrappers/retrying.ts';

export interface RetryCallOptions extends RetryOptions {
  signal?: AbortSignal;
  /** A server's own wait (Retry-After), in ms, for the attempt that failed; replaces the jittered backoff. */
  waitFor?: (e: unknown) => number | undefined;
}

export async function withRetry<T>(
  attempt: (n: number) => Promise<T>,
  opts: RetryCallOptions = {},
): Promise<T> {
  const { sleep, now = Date.now, random = Math.random, signal, waitFor, ...rest } = opts;
  const policy = { ...DEFAULT_RETRY, ...rest };
  const pause = sleep ?? ((ms: number, s?: AbortSignal) => delay(ms, undefined, { signal: s }));
  const started = now();
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      if (!isTransient(e) || signal?.aborted) throw e;
      const wait = waitFor?.(e) ?? random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      if (n >= policy.maxAttempts || now() - started + wait > policy.maxElapsedMs) {
        const le = e as LifeboatError;
        throw new LifeboatError(le.code, `${le.message} after ${n} attempts`, {
          hint: le.hint,
          details: le.details,
          cause: e,
        });
      }
      await pause(wait, signal);
    }
  }
}
