/**
 * The write path (restic's archiver + packer): chunk -> keyed id -> dedup -> compress -> seal -> pack ->
 * upload -> index -> snapshot.
 *
 * Every core works. A large item's bytes go into a ring of shared memory (SharedRing) as they are read;
 * one worker cuts them (CUT_WORKER: the chunkers' state lives there between writes), another hashes
 * the item (HASH_WORKER), any names a chunk (its keyed id) and compresses and seals a new one in place,
 * and the main thread is left with reading, packing and uploading. Small items and database records
 * (chunks under WORKER_MIN_BYTES) are cheaper on the main thread than a hand-off. The ring's places
 * are given back once the chunker, the hash and every chunk in flight are done with them (Placed.holds).
 *
 * Memory is bounded by the ring, MAX_INFLIGHT chunks being sealed, one open pack, and MAX_UPLOADS packs
 * being written, whatever the size of the data.
 */
import { createHash, createHmac } from 'node:crypto';
import { ByteChunker, RecordChunker, type Chunker } from '../chunker.ts';
import { scanMemory } from '../gear.ts';
import { compressPartsSync } from '../compression.ts';
import { chunkId, seal } from '../crypto.ts';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { discard, releaseBuffers } from '../memory.ts';
import { SharedRing, WorkerPool, workerCount, workerEntry } from '../workers.ts';
import type {
  BackupWorkerData,
  BackupWorkerRequest,
  BackupWorkerResult,
  CutChunk,
  CutResult,
} from './backup-worker.ts';
import { PackBuilder, type BlobType } from './pack.ts';
import {
  CHUNKS_PER_LIST,
  INLINE_CHUNKS,
  Repository,
  timestampLabel,
  type IndexedPack,
  type LockHandle,
} from './repository.ts';
import type {
  BackupProgress,
  BackupSession,
  Chunking,
  ExpectedItem,
  Item,
  ItemInput,
  ItemWriter,
  Snapshot,
  SnapshotInput,
} from './model.ts';

/** Chunks being compressed/sealed at once: enough to keep every core busy, bounded for memory. */
const MAX_INFLIGHT = 8;
const MAX_UPLOADS = 2;
/** Index files are written every this many packs, so a long backup's data is findable early. */
const PACKS_PER_INDEX = 64;
/**
 * Uploaded pack bytes between two garbage collections (see releaseBuffers): one per default-sized pack,
 * but not one per pack when packs are small (`init --pack-size 1`, tests), where a full collection per
 * pack would cost more than the backup itself.
 */
const RELEASE_EVERY_BYTES = 16 * 1024 * 1024;
/**
 * Chunks from this size on are compressed and sealed on worker threads (backup-worker.ts). Smaller ones
 * (database records) cost less here than a hand-off.
 */
const WORKER_MIN_BYTES = 64 * 1024;
const MAX_WORKERS = 4;
/** The worker that cuts items: one, since each item's chunker state lives there between its writes. */
const CUT_WORKER = 0;
/**
 * The worker that hashes items (SHA-256), in order, for the same reason: another than the cutting one
 * when there are two, so the cut and the two hashes (the item's, each chunk's id) spread over the cores.
 */
const HASH_WORKER = 1;
/**
 * The shared ring that carries an item's bytes to the workers. It holds the reads the chunker has not
 * cut yet (up to a largest chunk), the chunks in flight, and the next read: 16 MiB, or four of the
 * largest chunks.
 */
const RING_MIN_BYTES = 16 * 1024 * 1024;
/** Items are cut on a worker once they reach this size; smaller ones are likely one chunk. */
const REMOTE_MIN_BYTES = 192 * 1024;
/** Bytes per place in the ring when an item's writes are copied there. */
const RING_PIECE_BYTES = 1024 * 1024;
/** Cut requests of one item queued on the chunking worker: enough to keep it busy. */
const MAX_CUT_REQUESTS = 3;

