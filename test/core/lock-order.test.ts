// The lock comes before the index (restic's order, cmd/restic/cmd_backup.go): what a command decides from
// the index and the snapshot list was read under its lock, so no prune can have changed it since.
// A local repository, no server needed.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/core/storage/local.ts';
import type {
  Backend,
  ByteRange,
  CallOptions,
  Handle,
  ObjectType,
  SaveOptions,
} from '../../src/core/storage/backend.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { tempDir } from '../env/index.ts';

/** Passes every call through and notes `method type` in order. */
class Recording implements Backend {
  readonly calls: string[] = [];
  private readonly inner: Backend;
  constructor(inner: Backend) {
    this.inner = inner;
  }
  get location() {
    return this.inner.location;
  }
  create(o?: CallOptions) {
    return this.inner.create(o);
  }
  save(h: Handle, d: Uint8Array, o?: SaveOptions) {
    this.calls.push(`save ${h.type}`);
    return this.inner.save(h, d, o);
  }
  load(h: Handle, r?: ByteRange, o?: CallOptions) {
    this.calls.push(`load ${h.type}`);
    return this.inner.load(h, r, o);
  }
  stat(h: Handle, o?: CallOptions) {
    return this.inner.stat(h, o);
  }
  list(t: ObjectType, o?: CallOptions) {
    this.calls.push(`list ${t}`);
    return this.inner.list(t, o);
  }
  remove(h: Handle, o?: CallOptions) {
    this.calls.push(`remove ${h.type}`);
    return this.inner.remove(h, o);
  }
  close() {
    return this.inner.close();
  }
}

const ks = () => new PassphraseKeystore('order', 'test', { N: 1024, r: 8, p: 1 });

test('a backup session takes its lock before it reads the index, and drops an index read before locking', async () => {
  const work = await tempDir();
  try {
    const dir = path.join(work.path, 'repo');
    await (await Repository.init(new LocalBackend(dir), ks())).close();
    const recording = new Recording(new LocalBackend(dir));
    const repo = await Repository.open(recording, ks());
    // An index read before any lock (as the old startBackup did)…
    await repo.loadIndex();
    // …then another process backs up data this one is about to write too.
    const other = await Repository.open(new LocalBackend(dir), ks());
    const s1 = await startBackup(other, 'other');
    const item = await s1.addItem(
      { name: 'x', kind: 'file' },
      Buffer.from('shared content '.repeat(1000)),
      'file',
    );
    await s1.commit({ type: 'files', items: [item] });
    await other.close();

    recording.calls.length = 0;
    const session = await startBackup(repo, 'test');
    const firstLock = recording.calls.indexOf('save locks');
    const firstIndex = recording.calls.indexOf('list index');
    assert.ok(firstLock >= 0 && firstIndex > firstLock, `lock, then index: ${recording.calls.join(', ')}`);
    // The index this session uses is the one read under the lock: it knows the other backup's blobs.
    const again = await session.addItem(
      { name: 'x', kind: 'file' },
      Buffer.from('shared content '.repeat(1000)),
      'file',
    );
    assert.equal(session.progress.bytesAdded, 0, 'deduplicated against data indexed after the first read');
    await session.commit({ type: 'files', items: [again] });
    await repo.close();
  } finally {
    await work.cleanup();
  }
});

test('a second lock request in one process joins the held lock; a shared holder cannot take an exclusive one', async () => {
  const work = await tempDir();
  try {
    const dir = path.join(work.path, 'repo');
    const repo = await Repository.init(new LocalBackend(dir), ks());
    const outer = await repo.lock('exclusive', 'forget');
    const inner = await repo.lock('exclusive', 'prune');
    assert.equal((await repo.listLocks()).length, 1, 'one lock object for both');
    await inner.release();
    assert.equal((await repo.listLocks()).length, 1, 'still held by the outer holder');
    await outer.release();
    assert.equal((await repo.listLocks()).length, 0);
    const shared = await repo.lock('shared', 'restore');
    await assert.rejects(repo.lock('exclusive', 'prune'), /needs an exclusive lock but a shared one is held/);
    await shared.release();
    await repo.close();
  } finally {
    await work.cleanup();
  }
});
