// A backup's items cut and sealed on worker threads, through the shared ring: the same chunks, whichever
// way the bytes arrive, and no place in the ring lost when an item is given up. In-process, on a memory
// backend: what is tested is the session, not storage.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ByteChunker } from '../../src/core/chunker.ts';
import { chunkId } from '../../src/core/crypto.ts';
import { LifeboatError, isLifeboatError } from '../../src/core/errors.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import type { Item, ItemWriter } from '../../src/core/repository/model.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { checkRepository } from '../../src/core/repository/check.ts';
import { createHash } from 'node:crypto';
import type { Handle, SaveOptions } from '../../src/core/storage/backend.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { backUpOne } from '../env/backup.ts';
import { pseudoRandom } from '../env/data.ts';

const MiB = 1024 * 1024;
const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });

/** 40 MiB, well over the 16 MiB ring: half incompressible, half text (compressed), interleaved. */
function sample(seed: string): Buffer {
  const text = Buffer.from('lifeboat backs up chat history; '.repeat(32 * 1024));
  const parts: Buffer[] = [];
  for (let i = 0; i < 20; i++) parts.push(i % 2 ? text : pseudoRandom(`${seed}${i}`, MiB));
  return Buffer.concat(parts);
}

/** The ids one chunker on the main thread gives the data: what the workers must give too. */
function expectedIds(repo: Repository, data: Buffer): string[] {
  const chunker = new ByteChunker(repo.gear, repo.config.chunking.file);
  const chunks = [...chunker.push(data)];
  const last = chunker.flush();
  if (last) chunks.push(last);
  return chunks.map((c) => chunkId(repo.keys.id, c));
}

/** Writes `data` in pieces of the sizes given, in turn (each piece handed over: a copy of its own). */
async function writeInPieces(w: ItemWriter, data: Buffer, sizes: number[]): Promise<void> {
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - at);
    await w.write(Buffer.from(data.subarray(at, at + n)));
    at += n;
  }
}

/** Reads `data` through writeFrom, `size` asked each time and `got` bytes given (a short read). */
async function readInto(w: ItemWriter, data: Buffer, size: number, got: number): Promise<void> {
  let at = 0;
  for (;;) {
    const n = await w.writeFrom(size, async (into) => {
      const k = Math.min(got, into.length, data.length - at);
      data.copy(into, 0, at, at + k);
      return k;
    });
    if (n === 0) return;
    at += n;
  }
}

