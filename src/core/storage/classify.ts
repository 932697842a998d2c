/**
 * What the cloud backends share: classifying a failure (see the Backend contract: a backend makes one
 * attempt and says whether the failure is transient; the retry wrapper does the rest), and the deadline
 * of the requests a caller's abort must not cut short.
 */
import type { LifeboatError } from '../errors.ts';
import { interrupted, throwIfAborted } from './backend.ts';

/**
 * One attempt of a cloud request: an abort by the caller reports INTERRUPTED, any other failure goes
 * through the backend's own classification (`mapError`).
 */
export async function attemptOnce<T>(
  what: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
  mapError: (e: unknown, what: string) => LifeboatError,
): Promise<T> {
  throwIfAborted(signal, what);
  try {
    return await fn();
  } catch (e) {
    throw signal?.aborted ? interrupted(signal, what) : mapError(e, what);
  }
}

/**
 * For requests the caller's signal must not cut short, because they start, finish or tidy up
 * server-side state (an upload, its commit) that would otherwise be left half-done or unknown: they
 * are small, and get a deadline of their own instead.
 */
export function ownDeadline(): AbortSignal {
  return AbortSignal.timeout(30_000);
}

/** HTTP answers that say "not now" rather than "no": timeouts, throttling, server trouble. */
export function isTransientStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504
  );
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
