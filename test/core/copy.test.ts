/**
 * `copy` between two repositories with different keys, in memory: content matching, reuse across copies,
 * record items, and a copy crashed at every kind of write and then resumed (the target stays consistent and
 * ends with exactly the source's snapshots). The CLI test (test/cli/copy.test.ts) covers local, Azurite and
 * versitygw.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository, type InitOptions } from '../../src/core/repository/repository.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { checkRepository } from '../../src/core/repository/check.ts';
import { contentKey, copySnapshot, planCopy, reusableItems } from '../../src/core/repository/copy.ts';
import type { Snapshot } from '../../src/core/repository/model.ts';
import { FaultyBackend } from '../env/faulty-backend.ts';
import { pseudoRandom } from '../env/data.ts';

const KiB = 1024;
const keystore = (pw: string) => new PassphraseKeystore(pw, 'test', { N: 1024, r: 8, p: 1 });
const SMALL: InitOptions = {
  packSize: 64 * KiB,
  chunking: { file: { min: 16 * KiB, avg: 16 * KiB, max: 16 * KiB } },
};

async function backup(
  repo: Repository,
  files: Record<string, Buffer>,
  records?: Buffer[],
): Promise<Snapshot> {
  const session = await startBackup(repo);
  const items = [];
  for (const [name, data] of Object.entries(files))
    items.push(await session.addItem({ name, kind: 'file' }, data, 'file'));
  if (records) {
    const w = session.newItem({ name: 'db.coll', kind: 'collection' }, 'records');
    for (const r of records) await w.write(r);
    items.push(await w.finish());
  }
  return session.commit({ type: 'files', paths: ['/data'], items });
}

async function copyAll(source: Repository, target: Repository) {
  const all = { purpose: 'any' } as const;
  const plan = planCopy(await source.listSnapshots(all), await target.listSnapshots(all));
  const reuse = reusableItems(await target.listSnapshots(all));
  const copied = [];
  for (const s of plan.toCopy) copied.push(await copySnapshot(source, target, s, { reuse }));
  return { plan, copied };
}

const keys = (snaps: Snapshot[]) => snaps.map(contentKey).sort();

describe('copy', () => {
  test('copies by content with its own keys; a second copy after a change reuses what the target has', async () => {
    const source = await Repository.init(new MemoryBackend(), keystore('source'), SMALL);
    const target = await Repository.init(new MemoryBackend(), keystore('target'), SMALL);
    const docs = Array.from({ length: 300 }, (_, i) => pseudoRandom(`doc${i}`, 200 + (i % 50)));
    const files = { a: pseudoRandom('a', 200 * KiB), b: pseudoRandom('b', 300 * KiB) };
    await backup(source, files, docs);

    const first = await copyAll(source, target);
    assert.equal(first.copied.length, 1);
    assert.deepEqual(keys(await target.listSnapshots()), keys(await source.listSnapshots()));
    const [copy] = await target.listSnapshots();
    const [original] = await source.listSnapshots();
    assert.equal(copy.time, original.time, 'the copy keeps the original time');
    assert.equal(copy.host, original.host);
    assert.deepEqual(copy.meta.copiedFrom, { repository: source.id, snapshot: original.id });
    const coll = copy.items.find((i) => i.name === 'db.coll')!;
    assert.equal(coll.records, 300, 'record count is the documents, not the chunks handed over');
    assert.ok((await target.readItemBuffer(coll)).equals(Buffer.concat(docs)));
    assert.notDeepEqual(copy.items[0].chunks, original.items[0].chunks, 'blob ids are keyed per repository');

    // Same again: nothing to copy.
    assert.equal((await copyAll(source, target)).copied.length, 0);

    // A day of changes: one file changed a little, the rest as it was.
    const changed = Buffer.from(files.b);
    changed.fill(7, 1000, 2000);
    await backup(source, { a: files.a, b: changed }, docs);
    const second = await copyAll(source, target);
    assert.equal(second.copied.length, 1);
    assert.equal(second.plan.present.length, 1);
    const [c] = second.copied;
    assert.equal(c.itemsReused, 2, 'unchanged items are reused without reading them');
    assert.equal(c.itemsCopied, 1);
    assert.ok(
      c.bytesAdded < first.copied[0].bytesAdded / 4,
      `second copy stored ${c.bytesAdded} bytes, the first ${first.copied[0].bytesAdded}`,
    );
    const report = await checkRepository(target, { readData: true });
    assert.ok(report.ok, report.errors.join('; '));

    // A snapshot's purpose travels with it: an import stays an import in the target.
    const session = await startBackup(source);
    const item = await session.addItem({ name: 'x', kind: 'file' }, pseudoRandom('imp', 10 * KiB), 'file');
    await session.commit({ type: 'files', paths: ['/import'], items: [item], purpose: 'import' });
    await copyAll(source, target);
    const imported = (await target.listSnapshots({ purpose: 'import' })).map((s) => s.paths);
    assert.deepEqual(imported, [['/import']]);
  });

  for (const [what, match] of [
    ['the 2nd pack', { method: 'save', type: 'data', nth: 2 }],
    ['the index', { method: 'save', type: 'index', nth: 1 }],
    ['the snapshot', { method: 'save', type: 'snapshots', nth: 1 }],
    ['the 2nd snapshot', { method: 'save', type: 'snapshots', nth: 2 }],
  ] as const) {
    test(`a copy crashed at ${what} leaves the target consistent, and the next copy completes it`, async () => {
      const source = await Repository.init(new MemoryBackend(), keystore('source'), SMALL);
      await backup(source, { a: pseudoRandom('x', 400 * KiB) });
      await backup(source, { a: pseudoRandom('x', 400 * KiB), b: pseudoRandom('y', 200 * KiB) });
      const base = new MemoryBackend();
      await Repository.init(base, keystore('target'), SMALL);
      const faulty = new FaultyBackend(base);
      faulty.crash(match);
      const crashed = await Repository.open(faulty, keystore('target'));
      await assert.rejects(copyAll(source, crashed), /simulated crash/);

      // The crash left its shared lock behind; the next copy's shared lock does not conflict with it.
      const target = await Repository.open(base, keystore('target'));
      const before = (await target.listSnapshots()).length;
      assert.ok(before < 2, 'the crash kept at least one snapshot from landing');
      const resumed = await copyAll(source, target);
      assert.equal(resumed.copied.length, 2 - before);
      assert.deepEqual(keys(await target.listSnapshots()), keys(await source.listSnapshots()));
      const report = await checkRepository(target, { readData: true });
      assert.deepEqual(report.errors, []);
      for (const s of await target.listSnapshots())
        for (const item of s.items) await target.readItemBuffer(item);
    });
  }
});
