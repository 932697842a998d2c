// Large blobs are opened on a worker thread (Repository.openBlob, blob-open-worker.ts): the same content
// and the same operator-facing errors as on the main thread. In-process, on a memory backend: what is
// tested is the hand-off, not storage.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isLifeboatError } from '../../src/core/errors.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import type { Item } from '../../src/core/repository/model.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import type { Backend, ByteRange, CallOptions, Handle } from '../../src/core/storage/backend.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { pseudoRandom } from '../env/data.ts';

const MiB = 1024 * 1024;
const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });

/** Loads through a filter that may change a blob's bytes on the way (a disk returning bad data). */
class Tampering extends MemoryBackend {
  tamper: ((h: Handle, range: ByteRange | undefined, bytes: Buffer) => void) | undefined;
  override async load(h: Handle, range?: ByteRange, options?: CallOptions): Promise<Buffer> {
    const bytes = await super.load(h, range, options);
    this.tamper?.(h, range, bytes);
    return bytes;
  }
}

/** An item of large chunks (incompressible, 512 KiB on average), and compressible text after it. */
async function backedUp(backend: Backend): Promise<{ repo: Repository; item: Item; data: Buffer }> {
  const repo = await Repository.init(backend, keystore());
  const data = Buffer.concat([
    pseudoRandom('open-on-workers', 6 * MiB),
    Buffer.from('lifeboat restores chat history; '.repeat(64 * 1024)),
  ]);
  const session = await startBackup(repo);
  const w = session.newItem({ name: 'big', kind: 'file' }, 'file');
  await w.write(data);
  const item = await w.finish();
  await session.commit({ type: 'files', items: [item] });
  return { repo, item, data };
}

describe('blobs opened on a worker thread', () => {
  test('large blobs come back whole, stored and compressed alike', async () => {
    const { repo, item, data } = await backedUp(new MemoryBackend());
    try {
      const index = await repo.loadIndex();
      const sizes = item.chunks!.map((id) => index.get(id)!.length);
      assert.ok(sizes.filter((n) => n >= 128 * 1024).length >= 4, `chunk sizes ${sizes}`);
      assert.ok((await repo.readItemBuffer(item)).equals(data));
      // The same bytes would come from the main thread: that they came from a worker is the point here.
      assert.ok((repo as unknown as { openers?: object }).openers, 'no worker pool was started');
      // Twice: the buffers moved between threads are not the ones the next read needs.
      assert.ok((await repo.readItemBuffer(item)).equals(data));
    } finally {
      await repo.close();
    }
  });

  test('a damaged large blob is INTEGRITY naming the blob and its pack, as on the main thread', async () => {
    const backend = new Tampering();
    const { repo, item } = await backedUp(backend);
    try {
      const index = await repo.loadIndex();
      const victim = item.chunks!.find((id) => index.get(id)!.length >= 128 * 1024)!;
      const entry = index.get(victim)!;
      backend.tamper = (h, range, bytes) => {
        if (h.name === entry.pack && range?.offset === entry.offset) bytes[100] ^= 1;
      };
      await assert.rejects(repo.readItemBuffer(item), (e) => {
        assert.ok(isLifeboatError(e, 'INTEGRITY'), String(e));
        assert.equal(
          e.message,
          `blob ${victim.slice(0, 12)} in pack ${entry.pack} failed authentication (corrupted or tampered)`,
        );
        assert.match(e.hint ?? '', /lifeboat check --read-data/);
        return true;
      });
      // Nothing was cached or half-kept: once the disk returns good bytes, the item reads again.
      backend.tamper = undefined;
      assert.equal((await repo.readItemBuffer(item)).length, item.size);
    } finally {
      await repo.close();
    }
  });

  test('a blob whose content is not its id is INTEGRITY (the id is checked on the worker too)', async () => {
    const backend = new Tampering();
    const { repo, item } = await backedUp(backend);
    try {
      const index = await repo.loadIndex();
      const [first, second] = item.chunks!.filter((id) => index.get(id)!.length >= 128 * 1024);
      // The loaded index points `first` at another chunk's sealed blob: authentic, but not that id.
      index.set(first, { ...index.get(second)! });
      await assert.rejects(repo.loadBlob(first), (e) => {
        assert.ok(isLifeboatError(e, 'INTEGRITY'), String(e));
        assert.match(e.message, /does not match its id/);
        return true;
      });
    } finally {
      await repo.close();
    }
  });
});
