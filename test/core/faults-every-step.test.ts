// Needs nothing: in memory, on a fake clock. Backup, prune and forget fail at *every* backend call in turn
// (an error at call #k, a lost reply at call #k, the process dying at call #k); whatever happened, the
// repository reopened afterwards checks clean, every snapshot restores byte-identical, and running the
// command again finishes the job. Lock refresh and lock conflicts are driven the same way.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LifeboatError, isLifeboatError } from '../../src/core/errors.ts';
import type { Backend } from '../../src/core/storage/backend.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository, type InitOptions } from '../../src/core/repository/repository.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { planPrune, prune } from '../../src/core/repository/prune.ts';
import { checkRepository } from '../../src/core/repository/check.ts';
import { LOCK_REFRESH_MS, LOCK_STALE_MS } from '../../src/core/repository/lock.ts';
import type { Snapshot } from '../../src/core/repository/model.ts';
import { forgetSnapshots } from '../../src/cli/retention.ts';
import { FaultyBackend, type FaultRule } from '../env/faulty-backend.ts';
import { FAKE_EPOCH, FakeClock, settle } from '../env/fake-clock.ts';
import { pseudoRandom } from '../env/data.ts';

const KiB = 1024;

/** Cheap scrypt: opening a repository hundreds of times must cost milliseconds. */
const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });

/**
 * Fixed 16 KiB chunks (min = avg = max) and 64 KiB packs: a few hundred KiB of data make many packs (and
 * many backend calls), four chunks to a pack, so which blobs share a pack is known in advance.
 */
const CHUNK = 16 * KiB;
const SMALL_PACKS: InitOptions = {
  packSize: 4 * CHUNK,
  chunking: { file: { min: CHUNK, avg: CHUNK, max: CHUNK } },
};

/** After a failure or crash the command is run again later, when the lock it may have left is stale. */
const restartClock = () => new FakeClock(FAKE_EPOCH + LOCK_STALE_MS + 60_000);

type Files = Record<string, Buffer>;

function files(seed: string, sizes: Record<string, number>): Files {
  const out: Files = {};
  for (const [name, size] of Object.entries(sizes)) out[name] = pseudoRandom(`${seed}/${name}`, size);
  return out;
}

/** A backup as a source runs one: items, then commit; on failure the session is aborted. */
async function backup(repo: Repository, content: Files, time?: Date): Promise<Snapshot> {
  const session = await startBackup(repo);
  try {
    const items = [];
    for (const [name, data] of Object.entries(content))
      items.push(await session.addItem({ name, kind: 'file' }, data, 'file'));
    const snapshot = await session.commit({ type: 'files', paths: ['/data'], items });
    if (!time) return snapshot;
    // Retention needs snapshots apart in time: store a copy dated `time` in place of the real one.
    const { id: _id, ...rest } = snapshot;
    const dated = await repo.saveSnapshot({ ...rest, time: time.toISOString() });
    await repo.removeSnapshot(snapshot.id);
    return dated;
  } catch (e) {
    await session.abort().catch(() => {});
    throw e;
  }
}

async function assertRestores(repo: Repository, snapshot: Snapshot, expected: Files, what: string) {
  assert.deepEqual(
    snapshot.items.map((i) => i.name).sort(),
    Object.keys(expected).sort(),
    `${what}: snapshot ${snapshot.id.slice(0, 8)} lists its items`,
  );
  for (const item of snapshot.items) {
    const back = await repo.readItemBuffer(item);
    assert.ok(back.equals(expected[item.name]), `${what}: ${item.name} restores byte-identical`);
  }
}

/**
 * `check` finds nothing wrong. After a failure, packs no index references are allowed: they are only
 * warnings, left by the interruption. The `final` check of a run allows no warning at all and reads every
 * pack back; in between, restores verify the data.
 */
async function assertChecksClean(repo: Repository, what: string, { final = false } = {}) {
  const report = await checkRepository(repo, { readData: final });
  assert.deepEqual(report.errors, [], `${what}: check reports no errors`);
  assert.ok(report.ok, `${what}: check ok`);
  const unexpected = report.warnings.filter(
    (w) =>
      final ||
      !/^\d+ pack\(s\) \(\d+ bytes\) are not in any readable index: left by interrupted backups/.test(w),
  );
  assert.deepEqual(unexpected, [], `${what}: no warnings${final ? '' : ' but unreferenced packs'}`);
}

