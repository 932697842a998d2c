/**
 * A Clock (src/core/clock.ts) that moves only when a test says so: `advance(ms)` runs every `every`
 * callback that falls due, in time order, and lets the promises they start settle before moving on — so
 * "the lock refresh fails for 25 minutes" runs in milliseconds and deterministically.
 */
import type { Clock } from '../../src/core/clock.ts';

interface Timer {
  due: number;
  interval: number;
  fn: () => void;
}

/** 2025-01-01T00:00:00Z: a fixed start, so lock times in a test do not depend on the real date. */
export const FAKE_EPOCH = Date.UTC(2025, 0, 1);

export class FakeClock implements Clock {
  private time: number;
  private timers: Timer[] = [];

  constructor(start = FAKE_EPOCH) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  every(ms: number, fn: () => void): () => void {
    if (!(ms > 0)) throw new Error(`FakeClock.every: interval must be positive, got ${ms}`);
    const timer: Timer = { due: this.time + ms, interval: ms, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Timers still running (not stopped). */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing each due callback at its own due time (earliest first; ties in
   * the order they were registered), and settling after each so that what it started (a lock refresh
   * through the backend) has finished before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      const next = this.timers.reduce<Timer | undefined>((a, t) => (!a || t.due < a.due ? t : a), undefined);
      if (!next || next.due > target) break;
      this.time = next.due;
      next.due += next.interval;
      next.fn();
      await settle();
    }
    this.time = target;
    await settle();
  }
}

/**
 * Lets pending promise chains run: several turns of the event loop, each draining the microtask queue.
 * In-memory backends answer within a turn, so a handful is plenty.
 */
export async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}
