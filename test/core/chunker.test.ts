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

test('byte chunker: handing the pending bytes to a fresh chunker mid-stream cuts exactly where one chunker would', () => {
  const data = pseudoRandom('handover', 12 * 1024 * 1024);
  const whole = chunkAll(data, []).map((c) => c.length);
  // A backup does this when an item outgrows the main thread: it goes on cutting on a worker.
  for (const at of [100, 300 * 1024, 5 * 1024 * 1024 + 3]) {
    const first = new ByteChunker(gear, FILE_CHUNKING);
    const lengths = first
      .pushParts(data.subarray(0, at))
      .map((parts) => parts.reduce((n, p) => n + p.length, 0));
    const pending = first.takePending();
    assert.equal(first.pending.length, 0);
    assert.equal(
      pending.reduce((n, p) => n + p.length, 0),
      at - lengths.reduce((n, l) => n + l, 0),
      'the pending bytes are the ones after the last cut',
    );
    const second = new ByteChunker(gear, FILE_CHUNKING);
    for (const p of pending) lengths.push(...second.push(p).map((c) => c.length));
    lengths.push(...second.push(data.subarray(at)).map((c) => c.length));
    const last = second.flushParts();
    if (last) lengths.push(last.reduce((n, p) => n + p.length, 0));
    assert.deepEqual(lengths, whole, `handed over at ${at}`);
  }
});

test('byte chunker: pushParts gives the same chunks as push, as views of the inputs', () => {
  const data = pseudoRandom('parts', 6 * 1024 * 1024);
  const c = new ByteChunker(gear, FILE_CHUNKING);
  const chunks: Uint8Array[][] = [];
  for (let off = 0; off < data.length; off += 100 * 1024)
    chunks.push(...c.pushParts(data.subarray(off, off + 100 * 1024)));
  chunks.push(c.flushParts()!);
  assert.ok(
    chunks.some((parts) => parts.length > 1),
    'some chunk spans several inputs',
  );
  for (const parts of chunks)
    for (const p of parts) assert.equal(p.buffer, data.buffer, 'a view, not a copy');
  assert.deepEqual(
    chunks.map((parts) => Buffer.concat(parts).toString('base64')),
    chunkAll(data, []).map((b) => b.toString('base64')),
  );
});
