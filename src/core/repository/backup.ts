/**
 * The write path (restic's archiver + packer): chunk -> keyed id -> dedup -> compress -> seal -> pack ->
 * upload -> index -> snapshot.
 *
 * Both cores work: the main thread chunks, hashes and seals; compression runs on libuv's thread pool.
 * Memory is bounded by MAX_INFLIGHT blobs being compressed, one open pack, and MAX_UPLOADS packs being
 * written, whatever the size of the data.
 */
import { createHash } from 'node:crypto';
import { ByteChunker, RecordChunker, type Chunker } from '../chunker.ts';
import { compressParts } from '../compression.ts';
import { chunkId, seal } from '../crypto.ts';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { releaseBuffers } from '../memory.ts';
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
  private packer = new PackBuilder();
  private readonly inflight = new Set<Promise<void>>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly pending = new Set<string>();
  private unindexed: IndexedPack[] = [];
  private uploadedSinceRelease = 0;
  private failure: unknown;
  private closed = false;

  constructor(repo: Repository, lock: LockHandle) {
    this.repo = repo;
    this.lock = lock;
  }

  newItem(input: ItemInput, chunking: Chunking): ItemWriter {
    this.assertOpen();
    const params = this.repo.config.chunking[chunking === 'file' ? 'file' : 'records'];
    const chunker =
      chunking === 'file'
        ? new ByteChunker(this.repo.gear, params)
        : new RecordChunker(this.repo.gear, params);
    return new Writer(this, input, chunking, chunker);
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
    try {
      for await (const id of this.repo.chunkIds(previous)) if (!this.repo.hasBlob(id)) return undefined;
    } catch (e) {
      // A damaged chunk list: the source reads the data again rather than failing the backup.
      if (isLifeboatError(e, 'INTEGRITY')) return undefined;
      throw e;
    }
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

  private assertOpen(): void {
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
   * Names a data chunk on the thread pool and stores it, without waiting for either: the caller's next
   * chunk is cut while this one is hashed. `named` receives the id as soon as it is known; the writer
   * waits for all of its chunks (settled) before it finishes the item.
   */
  async storeChunk(plain: Buffer, named: (id: string) => void): Promise<{ settled: Promise<void> }> {
    return this.enqueue(async () => {
      const id = await this.repo.hashes.chunkId(plain);
      named(id);
      await this.storeNamed(id, 'data', plain);
    });
  }

  private async storeNamed(id: string, type: BlobType, plain: Buffer): Promise<void> {
    // Checked and marked in one synchronous step, so two identical chunks named at once store one blob.
    if (this.pending.has(id) || this.repo.hasBlob(id)) return;
    this.pending.add(id);
    await this.encode(id, type, plain);
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
        this.failure ??= e;
      },
    );
    this.inflight.add(p);
    while (this.inflight.size >= MAX_INFLIGHT) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    return { settled: p };
  }

  private async encode(id: string, type: BlobType, plain: Buffer): Promise<void> {
    const rawLength = plain.length;
    const sealed = seal(this.repo.keys.encryption, await compressParts(plain, this.repo.config.compression));
    this.packer.add(type, id, sealed, rawLength);
    this.progress.bytesAdded += sealed.length;
    if (this.packer.size >= this.repo.config.packSize) await this.flushPack();
  }

  private async flushPack(): Promise<void> {
    if (this.packer.count === 0) return;
    const pack = this.packer.finish(this.repo.keys.encryption);
    this.packer = new PackBuilder();
    const p = this.repo.backend
      .save({ type: 'data', name: pack.id }, pack.bytes)
      .then(async () => {
        this.unindexed.push({ id: pack.id, size: pack.bytes.length, blobs: pack.blobs });
        this.uploadedSinceRelease += pack.bytes.length;
        if (this.uploadedSinceRelease >= RELEASE_EVERY_BYTES) {
          this.uploadedSinceRelease = 0;
          releaseBuffers();
        }
        if (this.unindexed.length >= PACKS_PER_INDEX) await this.writeIndex();
      })
      .finally(() => this.uploads.delete(p));
    p.catch((e) => {
      this.failure ??= e;
    });
    this.uploads.add(p);
    while (this.uploads.size >= MAX_UPLOADS) await Promise.race(this.uploads).catch(() => {});
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
      await this.lock.release().catch(() => {});
    }
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failure ??= new LifeboatError('INTERRUPTED', 'backup aborted');
    await Promise.allSettled([...this.inflight, ...this.uploads]);
    await this.lock.release();
  }
}

class Writer implements ItemWriter {
  private readonly session: Backup;
  private readonly input: ItemInput;
  private readonly chunking: Chunking;
  private readonly chunker: Chunker;
  private readonly hash = createHash('sha256');
  private readonly ids: string[] = [];
  /** Chunks of this item still being named or stored. */
  private readonly unsettled = new Set<Promise<void>>();
  private size = 0;
  private records = 0;

  constructor(session: Backup, input: ItemInput, chunking: Chunking, chunker: Chunker) {
    this.session = session;
    this.input = input;
    this.chunking = chunking;
    this.chunker = chunker;
  }

  async write(data: Uint8Array): Promise<void> {
    if (data.length === 0 && this.chunking === 'file') return;
    this.hash.update(data);
    this.size += data.length;
    if (this.chunking === 'records') this.records++;
    this.session.progress.bytesProcessed += data.length;
    for (const chunk of this.chunker.push(data)) await this.add(chunk);
  }

  private async add(chunk: Buffer): Promise<void> {
    const slot = this.ids.push('') - 1;
    const { settled } = await this.session.storeChunk(chunk, (id) => (this.ids[slot] = id));
    this.unsettled.add(settled);
    void settled.then(() => this.unsettled.delete(settled));
  }

  async finish(): Promise<Item> {
    const last = this.chunker.flush();
    if (last) await this.add(last);
    await Promise.all(this.unsettled);
    // A chunk that failed left its slot empty; the session's failure says why.
    this.session.throwIfFailed();
    const item: Item = {
      name: this.input.name,
      kind: this.input.kind,
      meta: this.input.meta ?? {},
      size: this.size,
      sha256: this.hash.digest('hex'),
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