describe('backup on worker threads', () => {
  test('the same chunk ids and bytes whether written whole, in pieces or read in, across ring wraps', async () => {
    const repo = await Repository.init(new MemoryBackend(), keystore());
    try {
      const data = sample('ways');
      const expected = expectedIds(repo, data);
      const session = await startBackup(repo);
      const items: Item[] = [];
      const ways: [string, (w: ItemWriter) => Promise<void>][] = [
        ['whole', (w) => w.write(Buffer.from(data))],
        // Small pieces first: the item starts on the main thread, then moves to a worker mid-chunk.
        ['pieces', (w) => writeInPieces(w, data, [60 * 1024, 100 * 1024, 777 * 1024, 3 * MiB + 1])],
        ['read', (w) => readInto(w, data, 4 * MiB, 999 * 1024)],
      ];
      for (const [name, write] of ways) {
        const w = session.newItem({ name, kind: 'file' }, 'file');
        await write(w);
        items.push(await w.finish());
      }
      await session.commit({ type: 'files', items });
      for (const item of items) {
        assert.deepEqual(item.chunks, expected, `${item.name}: the ids one chunker gives`);
        assert.ok((await repo.readItemBuffer(item)).equals(data), `${item.name}: reads back whole`);
      }
      // Stored once: the three items share every chunk.
      const report = await checkRepository(repo, { readData: true });
      assert.equal(report.ok, true, report.errors.join('; '));
      assert.equal(report.blobsRead, new Set(expected).size);
    } finally {
      await repo.close();
    }
  });

  test('new and stored chunks in turn: each stored once, the item whole', async () => {
    const repo = await Repository.init(new MemoryBackend(), keystore());
    try {
      // Random bytes only: where text like sample's cuts depends on the repository's key.
      const old = pseudoRandom('turns', 24 * MiB);
      const oldItem = await backUpOne(repo, 'old', old);
      // 1 MiB of every 4 replaced: chunks go new, stored, new, … on both workers at once.
      const mixed = Buffer.from(old);
      for (let at = 0; at < mixed.length; at += 4 * MiB) pseudoRandom(`new${at}`, MiB).copy(mixed, at);
      const mixedItem = await backUpOne(repo, 'mixed', mixed);
      const shared = mixedItem.chunks!.filter((id) => oldItem.chunks!.includes(id));
      assert.ok(shared.length >= 5, `${shared.length} chunks in common`);
      const turns = mixedItem.chunks!.filter(
        (id, i) => i > 0 && shared.includes(id) && !shared.includes(mixedItem.chunks![i - 1]),
      );
      assert.ok(turns.length >= 3, `${turns.length} stored chunks right after a new one`);
      assert.ok((await repo.readItemBuffer(mixedItem)).equals(mixed));
      const report = await checkRepository(repo, { readData: true });
      assert.equal(report.ok, true, report.errors.join('; '));
      const distinct = new Set([...oldItem.chunks!, ...mixedItem.chunks!]);
      assert.equal(report.blobsRead, distinct.size, 'each chunk stored once');
    } finally {
      await repo.close();
    }
  });

  test(
    'an item given up part-way gives its ring places back: the next items still back up',
    { timeout: 120_000 },
    async () => {
      const repo = await Repository.init(new MemoryBackend(), keystore());
      try {
        const data = sample('discard');
        const session = await startBackup(repo);
        // Fails after 20 MiB of reads, as a file whose disk fails does (files.ts: fill reports 0, discard).
        const broken = session.newItem({ name: 'broken', kind: 'file' }, 'file');
        let at = 0;
        for (;;) {
          const n = await broken.writeFrom(MiB, async (into) => {
            if (at >= 20 * MiB) return 0;
            data.copy(into, 0, at, at + into.length);
            return into.length;
          });
          if (n === 0) break;
          at += n;
        }
        await broken.discard();
        // A ring place still held would stop these for good: each needs the whole ring several times over.
        const items: Item[] = [];
        for (const name of ['after-1', 'after-2']) {
          const w = session.newItem({ name, kind: 'file' }, 'file');
          await readInto(w, data, MiB, MiB);
          items.push(await w.finish());
        }
        await session.commit({ type: 'files', items });
        for (const item of items) assert.ok((await repo.readItemBuffer(item)).equals(data), item.name);
      } finally {
        await repo.close();
      }
    },
  );

  test(
    'cancelled mid-item: the writer stops with the cancellation, even with the ring full',
    { timeout: 120_000 },
    async () => {
      const backend = new MemoryBackend();
      const repo = await Repository.init(backend, keystore());
      try {
        const data = sample('cancel');
        const session = await startBackup(repo);
        const w = session.newItem({ name: 'cut-short', kind: 'file' }, 'file');
        await w.write(Buffer.from(data.subarray(0, 8 * MiB)));
        repo.cancel(new LifeboatError('INTERRUPTED', 'interrupted by SIGINT'));
        // More than the ring holds: without the cancellation reaching every waiter this never returns.
        await assert.rejects(writeInPieces(w, data.subarray(8 * MiB), [MiB]), (e) =>
          isLifeboatError(e, 'INTERRUPTED'),
        );
        // The lock's removal fails too (its storage call is cancelled): what the CLI does with it.
        await session.abort().catch(() => {});
        for await (const o of backend.list('snapshots')) assert.fail(`snapshot ${o.name} was written`);
      } finally {
        await repo.close().catch(() => {});
      }
    },
  );

  test('a pack is left as it was given until its save resolves, and pack buffers are reused', async () => {
    // A slow store, as a remote one is: the next packs are assembled meanwhile.
    class SlowStore extends MemoryBackend {
      readonly changed: string[] = [];
      readonly buffers = new Set<ArrayBufferLike>();
      override async save(h: Handle, data: Uint8Array, options?: SaveOptions): Promise<void> {
        if (h.type !== 'data') return super.save(h, data, options);
        this.buffers.add(data.buffer);
        const before = createHash('sha256').update(data).digest('hex');
        await new Promise((r) => setTimeout(r, 30));
        await super.save(h, data, options);
        if (createHash('sha256').update(data).digest('hex') !== before) this.changed.push(h.name);
      }
    }
    const backend = new SlowStore();
    const repo = await Repository.init(backend, keystore(), { packSize: 2 * MiB });
    try {
      const data = Buffer.concat([sample('packs-1'), sample('packs-2')]);
      const session = await startBackup(repo);
      const w = session.newItem({ name: 'packs', kind: 'file' }, 'file');
      await writeInPieces(w, data, [MiB]);
      const item = await w.finish();
      await session.commit({ type: 'files', items: [item] });
      assert.deepEqual(backend.changed, [], 'packs changed while being written');
      let packs = 0;
      for await (const _ of backend.list('data')) packs++;
      assert.ok(packs >= 6, `${packs} packs`);
      // One buffer per pack in flight (two uploads and the one being filled), whatever the count.
      assert.ok(backend.buffers.size <= 3, `${backend.buffers.size} pack buffers for ${packs} packs`);
      assert.ok((await repo.readItemBuffer(item)).equals(data));
      const report = await checkRepository(repo, { readData: true });
      assert.equal(report.ok, true, report.errors.join('; '));
    } finally {
      await repo.close();
    }
  });
});