/** Nothing left for prune to do: every pack in storage is indexed and fully used. */
async function assertNothingToPrune(repo: Repository, what: string) {
  const plan = await planPrune(repo);
  assert.deepEqual(plan.remove, [], `${what}: no unused packs`);
  assert.deepEqual(
    plan.repack.map((p) => p.id),
    [],
    `${what}: no partly used packs beyond the tolerance`,
  );
  assert.deepEqual(plan.unindexed, [], `${what}: no unindexed packs`);
}

// ---- the harness itself ---------------------------------------------------------------------------------

describe('harness: MemoryBackend, FaultyBackend, FakeClock', () => {
  const h = (name: string) => ({ type: 'snapshots' as const, name });

  test('MemoryBackend: a fired signal rejects every call with its reason; clones and buffers are copies', async () => {
    const b = new MemoryBackend();
    await b.save(h('a'), Buffer.from('one'));
    const reason = new LifeboatError('INTERRUPTED', 'stop');
    const signal = AbortSignal.abort(reason);
    for (const call of [
      () => b.create({ signal }),
      () => b.save(h('b'), Buffer.from('x'), { signal }),
      () => b.load(h('a'), undefined, { signal }),
      () => b.stat(h('a'), { signal }),
      () => b.remove(h('a'), { signal }),
      async () => {
        for await (const _ of b.list('snapshots', { signal }));
      },
    ])
      await assert.rejects(call(), (e) => e === reason);
    assert.equal(b.count('snapshots'), 1, 'nothing was saved or removed');

    const copy = b.clone();
    await copy.remove(h('a'));
    assert.equal(b.count(), 1, 'a clone is independent');
    const loaded = await b.load(h('a'));
    loaded.fill(0);
    assert.equal((await b.load(h('a'))).toString(), 'one', 'a loaded buffer is a copy');
  });

  test('FaultyBackend: nth counts matching calls; crash fails everything after; a lost reply lands', async () => {
    const inner = new MemoryBackend();
    const faulty = new FaultyBackend(inner);
    const boom = new LifeboatError('NO_SPACE', 'injected: full');
    const second = faulty.fail({ method: 'save', type: 'snapshots', nth: 2 }, boom);
    await faulty.save(h('a'), Buffer.from('a'));
    await faulty.load(h('a'));
    await assert.rejects(faulty.save(h('b'), Buffer.from('b')), (e) => e === boom);
    await faulty.save(h('c'), Buffer.from('c'));
    assert.equal(second.hits.length, 1);
    assert.equal(second.hits[0].seq, 3);
    assert.deepEqual(
      faulty.log.map((c) => `${c.method}:${c.outcome}`),
      ['save:ok', 'load:ok', 'save:failed', 'save:ok'],
    );
    assert.equal(inner.count('snapshots'), 2, 'the failed save wrote nothing');

    faulty.clear();
    faulty.fail({ method: 'save', after: true }, boom);
    await assert.rejects(faulty.save(h('d'), Buffer.from('d')), (e) => e === boom);
    assert.equal((await inner.load(h('d'))).toString(), 'd', 'a lost reply: the save landed');

    faulty.clear();
    const crash = faulty.crash({ method: 'load' });
    await assert.rejects(faulty.load(h('a')), (e) => e === crash.error);
    await assert.rejects(faulty.stat(h('a')), (e) => e === crash.error);
    await assert.rejects(faulty.save(h('e'), Buffer.from('e')), (e) => e === crash.error);
    assert.ok(faulty.crashed);
    assert.equal(faulty.count('save'), 5);
  });

  test('FaultyBackend: a hung call waits for release, or rejects when its signal fires', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    const hang = faulty.hang({ method: 'save' });
    let done = false;
    const saving = faulty.save(h('a'), Buffer.from('a')).then(() => (done = true));
    await hang.reached;
    await settle();
    assert.ok(!done, 'held');
    hang.release();
    await saving;
    assert.equal(faulty.log[0].outcome, 'ok');

    const stopper = new AbortController();
    const hang2 = faulty.hang({ method: 'remove' });
    const removing = faulty.remove(h('a'), { signal: stopper.signal });
    await hang2.reached;
    const reason = new LifeboatError('LOCKED', 'lost');
    stopper.abort(reason);
    await assert.rejects(removing, (e) => e === reason);
  });

  test('FakeClock: callbacks fire at their due times, in order, until stopped', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const stopA = clock.every(10, () => fired.push(`a@${clock.now() - FAKE_EPOCH}`));
    clock.every(15, () => fired.push(`b@${clock.now() - FAKE_EPOCH}`));
    await clock.advance(30);
    assert.deepEqual(fired, ['a@10', 'b@15', 'a@20', 'a@30', 'b@30']);
    stopA();
    await clock.advance(15);
    assert.deepEqual(fired.slice(5), ['b@45']);
    assert.equal(clock.now(), FAKE_EPOCH + 45);
    assert.equal(clock.pending, 1);
  });
});