/**
 * Opens a backup session: the shared lock first, then the index (restic's order), so no prune can
 * delete a pack this session decides it need not write again.
 */
export async function startBackup(repo: Repository, purpose = 'backup'): Promise<BackupSession> {
  const lock = await repo.lock('shared', purpose);
  try {
    await repo.loadIndex();
  } catch (e) {
    await lock.release();
    throw e;
  }
  return new Backup(repo, lock);
}

class Backup implements BackupSession {
  readonly progress: BackupProgress = { bytesProcessed: 0, bytesAdded: 0 };
  readonly repo: Repository;
  private readonly lock: LockHandle;
  private readonly started = Date.now();
  private packer: PackBuilder;
  /** Pack buffers already written, for the next packs to be assembled in (PackBuilder). */
  private readonly spareSpace: Buffer[] = [];
  /** Set while every upload slot is taken (flushPack): settles once one is free. */
  private uploadRoom: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly pending = new Set<string>();
  /** Items' cut replies still being handled (Writer.cut): abort waits for them before it stops the workers. */
  readonly cutting = new Set<Promise<void>>();
  private unindexed: IndexedPack[] = [];
  private uploadedSinceRelease = 0;
  private failure: unknown;
  private closed = false;
  private workers: Workers | undefined;
  private remoteItems = 0;

  constructor(repo: Repository, lock: LockHandle) {
    this.repo = repo;
    this.lock = lock;
    this.packer = this.newPacker();
  }

  /**
   * A pack is flushed once it reaches packSize, so it ends at most one largest chunk later; the rest is
   * room for the header. Allocated once per pack in flight (MAX_UPLOADS + 1), and only touched as used.
   */
  private newPacker(): PackBuilder {
    const { packSize, chunking } = this.repo.config;
    return new PackBuilder(
      this.spareSpace.pop() ?? Buffer.allocUnsafe(packSize + chunking.file.max + 256 * 1024),
    );
  }

  newItem(input: ItemInput, chunking: Chunking, expected?: ExpectedItem): ItemWriter {
    this.assertOpen();
    const params = this.repo.config.chunking[chunking === 'file' ? 'file' : 'records'];
    const chunker =
      chunking === 'file'
        ? new ByteChunker(this.repo.gear, params)
        : new RecordChunker(this.repo.gear, params);
    return new Writer(this, input, chunking, chunker, expected);
  }

  async expectItem(previous: Item): Promise<ExpectedItem | undefined> {
    const chunkIds: string[] = [];
    try {
      for await (const id of this.repo.chunkIds(previous)) chunkIds.push(id);
    } catch (e) {
      // A damaged chunk list: the source reads the data again rather than failing the backup.
      if (isLifeboatError(e, 'INTEGRITY')) return undefined;
      throw e;
    }
    return { size: previous.size, sha256: previous.sha256, chunkIds };
  }

  async addItem(
    input: ItemInput,
    data: AsyncIterable<Uint8Array> | Uint8Array,
    chunking: Chunking,
  ): Promise<Item> {
    const w = this.newItem(input, chunking);
    if (data instanceof Uint8Array) await w.write(data);
    else for await (const part of data) await w.write(part);
    return w.finish();
  }

