/**
 * Time as the core sees it. Locks refresh and go stale on this clock; tests pass a FakeClock
 * (test/env/fake-clock.ts) so that a lock refresh failing for half an hour takes milliseconds.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` every `ms` until the returned function is called. Must not keep the process alive. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};