// ---- failing at every step ------------------------------------------------------------------------------

type Mode = 'error' | 'lost reply' | 'crash';
const MODES: Mode[] = ['error', 'lost reply', 'crash'];

function injectAt(faulty: FaultyBackend, mode: Mode, k: number): FaultRule {
  const error = new LifeboatError('UNREACHABLE', `injected: storage unreachable at call #${k}`);
  if (mode === 'crash') return faulty.crash({ nth: k }, error);
  return faulty.fail({ nth: k, after: mode === 'lost reply' }, error);
}

interface FailedRun {
  k: number;
  mode: Mode;
  /** The storage as the failed run left it (without the faults): what the next run finds. */
  storage: MemoryBackend;
  faulty: FaultyBackend;
  rule: FaultRule;
  /** "call #k (save data/1a2b…)", for assertion messages. */
  what: string;
}

/**
 * Runs `operation` once cleanly on a copy of `base` to count its backend calls, then once per call
 * number k on a fresh copy, injecting the fault at call #k; asserts that the operation reports exactly the
 * injected error, then hands the storage it left behind to `verify`.
 */
async function failAtEveryCall(
  base: MemoryBackend,
  mode: Mode,
  operation: (backend: Backend) => Promise<unknown>,
  verify: (run: FailedRun) => Promise<void>,
  /** Calls whose failure the operation rides out by design (it then succeeds). */
  ridesOut: (hit: FaultRule['hits'][number]) => boolean = () => false,
): Promise<number> {
  const probe = new FaultyBackend(base.clone());
  await operation(probe);
  const calls = probe.calls;
  assert.ok(calls >= 10, `the operation makes a fair number of backend calls (${calls})`);
  for (let k = 1; k <= calls; k++) {
    const storage = base.clone();
    const faulty = new FaultyBackend(storage);
    const rule = injectAt(faulty, mode, k);
    const outcome = await operation(faulty).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal(rule.hits.length, 1, `${mode} at call #${k} of ${calls}: the call was made`);
    const hit = rule.hits[0];
    const what = `${mode} at call #${k} (${hit.method} ${hit.type ?? ''}/${hit.name?.slice(0, 12) ?? ''})`;
    if (ridesOut(hit)) assert.equal(outcome, undefined, `${what}: the operation succeeds anyway`);
    else
      assert.ok(
        outcome === rule.error,
        `${what}: the operation fails with the injected error, got ${outcome === undefined ? 'success' : (outcome as Error).stack}`,
      );
    await verify({ k, mode, storage, faulty, rule, what });
  }
  return calls;
}

/**
 * Locks the failed run left: none, unless it died (its lock stays until it is stale) or the failed call
 * was the removal of its lock (and did not reach the storage).
 */
function assertLocksLeft(run: FailedRun) {
  if (run.mode === 'crash') return;
  const hit = run.rule.hits[0];
  const failedRelease = hit.method === 'remove' && hit.type === 'locks' && run.mode === 'error';
  assert.equal(run.storage.count('locks'), failedRelease ? 1 : 0, `${run.what}: its lock was released`);
}

