/**
 * Gives every attempt a deadline, so a stalled connection becomes a transient failure the retry wrapper
 * (above this one) can act on, instead of a backup that hangs. The deadline reaches the backend through
 * the signal it is handed (the caller's signal combined with the deadline's), so the SDK aborts the
 * request itself; backends must honour that signal.
 *
 * - A call gets `timeoutMs`, plus the time its payload takes at `slowestBytesPerSecond`: a 512 MiB pack
 *   is not cut off after two minutes on a link that is slow but moving. Each request of a multi-part
 *   upload has a deadline of its own, by the same rule, so one stalled part is found out (and retried)
 *   early.
 * - A listing gets `timeoutMs` for each entry it yields (roughly: per page), never for the time its
 *   caller spends between entries.
 * - Running out of time is UNREACHABLE and transient; a caller's abort passes through as INTERRUPTED.
 */
import { LifeboatError } from '../../errors.ts';
import { throwIfAborted, type Backend, type Handle, type StepRunner, type SaveOptions } from '../backend.ts';
import { BackendWrapper, stepwise, type Attempt, type Call, type Listing } from './wrapper.ts';

export interface TimeoutOptions {
  /** Deadline of one request in ms (default 120 s). */
  timeoutMs?: number;
  /** Slowest transfer that is still progress, for a payload's share of the deadline (default 256 KiB/s). */
  slowestBytesPerSecond?: number;
}

export class TimeoutBackend extends BackendWrapper {
  readonly timeoutMs: number;
  readonly slowestBytesPerSecond: number;

  constructor(inner: Backend, options: TimeoutOptions = {}) {
    super(inner);
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.slowestBytesPerSecond = options.slowestBytesPerSecond ?? 256 * 1024;
  }

  override save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const above = options.eachStep;
    // Each attempt at a step gets its own deadline, inside whatever the wrapper above does with steps.
    const eachStep: StepRunner = (step, request) => {
      const timed = (signal: AbortSignal | undefined) => this.call({ ...step, signal }, request);
      return above ? above(step, timed) : timed(step.signal);
    };
    return super.save(h, data, { ...options, eachStep });
  }

  protected async call<T>(call: Call, attempt: Attempt<T>): Promise<T> {
    throwIfAborted(call.signal, call.what);
    const ms = this.timeoutMs + ((call.bytes ?? 0) * 1000) / this.slowestBytesPerSecond;
    const deadline = new Deadline(call.signal, () => this.timedOut(call, ms));
    return deadline.run(ms, () => attempt(deadline.signal));
  }

  protected listing<T>(call: Call, _key: (entry: T) => string, open: Listing<T>): AsyncIterable<T> {
    throwIfAborted(call.signal, call.what);
    const deadline = new Deadline(call.signal, () => this.timedOut(call, this.timeoutMs));
    return stepwise(open(deadline.signal), (next) => deadline.run(this.timeoutMs, next));
  }

  private timedOut(call: Call, ms: number): LifeboatError {
    return new LifeboatError(
      'UNREACHABLE',
      `${call.what} in ${this.location}: no answer within ${formatDuration(ms)}`,
      {
        hint: 'the storage endpoint stalled: check the network path to it and that the service is up',
        transient: true,
      },
    );
  }
}

/**
 * An abort signal that fires with a timeout error when a step runs past its time, combined with the
 * caller's. The error is the abort reason, so a backend that reports `interrupted(signal)` reports it.
 */
class Deadline {
  readonly signal: AbortSignal;
  private readonly expiry = new AbortController();
  private readonly caller: AbortSignal | undefined;
  private readonly error: () => LifeboatError;

  constructor(caller: AbortSignal | undefined, error: () => LifeboatError) {
    this.caller = caller;
    this.error = error;
    this.signal = caller ? AbortSignal.any([caller, this.expiry.signal]) : this.expiry.signal;
  }

  async run<T>(ms: number, step: () => Promise<T>): Promise<T> {
    const timer = setTimeout(() => this.expiry.abort(this.error()), ms);
    try {
      return await step();
    } catch (e) {
      // Whatever the backend made of its aborted request, it was our deadline, not the caller.
      if (this.expiry.signal.aborted && !this.caller?.aborted) throw this.expiry.signal.reason;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}
