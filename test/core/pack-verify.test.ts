// check --read-data's per-pack verification (pack.ts verifyPack) and the worker threads it runs on
// (workers.ts): no server needed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { compressParts } from '../../src/core/compression.ts';
import { chunkId, deriveKeys, newMasterKey, seal } from '../../src/core/crypto.ts';
import { isLifeboatError } from '../../src/core/errors.ts';
import {
  PackBuilder,
  headerMismatch,
  parsePackHeader,
  planPackRanges,
  verifyBlobs,
  type FinishedPack,
  type PackedBlob,
} from '../../src/core/repository/pack.ts';
import type { PackVerifyRequest } from '../../src/core/repository/pack-verify-worker.ts';
import { WorkerPool, movable, workerEntry } from '../../src/core/workers.ts';
import { pseudoRandom } from '../env/data.ts';
import { tempDir } from '../env/index.ts';

const keys = deriveKeys(newMasterKey());

async function makePack(): Promise<{ pack: FinishedPack; plains: Buffer[] }> {
  const plains = [
    Buffer.from('rocket.chat message '.repeat(30_000)),
    pseudoRandom('pack-verify', 300_000),
    Buffer.from('small'),
  ];
  const b = new PackBuilder();
  for (const plain of plains) {
    const sealed = seal(keys.encryption, await compressParts(plain, { codec: 'zstd' }));
    b.add('data', chunkId(keys.id, plain), sealed, plain.length);
  }
  return { pack: b.finish(keys.encryption), plains };
}

/** What check does with one pack, on the calling thread: its ranges' blobs, its SHA-256, its header. */
function verifyInRanges(packId: string, bytes: Buffer, indexed: PackedBlob[], k = keys, target = 100_000) {
  const ranges = planPackRanges(indexed, bytes.length, target);
  let reason: string | undefined;
  let blobsRead = 0;
  for (const r of ranges) {
    const v = verifyBlobs(k, packId, bytes.subarray(r.offset, r.offset + r.length), r);
    blobsRead += v.blobsRead;
    reason = v.reason ?? reason;
  }
  if (createHash('sha256').update(bytes).digest('hex') !== packId) reason ??= 'sha';
  const tail = bytes.subarray(bytes.length - 4 - bytes.readUInt32LE(bytes.length - 4));
  try {
    reason = headerMismatch(parsePackHeader(k.encryption, packId, tail, bytes.length), indexed) ?? reason;
  } catch (e) {
    reason = (e as Error).message;
  }
  return { ranges, reason, blobsRead };
}

test('pack ranges cover every byte in order, each blob whole in one range; bogus index entries in none', async () => {
  const { pack } = await makePack();
  const size = pack.bytes.length;
  for (const target of [1, 100_000, 400_000, size]) {
    const ranges = planPackRanges(pack.blobs, size, target);
    let at = 0;
    for (const r of ranges) {
      assert.equal(r.offset, at, `target ${target}: contiguous`);
      for (const b of r.blobs) assert.ok(b.offset >= r.offset && b.offset + b.length <= r.offset + r.length);
      at += r.length;
    }
    assert.equal(at, size, `target ${target}: up to the end, header included`);
    assert.deepEqual(
      ranges.flatMap((r) => r.blobs),
      pack.blobs,
      `target ${target}: every blob once, in order`,
    );
  }
  const bogus = [...pack.blobs, { ...pack.blobs[0] }, { ...pack.blobs[1], offset: size }];
  assert.equal(planPackRanges(bogus, size, 400_000).flatMap((r) => r.blobs).length, pack.blobs.length);
});

test('a whole pack verifies; a flipped byte, a wrong index entry and a wrong key are each named', async () => {
  const { pack } = await makePack();
  const whole = verifyInRanges(pack.id, pack.bytes, pack.blobs);
  assert.ok(whole.ranges.length > 1, 'the test covers several ranges');
  assert.deepEqual({ reason: whole.reason, blobsRead: whole.blobsRead }, { reason: undefined, blobsRead: 3 });

  const flipped = Buffer.from(pack.bytes);
  flipped[pack.blobs[1].offset + 40] ^= 1;
  const v = verifyInRanges(pack.id, flipped, pack.blobs);
  assert.equal(v.blobsRead, 2, 'the other blobs still verify');
  assert.match(v.reason!, new RegExp(`blob ${pack.blobs[1].id.slice(0, 12)}: .*failed authentication`));

  assert.equal(verifyInRanges('f'.repeat(64), pack.bytes, pack.blobs).reason, 'sha');

  const moved = pack.blobs.map((b, i) => (i === 2 ? { ...b, offset: b.offset + 1 } : b));
  assert.match(verifyInRanges(pack.id, pack.bytes, moved).reason!, /in the index is not in the pack header/);

  const other = deriveKeys(newMasterKey());
  assert.match(
    verifyInRanges(pack.id, pack.bytes, pack.blobs, other).reason!,
    /header failed authentication/,
  );
});

test('the worker pool verifies packs on worker threads, moving their bytes; a dying worker fails its task', async () => {
  const { pack } = await makePack();
  const pool = new WorkerPool<PackVerifyRequest, unknown>(
    workerEntry('pack-verify-worker', pathToFileURL(path.resolve('src/core/repository/pack.ts')).href),
    2,
    keys,
  );
  try {
    const copies = [0, 1, 2, 3].map(() => Buffer.from(pack.bytes));
    const verdicts = await Promise.all(
      copies.map((bytes) =>
        pool.run({ packId: pack.id, bytes, offset: 0, blobs: pack.blobs }, movable(bytes)),
      ),
    );
    for (const v of verdicts) assert.deepEqual(v, { blobsRead: 3 });
    assert.equal(copies[0].byteLength, 0, 'the bytes were moved, not copied');
    // A bug inside the worker comes back as an INTERNAL error, and the pool goes on.
    await assert.rejects(
      pool.run({ packId: pack.id, bytes: pack.bytes, offset: 0, blobs: null as unknown as PackedBlob[] }),
      (e) => isLifeboatError(e, 'INTERNAL') && /verifying pack/.test(e.message),
    );
  } finally {
    await pool.close();
  }

  const dir = await tempDir('worker-dies');
  const entry = path.join(dir.path, 'dies.mjs');
  await writeFile(
    entry,
    "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(7));",
  );
  const dying = new WorkerPool<number, number>(pathToFileURL(entry), 1, undefined);
  try {
    const first = dying.run(1);
    const queued = dying.run(2);
    await assert.rejects(first, (e) => isLifeboatError(e, 'INTERNAL') && /exited \(code 7\)/.test(e.message));
    await assert.rejects(queued, /exited \(code 7\)/, 'the queued task fails too, rather than hanging');
    await assert.rejects(dying.run(3), /exited \(code 7\)/, 'and so does any later one');
  } finally {
    await dying.close();
    await dir.cleanup();
  }
});