  async reuseItem(input: ItemInput, previous: Item): Promise<Item | undefined> {
    this.assertOpen();
    // The index was loaded under the shared lock, so no prune can take these blobs away before commit.
    if (!(previous.chunkLists ?? []).every((id) => this.repo.hasBlob(id))) return undefined;
    const content = await this.expectItem(previous);
    if (!content?.chunkIds.every((id) => this.repo.hasBlob(id))) return undefined;
    this.progress.bytesProcessed += previous.size;
    const { chunks, chunkLists, size, sha256, records } = previous;
    return {
      name: input.name,
      kind: input.kind,
      meta: input.meta ?? {},
      size,
      sha256,
      records,
      ...(chunks ? { chunks } : {}),
      ...(chunkLists ? { chunkLists } : {}),
    };
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Records the session's first failure. Every later step throws it, and whatever waits for room in the
   * ring stops waiting: the places it waits for may belong to chunks that will never be stored.
   */
  fail(e: unknown): void {
    this.failure ??= e;
    this.workers?.ring.abort(this.failure);
  }

  assertOpen(): void {
    if (this.closed) throw new LifeboatError('INTERNAL', 'backup session already committed or aborted');
    if (this.failure) throw this.failure;
    // Cancellation (a signal, a lost lock) stops the source at its next write, whatever it reads from.
    this.repo.throwIfCancelled('backup');
  }

  /** Stores one blob unless the repository (or this session) already has it. */
  async storeBlob(id: string, type: BlobType, plain: Buffer): Promise<void> {
    await this.enqueue(async () => this.storeNamed(id, type, plain));
  }

  /**
   * Names and stores a chunk cut on the main thread (a small item's), without waiting for the store: one
   * of WORKER_MIN_BYTES or more is sealed on a worker meanwhile. `named` receives the id as soon as it is
   * known; the writer waits for all of its chunks (settled) before it finishes the item.
   */
  async storeChunk(parts: Uint8Array[], named: (id: string) => void): Promise<{ settled: Promise<void> }> {
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (length < WORKER_MIN_BYTES) {
      const plain =
        parts.length === 1 ? Buffer.from(parts[0].buffer, parts[0].byteOffset, length) : Buffer.concat(parts);
      return this.enqueue(async () => {
        const id = chunkId(this.repo.keys.id, plain);
        named(id);
        await this.storeNamed(id, 'data', plain);
      });
    }
    return this.enqueue(async () => {
      const hmac = createHmac('sha256', this.repo.keys.id);
      for (const p of parts) hmac.update(p);
      const id = hmac.digest('hex');
      named(id);
      if (!this.claim(id)) return;
      const { ring } = this.encoders();
      const offset = await ring.take(length);
      try {
        let at = offset;
        for (const p of parts) {
          ring.bytes.set(p, at);
          at += p.length;
        }
        await this.add('data', id, await this.sealAt(offset, length), length);
      } finally {
        ring.give(offset);
      }
    });
  }

  /** Whether `id` is this session's to store: neither the repository nor another chunk in flight has it. */
  private claim(id: string): boolean {
    // Checked and marked in one synchronous step, so two identical chunks named at once store one blob.
    if (this.pending.has(id) || this.repo.hasBlob(id)) return false;
    this.pending.add(id);
    return true;
  }

  private async storeNamed(id: string, type: BlobType, plain: Buffer): Promise<void> {
    if (!this.claim(id)) return;
    const sealed =
      plain.length < WORKER_MIN_BYTES
        ? seal(this.repo.keys.encryption, compressPartsSync(plain, this.repo.config.compression))
        : await this.encodeOnWorker(plain);
    await this.add(type, id, sealed, plain.length);
  }

  /**
   * Starts `work`, then waits while MAX_INFLIGHT are in flight. `settled` (wrapped, so awaiting this call
   * does not wait for it) resolves when the work is done and never rejects: failures land in `failure`.
   */
  private async enqueue(work: () => Promise<void>): Promise<{ settled: Promise<void> }> {
    this.assertOpen();
    const p: Promise<void> = work().then(
      () => {
        this.inflight.delete(p);
      },
      (e) => {
        this.inflight.delete(p);
        this.fail(e);
      },
    );
    this.inflight.add(p);
    while (this.inflight.size >= MAX_INFLIGHT) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    return { settled: p };
  }

  private async add(
    type: BlobType,
    id: string,
    sealed: Buffer | Uint8Array[],
    rawLength: number,
  ): Promise<void> {
    // Chunks are stored concurrently: while every upload slot is taken, none is added, or each could
    // fill and flush a pack of its own past MAX_UPLOADS.
    while (this.uploadRoom) await this.uploadRoom;
    // A failed session writes no more packs: what it stored so far is left to prune.
    if (this.failure) throw this.failure;
    this.packer.add(type, id, sealed, rawLength);
    if (Array.isArray(sealed)) {
      this.progress.bytesAdded += sealed.reduce((n, p) => n + p.length, 0);
      // A worker's ciphertext, moved here: copied into the pack, it is garbage (memory.ts).
      discard(...sealed);
    } else {
      this.progress.bytesAdded += sealed.length;
    }
    if (this.packer.size >= this.repo.config.packSize) await this.flushPack();
  }

  /** Compresses and seals `plain` on a worker, through the shared ring; the main thread only copies it in. */
  async encodeOnWorker(plain: Buffer): Promise<Uint8Array[]> {
    const { ring } = this.encoders();
    const offset = await ring.take(plain.length);
    try {
      ring.bytes.set(plain, offset);
      return await this.sealAt(offset, plain.length);
    } finally {
      ring.give(offset);
    }
  }

  private async nameAt(offset: number, length: number): Promise<string> {
    return (await this.encoders().pool.run({ op: 'name', offset, length })) as string;
  }

  async sealAt(offset: number, length: number): Promise<Uint8Array[]> {
    const compression = this.repo.config.compression;
    return (await this.encoders().pool.run({ op: 'encode', offset, length, compression })) as Uint8Array[];
  }

  /** The session's workers and ring, started on first use; never again once the session is closed. */
  encoders(): Workers {
    if (!this.workers) {
      if (this.closed) throw new LifeboatError('INTERNAL', 'backup session already committed or aborted');
      const { chunking } = this.repo.config;
      const size = Math.max(RING_MIN_BYTES, 4 * chunking.file.max);
      // WebAssembly memory, so the cutting worker's gear loop reads the ring in place (gear.ts).
      const memory = scanMemory(size);
      const ring = new SharedRing(size, memory.buffer as SharedArrayBuffer);
      const setup: BackupWorkerData = {
        ...this.repo.keys,
        params: chunking.file,
        ring: memory,
        ringBytes: size,
      };
      const entry = workerEntry('backup-worker', import.meta.url);
      const count = workerCount(MAX_WORKERS);
      this.workers = {
        ring,
        pool: new WorkerPool(entry, count, setup),
        hashWorker: Math.min(HASH_WORKER, count - 1),
      };
    }
    return this.workers;
  }

  /** A number naming an item on the chunking worker. */
  remoteItem(): number {
    return this.remoteItems++;
  }

  /**
   * Names and stores a chunk cut on a worker, naming it on any worker first unless it came named;
   * `named` receives the id, and `release` runs once the chunk's place in the ring is no longer needed.
   */
  async storeCut(
    chunk: CutChunk,
    named: (id: string) => void,
    release: () => void,
  ): Promise<{ settled: Promise<void> }> {
    // Once only: the work below lets go when it ends, and so does a failure seen after it started
    // (enqueue throws the session's failure while the work may still be running).
    let released = false;
    const releaseOnce = () => {
      if (released) return;
      released = true;
      release();
    };
    try {
      return await this.enqueue(async () => {
        try {
          const id = 'id' in chunk ? chunk.id : await this.nameAt(chunk.offset, chunk.length);
          named(id);
          if (!this.claim(id)) return;
          if ('data' in chunk) {
            const plain = Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
            await this.add('data', id, await this.encodeOnWorker(plain), plain.length);
            // The worker made this copy for the chunk alone.
            discard(plain);
          } else {
            await this.add('data', id, await this.sealAt(chunk.offset, chunk.length), chunk.length);
          }
        } finally {
          releaseOnce();
        }
      });
    } catch (e) {
      releaseOnce();
      throw e;
    }
  }

  private async closeEncoders(): Promise<void> {
    const workers = this.workers;
    this.workers = undefined;
    await workers?.pool.close();
  }

  private async flushPack(): Promise<void> {
    if (this.packer.count === 0) return;
    const pack = this.packer.finish(this.repo.keys.encryption);
    this.packer = this.newPacker();
    const p = this.repo.backend
      .save({ type: 'data', name: pack.id }, pack.bytes)
      .then(async () => {
        // The backend is done with the bytes once save settles (Backend.save); after a failure the
        // session ends anyway.
        this.spareSpace.push(pack.space);
        this.unindexed.push({ id: pack.id, size: pack.bytes.length, blobs: pack.blobs });
        this.uploadedSinceRelease += pack.bytes.length;
        if (this.uploadedSinceRelease >= RELEASE_EVERY_BYTES) {
          this.uploadedSinceRelease = 0;
          releaseBuffers();
        }
        if (this.unindexed.length >= PACKS_PER_INDEX) await this.writeIndex();
      })
      .finally(() => this.uploads.delete(p));
    p.catch((e) => this.fail(e));
    this.uploads.add(p);
    if (this.uploads.size >= MAX_UPLOADS) {
      this.uploadRoom ??= (async () => {
        while (this.uploads.size >= MAX_UPLOADS) await Promise.race(this.uploads).catch(() => {});
      })().finally(() => (this.uploadRoom = undefined));
      await this.uploadRoom;
    }
    if (this.failure) throw this.failure;
  }

  private async writeIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    await this.repo.writeIndex(packs);
  }

