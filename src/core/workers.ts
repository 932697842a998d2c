/**
 * A few worker threads for CPU-bound work the main thread would otherwise do alone (cutting and sealing
 * a backup's chunks, verifying packs).
 * Node runs JavaScript on one thread; libuv's pool only takes the native calls handed to it one by one,
 * and each hop costs main-thread time. A worker takes a whole task (the blobs of a 4 MiB pack range:
 * decrypt, decompress, re-hash) and the main thread is left with the I/O.
 *
 * One task per worker at a time, the rest queued in order; or, for short tasks, a few sent ahead to
 * each worker (`depth`), so it never waits for the main thread to send the next. Inputs are moved, not
 * copied, when they own their memory (`movable`). A worker that dies fails its tasks and every queued
 * one: the pool is then broken and says why, instead of hanging.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { LifeboatError } from './errors.ts';

/** What a worker entry posts back for each task. */
export type WorkerReply<R> = { id: number; value: R } | { id: number; error: string };

interface Task<Q, R> {
  id: number;
  request: Q;
  transfer: ArrayBuffer[];
  /** The worker this task must run on (it keeps state for it), or any. */
  pin: number | undefined;
  resolve: (value: R) => void;
  reject: (e: unknown) => void;
}

interface Slot<Q, R> {
  worker: Worker;
  /** Sent to the worker and not answered yet, oldest first. */
  tasks: Task<Q, R>[];
}

/**
 * The worker entry for a module of this folder, as the running code names it: `.ts` when the sources
 * run (tests, a checkout), `.js` from dist/ (the package, the image, the bench).
 */
