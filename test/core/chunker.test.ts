// Unit tests of the chunkers: no server needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ByteChunker,
  FILE_CHUNKING,
  RECORD_CHUNKING,
  RecordChunker,
  gearTable,
} from '../../src/core/chunker.ts';
import { pseudoRandom } from '../env/data.ts';

const gear = gearTable(Buffer.alloc(32, 7));

function chunkAll(data: Buffer, pieces: number[]): Buffer[] {
  const c = new ByteChunker(gear, FILE_CHUNKING);
  const out: Buffer[] = [];
  let off = 0;
  for (const p of pieces) {
    out.push(...c.push(data.subarray(off, off + p)));
    off += p;
  }
  out.push(...c.push(data.subarray(off)));
  const last = c.flush();
  if (last) out.push(last);
  return out;
}

test('byte chunker: boundaries do not depend on how the stream is split, sizes respect min/max', () => {
  const data = pseudoRandom('chunker', 24 * 1024 * 1024);
  const a = chunkAll(data, []);
  const b = chunkAll(data, [1, 7, 65536, 3 * 1024 * 1024 + 5, 100]);
  assert.deepEqual(
    a.map((c) => c.length),
    b.map((c) => c.length),
  );
  assert.ok(Buffer.concat(a).equals(data));
  for (const c of a.slice(0, -1)) {
    assert.ok(c.length >= FILE_CHUNKING.min && c.length <= FILE_CHUNKING.max, `chunk of ${c.length}`);
  }
  const avg = data.length / a.length;
  assert.ok(avg > 512 * 1024 && avg < 2 * 1024 * 1024, `average ${avg}`);
});

test('byte chunker: an insertion only changes the chunks around it', () => {
  const data = pseudoRandom('insert', 32 * 1024 * 1024);
  const edited = Buffer.concat([
    data.subarray(0, 16 * 1024 * 1024),
    Buffer.alloc(1024, 1),
    data.subarray(16 * 1024 * 1024),
  ]);
  const before = new Set(chunkAll(data, []).map((c) => c.toString('base64')));
  const after = chunkAll(edited, []);
  const changed = after.filter((c) => !before.has(c.toString('base64')));
  assert.ok(changed.length <= 3, `${changed.length} of ${after.length} chunks changed`);
});

test('byte chunker: a different key gives different boundaries', () => {
  const data = pseudoRandom('keyed', 16 * 1024 * 1024);
  const a = new ByteChunker(gear, FILE_CHUNKING).push(data).map((c) => c.length);
  const b = new ByteChunker(gearTable(Buffer.alloc(32, 9)), FILE_CHUNKING).push(data).map((c) => c.length);
  assert.notDeepEqual(a, b);
});

test('record chunker: cuts only between records, averages near the target, splits oversized records', () => {
  const c = new RecordChunker(gear, RECORD_CHUNKING);
  const records: Buffer[] = [];
  for (let i = 0; i < 20000; i++) records.push(pseudoRandom(`rec${i}`, 100 + (i % 900)));
  const ends = new Set<number>();
  let pos = 0;
  for (const r of records) ends.add((pos += r.length));
  const chunks: Buffer[] = [];
  for (const r of records) chunks.push(...c.push(r));
  chunks.push(c.flush()!);
  let at = 0;
  for (const ch of chunks) {
    at += ch.length;
    assert.ok(ends.has(at), 'every cut falls on a record boundary');
  }
  const avg = pos / chunks.length;
  assert.ok(avg > 8 * 1024 && avg < 32 * 1024, `average ${avg}`);

  const big = pseudoRandom('big', 16 * 1024 * 1024);
  const pieces = [...c.push(big), c.flush()].filter((p): p is Buffer => p !== undefined);
  assert.ok(Buffer.concat(pieces).equals(big));
  assert.ok(pieces.every((p) => p.length <= RECORD_CHUNKING.max));
});