  private async drain(): Promise<void> {
    while (this.inflight.size) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    await this.flushPack();
    while (this.uploads.size) await Promise.allSettled([...this.uploads]);
    if (this.failure) throw this.failure;
    await this.writeIndex();
  }

  async commit(input: SnapshotInput): Promise<Snapshot> {
    this.assertOpen();
    try {
      const empty = input.empty ?? input.items.length === 0;
      if (empty && !input.allowEmpty) {
        throw new LifeboatError(
          'EMPTY',
          `the ${input.type} backup found nothing to back up; no snapshot was written`,
          {
            hint:
              input.emptyHint ??
              'check what the backup was pointed at; pass --allow-empty if an empty snapshot is really wanted',
          },
        );
      }
      await this.drain();
      // The last moment to stop: after this the snapshot is whole and committing it is the right outcome.
      this.repo.throwIfCancelled('backup');
      this.closed = true;
      const now = new Date();
      const at = input.origin ? new Date(input.origin.time) : now;
      const snapshot = await this.repo.saveSnapshot({
        type: input.type,
        purpose: input.purpose ?? 'backup',
        time: at.toISOString(),
        timestamp: timestampLabel(at),
        host: input.origin?.host ?? Repository.hostname(),
        tags: input.tags ?? [],
        paths: input.paths ?? [],
        meta: {
          ...(input.meta ?? {}),
          ...((input.empty ?? input.items.length === 0) ? { empty: true } : {}),
        },
        summary: {
          bytesProcessed: this.progress.bytesProcessed,
          bytesAdded: this.progress.bytesAdded,
          items: input.items.length,
          durationMs: now.getTime() - this.started,
        },
        items: input.items,
      });
      return snapshot;
    } catch (e) {
      this.closed = true;
      throw e;
    } finally {
      // A lock that cannot be removed must neither turn a committed snapshot into a failed backup (a
      // retry would store it twice) nor hide why a failed one failed. Left behind, it is stale at once for
      // this host (the process is gone) and after 30 minutes for others.
      await this.closeEncoders();
      await this.lock.release().catch(() => {});
    }
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new LifeboatError('INTERRUPTED', 'backup aborted'));
    // Once failed, each of these ends soon: no take waits for ring room, no chunk is stored.
    while (this.inflight.size || this.uploads.size || this.cutting.size)
      await Promise.allSettled([...this.inflight, ...this.uploads, ...this.cutting]);
    await this.closeEncoders();
    await this.lock.release();
  }
}