describe('backup failing at every backend call', () => {
  const first = files('first', { 'a.bin': 150 * KiB, 'b.bin': 70 * KiB });
  const second = { 'a.bin': first['a.bin'], ...files('second', { 'c.bin': 300 * KiB, 'd.bin': 40 * KiB }) };

  async function baseRepository(): Promise<{ base: MemoryBackend; previous: Snapshot }> {
    const base = new MemoryBackend('backup-base');
    const repo = await Repository.init(base, keystore(), SMALL_PACKS);
    const previous = await backup(repo, first);
    await repo.close();
    return { base, previous };
  }

  for (const mode of MODES) {
    test(`${mode} at call #k: no partial snapshot, the old one intact, prune and check clean`, async () => {
      const { base, previous } = await baseRepository();
      const secondBackup = async (backend: Backend) => {
        const repo = await Repository.open(backend, keystore(), { clock: new FakeClock() });
        return backup(repo, second);
      };
      const calls = await failAtEveryCall(
        base,
        mode,
        secondBackup,
        async (run) => {
          const { storage, faulty, rule, what } = run;
          assertLocksLeft(run);
          // The snapshot is the commit point: it exists exactly when its save reached the storage, and the
          // backup never gets that far after a failed call.
          const snapshotSave = faulty.log.find((c) => c.method === 'save' && c.type === 'snapshots');
          const hit = rule.hits[0];
          if (snapshotSave)
            assert.ok(snapshotSave.seq <= hit.seq, `${what}: no snapshot save after the failure`);
          const landed =
            snapshotSave !== undefined &&
            (snapshotSave.outcome === 'ok' || (snapshotSave === hit && run.mode === 'lost reply'));
          assert.equal(storage.count('snapshots'), landed ? 2 : 1, `${what}: snapshots in storage`);

          const repo = await Repository.open(storage, keystore(), { clock: restartClock() });
          await assertChecksClean(repo, what);
          const snapshots = await repo.listSnapshots();
          const old = snapshots.find((s) => s.id === previous.id);
          assert.ok(old, `${what}: the previous snapshot is still there`);
          await assertRestores(repo, old, first, `${what}, previous snapshot`);
          const added = snapshots.find((s) => s.id !== previous.id);
          if (added) await assertRestores(repo, added, second, `${what}, the snapshot that landed`);

          await prune(repo);
          await assertChecksClean(repo, `${what}, then prune`, { final: true });
          await assertNothingToPrune(repo, `${what}, then prune`);
          await assertRestores(repo, old, first, `${what}, then prune, previous snapshot`);
          if (added) await assertRestores(repo, added, second, `${what}, then prune, new snapshot`);
          await repo.close();
        },
        // Removing the lock comes after the snapshot is committed: a backup that did its job is not
        // reported failed because its lock could not be removed (restic only warns too).
        (hit) => hit.method === 'remove' && hit.type === 'locks',
      );
      assert.equal(calls, 17, 'the second backup: open 3, lock 3, index 2, 6 packs, index, snapshot, unlock');
    });
  }
});

