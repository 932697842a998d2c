// Named mutual-exclusion locks (core/repository/lock.ts `Lock.acquireNamed`, `repo.lockNamed`): one holder
// per name, independent of the shared/exclusive data locks, stale like any other lock. Two handles on one
// in-memory repository stand for two processes (the CLI-level behaviour, with real processes, is in
// test/operations/pipeline.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { LOCK_STALE_MS } from '../../src/core/repository/lock.ts';
import { isLifeboatError } from '../../src/core/errors.ts';
import { FakeClock, FAKE_EPOCH } from '../env/fake-clock.ts';

const ks = () => new PassphraseKeystore('named', 'test', { N: 1024, r: 8, p: 1 });

async function twoHandles(clock2?: FakeClock) {
  const backend = new MemoryBackend();
  await (await Repository.init(backend, ks())).close();
  const a = await Repository.open(backend, ks(), { clock: new FakeClock() });
  const b = await Repository.open(backend, ks(), { clock: clock2 ?? new FakeClock() });
  return { a, b };
}

describe('named locks', () => {
  test('a second holder of the same name is refused with BUSY naming the first; other names are free', async () => {
    const { a, b } = await twoHandles();
    const held = await a.lockNamed('pipeline-daily', 'pipeline run R1');
    await assert.rejects(b.lockNamed('pipeline-daily', 'pipeline run R2'), (e) => {
      assert.ok(isLifeboatError(e, 'BUSY'), String(e));
      assert.match(
        e.message,
        /^pipeline-daily is held by pipeline run R1 \(pid \d+ on .+, lock pipeline-daily, since /,
      );
      assert.equal((e.details?.holder as { purpose: string }).purpose, 'pipeline run R1');
      return true;
    });
    const other = await b.lockNamed('pipeline-hourly', 'pipeline run R3');
    await held.release();
    const next = await b.lockNamed('pipeline-daily', 'pipeline run R4');
    assert.equal((await a.listLocks()).filter((l) => l.info?.name).length, 2);
    await other.release();
    await next.release();
    assert.deepEqual(await a.listLocks(), []);
  });

  test('coexists with shared and exclusive data locks, both ways', async () => {
    const { a, b } = await twoHandles();
    const named = await a.lockNamed('pipeline-daily', 'pipeline run R1');
    const exclusive = await b.lock('exclusive', 'forget');
    await exclusive.release();
    await named.release();
    const excl = await b.lock('exclusive', 'prune');
    const named2 = await a.lockNamed('pipeline-daily', 'pipeline run R2');
    // ...while data locks still exclude each other.
    await assert.rejects(a.lock('shared', 'mongodb backup'), (e) => isLifeboatError(e, 'LOCKED'));
    await named2.release();
    await excl.release();
  });

  test('a holder that stopped refreshing is stale after 30 minutes and no longer blocks', async () => {
    const { a, b } = await twoHandles(new FakeClock(FAKE_EPOCH + LOCK_STALE_MS + 60_000));
    await a.lockNamed('pipeline-daily', 'pipeline run killed');
    const taken = await b.lockNamed('pipeline-daily', 'pipeline run R2');
    await taken.release();
    assert.equal(await b.removeLocks(), 1, 'unlock removes the stale one');
  });

  test('two holders starting at the same moment: exactly one gets it', async () => {
    for (let round = 0; round < 3; round++) {
      const { a, b } = await twoHandles();
      const results = await Promise.allSettled([
        a.lockNamed('pipeline-daily', 'pipeline run A'),
        b.lockNamed('pipeline-daily', 'pipeline run B'),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(
        won.length,
        1,
        `round ${round}: ${lost.map((r) => String((r as PromiseRejectedResult).reason))}`,
      );
      assert.ok(isLifeboatError((lost[0] as PromiseRejectedResult).reason, 'BUSY'));
      await a.close();
      await b.close();
    }
  });
});