interface Workers {
  ring: SharedRing;
  /**
   * Cut items' bytes placed in the ring (on worker CUT_WORKER, where the chunkers' state lives), and
   * name, compress and seal chunks placed there (on any).
   */
  pool: WorkerPool<BackupWorkerRequest, BackupWorkerResult>;
  /** HASH_WORKER, or the only worker on one core. */
  hashWorker: number;
}

/** One of an item's writes, placed in the ring for the chunking worker. */
interface Placed {
  offset: number;
  end: number;
  /** The chunker's hold on it, the hash's (HASH_WORKER) until hashed, and one per chunk in flight in it. */
  holds: number;
  cutterDone: boolean;
}

class Writer implements ItemWriter {
  private readonly session: Backup;
  private readonly input: ItemInput;
  private readonly chunking: Chunking;
  private readonly chunker: Chunker;
  /**
   * Where the item's SHA-256 is computed: here, unless the item went to the workers before its first
   * byte: then worker HASH_WORKER hashes it, which leaves this thread to read (a hash cannot move between
   * threads half done, so an item that went there later stays hashed here). With an expected item,
   * nowhere: the item takes its hash if it matches.
   */
  private hashing: 'here' | 'worker' | 'none';
  private readonly hash = createHash('sha256');
  private remoteSha256: string | undefined;
  private readonly expected: ExpectedItem | undefined;
  private differs = false;
  private settling: Promise<void> | undefined;
  private readonly ids: string[] = [];
  /** Chunks of this item still being named or stored. */
  private readonly unsettled = new Set<Promise<void>>();
  private size = 0;
  private records = 0;
  /** This item's number on the chunking worker, once its bytes go there. */
  private remote: number | undefined;
  /** The session's workers, from the moment this item goes remote. */
  private workers: Workers | undefined;
  private readonly placed: Placed[] = [];
  /** The chunking worker's replies, handled in order. */
  private readonly steps: Promise<void>[] = [];
  private lastStep: Promise<void> = Promise.resolve();