describe('prune failing at every backend call', () => {
  const keptParts = [0, 1, 2, 3].map((i) => pseudoRandom(`kept/${i}`, CHUNK));
  const droppedParts = [0, 1, 2, 3].map((i) => pseudoRandom(`dropped/${i}`, CHUNK));
  const contents = {
    // Kept and dropped chunks alternate, so every pack of this snapshot ends up partly used.
    interleaved: { 'mixed.bin': Buffer.concat(keptParts.flatMap((k, i) => [k, droppedParts[i]])) },
    // Only chunks the interleaved backup already stored, plus one file of its own.
    kept: { 'kept.bin': Buffer.concat(keptParts), ...files('own', { 'own.bin': 3 * CHUNK }) },
    // Nothing shared: all its packs become unused.
    unshared: files('unshared', { 'u.bin': 4 * CHUNK }),
  };

  /**
   * Three snapshots, two of them forgotten, so prune has packs to delete (the unshared backup's) and
   * packs to repack (the interleaved backup's); and the packs of a backup that was aborted, never indexed.
   */
  async function baseRepository(): Promise<{ base: MemoryBackend; kept: Snapshot }> {
    const base = new MemoryBackend('prune-base');
    const repo = await Repository.init(base, keystore(), SMALL_PACKS);
    const interleaved = await backup(repo, contents.interleaved);
    const kept = await backup(repo, contents.kept);
    const unshared = await backup(repo, contents.unshared);
    const aborted = await startBackup(repo);
    await aborted.addItem({ name: 'x.bin', kind: 'file' }, pseudoRandom('aborted', 4 * CHUNK), 'file');
    await aborted.abort();
    await repo.removeSnapshot(interleaved.id);
    await repo.removeSnapshot(unshared.id);
    const plan = await planPrune(repo);
    assert.equal(plan.remove.length, 1, 'prune has an unused pack to delete');
    assert.equal(plan.repack.length, 2, 'prune has partly used packs to repack');
    assert.equal(plan.unindexed.length, 1, 'prune has an unindexed pack to delete');
    await repo.close();
    return { base, kept };
  }

  for (const mode of MODES) {
    test(`${mode} at call #k: check clean, the kept snapshot restores, prune again finishes`, async () => {
      const { base, kept } = await baseRepository();
      const pruneRun = async (backend: Backend) => {
        const repo = await Repository.open(backend, keystore(), { clock: new FakeClock() });
        return prune(repo);
      };
      await failAtEveryCall(base, mode, pruneRun, async (run) => {
        const { storage, what } = run;
        assertLocksLeft(run);
        const repo = await Repository.open(storage, keystore(), { clock: restartClock() });
        await assertChecksClean(repo, what);
        assert.deepEqual(
          (await repo.listSnapshots()).map((s) => s.id),
          [kept.id],
          `${what}: prune touched no snapshot`,
        );
        await assertRestores(repo, kept, contents.kept, what);

        await prune(repo);
        await assertChecksClean(repo, `${what}, then prune again`, { final: true });
        await assertNothingToPrune(repo, `${what}, then prune again`);
        await assertRestores(repo, kept, contents.kept, `${what}, then prune again`);
        await repo.close();
      });
    });
  }
});

describe('forget failing at every backend call', () => {
  const DAY = 86_400_000;
  const contents = [0, 1, 2, 3, 4].map((i) => files(`forget-${i}`, { [`day${i}.bin`]: 20 * KiB }));

  async function baseRepository(): Promise<{ base: MemoryBackend; snapshots: Snapshot[] }> {
    const base = new MemoryBackend('forget-base');
    const repo = await Repository.init(base, keystore(), SMALL_PACKS);
    const snapshots = [];
    for (const [i, c] of contents.entries())
      snapshots.push(await backup(repo, c, new Date(FAKE_EPOCH + i * DAY)));
    await repo.close();
    return { base, snapshots };
  }

  for (const mode of MODES) {
    test(`${mode} at call #k: the kept snapshots are never touched, forget again finishes`, async () => {
      const { base, snapshots } = await baseRepository();
      const keepLast2 = { last: 2 };
      const newest = snapshots.slice(-2).map((s) => s.id);
      const contentOf = new Map(snapshots.map((s, i) => [s.id, contents[i]]));
      const forget = async (backend: Backend) => {
        const repo = await Repository.open(backend, keystore(), { clock: new FakeClock() });
        const result = await forgetSnapshots(repo, {}, keepLast2, false);
        assert.equal(result.removed, 3, 'a clean forget removes the three oldest');
        return result;
      };
      await failAtEveryCall(base, mode, forget, async (run) => {
        const { storage, what } = run;
        assertLocksLeft(run);
        const repo = await Repository.open(storage, keystore(), { clock: restartClock() });
        const left = await repo.listSnapshots();
        for (const id of newest)
          assert.ok(
            left.some((s) => s.id === id),
            `${what}: kept snapshot ${id.slice(0, 8)} is there`,
          );
        for (const s of left) await assertRestores(repo, s, contentOf.get(s.id)!, what);
        await assertChecksClean(repo, what, { final: true });

        await forgetSnapshots(repo, {}, keepLast2, false);
        assert.deepEqual(
          (await repo.listSnapshots()).map((s) => s.id),
          newest,
          `${what}, then forget again: exactly the two newest remain`,
        );
        await repo.close();
      });
    });
  }
});

// ---- lock refresh on a fake clock -----------------------------------------------------------------------

