/**
 * One webhook POST with retries: 429, 5xx and connection errors (and a request that timed out) are tried
 * again with exponential backoff, honouring Retry-After (seconds or an HTTP date, at most
 * MAX_RETRY_AFTER_MS); any other status is final. The URL is a credential (Slack and Teams URLs carry
 * their token): it never appears in a result, an error or a log line.
 */
export interface PostOptions {
  timeoutMs: number;
  retries: number;
  /** First backoff; doubled per retry up to MAX_BACKOFF_MS. */
  backoffMs?: number;
}

export interface PostResult {
  ok: boolean;
  status?: number;
  attempts: number;
  error?: string;
}

const MAX_BACKOFF_MS = 30_000;
const MAX_RETRY_AFTER_MS = 60_000;

function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const t = Date.parse(header);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function postJson(url: string, body: unknown, options: PostOptions): Promise<PostResult> {
  const payload = JSON.stringify(body);
  let backoff = options.backoffMs ?? 500;
  let attempts = 0;
  for (;;) {
    attempts++;
    let wait: number | undefined;
    let outcome: PostResult;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'lifeboat' },
        body: payload,
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      });
      const text = await res.text().catch(() => '');
      if (res.ok) return { ok: true, status: res.status, attempts };
      outcome = {
        ok: false,
        status: res.status,
        attempts,
        error: `HTTP ${res.status}${text ? `: ${text.slice(0, 200).replace(/\s+/g, ' ')}` : ''}`,
      };
      if (res.status !== 429 && res.status < 500) return outcome;
      wait = retryAfterMs(res.headers.get('retry-after'), Date.now());
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const timedOut = err.name === 'TimeoutError' || err.name === 'AbortError';
      outcome = {
        ok: false,
        attempts,
        error: timedOut
          ? `no answer within ${options.timeoutMs} ms`
          : `connection failed: ${err.cause?.code ?? err.cause?.message ?? err.message}`,
      };
    }
    if (attempts > options.retries) return outcome;
    await sleep(Math.min(wait ?? backoff, wait !== undefined ? MAX_RETRY_AFTER_MS : MAX_BACKOFF_MS));
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}