  constructor(
    session: Backup,
    input: ItemInput,
    chunking: Chunking,
    chunker: Chunker,
    expected: ExpectedItem | undefined,
  ) {
    this.session = session;
    this.input = input;
    this.chunking = chunking;
    this.chunker = chunker;
    this.expected = expected;
    this.hashing = expected ? 'none' : 'here';
  }

  get diverged(): boolean {
    return this.differs;
  }

  /** Records chunk `slot`'s id, and whether it is the expected item's. */
  private named(slot: number, id: string): void {
    this.ids[slot] = id;
    if (this.expected && this.expected.chunkIds[slot] !== id) this.differs = true;
  }

  private grew(n: number): void {
    this.size += n;
    this.session.progress.bytesProcessed += n;
    if (this.expected && this.size > this.expected.size) this.differs = true;
  }

  async write(data: Uint8Array): Promise<void> {
    if (data.length === 0 && this.chunking === 'file') return;
    if (this.remote === undefined && this.size + data.length >= REMOTE_MIN_BYTES) await this.goRemote();
    if (this.hashing === 'here') this.hash.update(data);
    this.grew(data.length);
    if (this.chunking === 'records') this.records++;
    if (this.remote !== undefined) {
      // Cut on a worker, this item's bytes reach the session only there: stop here at once instead.
      this.session.assertOpen();
      return this.place(data);
    }
    if (this.chunker instanceof ByteChunker)
      for (const chunk of this.chunker.pushParts(data)) await this.add(chunk);
    else for (const chunk of this.chunker.push(data)) await this.add([chunk]);
  }

  /**
   * From here on the item is cut on the worker, when it is byte-chunked: an item this large is likely
   * several chunks. The bytes since the last cut made here go there first; the next cut depends on
   * nothing else.
   */
  private async goRemote(): Promise<void> {
    if (!(this.chunker instanceof ByteChunker)) return;
    this.workers = this.session.encoders();
    this.remote = this.session.remoteItem();
    if (this.hashing === 'here' && this.size === 0) this.hashing = 'worker';
    for (const part of this.chunker.takePending()) await this.place(part);
  }

