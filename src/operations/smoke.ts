/**
 * The application smoke test after a recovery or drill: an HTTP GET of a URL (Rocket.Chat's `/api/info`
 * by default) that must answer 2xx within a timeout, optionally with a JSON body holding a field
 * (`success: true` for Rocket.Chat). Retried until `waitMs` runs out, because a restarted app takes a
 * while to come up.
 */
import { LifeboatError } from '../core/errors.ts';

export interface SmokeTest {
  url: string;
  /** Dot path into the JSON answer that must be truthy, e.g. `success`. */
  expectField?: string;
  /** Per request. */
  timeoutMs?: number;
  /** Keep trying until this long has passed. */
  waitMs?: number;
}

export interface SmokeResult {
  url: string;
  status: number;
  attempts: number;
  durationMs: number;
  /** `version` of a Rocket.Chat answer, when it has one. */
  version?: string;
}

/** What drills and recoveries record of a smoke test: the same fields in both records. */
export function smokeSummary(r: SmokeResult): Record<string, string | number> {
  return { url: r.url, status: r.status, attempts: r.attempts, ...(r.version ? { version: r.version } : {}) };
}

function field(value: unknown, dotPath: string): unknown {
  let v = value;
  for (const part of dotPath.split('.'))
    v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

export async function runSmokeTest(test: SmokeTest, signal?: AbortSignal): Promise<SmokeResult> {
  const started = Date.now();
  const waitMs = test.waitMs ?? 120_000;
  let attempts = 0;
  let last: string;
  for (;;) {
    attempts++;
    try {
      const answer = await fetch(test.url, {
        signal: AbortSignal.any([AbortSignal.timeout(test.timeoutMs ?? 10_000), ...(signal ? [signal] : [])]),
        headers: { accept: 'application/json' },
      });
      const text = await answer.text();
      if (answer.ok) {
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        if (!test.expectField || field(body, test.expectField)) {
          const version = field(body, 'version') ?? field(body, 'info.version');
          return {
            url: test.url,
            status: answer.status,
            attempts,
            durationMs: Date.now() - started,
            version: typeof version === 'string' ? version : undefined,
          };
        }
        last = `answered ${answer.status} without a truthy "${test.expectField}"`;
      } else last = `answered ${answer.status} ${answer.statusText}`;
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      last = (e as Error).cause ? String(((e as Error).cause as Error).message) : (e as Error).message;
    }
    if (Date.now() - started + 2_000 > waitMs)
      throw new LifeboatError(
        'VERIFY_FAILED',
        `smoke test ${test.url} failed after ${attempts} attempt(s): ${last}`,
        {
          hint: 'check that the application is running and its URL is right (smoke-test url in lifeboat.yaml)',
        },
      );
    await new Promise((r) => setTimeout(r, 2_000));
  }
}
