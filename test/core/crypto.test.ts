// Unit tests of sealing, keyed ids and compression: no server needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compress, decompress, decompressSync } from '../../src/core/compression.ts';
import { chunkId, deriveKeys, newMasterKey, open, seal } from '../../src/core/crypto.ts';
import { isLifeboatError } from '../../src/core/errors.ts';
import { pseudoRandom } from '../env/data.ts';

test('sealed data opens with the right key and fails clearly on any change', () => {
  const keys = deriveKeys(newMasterKey());
  const plain = Buffer.from('chat history');
  const sealed = seal(keys.encryption, plain, 'snapshots');
  assert.ok(open(keys.encryption, sealed, 'x', 'snapshots').equals(plain));
  assert.ok(!sealed.includes(plain), 'ciphertext does not contain the plain text');
  for (const i of [0, 12, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[i] ^= 1;
    assert.throws(
      () => open(keys.encryption, bad, 'thing'),
      (e) => isLifeboatError(e, 'INTEGRITY') && /thing failed authentication/.test(e.message),
    );
  }
  assert.throws(
    () => open(keys.encryption, sealed, 'x', 'index'),
    (e) => isLifeboatError(e, 'INTEGRITY'),
    'wrong object type (AAD)',
  );
  assert.throws(
    () => open(deriveKeys(newMasterKey()).encryption, sealed, 'x', 'snapshots'),
    (e) => isLifeboatError(e, 'INTEGRITY'),
  );
  assert.throws(() => open(keys.encryption, sealed.subarray(0, 10), 'x'), /truncated/);
});

test('chunk ids are keyed: same data, different repositories, different ids', () => {
  const a = deriveKeys(newMasterKey());
  const b = deriveKeys(newMasterKey());
  const data = Buffer.from('same');
  assert.equal(chunkId(a.id, data), chunkId(a.id, data));
  assert.notEqual(chunkId(a.id, data), chunkId(b.id, data));
  assert.notDeepEqual(a.id, a.encryption);
});

test('a blob that inflates past its recorded plain length is damaged, not decompressed', async () => {
  const plain = Buffer.from('rocket.chat message '.repeat(50_000));
  for (const codec of ['zstd', 'gzip'] as const) {
    const c = await compress(plain, { codec });
    assert.ok((await decompress(c, 'x', plain.length)).equals(plain), `${codec}: exact length`);
    await assert.rejects(
      decompress(c, 'blob 1234', plain.length - 1000),
      (e) =>
        isLifeboatError(e, 'INTEGRITY') &&
        /blob 1234: cannot decompress \(it inflates past its recorded \d+ bytes\)/.test(e.message),
      `${codec}: a larger result is refused`,
    );
    // The worker threads' synchronous path refuses it with the same message.
    assert.ok(decompressSync(c, 'x', plain.length).equals(plain), `${codec}: exact length, sync`);
    assert.throws(
      () => decompressSync(c, 'blob 1234', plain.length - 1000),
      (e) =>
        isLifeboatError(e, 'INTEGRITY') &&
        /blob 1234: cannot decompress \(it inflates past its recorded \d+ bytes\)/.test(e.message),
      `${codec}: a larger result is refused, sync`,
    );
  }
});

test('compression round trips for every codec and falls back to none for incompressible data', async () => {
  const text = Buffer.from('rocket.chat message '.repeat(5000));
  for (const codec of ['zstd', 'gzip', 'none'] as const) {
    const c = await compress(text, { codec });
    if (codec !== 'none') assert.ok(c.length < text.length / 10, `${codec} compresses`);
    assert.ok((await decompress(c, 'x')).equals(text));
  }
  const noise = pseudoRandom('noise', 100_000);
  const c = await compress(noise, { codec: 'zstd' });
  assert.equal(c[0], 0, 'stored uncompressed');
  assert.ok((await decompress(c, 'x')).equals(noise));
  const bad = Buffer.from(await compress(text, { codec: 'zstd' }));
  bad[0] = 9;
  await assert.rejects(decompress(bad, 'blob'), (e) => isLifeboatError(e, 'INTEGRITY'));
  assert.throws(() => decompressSync(bad, 'blob'), /blob: unknown compression codec 9/);
  assert.ok(decompressSync(c, 'x').equals(noise), 'sync: stored uncompressed');
});
