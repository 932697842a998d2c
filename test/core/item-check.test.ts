// How readItem verifies what it reads back: on worker threads for a large item, here for a small one or
// one of records. Both ways must give the same verdicts: each blob against its id, the item's SHA-256
// over the blobs in their order (whatever order they open in), and neither may hang when a read stops
// part-way or the workers go away. In-process, on a memory backend: what is tested is the verification.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { chunkId } from '../../src/core/crypto.ts';
import { isLifeboatError } from '../../src/core/errors.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import {
  ItemChecks,
  LocalItemCheck,
  VERIFY_ON_WORKERS_MIN_BYTES,
  type ItemCheck,
  type OpenedBlob,
} from '../../src/core/repository/item-check.ts';
import type { Item } from '../../src/core/repository/model.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { backUpOne } from '../env/backup.ts';
import { pseudoRandom } from '../env/data.ts';

const MiB = 1024 * 1024;
const idKey = Buffer.alloc(32, 7);
const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });

/** An item as readItem sees it; only its size and kind choose the way it is verified. */
function itemOf(size: number, records = 0): Item {
  return { name: 'x', kind: 'file', meta: {}, size, sha256: '', records };
}

/**
 * Blobs as openBlob gives them: one of its own, one a view at offset 1 of a larger buffer (a stored,
 * uncompressed blob is its decrypted bytes after the codec byte), and small ones (Node may pool those).
 */
function blobs(): Buffer[] {
  const big = pseudoRandom('own', 300 * 1024);
  const decrypted = Buffer.concat([Buffer.from([0]), pseudoRandom('view', 200 * 1024)]);
  return [big, decrypted.subarray(1), Buffer.from('small blob'), pseudoRandom('mid', 40 * 1024)];
}

/** Each blob's opening settles in reverse order: the check must still hash them in the order added. */
function openedInReverse(parts: Buffer[]): Promise<OpenedBlob>[] {
  return parts.map(
    (plain, i) =>
      new Promise((resolve) =>
        setTimeout(() => resolve({ plain, what: `blob ${i}` }), 5 * (parts.length - i)),
      ),
  );
}

async function verifyAll(check: ItemCheck, parts: Buffer[], ids: string[]): Promise<Buffer[]> {
  const opened = openedInReverse(parts);
  return Promise.all(opened.map((o, i) => check.add(o, ids[i])));
}

describe('item checks', () => {
  test('large items go to the workers; small ones and records stay here; both give the same verdicts', async () => {
    const checks = new ItemChecks(idKey);
    try {
      assert.ok(checks.for(itemOf(VERIFY_ON_WORKERS_MIN_BYTES - 1)) instanceof LocalItemCheck, 'small');
      assert.ok(checks.for(itemOf(64 * MiB, 1000)) instanceof LocalItemCheck, 'records');
      const onWorkers = checks.for(itemOf(VERIFY_ON_WORKERS_MIN_BYTES));
      assert.ok(!(onWorkers instanceof LocalItemCheck), 'a large item of file data');

      const expected = blobs().map((b) => Buffer.from(b));
      const ids = expected.map((b) => chunkId(idKey, b));
      const sha = createHash('sha256').update(Buffer.concat(expected)).digest('hex');
      for (const check of [new LocalItemCheck(idKey), onWorkers]) {
        const back = await verifyAll(check, blobs(), ids);
        assert.deepEqual(
          back.map((b) => b.toString('hex')),
          expected.map((b) => b.toString('hex')),
          'each blob comes back whole, in its place',
        );
        assert.equal(await check.digest(), sha, 'the SHA-256 of the blobs in the order added');
      }
    } finally {
      await checks.close();
    }
  });

  test('a blob that does not match its id is INTEGRITY naming it, on either side', async () => {
    const checks = new ItemChecks(idKey);
    try {
      for (const check of [new LocalItemCheck(idKey), checks.for(itemOf(8 * MiB))]) {
        const parts = blobs();
        const ids = parts.map((b) => chunkId(idKey, b));
        ids[2] = chunkId(idKey, Buffer.from('another blob'));
        const results = await Promise.allSettled(openedInReverse(parts).map((o, i) => check.add(o, ids[i])));
        assert.equal(results[0].status, 'fulfilled', 'the blobs before it are fine');
        assert.equal(results[1].status, 'fulfilled');
        const bad = results[2];
        assert.equal(bad.status, 'rejected');
        assert.ok(isLifeboatError(bad.reason, 'INTEGRITY'), String(bad.reason));
        assert.match((bad.reason as Error).message, /^blob 2 does not match its id$/);
        check.drop();
      }
    } finally {
      await checks.close();
    }
  });

  test('closing while blobs are on the workers fails them instead of hanging; reads after use this thread', async () => {
    const checks = new ItemChecks(idKey);
    const check = checks.for(itemOf(8 * MiB));
    const parts = Array.from({ length: 16 }, (_, i) => pseudoRandom(`close${i}`, 2 * MiB));
    const pending = parts.map((plain, i) => check.add(Promise.resolve({ plain, what: `blob ${i}` }), 'x'));
    await checks.close();
    const results = await Promise.allSettled(pending);
    assert.ok(
      results.every((r) => r.status === 'rejected'),
      'every blob settles, none is verified',
    );
    assert.ok(
      results.some((r) => r.status === 'rejected' && isLifeboatError(r.reason, 'INTERNAL')),
      'the ones the workers still had fail as the pool closes',
    );
    assert.ok(checks.for(itemOf(8 * MiB)) instanceof LocalItemCheck);
  });

  test('readItem: readers that stop part-way do not disturb the next; a wrong item hash is caught before the last blob', async () => {
    const repo = await Repository.init(new MemoryBackend(), keystore());
    try {
      const data = pseudoRandom('item', 6 * MiB);
      const item = await backUpOne(repo, 'big', data);
      assert.ok((item.chunks?.length ?? 0) > 3, 'several blobs');

      for (let i = 0; i < 3; i++) {
        for await (const first of repo.readItem(item, 2)) {
          assert.ok(first.equals(data.subarray(0, first.length)));
          break;
        }
      }
      assert.ok((await repo.readItemBuffer(item)).equals(data), 'read whole after three partial reads');

      const wrong = { ...item, sha256: createHash('sha256').update('not it').digest('hex') };
      const seen: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const b of repo.readItem(wrong)) seen.push(b.length);
        })(),
        (e) => isLifeboatError(e, 'INTEGRITY') && /does not match the snapshot's SHA-256/.test(e.message),
      );
      assert.equal(seen.length, item.chunks!.length - 1, 'every blob but the last was handed on');

      const swapped = { ...item, chunks: [item.chunks![1], item.chunks![0], ...item.chunks!.slice(2)] };
      await assert.rejects(repo.readItemBuffer(swapped), (e) => isLifeboatError(e, 'INTEGRITY'));
    } finally {
      await repo.close();
    }
  });
});
