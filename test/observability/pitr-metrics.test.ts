/**
 * PITR lag from the slices' own metadata: the newest slice per replica set, gap markers counted. Slices
 * are written here as `mongodb pitr run` writes them (type mongodb-oplog, SliceMeta); the follower itself
 * is tested against FerretDB in test/mongodb/pitr.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { collectReport, metricFamilies } from '../../src/observability/metrics.ts';
import { formatText } from '../../src/observability/prom-text.ts';
import { SLICE_TYPE, type SliceMeta } from '../../src/sources/mongodb/pitr-slices.ts';

async function slice(repo: Repository, meta: SliceMeta) {
  const session = await startBackup(repo);
  const items =
    meta.kind === 'slice'
      ? [await session.addItem({ name: 'oplog', kind: 'oplog' }, Buffer.from(`entries ${meta.to.t}`), 'file')]
      : [];
  await session.commit({ type: SLICE_TYPE, tags: ['pitr'], meta: { ...meta }, items, allowEmpty: true });
}

test('lifeboat_pitr_lag_seconds is now minus how far the newest slice reaches, per replica set', async () => {
  const repo = await Repository.init(
    new MemoryBackend(),
    new PassphraseKeystore('pw', 't', { N: 1024, r: 8, p: 1 }),
  );
  const base = Date.parse('2026-12-01T12:00:00Z');
  const at = (s: number) => new Date(base + s * 1000).toISOString();
  const pos = (s: number) => ({ t: base / 1000 + s, i: 1 });
  const common = { pitr: 1 as const, entries: 10 };
  await slice(repo, {
    ...common,
    kind: 'slice',
    replicaSet: 'rs0',
    from: pos(0),
    to: pos(50),
    coveredFrom: at(0),
    coveredUntil: at(60),
  });
  await slice(repo, {
    ...common,
    kind: 'slice',
    replicaSet: 'rs0',
    from: pos(50),
    to: pos(110),
    coveredFrom: at(50),
    coveredUntil: at(120),
  });
  await slice(repo, {
    ...common,
    kind: 'gap',
    replicaSet: 'rs1',
    from: pos(0),
    to: pos(0),
    coveredFrom: at(0),
    coveredUntil: at(0),
    entries: 0,
  });

  const report = await collectReport(repo, { now: base + 150_000, location: 'mem' });
  const text = formatText(metricFamilies(report));
  assert.match(text, /^lifeboat_pitr_lag_seconds\{replica_set="rs0"\} 30$/m);
  assert.match(
    text,
    new RegExp(
      `^lifeboat_pitr_covered_until_timestamp_seconds\\{replica_set="rs0"\\} ${(base + 120_000) / 1000}$`,
      'm',
    ),
  );
  assert.match(text, /^lifeboat_pitr_gaps_total\{replica_set="rs0"\} 0$/m);
  assert.match(text, /^lifeboat_pitr_gaps_total\{replica_set="rs1"\} 1$/m);
  assert.doesNotMatch(
    text,
    /lifeboat_pitr_lag_seconds\{replica_set="rs1"\}/,
    'no slice yet: no lag to report',
  );
});