  async writeFrom(length: number, fill: (into: Uint8Array) => Promise<number>): Promise<number> {
    if (this.remote === undefined && this.size + length >= REMOTE_MIN_BYTES) await this.goRemote();
    if (this.remote === undefined) {
      const buf = Buffer.allocUnsafe(length);
      const n = await fill(buf);
      if (n > 0) await this.write(n === length ? buf : Buffer.from(buf.subarray(0, n)));
      return n;
    }
    this.session.assertOpen();
    const { ring } = this.workers!;
    const piece = Math.min(length, RING_PIECE_BYTES);
    const offset = await ring.take(piece);
    let n: number;
    try {
      n = await fill(ring.bytes.subarray(offset, offset + piece));
    } catch (e) {
      ring.give(offset);
      throw e;
    }
    if (n === 0) {
      ring.give(offset);
      return 0;
    }
    if (this.hashing === 'here') this.hash.update(ring.bytes.subarray(offset, offset + n));
    this.grew(n);
    this.placeAt(offset, n);
    await this.cut(offset, n, false);
    return n;
  }

  /** Records bytes put in the ring at `offset`, held for the chunker, and for the hash if it is remote. */
  private placeAt(offset: number, length: number): void {
    const place: Placed = { offset, end: offset + length, holds: 1, cutterDone: false };
    this.placed.push(place);
    if (this.hashing === 'worker') this.hashAt(offset, length, place);
  }

  /**
   * Adds ring bytes to the item's hash on HASH_WORKER, letting go of their place once done. `last` (no
   * bytes, no place) takes the result.
   */
  private hashAt(offset: number, length: number, place?: Placed): void {
    if (place) place.holds++;
    const last = !place;
    const request: BackupWorkerRequest = { op: 'hash', item: this.remote!, offset, length, last };
    const { pool, hashWorker } = this.workers!;
    const step = pool.run(request, [], hashWorker).then(
      (sha256) => {
        if (place) this.letGo(place);
        if (last) this.remoteSha256 = sha256 as string;
      },
      (e) => {
        if (place) this.letGo(place);
        this.session.fail(e);
      },
    );
    this.unsettled.add(step);
    void step.then(() => this.unsettled.delete(step));
  }

  /** Copies `data` into the ring, a piece at a time, and has the chunking worker cut it. */
  private async place(data: Uint8Array): Promise<void> {
    const { ring } = this.workers!;
    for (let from = 0; from < data.length; from += RING_PIECE_BYTES) {
      const piece = data.subarray(from, Math.min(from + RING_PIECE_BYTES, data.length));
      const offset = await ring.take(piece.length);
      ring.bytes.set(piece, offset);
      this.placeAt(offset, piece.length);
      await this.cut(offset, piece.length, false);
    }
  }

  /**
   * Sends a cut request and queues the handling of its reply behind the earlier ones; waits while
   * MAX_CUT_REQUESTS are outstanding. A failure lands in the session, like a failed chunk.
   */
  private async cut(offset: number, length: number, last: boolean): Promise<void> {
    const request: BackupWorkerRequest = { op: 'cut', item: this.remote!, offset, length, last };
    const reply = this.workers!.pool.run(request, [], CUT_WORKER) as Promise<CutResult>;
    reply.catch(() => {});
    const step = this.lastStep
      .then(async () => this.received(await reply, last))
      .catch((e) => this.session.fail(e));
    this.session.cutting.add(step);
    void step.finally(() => this.session.cutting.delete(step));
    this.lastStep = step;
    this.steps.push(step);
    while (this.steps.length >= MAX_CUT_REQUESTS) await this.steps.shift();
    this.session.throwIfFailed();
  }

