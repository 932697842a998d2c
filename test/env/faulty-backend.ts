/**
 * A Backend wrapper that fails on cue, after kopia's `internal/blobtesting/faulty.go`: rules pick calls by
 * method, object type, name and position, and make them throw a given LifeboatError, "crash" (throw, and
 * every later call fails too: the process died there), or hang until the test releases them.
 *
 * Every call is counted and logged, so a test can run an operation once cleanly to learn how many backend
 * calls it makes, then run it again failing at call #1, #2, … #N:
 *
 *   const probe = new FaultyBackend(base.clone());
 *   await operation(probe);
 *   for (let k = 1; k <= probe.calls; k++) {
 *     const faulty = new FaultyBackend(base.clone());
 *     const rule = faulty.fail({ nth: k }, new LifeboatError('UNREACHABLE', 'injected'));
 *     await assert.rejects(operation(faulty), rule.error);
 *   }
 *
 * Faults apply where the call enters this wrapper. By default the inner call is never made, so a failed
 * save leaves no object (an interrupted save, per the contract). With `after: true` the inner call runs
 * first and only its reply is lost: the save landed, but the caller was told it failed.
 */
import { LifeboatError } from '../../src/core/errors.ts';
import {
  interrupted,
  throwIfAborted,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from '../../src/core/storage/backend.ts';

export type Method =
  'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'listLeftovers' | 'removeLeftover' | 'close';

/** One call as it reached the wrapper. */
export interface Call {
  /** 1-based position among all calls made through this wrapper. */
  seq: number;
  method: Method;
  /** Unset for create, close and the leftover methods. */
  type?: ObjectType;
  name?: string;
  /** How the call ended: still running, passed on and succeeded, or failed (by a fault or the inner). */
  outcome: 'pending' | 'ok' | 'failed';
}

/** Which calls a rule applies to; every given field must match. */
export interface Match {
  method?: Method | Method[];
  type?: ObjectType | ObjectType[];
  name?: (name: string) => boolean;
  /** Only the nth call (1-based) that matches method/type/name, e.g. `{ nth: 7 }`: the 7th call of all. */
  nth?: number;
  /** The rule fires at most this many times (default: once with `nth`, else on every match). */
  times?: number;
  /** Run the inner call first, then fail (the reply was lost; a save has landed). */
  after?: boolean;
}

export type Action =
  { kind: 'throw'; error: LifeboatError } | { kind: 'crash'; error: LifeboatError } | { kind: 'hang' };

export class FaultRule {
  readonly match: Match;
  readonly action: Action;
  /** Calls seen that match method/type/name (`nth` counts these). */
  matched = 0;
  /** Calls it acted on. */
  readonly hits: Call[] = [];
  private resolveReached!: (call: Call) => void;
  /** Resolves with the first call the rule acted on (for `hang`: that call is now waiting). */
  readonly reached: Promise<Call> = new Promise((r) => (this.resolveReached = r));
  private readonly waiting = new Set<() => void>();
  private released = false;

  constructor(match: Match, action: Action) {
    this.match = match;
    this.action = action;
  }

  /** The error this rule injects (`throw` and `crash`). */
  get error(): LifeboatError {
    if (this.action.kind === 'hang') throw new Error('a hang rule injects no error');
    return this.action.error;
  }

  /** Lets every call held by a `hang` rule continue, now and later. */
  release(): void {
    this.released = true;
    for (const go of this.waiting) go();
    this.waiting.clear();
  }

  /** Whether the rule would act on the call (nth, times); counts the call if it matches at all. */
  wants(call: Call): boolean {
    const m = this.match;
    if (m.method && !oneOf(m.method, call.method)) return false;
    if (m.type && (!call.type || !oneOf(m.type, call.type))) return false;
    if (m.name && (call.name === undefined || !m.name(call.name))) return false;
    this.matched++;
    if (m.nth !== undefined && this.matched !== m.nth) return false;
    return this.hits.length < (m.times ?? (m.nth !== undefined ? 1 : Infinity));
  }

  /** Records that the rule acts on the call. */
  take(call: Call): void {
    this.hits.push(call);
    if (this.hits.length === 1) this.resolveReached(call);
  }

  /** Holds a call until `release()`; rejects with INTERRUPTED if its signal fires first. */
  wait(signal: AbortSignal | undefined, what: string): Promise<void> {
    if (this.released) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiting.delete(go);
        reject(interrupted(signal, what));
      };
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.add(go);
    });
  }
}

async function toArray<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function oneOf<T>(want: T | T[], got: T): boolean {
  return Array.isArray(want) ? want.includes(got) : want === got;
}

export class FaultyBackend implements Backend {
  readonly inner: Backend;
  /** Every call so far, in order. */
  readonly log: Call[] = [];
  private rules: FaultRule[] = [];
  /** Set once a crash rule fired: every call from then on fails with it. */
  private crashedWith: LifeboatError | undefined;

