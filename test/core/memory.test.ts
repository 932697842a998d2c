// Freeing buffers early (memory.ts discard) and the compressor paths that use it: no server needed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { compressParts, compressPartsSync, decompressSync, ownBody } from '../../src/core/compression.ts';
import { discard } from '../../src/core/memory.ts';

const MiB = 1024 * 1024;

test('discard frees a large buffer the caller made: every view of it is empty afterwards', () => {
  const big = Buffer.alloc(MiB, 7);
  const view = big.subarray(10, 20);
  discard(big);
  assert.equal(big.buffer.detached, true);
  assert.equal(big.length, 0);
  assert.equal(view.length, 0, 'a view of the same memory is empty too, which is why only owners discard');
});

test('discard leaves small, pooled, shared and already-freed buffers alone', () => {
  const pooled = Buffer.from('a few bytes from the shared pool');
  const small = Buffer.alloc(1024, 1);
  const slab = Buffer.allocUnsafe(200);
  assert.ok(slab.buffer.byteLength <= Buffer.poolSize, 'allocUnsafe of a few bytes slices the pool');
  const shared = new Uint8Array(new SharedArrayBuffer(MiB));
  const freed = Buffer.alloc(MiB);
  discard(freed);
  discard(pooled, small, slab, shared, freed, undefined);
  assert.equal(pooled.toString(), 'a few bytes from the shared pool');
  assert.equal(small.length, 1024);
  assert.equal(shared.length, MiB);
});

test('compressing never frees the caller’s input, whether it is stored or compressed', async () => {
  const random = randomBytes(MiB);
  const text = Buffer.from('rocket chat message '.repeat(MiB / 16));
  const textLength = text.length;
  for (const compress of [compressPartsSync, compressParts]) {
    const stored = await compress(random, { codec: 'zstd' });
    assert.equal(stored[0][0], 0, 'incompressible data is stored');
    assert.equal(stored[1], random);
    assert.equal(random.length, MiB, 'the probe was freed, not the input');
    assert.equal(ownBody(stored), undefined, 'a stored body is the caller’s, never to be freed');

    const compressed = await compress(text, { codec: 'zstd' });
    assert.ok(compressed[1].length < text.length / 4);
    assert.equal(text.length, textLength);
    assert.ok(
      decompressSync(Buffer.concat(compressed), 'blob', textLength).equals(text),
      'the body is whole before its owner frees it',
    );
    const body = ownBody(compressed);
    if (body) {
      discard(body);
      assert.equal(compressed[1].length, 0, 'a body of its own is freed');
    } else {
      // The thread-pool path joins a small output from Node's shared pool: never to be freed.
      assert.ok(compressed[1].buffer.byteLength <= Buffer.poolSize);
    }
  }
  // The calling-thread path sizes zlib's output to the input, so its body is its own to free.
  assert.ok(ownBody(compressPartsSync(text, { codec: 'zstd' })));
});
