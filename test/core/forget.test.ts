// Retention decisions (pure; no server). Expected sets worked out by hand from restic's documented rules:
// newest per calendar bucket, rules OR-ed, the oldest kept while a rule has count left, keep-within measured
// from the newest snapshot, ISO weeks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyPolicy, parseDuration, type RetentionPolicy } from '../../src/core/repository/forget.ts';
import type { Snapshot } from '../../src/core/repository/model.ts';

function snap(id: string, time: string, type: Snapshot['type'] = 'mongodb', host = 'aks-node'): Snapshot {
  return {
    id,
    type,
    time: new Date(time).toISOString(),
    timestamp: '',
    host,
    tags: [],
    paths: ['mongodb://rocketchat'],
    meta: {},
    summary: { bytesProcessed: 0, bytesAdded: 0, items: 0, durationMs: 0 },
    items: [],
  };
}

const TABLE = [
  snap('s1', '2024-01-01T10:00:00Z'), // Monday, ISO week 2024-W1
  snap('s2', '2024-01-01T22:00:00Z'),
  snap('s3', '2024-01-02T10:00:00Z'), // W1
  snap('s4', '2024-01-08T10:00:00Z'), // W2
  snap('s5', '2024-01-09T10:00:00Z'), // W2
  snap('s6', '2024-02-15T10:00:00Z'), // W7
  snap('s7', '2024-03-01T09:00:00Z'), // W9
  snap('s8', '2024-03-01T18:00:00Z'), // W9
];

function kept(policy: RetentionPolicy, now?: Date, list = TABLE): string[] {
  return applyPolicy(list, policy, now)
    .flatMap((g) => g.decisions.filter((d) => d.keep).map((d) => d.snapshot.id))
    .sort();
}

const CASES: [string, RetentionPolicy, string[], Date?][] = [
  ['keep-last 2', { last: 2 }, ['s7', 's8']],
  ['keep-daily 3: newest of each of the 3 newest days', { daily: 3 }, ['s5', 's6', 's8']],
  [
    'keep-daily 10: count left at the oldest keeps it too',
    { daily: 10 },
    ['s1', 's2', 's3', 's4', 's5', 's6', 's8'],
  ],
  ['keep-weekly 2 (ISO weeks)', { weekly: 2 }, ['s6', 's8']],
  ['keep-weekly 4', { weekly: 4 }, ['s3', 's5', 's6', 's8']],
  ['keep-monthly 5', { monthly: 5 }, ['s1', 's5', 's6', 's8']],
  ['keep-yearly 1', { yearly: 1 }, ['s8']],
  ['keep-hourly 3', { hourly: 3 }, ['s6', 's7', 's8']],
  ['rules are OR-ed: keep-last 1 + keep-monthly 2', { last: 1, monthly: 2 }, ['s6', 's8']],
  ['keep-daily 2 + keep-weekly 3', { daily: 2, weekly: 3 }, ['s5', 's6', 's8']],
  [
    'keep-within 2d counts back from the newest snapshot, not now',
    { within: '2d' },
    ['s7', 's8'],
    new Date('2030-01-01'),
  ],
  ['keep-within 1m', { within: '1m' }, ['s6', 's7', 's8']],
  ['keep-last unlimited', { last: -1 }, TABLE.map((s) => s.id)],
  ['retention-days 7 counts from now', { retentionDays: 7 }, ['s7', 's8'], new Date('2024-03-05T12:00:00Z')],
  ['retention-days never removes the newest', { retentionDays: 7 }, ['s8'], new Date('2024-06-01T00:00:00Z')],
];

for (const [name, policy, expected, now] of CASES) {
  test(`forget policy: ${name}`, () => {
    assert.deepEqual(kept(policy, now), [...expected].sort());
  });
}

test('forget policy: groups by type, host and paths, and explains each decision', () => {
  const list = [
    ...TABLE,
    snap('c1', '2024-01-01T00:00:00Z', 'cluster-state'),
    snap('h1', '2023-01-01T00:00:00Z', 'mongodb', 'other-host'),
  ];
  const groups = applyPolicy(list, { last: 1 });
  assert.equal(groups.length, 3);
  assert.deepEqual(kept({ last: 1 }, undefined, list), ['c1', 'h1', 's8']);
  const s8 = groups.flatMap((g) => g.decisions).find((d) => d.snapshot.id === 's8')!;
  assert.deepEqual(s8.reasons, ['last 1']);
  const daily = applyPolicy(TABLE, { daily: 1 })[0].decisions.find((d) => d.snapshot.id === 's8')!;
  assert.match(daily.reasons[0], /daily snapshot \(2024-03-01\)/);
});

test('durations parse and bad ones are rejected', () => {
  assert.deepEqual(parseDuration('1y2m3d4h'), { y: 1, m: 2, d: 3, h: 4 });
  assert.deepEqual(parseDuration('2w'), { y: 0, m: 0, d: 14, h: 0 });
  assert.throws(() => parseDuration('7 days'));
  assert.throws(() => parseDuration(''));
});

test('a week of empty backups never forgets the newest snapshot with data (issue 9, finding 5)', () => {
  const withData = (id: string, time: string) => ({
    ...snap(id, time),
    items: [{ name: 'rocketchat.messages', kind: 'collection', meta: {}, size: 1, sha256: '', records: 1 }],
  });
  const empty = (id: string, time: string) => ({ ...snap(id, time), meta: { empty: true } });
  const list = [
    withData('real1', '2024-05-01T02:00:00Z'),
    withData('real2', '2024-05-02T02:00:00Z'),
    ...[3, 4, 5, 6, 7, 8, 9, 10].map((d) =>
      empty(`empty${d}`, `2024-05-${String(d).padStart(2, '0')}T02:00:00Z`),
    ),
  ];
  // The guide's default: keep 7 days. Every real snapshot is older than that.
  const decisions = applyPolicy(list, { retentionDays: 7 }, new Date('2024-05-10T03:00:00Z'))[0].decisions;
  const keep = decisions.filter((d) => d.keep).map((d) => d.snapshot.id);
  assert.ok(keep.includes('real2'), `the newest real snapshot stays: ${keep}`);
  assert.ok(!keep.includes('real1'), 'older real ones follow the policy');
  assert.match(decisions.find((d) => d.snapshot.id === 'real2')!.reasons.join(), /newest snapshot with data/);
  assert.deepEqual(kept({ last: 1 }, undefined, list), ['empty10', 'real2']);
});
