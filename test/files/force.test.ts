// `files backup --force` reads every file again. A file whose metadata says it is unchanged is written
// against the parent's item (BackupSession.newItem's `expected`): it takes the parent's SHA-256 only if
// every chunk matches, and is read again and hashed when any differs. In-process, on a memory backend,
// so that the session can be wrapped to hand the backup a wrong expectation.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isLifeboatError } from '../../src/core/errors.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { checkRepository } from '../../src/core/repository/check.ts';
import type { BackupSession, ExpectedItem, Item } from '../../src/core/repository/model.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { backupFiles } from '../../src/sources/files/files.ts';
import { pseudoRandom } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Sizes that take each path: one chunk on the main thread, several on the workers, one longer list. */
const FILES: [string, number][] = [
  ['small.bin', 50 * KiB],
  ['medium.bin', 3 * MiB + 17],
  ['large.bin', 20 * MiB],
];

let work: TempDir;
let src: string;
let repo: Repository;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  work = await tempDir('lifeboat-force-');
  src = path.join(work.path, 'tree');
  await mkdir(src);
  for (const [name, size] of FILES) await writeFile(path.join(src, name), pseudoRandom(name, size));
  // Files changed within 2 s of a backup's start are never trusted as unchanged (files.ts RACY_MS).
  await sleep(2100);
  repo = await Repository.init(
    new MemoryBackend(),
    new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 }),
  );
  await backupFiles(repo, { paths: [src] });
});

after(async () => {
  await repo.close();
  await work.cleanup();
});

/** A session whose expectItem passes each expectation through `change`, counting the calls. */
async function session(change: (e: ExpectedItem, name: string) => ExpectedItem) {
  const real = await startBackup(repo);
  const calls: string[] = [];
  const wrapped = new Proxy(real, {
    get(target, key) {
      if (key === 'expectItem')
        return async (previous: Item) => {
          calls.push(previous.name);
          const e = await target.expectItem(previous);
          return e && change(e, previous.name);
        };
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as BackupSession;
  return { session: wrapped, calls };
}

async function itemsOf(result: { snapshot: { items: Item[] } }): Promise<Map<string, Item>> {
  return new Map(
    result.snapshot.items.filter((i) => i.kind === 'file').map((i) => [path.basename(i.name), i]),
  );
}

describe('files backup --force', () => {
  test('every file is read again; unchanged ones take the parent hash, which is the content hash', async () => {
    const { session: s, calls } = await session((e) => e);
    const result = await backupFiles(repo, { paths: [src], force: true, session: s });
    assert.equal(result.parent, undefined, '--force has no parent');
    assert.equal(result.filesNew, FILES.length);
    assert.deepEqual(calls.map((c) => path.basename(c)).sort(), FILES.map(([n]) => n).sort());
    const items = await itemsOf(result);
    for (const [name] of FILES) {
      const content = await readFile(path.join(src, name));
      assert.equal(items.get(name)!.sha256, sha256(content), `${name}: the content's SHA-256`);
      assert.ok((await repo.readItemBuffer(items.get(name)!)).equals(content), `${name}: restores`);
    }
  });

  test('a chunk that differs from the expectation, first, last or one too many: the file is read again and hashed', async () => {
    const flip = (id: string) => (id[0] === '0' ? '1' : '0') + id.slice(1);
    const ways: Record<string, (ids: readonly string[]) => string[]> = {
      'small.bin': (ids) => [flip(ids[0])],
      'medium.bin': (ids) => [...ids.slice(0, -1), flip(ids.at(-1)!)],
      'large.bin': (ids) => [...ids, ids[0]],
    };
    const { session: s } = await session((e, name) => ({
      ...e,
      sha256: 'f'.repeat(64),
      chunkIds: ways[path.basename(name)](e.chunkIds),
    }));
    const result = await backupFiles(repo, { paths: [src], force: true, session: s });
    const items = await itemsOf(result);
    for (const [name] of FILES) {
      const content = await readFile(path.join(src, name));
      assert.equal(
        items.get(name)!.sha256,
        sha256(content),
        `${name}: hashed, not taken from the expectation`,
      );
      assert.ok((await repo.readItemBuffer(items.get(name)!)).equals(content), `${name}: restores`);
    }
    const report = await checkRepository(repo, { readData: true });
    assert.equal(report.ok, true, report.errors.join('; '));
  });

  test('a writer that diverged has no hash to give: finish refuses, matches says why', async () => {
    const s = await startBackup(repo);
    try {
      const [previous] = (await repo.listSnapshots())
        .at(0)!
        .items.filter((i) => i.name.endsWith('medium.bin'));
      const expected = (await s.expectItem(previous))!;
      const data = await readFile(path.join(src, 'medium.bin'));
      data[data.length - 1] ^= 1;
      const w = s.newItem({ name: 'medium.bin', kind: 'file' }, 'file', expected);
      await w.write(data);
      assert.equal(await w.matches(), false);
      assert.equal(w.diverged, true);
      await assert.rejects(w.finish(), (e) => isLifeboatError(e, 'INTERNAL'));
      // One byte too many is known at once, before the last chunk is named.
      const longer = s.newItem({ name: 'longer', kind: 'file' }, 'file', expected);
      await longer.write(Buffer.concat([await readFile(path.join(src, 'medium.bin')), Buffer.from('x')]));
      assert.equal(longer.diverged, true);
      await longer.discard();
    } finally {
      await s.abort();
    }
  });
  test('with every chunk matching, the hash comes from the expectation, not from hashing again', async () => {
    // A wrong hash in an expectation whose chunks all match shows which path was taken; nothing real
    // hands out such an expectation (a parent's hash is its content's). Last: its snapshot is wrong.
    const { session: s } = await session((e) => ({ ...e, sha256: 'f'.repeat(64) }));
    const result = await backupFiles(repo, { paths: [src], force: true, session: s });
    for (const [name, item] of await itemsOf(result)) assert.equal(item.sha256, 'f'.repeat(64), name);
  });
});