describe('lock refresh', () => {
  const data = files('lock', { 'old.bin': 40 * KiB });

  async function setup() {
    const storage = new MemoryBackend('locks');
    const init = await Repository.init(storage, keystore(), SMALL_PACKS);
    const previous = await backup(init, data);
    await init.close();
    const faulty = new FaultyBackend(storage);
    const clock = new FakeClock();
    const repo = await Repository.open(faulty, keystore(), { clock });
    const session = await startBackup(repo, 'long backup');
    assert.equal(storage.count('locks'), 1, 'the backup holds a lock');
    const blob = previous.items[0].chunks![0];
    return { storage, faulty, clock, repo, session, blob };
  }

  const anotherProcess = (storage: Backend, clock: FakeClock) =>
    Repository.open(storage, keystore(), { clock });

  /** Advances in refresh intervals until the repository is cancelled; returns how long that took. */
  async function advanceUntilCancelled(repo: Repository, clock: FakeClock): Promise<number> {
    let elapsed = 0;
    while (!repo.signal.aborted) {
      assert.ok(elapsed < LOCK_STALE_MS, 'cancelled before the lock went stale for others');
      await clock.advance(LOCK_REFRESH_MS);
      elapsed += LOCK_REFRESH_MS;
    }
    return elapsed;
  }

  test('refreshing fails: cancelled before the lock goes stale, running calls reject, close still unlocks', async () => {
    const { storage, faulty, clock, repo, session, blob } = await setup();
    const refreshFault = faulty.fail(
      { method: 'save', type: 'locks' },
      new LifeboatError('UNREACHABLE', 'injected: the lock cannot be written'),
    );
    const elapsed = await advanceUntilCancelled(repo, clock);
    assert.ok(elapsed < LOCK_STALE_MS, `cancelled after ${elapsed / 60_000} min`);
    assert.ok(elapsed > LOCK_REFRESH_MS, 'one failed refresh is not enough to give up');
    assert.equal(refreshFault.hits.length, elapsed / LOCK_REFRESH_MS, 'a refresh was tried at every tick');

    const reason = repo.signal.reason;
    assert.ok(isLifeboatError(reason, 'LOCKED'), `cancelled with LOCKED, got ${reason}`);
    assert.match(reason.message, /could not refresh the repository lock/);
    await assert.rejects(
      session.addItem({ name: 'new.bin', kind: 'file' }, pseudoRandom('new', 10 * KiB), 'file'),
      (e) => e === reason,
    );
    await assert.rejects(repo.loadBlob(blob), (e) => e === reason);
    await assert.rejects(repo.listSnapshots(), (e) => e === reason);

    // The lock object is still there (not stale yet), so another process is still kept out…
    const other = await anotherProcess(storage, clock);
    await assert.rejects(other.lock('exclusive', 'prune'), (e) => isLifeboatError(e, 'LOCKED'));
    // …until the cancelled one closes: releasing goes around the cancelled signal.
    await repo.close();
    assert.equal(storage.count('locks'), 0, 'close removed the lock despite the cancellation');
    await session.abort();
    const exclusive = await other.lock('exclusive', 'prune');
    await exclusive.release();
    assert.equal(clock.pending, 0, 'no refresh timer left running');
  });

  test('refreshing fails: a save hung in flight is cancelled with the lock error', async () => {
    const { storage, faulty, clock, repo, session } = await setup();
    const packsBefore = storage.count('data');
    const hung = faulty.hang({ method: 'save', type: 'data' });
    const adding = session.addItem(
      { name: 'big.bin', kind: 'file' },
      pseudoRandom('big', 1024 * KiB),
      'file',
    );
    adding.catch(() => {});
    await hung.reached;
    faulty.fail({ method: 'save', type: 'locks' }, new LifeboatError('UNREACHABLE', 'injected'));
    await advanceUntilCancelled(repo, clock);
    const reason = repo.signal.reason;
    assert.ok(isLifeboatError(reason, 'LOCKED'));
    await assert.rejects(adding, (e) => e === reason);
    assert.ok(hung.hits.length >= 1);
    assert.equal(storage.count('data'), packsBefore, 'the hung saves wrote nothing');
    await session.abort();
    await repo.close();
    assert.equal(storage.count('locks'), 0);
  });

  test('refreshing works: the lock survives hours and the backup commits', async () => {
    const { storage, faulty, clock, repo, session } = await setup();
    const hours = 3;
    await clock.advance(hours * 3_600_000);
    assert.ok(!repo.signal.aborted, 'still running');
    assert.equal(
      faulty.count('save', 'locks'),
      1 + (hours * 3_600_000) / LOCK_REFRESH_MS,
      'refreshed every 5 min',
    );
    const other = await anotherProcess(storage, clock);
    const [held] = await other.listLocks();
    assert.equal(held.info?.time, new Date(clock.now()).toISOString(), 'the lock carries the latest refresh');
    await assert.rejects(other.lock('exclusive', 'prune'), (e) => isLifeboatError(e, 'LOCKED'));

    const content = pseudoRandom('late', 30 * KiB);
    const item = await session.addItem({ name: 'late.bin', kind: 'file' }, content, 'file');
    const snapshot = await session.commit({ type: 'files', items: [item] });
    assert.equal(storage.count('locks'), 0, 'commit released the lock');
    assert.ok((await other.readItemBuffer(snapshot.items[0])).equals(content));
    await repo.close();
  });

  test('the lock removed by someone else: the next refresh cancels and does not write it back', async () => {
    const { storage, clock, repo, session, blob } = await setup();
    await storage.remove({ type: 'locks', name: repo.heldLock!.id });
    await clock.advance(LOCK_REFRESH_MS);
    assert.ok(repo.signal.aborted, 'cancelled at the first refresh');
    const reason = repo.signal.reason;
    assert.ok(isLifeboatError(reason, 'LOCKED'), `LOCKED, got ${reason}`);
    assert.match(reason.message, /removed by another process/);
    assert.equal(storage.count('locks'), 0, 'the refresh did not recreate the lock');
    await assert.rejects(
      session.addItem({ name: 'n.bin', kind: 'file' }, pseudoRandom('n', 10 * KiB), 'file'),
      (e) => e === reason,
    );
    await assert.rejects(repo.loadBlob(blob), (e) => e === reason);
    await repo.close();
    await session.abort();
    assert.equal(storage.count('locks'), 0);
  });
});