  constructor(inner: Backend) {
    this.inner = inner;
  }

  get location(): string {
    return `faulty:${this.inner.location}`;
  }

  /** Number of calls so far, optionally of one method and/or object type. */
  count(method?: Method, type?: ObjectType): number {
    return this.log.filter((c) => (!method || c.method === method) && (!type || c.type === type)).length;
  }

  /** Number of calls so far. */
  get calls(): number {
    return this.log.length;
  }

  get crashed(): boolean {
    return this.crashedWith !== undefined;
  }

  /** Matching calls throw `error` (once with `nth`, else every time). */
  fail(match: Match, error: LifeboatError): FaultRule {
    return this.add(new FaultRule(match, { kind: 'throw', error }));
  }

  /** The process "dies" at the matching call: it and every later call throw `error`. */
  crash(match: Match, error = new LifeboatError('INTERRUPTED', 'simulated crash')): FaultRule {
    return this.add(new FaultRule(match, { kind: 'crash', error }));
  }

  /** Matching calls wait until `rule.release()` (or their signal fires). */
  hang(match: Match): FaultRule {
    return this.add(new FaultRule(match, { kind: 'hang' }));
  }

  /** Drops every rule (releasing hung calls) and the crash state: the storage works again. */
  clear(): void {
    for (const r of this.rules) r.release();
    this.rules = [];
    this.crashedWith = undefined;
  }

  private add(rule: FaultRule): FaultRule {
    this.rules.push(rule);
    return rule;
  }

  /**
   * Runs one call through the rules. Every rule sees every call (so each counts its matches, for `nth`);
   * the first that wants to act on it does.
   */
  private async run<T>(
    method: Method,
    h: { type?: ObjectType; name?: string },
    signal: AbortSignal | undefined,
    inner: () => Promise<T>,
  ): Promise<T> {
    const call: Call = { seq: this.log.length + 1, method, ...h, outcome: 'pending' };
    this.log.push(call);
    try {
      const result = await this.decide(call, signal, inner);
      call.outcome = 'ok';
      return result;
    } catch (e) {
      call.outcome = 'failed';
      throw e;
    }
  }

  private async decide<T>(call: Call, signal: AbortSignal | undefined, inner: () => Promise<T>): Promise<T> {
    if (this.crashedWith) throw this.crashedWith;
    let fired: FaultRule | undefined;
    for (const rule of this.rules) if (rule.wants(call) && !fired) fired = rule;
    if (!fired) return inner();
    fired.take(call);
    const what = `${call.method} ${call.type ?? ''}/${call.name ?? ''}`;
    const { action } = fired;
    if (action.kind === 'hang') {
      await fired.wait(signal, what);
      throwIfAborted(signal, what);
      return inner();
    }
    if (fired.match.after) await inner();
    if (action.kind === 'crash') this.crashedWith = action.error;
    throw action.error;
  }

  create(options?: CallOptions): Promise<void> {
    return this.run('create', {}, options?.signal, () => this.inner.create(options));
  }
  save(h: Handle, data: Uint8Array, options?: SaveOptions): Promise<void> {
    return this.run('save', h, options?.signal, () => this.inner.save(h, data, options));
  }
  load(h: Handle, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    return this.run('load', h, options?.signal, () => this.inner.load(h, range, options));
  }
  stat(h: Handle, options?: CallOptions): Promise<ObjectInfo> {
    return this.run('stat', h, options?.signal, () => this.inner.stat(h, options));
  }
  /** A listing counts as one call, decided before its first entry; its entries come from the inner. */
  async *list(type: ObjectType, options?: CallOptions): AsyncIterable<ObjectInfo> {
    yield* await this.run('list', { type }, options?.signal, () => toArray(this.inner.list(type, options)));
  }
  remove(h: Handle, options?: CallOptions): Promise<void> {
    return this.run('remove', h, options?.signal, () => this.inner.remove(h, options));
  }
  get listLeftovers(): Backend['listLeftovers'] {
    const inner = this.inner;
    if (!inner.listLeftovers) return undefined;
    const collect = (options?: CallOptions) =>
      this.run('listLeftovers', {}, options?.signal, () => toArray(inner.listLeftovers!(options)));
    return async function* (options?: CallOptions) {
      yield* await collect(options);
    };
  }
  get removeLeftover(): Backend['removeLeftover'] {
    const inner = this.inner;
    if (!inner.removeLeftover) return undefined;
    return (id: string, options?: CallOptions) =>
      this.run('removeLeftover', { name: id }, options?.signal, () => inner.removeLeftover!(id, options));
  }
  close(): Promise<void> {
    return this.run('close', {}, undefined, () => this.inner.close());
  }
}
