/**
 * Retries for cloud backends. The Backend contract says transient failures are retried *inside* the
 * backend, so every cloud call goes through `withRetry`: exponential backoff with full jitter, bounded by
 * attempts and by elapsed time. The SDKs' own retry policies are turned off (maxTries/maxAttempts 1) so
 * there is exactly one retry loop to reason about and to test with the fault proxy.
 */

export interface RetryOptions {
  /** Total attempts including the first (default 6). */
  maxAttempts?: number;
  /** First backoff in ms (default 200); doubles per attempt. */
  baseDelayMs?: number;
  /** Cap for one backoff in ms (default 10 s). */
  maxDelayMs?: number;
  /** Give up once this much time has passed since the first attempt (default 2 min). */
  maxElapsedMs?: number;
}

export interface RetryState {
  /** 1 for the first attempt. */
  attempt: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = {
  maxAttempts: 6,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxElapsedMs: 120_000,
};

/**
 * Runs `fn` until it succeeds, `isTransient` says an error is final, or the budget runs out. The last
 * error is rethrown unchanged; callers map it afterwards (they know how many attempts were made from
 * the `onFinalError` argument).
 */
export async function withRetry<T>(
  fn: (state: RetryState) => Promise<T>,
  isTransient: (e: unknown) => boolean,
  options: RetryOptions = {},
): Promise<T> {
  const o = { ...DEFAULT_RETRY, ...options };
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn({ attempt });
    } catch (e) {
      if (!isTransient(e) || attempt >= o.maxAttempts) throw annotate(e, attempt);
      const backoff = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
      // Full jitter: concurrent writers that failed together do not retry together.
      const delay = Math.random() * backoff;
      if (Date.now() - started + delay > o.maxElapsedMs) throw annotate(e, attempt);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Attempts made before the error was given up on; read by the backends' error mapping. */
export const ATTEMPTS = Symbol('lifeboat.attempts');

function annotate(e: unknown, attempt: number): unknown {
  if (e !== null && typeof e === 'object') (e as Record<symbol, unknown>)[ATTEMPTS] = attempt;
  return e;
}

export function attemptsOf(e: unknown): number {
  return (e !== null && typeof e === 'object' && ((e as Record<symbol, unknown>)[ATTEMPTS] as number)) || 1;
}

/** Network-level failures that say nothing about whether the server acted: always worth another try. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'REQUEST_SEND_ERROR',
  'TimeoutError',
  'RequestTimeout',
]);

export function networkCodeOf(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 5; depth++) {
    const c = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof c.code === 'string' && NETWORK_CODES.has(c.code)) return c.code;
    if (typeof c.name === 'string' && NETWORK_CODES.has(c.name)) return c.name;
    if (typeof c.name === 'string' && c.name === 'AbortError') return 'ETIMEDOUT';
    cur = c.cause;
  }
  const msg = String((e as Error)?.message ?? '');
  const m = /\b(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|socket hang up)\b/.exec(msg);
  if (m) return m[1] === 'socket hang up' ? 'ECONNRESET' : m[1];
  return undefined;
}
