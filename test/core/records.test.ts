import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { LocalBackend } from '../../src/core/storage/local.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { parseRecordName, recordStamp } from '../../src/core/repository/records.ts';
import { checkRepository } from '../../src/core/repository/check.ts';
import { EventBus, makeEvent, type LifeboatEvent } from '../../src/core/events.ts';

const keystore = () => new PassphraseKeystore('pw', 'test', { N: 1024, r: 8, p: 1 });

describe('records', () => {
  test('put, list by kind and key in time order, latest per key; sealed on disk', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-records-'));
    try {
      const repo = await Repository.init(new LocalBackend(dir), keystore());
      const t0 = new Date('2026-12-01T02:00:00.000Z');
      const at = (s: number) => new Date(t0.getTime() + s * 1000);
      await repo.records.put('run', 'r1', { stage: 'mongodb', secretish: 'plain-marker-1' }, at(0));
      await repo.records.put('run', 'r1', { stage: 'pvc' }, at(5));
      await repo.records.put('run', 'r2', { stage: 'mongodb' }, at(3));
      await repo.records.put('drill', 'd1', { ok: true }, at(1));

      const runs = await repo.records.list('run');
      assert.deepEqual(
        runs.map((r) => [r.key, r.time]),
        [
          ['r1', '2026-12-01T02:00:00.000Z'],
          ['r2', '2026-12-01T02:00:03.000Z'],
          ['r1', '2026-12-01T02:00:05.000Z'],
        ].sort((a, b) => (a[1] < b[1] ? -1 : 1)),
      );
      assert.equal((await repo.records.list('run', 'r1')).length, 2);
      assert.equal((await repo.records.list('drill')).length, 1);
      const latest = await repo.records.latestByKey<{ stage: string }>('run');
      assert.deepEqual(
        latest.map((l) => [l.ref.key, l.body.stage]),
        [
          ['r1', 'pvc'],
          ['r2', 'mongodb'],
        ],
      );

      const names = await readdir(path.join(dir, 'records'));
      assert.equal(names.length, 4);
      for (const n of names) {
        const raw = await readFile(path.join(dir, 'records', n));
        assert.ok(!raw.includes('plain-marker-1'), 'record content is encrypted');
      }
      // Records are not packs: check has nothing to say about them.
      const report = await checkRepository(repo, { readData: true });
      assert.equal(report.ok, true, report.errors.join('; '));
      await repo.records.remove(runs);
      assert.equal((await repo.records.list('run')).length, 0);
      await repo.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a record is write-once and a damaged one is reported as INTEGRITY naming it', async () => {
    const backend = new MemoryBackend();
    const repo = await Repository.init(backend, keystore());
    const ref = await repo.records.put('audit', 'a', { n: 1 });
    const raw = await backend.load({ type: 'records', name: ref.name });
    raw[raw.length - 1] ^= 1;
    await backend.save({ type: 'records', name: ref.name }, raw, { overwrite: true });
    await assert.rejects(repo.records.get(ref), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'INTEGRITY');
      assert.match(e.message, new RegExp(ref.name));
      return true;
    });
    await assert.rejects(repo.records.put('Bad Kind', 'a', {}), /not a valid name/);
    await assert.rejects(repo.records.put('run', 'a_b', {}), /must be 1-64/);
  });

  test('names parse back; foreign names are ignored', () => {
    const stamp = recordStamp(new Date('2026-01-02T03:04:05.678Z'));
    assert.equal(stamp, '20260102T030405678Z');
    assert.deepEqual(parseRecordName(`run_k-1_${stamp}_0a1b2c3d`), {
      name: `run_k-1_${stamp}_0a1b2c3d`,
      kind: 'run',
      key: 'k-1',
      time: '2026-01-02T03:04:05.678Z',
    });
    assert.equal(parseRecordName('run_k_notastamp_0a1b2c3d'), undefined);
    assert.equal(parseRecordName('README'), undefined);
  });
});

describe('events', () => {
  test('makeEvent redacts credentials, drops unset fields; a failing sink does not stop the others', async () => {
    const e = makeEvent({
      operation: 'mongodb backup',
      effect: 'change',
      layer: 'mongodb',
      result: 'failure',
      exitCode: 1,
      startedAt: new Date(1000),
      finishedAt: new Date(3500),
      repository: 'azure://acct/c?sig=SECRETSIG',
      actor: 'ops',
      error: { code: 'UNREACHABLE', message: 'mongodb://u:hunter2@db:27017 refused' },
      details: { uri: 'mongodb://u:hunter2@db' },
    });
    assert.equal(e.durationMs, 2500);
    assert.equal(e.schema, 'lifeboat.event/v1');
    const text = JSON.stringify(e);
    assert.doesNotMatch(text, /hunter2|SECRETSIG/);
    assert.ok(!('snapshot' in e), 'unset fields are left out');

    const got: LifeboatEvent[] = [];
    const errors: string[] = [];
    const bus = new EventBus(
      [
        {
          name: 'broken',
          deliver: async () => {
            throw new Error('down');
          },
        },
        { name: 'ok', deliver: async (ev) => void got.push(ev) },
      ],
      (sink, err) => errors.push(`${sink}: ${(err as Error).message}`),
    );
    await bus.emit(e);
    assert.equal(got.length, 1);
    assert.deepEqual(errors, ['broken: down']);
  });
});
