/**
 * Continuous point-in-time recovery: `mongodb pitr run` (spawned as the real CLI), `pitr status`,
 * `restore --time`, and retention of slices.
 *
 * Server: FerretDB started as a replica set member with its oplog emulation, or the replica set given by
 * LIFEBOAT_TEST_MONGODB_URI (then the server restart and the forced gap are skipped: the test must not
 * restart someone else's MongoDB or drop its oplog). The gap is forced by dropping and recreating
 * FerretDB's capped local.oplog.rs while the follower is down: to the follower that is exactly an oplog
 * that rolled over past its position. The coverage logic itself is tested on positions below, no server.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { MongoClient, type Document } from 'mongodb';
import { startFerretDB, startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { openKeystore } from '../../src/core/keystore/open.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { comparePositions } from '../../src/sources/mongodb/oplog.ts';
import {
  coveredRanges,
  resolveTime,
  segments,
  sliceRetention,
  type Base,
  type Slice,
  type SliceMeta,
} from '../../src/sources/mongodb/pitr-slices.ts';

// ---------------------------------------------------------------------------------------------------
// Pure: segments, coverage, resolution and retention on positions.

const iso = (t: number) => new Date(t * 1000).toISOString();
function slice(id: string, from: number, to: number, extra: Partial<SliceMeta> = {}): Slice {
  return {
    id,
    time: iso(to),
    meta: {
      pitr: 1,
      kind: 'slice',
      replicaSet: 'rs0',
      from: { t: from, i: 1 },
      to: { t: to, i: 1 },
      entries: to - from,
      coveredFrom: iso(from),
      coveredUntil: iso(to),
      ...extra,
    },
  };
}
const base = (id: string, end: number): Base => ({
  id,
  time: iso(end),
  replicaSet: 'rs0',
  end: { t: end, i: 1 },
  at: (end + 1) * 1000,
});

describe('pitr bookkeeping, no server', () => {
  test('slices link into segments; a broken link (a gap) starts a new one; duplicates are left out', () => {
    const segs = segments([
      slice('c', 120, 180),
      slice('a', 100, 110),
      slice('b', 110, 120),
      slice('b2', 110, 120), // a second follower's copy of the same range
      slice('e', 300, 360),
      slice('g', 200, 200, { kind: 'gap' }),
    ]);
    assert.deepEqual(
      segs.map((s) => s.slices.map((x) => x.id)),
      [['a', 'b', 'c'], ['e']],
    );
    // Empty slices (an idle oplog) continue from where they started.
    const idle = segments([slice('x', 100, 120), slice('e1', 100, 100), slice('e2', 100, 100)]);
    assert.deepEqual(
      idle.map((s) => s.slices.map((x) => x.id)),
      [['e1', 'e2', 'x']],
    );
  });

  test('covered ranges run from the oldest base inside a segment to its end; times outside are not resolved', () => {
    const segs = segments([slice('a', 100, 110), slice('b', 110, 180), slice('e', 300, 360)]);
    const bases = [base('B0', 50), base('B1', 100), base('B2', 150), base('B3', 250)];
    const ranges = coveredRanges(bases, segs);
    assert.deepEqual(
      ranges.map((r) => [r.from, r.until, r.bases]),
      [[new Date(101_000).toISOString(), iso(180), ['B1', 'B2']]],
    );
    // Newest base at or before T within the segment; only the slices after its window end, up to T.
    const at = resolveTime(170_000, bases, segs)!;
    assert.equal(at.base.id, 'B2');
    assert.deepEqual(
      at.slices.map((s) => s.id),
      ['b'],
    );
    const early = resolveTime(105_000, bases, segs)!;
    assert.equal(early.base.id, 'B1');
    assert.deepEqual(
      early.slices.map((s) => s.id),
      ['a'],
    );
    assert.equal(resolveTime(200_000, bases, segs), undefined, 'after the segment: not covered');
    assert.equal(resolveTime(320_000, bases, segs), undefined, 'B3 is not in the later segment: not covered');
    assert.equal(resolveTime(60_000, bases, segs), undefined, 'B0 has no slices after it');
  });

  test('retention keeps what retained bases need and the newest slice; drops the rest', () => {
    const slices = [
      slice('old1', 10, 20),
      slice('old2', 20, 30),
      slice('a', 100, 110),
      slice('b', 110, 180),
      slice('g', 200, 200, { kind: 'gap' }),
      slice('n', 400, 410),
    ];
    const r = sliceRetention(slices, [base('B2', 150)]);
    assert.deepEqual(r.keep.map((k) => k.slice.id).sort(), ['b', 'g', 'n']);
    assert.deepEqual(r.remove.map((s) => s.id).sort(), ['a', 'old1', 'old2']);
    // With the older base retained too, its slices stay.
    const r2 = sliceRetention(slices, [base('B1', 100), base('B2', 150)]);
    assert.deepEqual(r2.remove.map((s) => s.id).sort(), ['old1', 'old2']);
  });
});

// ---------------------------------------------------------------------------------------------------
// Against a replica set member.

describe('point-in-time recovery against a replica set member', () => {
  const external = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI);
  let server: MongoTestServer;
  let client: MongoClient;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let repoPath: string;
  const DB = 'lifeboat_pitr_test';
  const SCRATCH = 'lifeboat_pitr_scratch';
  let nextId = 1000;

  const cli = (args: string[]) => runCli(['--repo', repoPath, ...args], { env, cwd: work.path });
  type AnyDoc = { _id: number; [k: string]: unknown };
  const coll = (name: string) => client.db(DB).collection<AnyDoc>(name);

  /** count + hash of the documents sorted by _id, per collection. */
  async function fingerprint(db: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const names = (await client.db(db).listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .sort();
    for (const n of names) {
      const h = createHash('sha256');
      let count = 0;
      for await (const d of client
        .db(db)
        .collection(n)
        .find({}, { sort: { _id: 1 }, raw: true })) {
        h.update(d as unknown as Uint8Array);
        count++;
      }
      if (count) out[n] = `${count}:${h.digest('hex')}`;
    }
    return out;
  }

  /** A write of each kind, in turn. */
  async function write(k: number): Promise<void> {
    if (k % 3 === 0) await coll('a').insertOne({ _id: nextId++, k, note: `insert ${k}` });
    else if (k % 3 === 1) await coll('b').updateOne({ _id: k % 20 }, { $set: { k, note: `update ${k}` } });
    else await coll('c').insertOne({ _id: nextId++, k });
    if (k % 5 === 4) await coll('a').deleteOne({ _id: k % 20 });
  }

  interface Follower {
    child: ChildProcess;
    logs: Document[];
    exited: Promise<number | null>;
  }
  function startFollower(): Follower {
    const child = spawnCli(
      ['--repo', repoPath, 'mongodb', 'pitr', 'run', '--slice-interval', '1', '--server-timeout', '5'],
      { env: { ...env, LIFEBOAT_LOG_FORMAT: 'json' }, cwd: work.path },
    );
    const logs: Document[] = [];
    let buf = '';
    child.stderr!.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          logs.push(JSON.parse(line));
        } catch {
          logs.push({ msg: line });
        }
      }
    });
    child.stdout!.resume();
    child.stdin!.end();
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    return { child, logs, exited };
  }
  async function waitFor(
    what: string,
    cond: () => boolean | Promise<boolean>,
    ms = 90_000,
    f?: Follower,
  ): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > deadline) {
        // What the follower last said is what explains a wait that never ends.
        const said = f ? `; the follower's last lines:\n${logText({ ...f, logs: f.logs.slice(-12) })}` : '';
        throw new Error(`timed out waiting for ${what}${said}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  /** Waits until a slice covers everything written up to now. */
  async function caughtUp(f: Follower): Promise<void> {
    const now = Date.now();
    await waitFor(
      'a slice covering the last write',
      () => f.logs.some((l) => l.msg === 'pitr: slice written' && Date.parse(l.coveredUntil) >= now),
      90_000,
      f,
    );
  }
  async function stop(f: Follower): Promise<number | null> {
    f.child.kill('SIGTERM');
    return f.exited;
  }
  const logText = (f: Follower) => f.logs.map((l) => JSON.stringify(l)).join('\n');

  async function status(): Promise<Document> {
    const r = await cli(['--json', 'mongodb', 'pitr', 'status', '--uri', server.uri]);
    assert.equal(r.code, 0, r.stderr);
    return (
      r.json.replicaSets.find((s: Document) => s.oplog && !('error' in s.oplog)) ?? r.json.replicaSets[0]
    );
  }

  /** The slices and gap markers in the repository, in position order. */
  async function sliceChain(): Promise<{ from: string; to: string; entries: number; kind: string }[]> {
    const repo = await Repository.open(await openBackend(repoPath, env), await openKeystore({}, env));
    const list = (await repo.listSnapshots({ type: 'mongodb-oplog' }))
      .map((s) => s as unknown as { meta: SliceMeta })
      .sort((a, b) => comparePositions(a.meta.to, b.meta.to) || comparePositions(a.meta.from, b.meta.from));
    await repo.close();
    return list.map((s) => ({
      from: `${s.meta.from.t}:${s.meta.from.i}`,
      to: `${s.meta.to.t}:${s.meta.to.i}`,
      entries: s.meta.entries,
      kind: s.meta.kind,
    }));
  }

  before(async () => {
    server = external ? await startMongo() : await startFerretDB({ replSetName: 'rs0' });
    client = new MongoClient(server.uri);
    await client.connect();
    await client.db(DB).dropDatabase();
    await client.db(SCRATCH).dropDatabase();
    work = await tempDir();
    repoPath = path.join(work.path, 'repo');
    env = {
      LIFEBOAT_PASSWORD: 'pitr test passphrase',
      LIFEBOAT_MONGODB_URI: server.uri,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    const init = await cli(['init']);
    assert.equal(init.code, 0, init.stderr);
    await coll('a').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, name: `a ${i}` })));
    await coll('b').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, name: `b ${i}` })));
  });

  after(async () => {
    await client
      ?.db(DB)
      .dropDatabase()
      .catch(() => {});
    await client
      ?.db(SCRATCH)
      .dropDatabase()
      .catch(() => {});
    await client?.close();
    await server?.stop();
    await work?.cleanup();
  });

  test('without a base backup the follower waits and says so; status shows nothing covered', async () => {
    const f = startFollower();
    await waitFor('the no-base error', () => /no base backup with an oplog window/.test(logText(f)));
    assert.equal(await stop(f), 143);
    const r = await cli(['mongodb', 'restore', '--time', new Date().toISOString()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not covered by point-in-time recovery; covered: nothing is covered yet/);
  });

  let T: string;
  let atT: Record<string, string>;
  let k = 0;

  test('follower + restore --time T into a scratch database gives exactly the data as of T', async () => {
    const b = await cli(['--json', 'mongodb', 'backup', '--oplog', '--no-retention']);
    assert.equal(b.code, 0, b.stderr);
    const f = startFollower();
    await waitFor('the follower to start after the base', () =>
      /starting after base backup/.test(logText(f)),
    );
    for (; k < 12; k++) await write(k);
    // T: after the 12th write returned and before the 13th starts.
    T = new Date().toISOString();
    atT = await fingerprint(DB);
    await new Promise((r) => setTimeout(r, 5));
    for (; k < 24; k++) await write(k);
    await caughtUp(f);
    assert.equal(await stop(f), 143, logText(f));
    assert.match(logText(f), /"msg":"pitr: slice written"/);
    assert.notDeepEqual(await fingerprint(DB), atT, 'writes after T changed the data');

    const r = await cli([
      '--json',
      'mongodb',
      'restore',
      '--time',
      T,
      '--ns-include',
      `${DB}.*`,
      '--ns-from',
      `${DB}.*`,
      '--ns-to',
      `${SCRATCH}.*`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.pointInTime.base, b.json.id);
    assert.ok(r.json.pointInTime.entries > 0, JSON.stringify(r.json.pointInTime));
    assert.equal(r.json.atomic, true, 'replayed into shadow copies, then swapped in');
    assert.doesNotMatch(r.stderr, /restoring in place/);
    assert.deepEqual(await fingerprint(SCRATCH), atT);
    // What the restore reports is what the target holds: the state as of T, not the base's counts.
    for (const c of r.json.collections as { target: string; count: number }[])
      assert.equal(c.count, Number(atT[c.target.slice(SCRATCH.length + 1)].split(':')[0]), c.target);
  });

  test('restore --time is atomic: SIGKILLed at each replay and swap step, recovered: exactly the old state or exactly the state as of T', async () => {
    const args = [
      'mongodb',
      'restore',
      '--time',
      T,
      '--drop',
      '--ns-include',
      `${DB}.*`,
      '--ns-from',
      `${DB}.*`,
      '--ns-to',
      `${SCRATCH}.*`,
    ];
    // The old state: other content in a and c (c only exists after the base: the replay creates it),
    // and a collection the restore does not touch.
    const scratch = (n: string) => client.db(SCRATCH).collection<AnyDoc>(n);
    const reset = async () => {
      await client.db(SCRATCH).dropDatabase();
      await scratch('a').insertMany([
        { _id: 1, v: 'old' },
        { _id: 5000, v: 'old' },
      ]);
      await scratch('c').insertOne({ _id: 1, v: 'old' });
      await scratch('keep').insertOne({ _id: 1, v: 'kept' });
    };
    const names = async () =>
      (await client.db(SCRATCH).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    await reset();
    const oldState = await fingerprint(SCRATCH);
    const newState = { ...atT, keep: oldState.keep };
    assert.notDeepEqual(oldState, newState);
    const ends = async (): Promise<'old' | 'new' | 'neither'> => {
      const fp = await fingerprint(SCRATCH);
      // Nothing left beside the data (no shadow, set-aside copy or journal, even an empty one).
      if (JSON.stringify(await names()) !== JSON.stringify(Object.keys(fp).sort())) return 'neither';
      const same = (x: Record<string, string>) => JSON.stringify(x) === JSON.stringify(fp);
      return same(oldState) ? 'old' : same(newState) ? 'new' : 'neither';
    };
    const cases: [string, 'resume' | 'rollback' | 'restore', 'old' | 'new'][] = [
      ['replay-started', 'resume', 'old'],
      ['replay-mid:3', 'rollback', 'old'],
      ['replay-mid:6', 'resume', 'old'],
      ['replay-mid:4', 'restore', 'new'],
      ['replay-done', 'resume', 'old'],
      ['swap-begin', 'resume', 'new'],
      ['shadow-in:2', 'rollback', 'old'],
      ['shadow-in:2', 'resume', 'new'],
      ['committed', 'resume', 'new'],
    ];
    for (const [at, recovery, expected] of cases) {
      await reset();
      const k = await runCli(['--repo', repoPath, ...args], {
        env: { ...env, LIFEBOAT_TEST_KILL_AT: at },
        cwd: work.path,
      });
      assert.equal(k.signal, 'SIGKILL', `the kill point ${at} was not reached: ${k.stderr}`);
      assert.equal(await ends(), 'neither', `killed at ${at}: something is left to recover`);
      const r = await cli(recovery === 'restore' ? args : ['mongodb', 'restore', `--${recovery}`]);
      assert.equal(r.code, 0, `${at}: ${r.stderr}`);
      if (at.startsWith('replay'))
        assert.match(r.stderr, /it was replaying the oplog into its shadow copies/);
      assert.equal(await ends(), expected, `killed at ${at}, recovered with ${recovery}`);
    }
  });

  test('a restart of the follower continues the chain: no gap, no duplicate', async () => {
    const f = startFollower();
    await waitFor('resume', () => /resuming after the newest slice/.test(logText(f)));
    for (let n = 0; n < 3; n++, k++) await write(k);
    await caughtUp(f);
    assert.equal(await stop(f), 143);
    const chain = (await sliceChain()).filter((s) => s.kind === 'slice');
    for (let i = 1; i < chain.length; i++)
      assert.equal(chain[i].from, chain[i - 1].to, 'each slice continues the last');
    const s = await status();
    assert.equal(s.gaps.length, 0);
    assert.equal(s.ranges.length, 1, JSON.stringify(s.ranges));
    // No entry twice: the slices hold exactly the oplog entries after the base's window end.
    const [t, i] = chain[0].from.split(':').map(Number);
    const { Timestamp } = await import('mongodb');
    const onServer = await client
      .db('local')
      .collection('oplog.rs')
      .countDocuments({
        ts: { $gt: new Timestamp({ t, i }), $lte: new Timestamp(parseTo(chain.at(-1)!.to)) },
      });
    assert.equal(
      chain.reduce((n, c) => n + c.entries, 0),
      onServer,
    );
  });
  const parseTo = (p: string) => ({ t: Number(p.split(':')[0]), i: Number(p.split(':')[1]) });

  test(
    'the follower keeps running across a restart of the server and keeps its position',
    { skip: external && 'needs the FerretDB the test starts (it restarts it)' },
    async () => {
      const f = startFollower();
      await waitFor('resume', () => /resuming after the newest slice/.test(logText(f)));
      await server.restart();
      for (let n = 0; n < 3; n++, k++) await write(k);
      T = new Date().toISOString();
      atT = await fingerprint(DB);
      await caughtUp(f);
      assert.equal(f.child.exitCode, null, 'still running');
      const before = (await status()).ranges.length;
      assert.equal(await stop(f), 143);
      assert.equal(before, 1);
      const chain = (await sliceChain()).filter((s) => s.kind === 'slice');
      for (let i = 1; i < chain.length; i++) assert.equal(chain[i].from, chain[i - 1].to);
      await client.db(SCRATCH).dropDatabase();
      const r = await cli([
        'mongodb',
        'restore',
        '--time',
        T,
        '--ns-include',
        `${DB}.*`,
        '--ns-from',
        `${DB}.*`,
        '--ns-to',
        `${SCRATCH}.*`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await fingerprint(SCRATCH), atT);
    },
  );

  test('a time outside the covered ranges is refused, naming them', async () => {
    for (const t of ['2001-01-01T00:00:00Z', new Date(Date.now() + 3600_000).toISOString()]) {
      const r = await cli(['mongodb', 'restore', '--time', t]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not covered by point-in-time recovery; covered: rs0 \d{4}-.* – \d{4}-/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const bad = await cli(['mongodb', 'restore', '--time', 'yesterday']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--time "yesterday" is not an ISO 8601 time/);
    const both = await cli(['mongodb', 'restore', 'latest', '--time', T]);
    assert.equal(both.code, 2);
  });

  test('pitr status --json: ranges, lag, gaps and oplog headroom', async () => {
    const s = await status();
    assert.equal(s.replicaSet, 'rs0');
    assert.ok(s.bases >= 1 && s.slices >= 1);
    assert.ok(s.lagMs >= 0, String(s.lagMs));
    assert.ok(s.newestSlice.coveredUntil);
    assert.ok(s.oplog.headroomMs > 0, JSON.stringify(s.oplog));
    const human = await cli(['mongodb', 'pitr', 'status']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /replica set rs0: \d+ base backup\(s\), \d+ slice\(s\)\n {2}covered: /);
  });

  test(
    'a gap (the oplog rolled over while the follower was down) is detected, said loudly, and closed by a new base',
    { skip: external && 'the test cannot drop the oplog of a real replica set' },
    async () => {
      // Truncate the oplog: to the follower the same as a capped oplog that rolled past its position.
      await client.db('local').collection('oplog.rs').drop();
      await client.db('local').createCollection('oplog.rs', { capped: true, size: 1024 * 1024 });
      for (let n = 0; n < 2; n++, k++) await write(k);
      const f = startFollower();
      await waitFor('the gap error', () =>
        f.logs.some((l) => l.level === 'error' && /^GAP in point-in-time recovery/.test(String(l.msg))),
      );
      let s = await status();
      assert.equal(s.gaps.length, 1, JSON.stringify(s.gaps));
      assert.match(s.gaps[0].message, /rolled over/);
      assert.equal(f.child.exitCode, null, 'the follower waits for a base');
      const b = await cli(['--json', 'mongodb', 'backup', '--oplog', '--no-retention']);
      assert.equal(b.code, 0, b.stderr);
      await waitFor('continuing from the new base', () =>
        f.logs.some(
          (l) => /starting after base backup/.test(String(l.msg)) && l.base === b.json.id.slice(0, 8),
        ),
      );
      for (let n = 0; n < 2; n++, k++) await write(k);
      await caughtUp(f);
      assert.equal(await stop(f), 143);
      s = await status();
      assert.equal(s.gaps.length, 1, 'one gap marker, not one per retry');
      assert.equal(s.ranges.length, 2, JSON.stringify(s.ranges));
      assert.ok(Date.parse(s.ranges[1].from) > Date.parse(s.ranges[0].until));
    },
  );

  test('retention keeps the slices retained bases need and drops the rest', async () => {
    const r = await cli(['--json', 'forget', '--type', 'mongodb', '--keep-last', '1', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const group = r.json.groups.find((g: { group: string }) => g.group.startsWith('mongodb-oplog'));
    assert.ok(group, JSON.stringify(r.json.groups.map((g: { group: string }) => g.group)));
    if (!external) {
      // The newest base is the one after the gap: every slice before it can go, those after it stay.
      assert.ok(group.remove.length > 0);
      assert.ok(group.keep.length > 0);
    }
    const chainBefore = await sliceChain();
    const done = await cli(['--json', 'forget', '--type', 'mongodb', '--keep-last', '1']);
    assert.equal(done.code, 0, done.stderr);
    const chainAfter = await sliceChain();
    assert.equal(chainAfter.length, chainBefore.length - group.remove.length);
    const s = await status();
    assert.equal(s.ranges.length, 1);
    // Still restorable to a time in the remaining range.
    await client.db(SCRATCH).dropDatabase();
    const at = await fingerprint(DB);
    const rr = await cli([
      'mongodb',
      'restore',
      '--time',
      s.ranges[0].until,
      '--ns-include',
      `${DB}.*`,
      '--ns-from',
      `${DB}.*`,
      '--ns-to',
      `${SCRATCH}.*`,
    ]);
    assert.equal(rr.code, 0, rr.stderr);
    assert.deepEqual(await fingerprint(SCRATCH), at);
  });
});
