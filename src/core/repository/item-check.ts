/**
 * How Repository.readItem verifies what it reads back: each blob against its id (HMAC-SHA-256, before
 * the blob is handed on), and the whole item against its SHA-256 (before the last blob is). Both hashes
 * need nothing but the opened bytes, so a large item's are computed on worker threads
 * (item-verify-worker.ts) while the main thread fetches, opens and writes: the two hashes were half of
 * a restore's main-thread time. Small items, and items of database records (16 KiB blobs, where a
 * message per blob costs more than hashing it), are verified here.
 */
import { createHash } from 'node:crypto';
import { chunkId } from '../crypto.ts';
import { LifeboatError } from '../errors.ts';
import { discard, discardFrees } from '../memory.ts';
import { WorkerPool, workerCount, workerEntry } from '../workers.ts';
import type { ItemVerifyRequest, ItemVerifyResult } from './item-verify-worker.ts';
import type { Item } from './model.ts';

/** A blob opened (decrypted, decompressed, of its recorded length) but not yet checked against its id. */
export interface OpenedBlob {
  plain: Buffer;
  /** Names the blob and its pack in errors. */
  what: string;
}

/** One item's verification, fed its blobs in the item's order. */
export interface ItemCheck {
  /**
   * The blob's bytes once they match `id`, added to the item's SHA-256 in the order `add` was called
   * (whatever order the blobs open in); INTEGRITY if they do not match.
   */
  add(opened: Promise<OpenedBlob>, id: string): Promise<Buffer>;
  /** The item's SHA-256 (hex), once every blob added has been hashed. */
  digest(): Promise<string>;
  /** Gives up an item read only in part. */
  drop(): void;
}

/** Items from this size on, not made of records, are verified on the workers. */
export const VERIFY_ON_WORKERS_MIN_BYTES = 1024 * 1024;
/** On 2 cores, two workers: the main thread's fetching and writing leave room for both. */
const MAX_VERIFY_WORKERS = 2;
/**
 * Blobs sent ahead to each worker: one at a time, a worker waited for the main thread between blobs
 * (each takes it under a millisecond), and both workers were idle a third of a restore.
 */
const VERIFY_DEPTH = 4;

export function blobMismatch(what: string): LifeboatError {
  return new LifeboatError('INTEGRITY', `${what} does not match its id`, {
    hint: 'run `lifeboat check --read-data`',
  });
}

/** Throws INTEGRITY (freeing the bytes) unless `plain` is the blob named `id`. */
export function checkBlobId(idKey: Buffer, plain: Buffer, id: string, what: string): Buffer {
  if (chunkId(idKey, plain) === id) return plain;
  discard(plain);
  throw blobMismatch(what);
}

/** Both hashes on the calling thread. */
export class LocalItemCheck implements ItemCheck {
  private readonly hash = createHash('sha256');
  private last: Promise<unknown> = Promise.resolve();
  private readonly idKey: Buffer;

  constructor(idKey: Buffer) {
    this.idKey = idKey;
  }

  add(opened: Promise<OpenedBlob>, id: string): Promise<Buffer> {
    // After the blob before it, so the item's hash sees the bytes in order.
    const verified = Promise.all([opened, this.last]).then(([{ plain, what }]) => {
      this.hash.update(checkBlobId(this.idKey, plain, id, what));
      return plain;
    });
    verified.catch(() => {});
    this.last = verified;
    return verified;
  }

  async digest(): Promise<string> {
    await this.last;
    return this.hash.digest('hex');
  }

  drop(): void {}
}

/**
 * Both hashes on one worker of the pool (the item's SHA-256 needs the bytes in order, and a worker runs
 * the requests pinned to it in the order they were sent). Each blob's memory moves there and back.
 */
class WorkerItemCheck implements ItemCheck {
  /** Settles once the last blob added has been sent to the worker (not once it is verified). */
  private sent: Promise<unknown> = Promise.resolve();
  private readonly pool: WorkerPool<ItemVerifyRequest, ItemVerifyResult>;
  private readonly item: number;
  private readonly worker: number;
  private readonly done: () => void;

  /** `done` runs once, when the item is digested or dropped. */
  constructor(
    pool: WorkerPool<ItemVerifyRequest, ItemVerifyResult>,
    item: number,
    worker: number,
    done: () => void,
  ) {
    this.pool = pool;
    this.item = item;
    this.worker = worker;
    this.done = done;
  }

  add(opened: Promise<OpenedBlob>, id: string): Promise<Buffer> {
    const sent = Promise.all([opened, this.sent]).then(([{ plain, what }]) => {
      // Only a buffer of its own can move (openBlob's large results are); a small one may be a slice
      // of Node's shared pool, and is copied.
      const own = plain.buffer instanceof ArrayBuffer && discardFrees(plain.buffer.byteLength);
      const bytes = own ? plain : new Uint8Array(plain);
      const buffer = bytes.buffer as ArrayBuffer;
      const request: ItemVerifyRequest = {
        op: 'verify',
        item: this.item,
        id,
        buffer,
        offset: bytes.byteOffset,
        length: bytes.byteLength,
      };
      return { what, verdict: this.pool.run(request, [buffer], this.worker) };
    });
    sent.catch(() => {});
    this.sent = sent;
    const verified = sent.then(async ({ what, verdict }) => {
      const result = (await verdict) as Exclude<ItemVerifyResult, string>;
      const plain = Buffer.from(result.buffer, result.offset, result.length);
      if (result.matches) return plain;
      discard(plain);
      throw blobMismatch(what);
    });
    verified.catch(() => {});
    return verified;
  }

  async digest(): Promise<string> {
    await this.sent;
    try {
      return (await this.pool.run({ op: 'digest', item: this.item }, [], this.worker)) as string;
    } finally {
      this.done();
    }
  }

  drop(): void {
    // Once the blobs sent so far are done with; a pool already closed has forgotten the item anyway.
    void this.sent
      .catch(() => {})
      .then(() => this.pool.run({ op: 'drop', item: this.item }, [], this.worker))
      .catch(() => {})
      .finally(this.done);
  }
}

/** The checks of one repository's reads, and the workers behind them (started on first use). */
export class ItemChecks {
  private pool: WorkerPool<ItemVerifyRequest, ItemVerifyResult> | undefined;
  /** Items being read, per worker: a new one goes to the least busy. */
  private readonly reading: number[] = [];
  private items = 0;
  private closed = false;
  private readonly idKey: Buffer;

  constructor(idKey: Buffer) {
    this.idKey = idKey;
  }

  for(item: Item): ItemCheck {
    if (this.closed || item.records > 0 || item.size < VERIFY_ON_WORKERS_MIN_BYTES)
      return new LocalItemCheck(this.idKey);
    if (!this.pool) {
      const count = workerCount(MAX_VERIFY_WORKERS);
      const entry = workerEntry('item-verify-worker', import.meta.url);
      this.pool = new WorkerPool(entry, count, { id: this.idKey }, VERIFY_DEPTH);
      this.reading.push(...new Array<number>(count).fill(0));
    }
    const worker = this.reading.indexOf(Math.min(...this.reading));
    this.reading[worker]++;
    let done = false;
    return new WorkerItemCheck(this.pool, this.items++, worker, () => {
      if (!done) this.reading[worker]--;
      done = true;
    });
  }

  /** Stops the workers; a read still running fails (INTERNAL) instead of waiting. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }
}