describe('locks taken concurrently', () => {
  async function twoProcesses() {
    const storage = new MemoryBackend('concurrent');
    const init = await Repository.init(storage, keystore(), SMALL_PACKS);
    await init.close();
    const clock = new FakeClock();
    const a = await Repository.open(storage, keystore(), { clock });
    const b = await Repository.open(storage, keystore(), { clock });
    return { storage, a, b };
  }

  test('an exclusive lock is refused while a shared one is held, naming the holder', async () => {
    const { storage, a, b } = await twoProcesses();
    const shared = await a.lock('shared', 'backup');
    await assert.rejects(b.lock('exclusive', 'prune'), (e) => {
      assert.ok(isLifeboatError(e, 'LOCKED'), `LOCKED, got ${e}`);
      assert.match(e.message, /locked by backup \(pid \d+ on .*, shared, since /);
      assert.equal(e.details?.lock, a.heldLock!.id);
      return true;
    });
    assert.equal(storage.count('locks'), 1, 'the refused process removed its own lock object');
    // Two shared holders are fine.
    const alsoShared = await b.lock('shared', 'restore');
    assert.equal(storage.count('locks'), 2);
    await alsoShared.release();
    await shared.release();
    const exclusive = await b.lock('exclusive', 'prune');
    await exclusive.release();
    assert.equal(storage.count('locks'), 0);
  });

  test('an exclusive lock held blocks startBackup; released, the backup runs', async () => {
    const { storage, a, b } = await twoProcesses();
    const exclusive = await a.lock('exclusive', 'prune');
    await assert.rejects(startBackup(b), (e) => {
      assert.ok(isLifeboatError(e, 'LOCKED'), `LOCKED, got ${e}`);
      assert.match(e.message, /locked by prune \(.*exclusive/);
      return true;
    });
    assert.equal(storage.count('locks'), 1);
    await exclusive.release();
    const snapshot = await backup(b, files('after-prune', { 'f.bin': 10 * KiB }));
    assert.equal((await a.listSnapshots()).map((s) => s.id).join(), snapshot.id);
  });
});