export function workerEntry(name: string, base: string): URL {
  return new URL(`./${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base);
}

/** One worker per core, at most `max`: on 2 cores, two workers keep both busy while the main thread reads. */
export function workerCount(max: number): number {
  return Math.max(1, Math.min(max, availableParallelism()));
}

export class WorkerPool<Q, R> {
  private readonly slots: Slot<Q, R>[] = [];
  private readonly queue: Task<Q, R>[] = [];
  private nextId = 0;
  private broken: LifeboatError | undefined;
  private closed = false;
  private readonly depth: number;

  /**
   * `depth` tasks at most are sent to a worker at once. Above 1, a task may wait behind another on a busy
   * worker while one is free: for tasks of a fraction of a millisecond, pinned ones above all.
   */
  constructor(entry: URL, size: number, workerData: unknown, depth = 1) {
    this.depth = depth;
    for (let i = 0; i < size; i++) {
      const slot: Slot<Q, R> = { worker: new Worker(entry, { workerData }), tasks: [] };
      // An idle worker never keeps the process alive (a pool nobody closed); a busy one does.
      slot.worker.unref();
      slot.worker.on('message', (reply: WorkerReply<R>) => this.settle(slot, reply));
      slot.worker.on('error', (e) => this.fail(`a worker thread failed: ${e.message}`));
      slot.worker.on('exit', (code) => {
        if (!this.closed) this.fail(`a worker thread exited (code ${code})`);
      });
      this.slots.push(slot);
    }
  }

  /**
   * Runs `request` on the next free worker, or on worker `pin` when it keeps state for a series of
   * requests (those then run in order); `transfer` lists buffers moved to it (unusable here after).
   */
  run(request: Q, transfer: ArrayBuffer[] = [], pin?: number): Promise<R> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new LifeboatError('INTERNAL', 'worker pool already closed'));
    if (pin !== undefined && !(pin >= 0 && pin < this.slots.length))
      return Promise.reject(
        new LifeboatError('INTERNAL', `no worker ${pin} in a pool of ${this.slots.length}`),
      );
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, transfer, pin, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops the workers; a task still running or queued (its caller gave up on it) is rejected. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.fail('the worker pool was closed before this task ran');
  }

  private dispatch(): void {
    for (const [index, slot] of this.slots.entries()) {
      while (slot.tasks.length < this.depth) {
        // The oldest task this worker may take: pinned here, or to none.
        const next = this.queue.findIndex((t) => t.pin === undefined || t.pin === index);
        if (next < 0) break;
        const task = this.queue.splice(next, 1)[0];
        slot.tasks.push(task);
        slot.worker.ref();
        slot.worker.postMessage({ id: task.id, request: task.request }, task.transfer);
      }
    }
  }

  private settle(slot: Slot<Q, R>, reply: WorkerReply<R>): void {
    const at = slot.tasks.findIndex((t) => t.id === reply.id);
    if (at < 0) return;
    const task = slot.tasks.splice(at, 1)[0];
    if (slot.tasks.length === 0) slot.worker.unref();
    if ('error' in reply) task.reject(new LifeboatError('INTERNAL', reply.error));
    else task.resolve(reply.value);
    this.dispatch();
  }

  private fail(message: string): void {
    this.broken ??= new LifeboatError('INTERNAL', message, {
      hint: 'run the command again; if it fails the same way, report it with --verbose output',
    });
    for (const slot of this.slots) for (const task of slot.tasks.splice(0)) task.reject(this.broken);
    for (const task of this.queue.splice(0)) task.reject(this.broken);
  }
}

/**
 * The buffer to move to a worker: only one that owns all of its ArrayBuffer. A view into a shared
 * allocation (Node pools small Buffers) would take its neighbours' bytes away; it is copied instead.
 */
export function movable(bytes: Uint8Array): ArrayBuffer[] {
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength
    ? [buffer]
    : [];
}

/**
 * Places of any size in one SharedArrayBuffer, taken at the head and given back in any order: how the
 * main thread hands bytes to workers without a copy per message, and without leaving every worker a
 * copy of its own to collect. The tail moves on once the oldest place is given back, so a place that
 * is slow to come back holds up the space after it; `take` waits until there is room.
 */
export class SharedRing {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  private head = 0;
  private tail = 0;
  /** Places in the order taken; `end` is where the tail moves to once this one is the oldest and given back. */
  private readonly places: { offset: number; end: number; given: boolean }[] = [];
  private waiting: (() => void)[] = [];
  private aborted: { reason: unknown } | undefined;

  /** `size` bytes of `buffer` (by default one of its own), from its start. */
  constructor(size: number, buffer = new SharedArrayBuffer(size)) {
    this.buffer = buffer;
    this.bytes = new Uint8Array(buffer, 0, size);
  }

  /** The offset of `length` free bytes, once there are; throws abort's reason once aborted. */
  async take(length: number): Promise<number> {
    if (length > this.bytes.length)
      throw new LifeboatError('INTERNAL', `${length} bytes do not fit a ${this.bytes.length}-byte ring`);
    for (;;) {
      if (this.aborted) throw this.aborted.reason;
      const offset = this.tryTake(length);
      if (offset !== undefined) return offset;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /**
   * Stops every take, waiting or to come, with `reason`: the places it would wait for may never come
   * back (their work failed). Gives still work.
   */
  abort(reason: unknown): void {
    this.aborted ??= { reason };
    this.wake();
  }

  give(offset: number): void {
    const place = this.places.find((p) => p.offset === offset && !p.given);
    if (!place) throw new LifeboatError('INTERNAL', `ring offset ${offset} was not taken`);
    place.given = true;
    while (this.places[0]?.given) this.tail = this.places.shift()!.end;
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }

  private tryTake(length: number): number | undefined {
    if (this.places.length === 0) this.head = this.tail = 0;
    else if (this.head === this.tail) return undefined; // full
    let offset: number;
    if (this.head >= this.tail) {
      // Free: [head, size) and [0, tail). A place that does not fit at the end starts again at 0, and
      // the end stays unused until the tail passes it.
      if (this.bytes.length - this.head >= length) offset = this.head;
      else if (this.tail >= length) offset = 0;
      else return undefined;
    } else {
      if (this.tail - this.head < length) return undefined;
      offset = this.head;
    }
    this.places.push({ offset, end: offset + length, given: false });
    this.head = offset + length;
    return offset;
  }
}