  private async received(result: CutResult, last: boolean): Promise<void> {
    try {
      for (const chunk of result.chunks) {
        const slot = this.ids.push('') - 1;
        const holding =
          'data' in chunk
            ? []
            : this.placed.filter((p) => p.offset < chunk.offset + chunk.length && chunk.offset < p.end);
        for (const p of holding) p.holds++;
        // storeCut lets go of the holds once the chunk is stored, or at once when it fails.
        const { settled } = await this.session.storeCut(
          chunk,
          (id) => this.named(slot, id),
          () => holding.forEach((p) => this.letGo(p)),
        );
        this.unsettled.add(settled);
        void settled.then(() => this.unsettled.delete(settled));
      }
    } finally {
      // The chunker now keeps only the places from the one holding `holdFrom` on (none after the last).
      const holdFrom = last ? undefined : result.holdFrom;
      const kept =
        holdFrom === undefined ? -1 : this.placed.findIndex((p) => p.offset <= holdFrom && holdFrom < p.end);
      for (const [i, p] of [...this.placed].entries()) {
        if (kept >= 0 && i >= kept) break;
        if (!p.cutterDone) {
          p.cutterDone = true;
          this.letGo(p);
        }
      }
    }
  }

  private letGo(p: Placed): void {
    if (--p.holds > 0) return;
    this.placed.splice(this.placed.indexOf(p), 1);
    this.workers!.ring.give(p.offset);
  }

  private async add(chunk: Uint8Array[]): Promise<void> {
    const slot = this.ids.push('') - 1;
    const { settled } = await this.session.storeChunk(chunk, (id) => this.named(slot, id));
    this.unsettled.add(settled);
    void settled.then(() => this.unsettled.delete(settled));
  }

  async discard(): Promise<void> {
    await this.settle();
  }

  async matches(): Promise<boolean> {
    await this.settle();
    const expected = this.expected;
    if (expected && (this.size !== expected.size || this.ids.length !== expected.chunkIds.length))
      this.differs = true;
    return !this.differs;
  }

  /**
   * Flushes the last chunk and waits until every chunk of the item is stored (or the session failed).
   * Once: matches, discard and finish may each call it.
   */
  private settle(): Promise<void> {
    this.settling ??= this.settleOnce();
    return this.settling;
  }

  private async settleOnce(): Promise<void> {
    if (this.remote !== undefined) {
      if (this.hashing === 'worker') this.hashAt(0, 0);
      await this.cut(0, 0, true);
      await Promise.all(this.steps.splice(0));
    } else {
      const last = this.chunker instanceof ByteChunker ? this.chunker.flushParts() : this.chunker.flush();
      if (last) await this.add(Array.isArray(last) ? last : [last]);
    }
    await Promise.all(this.unsettled);
    // A chunk that failed left its slot empty; the session's failure says why.
    this.session.throwIfFailed();
  }

  async finish(): Promise<Item> {
    if (!(await this.matches()))
      throw new LifeboatError(
        'INTERNAL',
        `${this.input.name} differs from the item it was expected to equal, so it has no hash`,
        { hint: 'the source must write it again without an expected item' },
      );
    const sha256 =
      this.hashing === 'none'
        ? this.expected!.sha256
        : this.hashing === 'worker'
          ? this.remoteSha256!
          : this.hash.digest('hex');
    const item: Item = {
      name: this.input.name,
      kind: this.input.kind,
      meta: this.input.meta ?? {},
      size: this.size,
      sha256,
      records: this.records,
    };
    if (this.ids.length <= INLINE_CHUNKS) {
      item.chunks = this.ids;
    } else {
      item.chunkLists = [];
      const idKey = this.session.repo.keys.id;
      for (let i = 0; i < this.ids.length; i += CHUNKS_PER_LIST) {
        const list = Buffer.concat(this.ids.slice(i, i + CHUNKS_PER_LIST).map((h) => Buffer.from(h, 'hex')));
        const id = chunkId(idKey, list);
        item.chunkLists.push(id);
        await this.session.storeBlob(id, 'tree', list);
      }
    }
    return item;
  }
}
