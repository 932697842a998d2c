/**
 * `mongodb backup --oplog` and `mongodb restore --oplog-replay [--oplog-limit]`.
 *
 * Server: FerretDB started as a replica set member with its oplog emulation (a capped local.oplog.rs
 * recording inserts, updates and deletes), or the replica set given by LIFEBOAT_TEST_MONGODB_URI. FerretDB
 * has no applyOps, so there the replay goes through plain writes; against MongoDB it goes through
 * applyOps. The pure parts (diff format, transactions, limits) are tested without a server below.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Int32, Long, MongoClient, Timestamp, type Document } from 'mongodb';
import { serialize } from 'bson';
import { startFerretDB, startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli } from '../env/cli.ts';
import { SHARED_DIR, tempDir, type TempDir } from '../env/index.ts';
import { openBackend } from '../../src/core/storage/open.ts';
import { openKeystore } from '../../src/core/keystore/open.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { startBackup } from '../../src/core/repository/backup.ts';
import { backupMongo, planBackup } from '../../src/sources/mongodb/backup.ts';
import { NamespaceFilter } from '../../src/sources/mongodb/nsfilter.ts';
import { hashCollection } from '../../src/sources/mongodb/restore.ts';
import { ArchiveWriter } from '../../src/sources/mongodb/archive.ts';
import { formatMetadataJson } from '../../src/sources/mongodb/metadata.ts';
import {
  TransactionAssembler,
  applyDiff,
  applyOpsEntry,
  isReplayable,
  opNamespaces,
  parseOplogLimit,
  redirectOp,
  scanOplog,
  targetNamespace,
} from '../../src/sources/mongodb/oplog.ts';

describe('oplog, no server', () => {
  test('$v:2 diffs: delete, update in place, insert, sub-documents, array resize and element edits', () => {
    const doc: Document = {
      _id: 1,
      name: 'a',
      gone: true,
      profile: { city: 'x', tags: ['a', 'b', 'c', 'd'] },
      list: [{ n: 1 }, { n: 2 }],
    };
    applyDiff(doc, {
      d: { gone: false },
      u: { name: 'b' },
      i: { added: new Int32(5) },
      sprofile: { u: { city: 'y' }, stags: { a: true, l: 2, u1: 'B' } },
      slist: { a: true, s1: { u: { n: 20 } }, u3: { n: 4 } },
    });
    assert.deepEqual(Object.keys(doc), ['_id', 'name', 'profile', 'list', 'added']);
    assert.equal(doc.name, 'b');
    assert.deepEqual(doc.profile, { city: 'y', tags: ['a', 'B'] });
    assert.deepEqual(doc.list, [{ n: 1 }, { n: 20 }, null, { n: 4 }]);
    assert.ok(doc.added instanceof Int32);
    assert.throws(() => applyDiff({}, { x: 1 }), /unknown diff section "x"/);
  });

  test('transactions: applyOps entries expand, partial and prepared ones wait for their commit, aborted ones vanish', () => {
    const lsid = { id: Buffer.from('00112233445566778899aabbccddeeff', 'hex') };
    const ts = new Timestamp({ t: 10, i: 1 });
    const ins = (n: number) => ({ op: 'i', ns: 'rc.m', o: { _id: n } });
    const t = new TransactionAssembler();
    assert.deepEqual(
      t.take({ op: 'i', ns: 'rc.m', o: { _id: 0 }, ts }).map((o) => o.o._id),
      [0],
    );
    assert.deepEqual(
      t.take({ op: 'c', ns: 'admin.$cmd', ts, o: { applyOps: [ins(1), ins(2)] } }).map((o) => o.o._id),
      [1, 2],
    );
    const txn = { lsid, txnNumber: new Long(7) };
    assert.deepEqual(
      t.take({ op: 'c', ns: 'admin.$cmd', ts, ...txn, o: { applyOps: [ins(3)], partialTxn: true } }),
      [],
    );
    assert.equal(t.unfinished, 1);
    assert.deepEqual(
      t.take({ op: 'c', ns: 'admin.$cmd', ts, ...txn, o: { applyOps: [ins(4)] } }).map((o) => o.o._id),
      [3, 4],
    );
    const prepared = { lsid, txnNumber: new Long(8) };
    assert.deepEqual(
      t.take({ op: 'c', ns: 'admin.$cmd', ts, ...prepared, o: { applyOps: [ins(5)], prepare: true } }),
      [],
    );
    assert.deepEqual(
      t.take({ op: 'c', ns: 'admin.$cmd', ts, ...prepared, o: { commitTransaction: 1 } }).map((o) => o.o._id),
      [5],
    );
    const aborted = { lsid, txnNumber: new Long(9) };
    t.take({ op: 'c', ns: 'admin.$cmd', ts, ...aborted, o: { applyOps: [ins(6)], prepare: true } });
    assert.deepEqual(t.take({ op: 'c', ns: 'admin.$cmd', ts, ...aborted, o: { abortTransaction: 1 } }), []);
    assert.equal(t.unfinished, 0);
  });

  test('what is replayed, where it writes, and what applyOps is given', () => {
    assert.equal(isReplayable({ op: 'i', ns: 'rc.messages' }), true);
    assert.equal(isReplayable({ op: 'i', ns: 'config.system.sessions' }), false);
    assert.equal(isReplayable({ op: 'i', ns: 'local.startup_log' }), false);
    assert.equal(isReplayable({ op: 'u', ns: 'admin.system.users' }), false);
    assert.equal(isReplayable({ op: 'i', ns: 'rc.system.views' }), false);
    assert.equal(isReplayable({ op: 'i', ns: 'rc.system.buckets.metrics' }), true);
    assert.equal(
      isReplayable({ op: 'c', ns: 'admin.$cmd', o: { renameCollection: 'a.b', to: 'a.c' } }),
      true,
    );
    assert.equal(targetNamespace({ op: 'c', ns: 'rc.$cmd', o: { create: 'rooms' } }), 'rc.rooms');
    assert.equal(
      targetNamespace({ op: 'c', ns: 'admin.$cmd', o: { renameCollection: 'a.b', to: 'a.c' } }),
      'a.c',
    );
    assert.equal(targetNamespace({ op: 'c', ns: 'rc.$cmd', o: { dropDatabase: 1 } }), undefined);
    const entry = {
      op: 'u',
      ns: 'rc.m',
      ui: 'uuid',
      ts: 1,
      h: 2,
      v: 2,
      wall: new Date(),
      o: { $v: 2, diff: {} },
      o2: { _id: 1 },
    };
    assert.deepEqual(applyOpsEntry(entry), { op: 'u', ns: 'rc.m', o: { $v: 2, diff: {} }, o2: { _id: 1 } });
  });

  test('atomic replay: every namespace an operation names is pointed at its shadow; what names none is found first', async () => {
    const shadows: Record<string, string> = {
      'rc.m': 'rc.m_s',
      'rc.a': 'rc.a_s',
      'rc.b': 'rc.b_s',
    };
    const map = (ns: string) => shadows[ns];
    assert.deepEqual(redirectOp({ op: 'i', ns: 'rc.m', o: { _id: 1 } }, map), {
      op: 'i',
      ns: 'rc.m_s',
      o: { _id: 1 },
    });
    assert.equal(redirectOp({ op: 'i', ns: 'rc.other', o: { _id: 1 } }, map), undefined);
    assert.deepEqual(
      redirectOp(
        {
          op: 'c',
          ns: 'rc.$cmd',
          o: { create: 'm', idIndex: { key: { _id: 1 }, name: '_id_', ns: 'rc.m' } },
        },
        map,
      ),
      {
        op: 'c',
        ns: 'rc.$cmd',
        o: { create: 'm_s', idIndex: { key: { _id: 1 }, name: '_id_', ns: 'rc.m_s' } },
      },
    );
    for (const k of ['drop', 'collMod', 'createIndexes', 'dropIndexes', 'commitIndexBuild'])
      assert.equal(redirectOp({ op: 'c', ns: 'rc.$cmd', o: { [k]: 'a' } }, map)?.o[k], 'a_s', k);
    assert.deepEqual(
      redirectOp(
        { op: 'c', ns: 'admin.$cmd', o: { renameCollection: 'rc.a', to: 'rc.b', dropTarget: false } },
        map,
      )?.o,
      { renameCollection: 'rc.a_s', to: 'rc.b_s', dropTarget: false },
    );
    // A transaction keeps only its operations inside the restore, each redirected.
    const txn = redirectOp(
      {
        op: 'c',
        ns: 'admin.$cmd',
        o: {
          applyOps: [
            { op: 'i', ns: 'rc.a', o: { _id: 1 } },
            { op: 'i', ns: 'elsewhere.x', o: { _id: 2 } },
          ],
        },
      },
      map,
    );
    assert.deepEqual(txn?.o.applyOps, [{ op: 'i', ns: 'rc.a_s', o: { _id: 1 } }]);
    assert.equal(redirectOp({ op: 'c', ns: 'rc.$cmd', o: { dropDatabase: 1 } }, map), undefined);
    assert.deepEqual(
      opNamespaces({ op: 'c', ns: 'admin.$cmd', o: { renameCollection: 'rc.a', to: 'rc.b' } }),
      ['rc.a', 'rc.b'],
    );
    assert.equal(opNamespaces({ op: 'c', ns: 'rc.$cmd', o: { dropDatabase: 1 } }), undefined);

    // The scan counts what the replay will apply, per namespace, with the replay's own rules.
    const ts = (i: number) => new Timestamp({ t: 100, i });
    const entries = [
      { ts: ts(1), op: 'n', ns: '', o: { msg: 'noop' } },
      { ts: ts(2), op: 'i', ns: 'rc.a', o: { _id: 1 } },
      { ts: ts(3), op: 'u', ns: 'rc.a', o: { $set: { x: 1 } }, o2: { _id: 1 } },
      { ts: ts(4), op: 'i', ns: 'config.system.sessions', o: { _id: 1 } },
      { ts: ts(5), op: 'c', ns: 'rc.$cmd', o: { create: 'v', viewOn: 'a', pipeline: [] } },
      { ts: ts(6), op: 'c', ns: 'admin.$cmd', o: { renameCollection: 'rc.a', to: 'rc.b' } },
      { ts: ts(7), op: 'c', ns: 'rc.$cmd', o: { dropDatabase: 1 } },
      { ts: ts(8), op: 'd', ns: 'rc.m', o: { _id: 1 } },
    ];
    const gen = async function* (upTo = entries.length) {
      for (const e of entries.slice(0, upTo)) yield serialize(e);
    };
    const scan = await scanOplog(gen());
    assert.equal(scan.total, 5);
    assert.deepEqual(scan.expected, { 'rc.a': 2, 'rc.v': 1, 'rc.b': 1, 'rc.m': 1 });
    assert.deepEqual(scan.namespaces, ['rc.a', 'rc.b', 'rc.m', 'rc.v']);
    assert.deepEqual(scan.special, [{ ns: 'rc.v', what: 'view' }]);
    assert.equal(scan.unredirectable, 'dropDatabase on rc.$cmd at 100:7');
    const limited = await scanOplog(gen(), { t: 100, i: 4 });
    assert.equal(limited.total, 2);
    assert.equal(limited.unredirectable, undefined);
  });

  test('--oplog-limit takes SECONDS[:ORDINAL] or an ISO time, and rejects anything else', () => {
    assert.deepEqual(parseOplogLimit('1733054580:3'), { t: 1733054580, i: 3 });
    assert.deepEqual(parseOplogLimit('1733054580'), { t: 1733054580, i: 0 });
    assert.deepEqual(parseOplogLimit('2024-12-01T12:03:00Z'), {
      t: Date.UTC(2024, 11, 1, 12, 3) / 1000,
      i: 0,
    });
    assert.throws(() => parseOplogLimit('yesterday'), /neither SECONDS\[:ORDINAL\] nor an ISO 8601 time/);
  });
});

describe('oplog capture and replay against a replica set member', () => {
  const external = Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI);
  let server: MongoTestServer;
  let client: MongoClient;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let repoPath: string;
  const DB = 'lifeboat_oplog_test';
  /** Snapshot taken with mutations made while the dump ran; its final state; the delete's position. */
  let snapshotId: string;
  let finalState: Record<string, string>;
  let dumpedA: string;
  let deleteTs: Timestamp;

  type AnyDoc = { _id: number | string; [k: string]: unknown };
  const coll = (name: string) => client.db(DB).collection<AnyDoc>(name);
  const cli = (args: string[]) => runCli(['--repo', repoPath, ...args], { env, cwd: work.path });

  async function state(db = DB): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const names = (await client.db(db).listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .sort();
    for (const n of names) {
      const h = await hashCollection(client, db, n);
      out[n] = `${h.count}:${h.hex()}`;
    }
    return out;
  }

  before(async () => {
    server = external ? await startMongo() : await startFerretDB({ replSetName: 'rs0' });
    client = new MongoClient(server.uri);
    await client.connect();
    await client.db(DB).dropDatabase();
    work = await tempDir();
    repoPath = path.join(work.path, 'repo');
    env = {
      LIFEBOAT_PASSWORD: 'oplog test passphrase',
      LIFEBOAT_MONGODB_URI: server.uri,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    const init = await cli(['init']);
    assert.equal(init.code, 0, init.stderr);

    const docs = (n: number) =>
      Array.from({ length: n }, (_, i): AnyDoc => ({
        _id: i,
        name: `doc ${i}`,
        nested: { n: i, tags: ['x', 'y'] },
      }));
    await coll('a').insertMany(docs(200));
    await coll('b').insertMany(docs(200));

    // Backed up in-process so the test can change data while the dump runs, deterministically: `a` is
    // changed after it was read (only the oplog has those changes), `b` before it is read (the dump and
    // the oplog both have them: replay must be idempotent), and `c` is created meanwhile.
    const repo = await Repository.open(await openBackend(repoPath, env), await openKeystore({}, env));
    const session = await startBackup(repo, 'oplog test');
    const planned = await planBackup(client, new NamespaceFilter([`${DB}.*`]));
    assert.deepEqual(
      planned.map((c) => c.collection),
      ['a', 'b'],
    );
    const { snapshot, oplog } = await backupMongo({
      client,
      uri: server.uri,
      session,
      collections: planned,
      parallel: 1,
      oplog: true,
      onCollectionDone: async (c) => {
        if (c.ns !== `${DB}.a`) return;
        dumpedA = `${c.count}:${c.hash}`;
        const a = coll('a');
        await a.insertOne({ _id: 1000, name: 'written during the dump' });
        await a.updateOne({ _id: 5 }, { $set: { 'nested.n': 55, name: 'edited' } });
        await a.deleteOne({ _id: 7 });
        await a.updateOne({ _id: 8 }, { $set: { name: 'edited after the delete' } });
        const b = coll('b');
        await b.insertOne({ _id: 2000, name: 'in dump and oplog' });
        await b.updateOne({ _id: 3 }, { $set: { name: 'edited b' } });
        await coll('c').insertOne({ _id: 1, name: 'new collection' });
      },
    });
    snapshotId = snapshot.id;
    assert.ok(oplog && oplog.entries >= 7, `captured ${oplog?.entries} entries`);
    assert.ok(oplog.start && oplog.end);
    const del = await client
      .db('local')
      .collection('oplog.rs')
      .findOne({ op: 'd', ns: `${DB}.a` }, { sort: { $natural: -1 } });
    deleteTs = del!.ts as Timestamp;
    finalState = await state();
  });

  after(async () => {
    await client
      ?.db(DB)
      .dropDatabase()
      .catch(() => {});
    await client?.close();
    await server?.stop();
    await work?.cleanup();
  });

  test('restore --oplog-replay brings every collection to the end of the backup window', async () => {
    await client.db(DB).dropDatabase();
    const r = await cli(['--json', 'mongodb', 'restore', snapshotId.slice(0, 12), '--oplog-replay']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.oplog.method, external ? 'applyOps' : 'writes');
    assert.ok(out.oplog.applied >= 7, `applied ${out.oplog.applied}`);
    assert.ok(out.oplog.namespaces.includes(`${DB}.c`));
    assert.equal(out.atomic, true, 'replayed into shadow copies, then swapped in');
    assert.doesNotMatch(r.stderr, /restoring in place/);
    // What the result records is what the replay left, and what the target now holds.
    for (const c of out.collections as { target: string; count: number; hash: string }[]) {
      const h = await hashCollection(client, DB, c.target.slice(DB.length + 1));
      assert.deepEqual([c.count, c.hash], [h.count, h.hex()], c.target);
    }
    assert.deepEqual(await state(), finalState);
    assert.ok(await coll('c').findOne({ _id: 1 }));
  });

  test('restore without --oplog-replay gives the data as dumped and says the oplog was left out', async () => {
    await client.db(DB).dropDatabase();
    const r = await cli(['--json', 'mongodb', 'restore', snapshotId.slice(0, 12)]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.skipped.find((s: { ns: string }) => s.ns === '.oplog').reason, /--oplog-replay/);
    const s = await state();
    assert.equal(s.a, dumpedA);
    assert.notEqual(s.a, finalState.a);
    assert.equal(s.b, finalState.b);
    assert.equal(s.c, undefined);
  });

  test('--oplog-limit stops the replay just before the given point (the delete)', async () => {
    await client.db(DB).dropDatabase();
    const limit = `${deleteTs.t}:${deleteTs.i}`;
    const r = await cli([
      '--json',
      'mongodb',
      'restore',
      snapshotId.slice(0, 12),
      '--oplog-replay',
      '--oplog-limit',
      limit,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.oplog.beyondLimit >= 4, `beyond limit: ${out.oplog.beyondLimit}`);
    const a = coll('a');
    assert.ok(await a.findOne({ _id: 1000 }), 'the insert before the limit is replayed');
    assert.equal((await a.findOne({ _id: 5 }))?.name, 'edited');
    assert.ok(await a.findOne({ _id: 7 }), 'the delete at the limit is not');
    assert.equal((await a.findOne({ _id: 8 }))?.name, 'doc 8');
    assert.equal(await coll('c').countDocuments(), 0);
  });

  test('--dry-run with --oplog-replay shows the replay and changes nothing', async () => {
    await client.db(DB).dropDatabase();
    const r = await cli(['mongodb', 'restore', snapshotId.slice(0, 12), '--oplog-replay', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /then replay up to \d+ oplog entries, then build indexes/);
    assert.deepEqual(await state(), {});
  });

  test('backup --oplog through the CLI records the window in the snapshot', async () => {
    await client.db(DB).dropDatabase();
    await coll('a').insertMany([{ _id: 1 }, { _id: 2 }]);
    const r = await cli(['--json', 'mongodb', 'backup', '--oplog', '--no-retention']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.oplog.end, JSON.stringify(out.oplog));
    assert.ok(!out.collections.some((c: { ns: string }) => c.ns === '.oplog'));
    const show = await cli(['--json', 'show', out.id.slice(0, 12)]);
    assert.equal(show.code, 0, show.stderr);
    const snap = JSON.parse(show.stdout);
    assert.deepEqual(snap.meta.oplog.end, out.oplog.end);
  });

  test('bad combinations: one line each, non-zero exit', async () => {
    let r = await cli(['mongodb', 'backup', '--oplog', '--ns-include', `${DB}.*`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--oplog captures changes to every database/);
    r = await cli([
      'mongodb',
      'restore',
      snapshotId.slice(0, 12),
      '--oplog-replay',
      '--ns-from',
      `${DB}.*`,
      '--ns-to',
      'other.*',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--oplog-replay .* cannot be combined with --ns-include/);
    r = await cli(['mongodb', 'restore', snapshotId.slice(0, 12), '--oplog-limit', '5']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--oplog-limit needs --oplog-replay/);
    r = await cli(['mongodb', 'restore', snapshotId.slice(0, 12), '--oplog-replay', '--oplog-limit', 'soon']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--oplog-limit "soon"/);
  });

  test('restore --oplog-replay of a snapshot taken without --oplog names the cause', async () => {
    const b = await cli(['--json', 'mongodb', 'backup', '--ns-include', `${DB}.*`, '--no-retention']);
    assert.equal(b.code, 0, b.stderr);
    const id = JSON.parse(b.stdout).id as string;
    const r = await cli(['mongodb', 'restore', id.slice(0, 12), '--oplog-replay']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no oplog to replay \(it was taken without --oplog\)/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  test('the real mongodump 4.0 --oplog archive imports and replays: inserts land once, config.* is skipped', async () => {
    const archive = path.join(SHARED_DIR, 'testdata/mongodump/with-oplog-server4.0.archive');
    const imp = await cli(['--json', 'mongodb', 'import', '--archive', archive]);
    assert.equal(imp.code, 0, imp.stderr);
    const id = JSON.parse(imp.stdout).id as string;
    await client
      .db('test')
      .collection('foo')
      .drop()
      .catch(() => {});
    const r = await cli(['--json', 'mongodb', 'restore', id.slice(0, 12), '--oplog-replay', '--drop']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.oplog.applied, 16);
    assert.equal(out.oplog.skipped, 2);
    const foo = out.collections.find((c: { target: string }) => c.target === 'test.foo');
    const h = await hashCollection(client, 'test', 'foo');
    // Every replayed insert was already in the dump: replay is idempotent, the data is unchanged.
    assert.equal(h.count, 25);
    assert.equal(h.hex(), foo.hash);
    await client.db('test').dropDatabase();
  });

  test(
    'a replay that fails half-way is undone: the target is as it was (the replay went into shadow copies)',
    {
      skip:
        external && 'needs a server without applyOps (FerretDB), where a collMod entry cannot be replayed',
    },
    async () => {
      // A mongodump archive whose oplog holds an insert and then a command FerretDB cannot replay.
      const file = path.join(work.path, 'failing-oplog.archive');
      const chunks: Buffer[] = [];
      const w = new ArchiveWriter({ write: async (d) => void chunks.push(Buffer.from(d)) });
      await w.writeHeader({
        concurrentCollections: 4,
        version: '0.1',
        serverVersion: '7.0.0',
        toolVersion: 'test',
      });
      await w.writeCollection({
        db: DB,
        collection: 'x',
        metadata: formatMetadataJson({ options: {}, indexes: [], collectionName: 'x' }),
        size: 0,
        type: 'collection',
      });
      await w.writeCollection({ db: '', collection: 'oplog', metadata: '', size: 0 });
      await w.endPrelude();
      const gen = async function* (docs: Document[]) {
        for (const d of docs) yield serialize(d);
      };
      await w.writeNamespace({ db: DB, collection: 'x' }, gen([{ _id: 1, v: 'snapshot' }]));
      await w.writeNamespace(
        { db: '', collection: 'oplog' },
        gen([
          { ts: new Timestamp({ t: 100, i: 1 }), op: 'i', ns: `${DB}.x`, o: { _id: 2, v: 'oplog' } },
          {
            ts: new Timestamp({ t: 100, i: 2 }),
            op: 'c',
            ns: `${DB}.$cmd`,
            o: { collMod: 'x', validator: {} },
          },
        ]),
      );
      await w.finish();
      await writeFile(file, Buffer.concat(chunks));
      const imp = await cli(['--json', 'mongodb', 'import', '--archive', file]);
      assert.equal(imp.code, 0, imp.stderr);
      const id = JSON.parse(imp.stdout).id as string;

      await client.db(DB).dropDatabase();
      await coll('x').insertMany([
        { _id: 1, v: 'current' },
        { _id: 3, v: 'current' },
      ]);
      const before = await state();
      const r = await cli(['mongodb', 'restore', id.slice(0, 12), '--oplog-replay', '--drop']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /command collMod .* cannot be replayed without it/);
      assert.match(r.stderr, /restore failed while replaying the oplog .*undoing it/);
      assert.match(r.stderr, /undone: the target collections are unchanged/);
      assert.doesNotMatch(r.stderr, /restoring in place/);
      assert.deepEqual(await state(), before);
    },
  );

  /** A mongodump archive of `collections` whose oplog holds `oplog`, imported; returns the snapshot id. */
  async function importArchive(name: string, collections: Record<string, Document[]>, oplog: Document[]) {
    const file = path.join(work.path, `${name}.archive`);
    const chunks: Buffer[] = [];
    const w = new ArchiveWriter({ write: async (d) => void chunks.push(Buffer.from(d)) });
    await w.writeHeader({
      concurrentCollections: 4,
      version: '0.1',
      serverVersion: '7.0.0',
      toolVersion: 'test',
    });
    for (const c of Object.keys(collections))
      await w.writeCollection({
        db: DB,
        collection: c,
        metadata: formatMetadataJson({ options: {}, indexes: [], collectionName: c }),
        size: 0,
        type: 'collection',
      });
    await w.writeCollection({ db: '', collection: 'oplog', metadata: '', size: 0 });
    await w.endPrelude();
    const gen = async function* (docs: Document[]) {
      for (const d of docs) yield serialize(d);
    };
    for (const [c, docs] of Object.entries(collections))
      await w.writeNamespace({ db: DB, collection: c }, gen(docs));
    await w.writeNamespace({ db: '', collection: 'oplog' }, gen(oplog));
    await w.finish();
    await writeFile(file, Buffer.concat(chunks));
    const imp = await cli(['--json', 'mongodb', 'import', '--archive', file]);
    assert.equal(imp.code, 0, imp.stderr);
    return JSON.parse(imp.stdout).id as string;
  }

  test(
    'a replay that drops one collection and creates another, SIGKILLed at each step: --resume or --rollback gives exactly the old or the new state',
    { skip: external && 'needs the FerretDB the test starts (the restore is killed mid-way)' },
    async () => {
      const ts = (i: number) => new Timestamp({ t: 200, i });
      const id = await importArchive('drop-create', { w: [{ _id: 1, v: 'snapshot' }], y: [{ _id: 1 }] }, [
        { ts: ts(1), op: 'i', ns: `${DB}.w`, o: { _id: 2, v: 'oplog' } },
        { ts: ts(2), op: 'c', ns: `${DB}.$cmd`, o: { drop: 'y' } },
        { ts: ts(3), op: 'i', ns: `${DB}.z`, o: { _id: 1, v: 'oplog' } },
        { ts: ts(4), op: 'u', ns: `${DB}.w`, o: { $v: 1, $set: { v: 'updated' } }, o2: { _id: 1 } },
      ]);
      const reset = async () => {
        await client.db(DB).dropDatabase();
        await coll('w').insertOne({ _id: 9, v: 'current' });
        await coll('y').insertOne({ _id: 1, v: 'current' });
        await coll('z').insertOne({ _id: 5, v: 'current' });
      };
      await reset();
      const oldState = await state();
      const restore = ['mongodb', 'restore', id.slice(0, 12), '--oplog-replay', '--drop'];
      const clean = await cli(['--json', ...restore]);
      assert.equal(clean.code, 0, clean.stderr);
      const out = JSON.parse(clean.stdout);
      assert.equal(out.atomic, true);
      assert.deepEqual(
        out.collections.map((c: { target: string; count: number }) => [c.target, c.count]),
        [
          [`${DB}.w`, 2],
          [`${DB}.z`, 1],
        ],
      );
      const newState = await state();
      // The oplog dropped y; z holds only what the oplog wrote (with --drop the replay starts it empty).
      assert.deepEqual(Object.keys(newState), ['w', 'z']);
      assert.equal((await coll('z').findOne({}))?.v, 'oplog');
      assert.equal((await coll('w').findOne({ _id: 1 }))?.v, 'updated');

      const cases: [string, 'resume' | 'rollback', 'old' | 'new'][] = [
        ['replay-started', 'resume', 'old'],
        ['replay-mid:2', 'resume', 'old'],
        ['replay-done', 'rollback', 'old'],
        ['swap-begin', 'resume', 'new'],
        ['target-aside:2', 'resume', 'new'],
        ['target-aside:3', 'rollback', 'old'],
        ['committed', 'resume', 'new'],
      ];
      for (const [at, recovery, expected] of cases) {
        await reset();
        const k = await runCli(['--repo', repoPath, ...restore], {
          env: { ...env, LIFEBOAT_TEST_KILL_AT: at },
          cwd: work.path,
        });
        assert.equal(k.signal, 'SIGKILL', `the kill point ${at} was not reached: ${k.stderr}`);
        const r = await cli(['mongodb', 'restore', `--${recovery}`]);
        assert.equal(r.code, 0, `${at}: ${r.stderr}`);
        if (at.startsWith('replay'))
          assert.match(r.stderr, /it was replaying the oplog into its shadow copies/);
        assert.deepEqual(
          await state(),
          expected === 'old' ? oldState : newState,
          `killed at ${at}, --${recovery}`,
        );
      }
    },
  );

  test(
    'a replay that writes a collection with a dot in its name on FerretDB (no rename into it): in place, and it says why',
    { skip: external && 'FerretDB-specific' },
    async () => {
      const ts = (i: number) => new Timestamp({ t: 300, i });
      const id = await importArchive('dotted', { files: [{ _id: 1 }] }, [
        { ts: ts(1), op: 'i', ns: `${DB}.fs.chunks`, o: { _id: 1, n: 0 } },
        { ts: ts(2), op: 'i', ns: `${DB}.files`, o: { _id: 2 } },
      ]);
      await client.db(DB).dropDatabase();
      const r = await cli(['--json', 'mongodb', 'restore', id.slice(0, 12), '--oplog-replay', '--drop']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.atomic, false);
      assert.match(
        out.inPlaceReason,
        /cannot rename into a collection name with a dot, as lifeboat_oplog_test\.fs\.chunks/,
      );
      assert.match(r.stderr, /restoring in place, not atomically/);
      assert.deepEqual(Object.keys(await state()), ['files', 'fs.chunks']);
      assert.equal(await coll('files').countDocuments(), 2);
    },
  );
});

describe('oplog on a standalone server', () => {
  test(
    'backup --oplog fails with the cause and leaves no snapshot',
    { skip: Boolean(process.env.LIFEBOAT_TEST_MONGODB_URI) && 'needs a standalone server (FerretDB)' },
    async () => {
      const server = await startFerretDB();
      const work = await tempDir();
      try {
        const env = {
          LIFEBOAT_PASSWORD: 'standalone',
          LIFEBOAT_MONGODB_URI: server.uri,
          XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
        };
        const repo = path.join(work.path, 'repo');
        const c = new MongoClient(server.uri);
        await c.db('rc').collection<{ _id: number }>('m').insertOne({ _id: 1 });
        await c.close();
        assert.equal((await runCli(['--repo', repo, 'init'], { env, cwd: work.path })).code, 0);
        const r = await runCli(['--repo', repo, 'mongodb', 'backup', '--oplog'], { env, cwd: work.path });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /--oplog needs a replica set member, but the server is standalone/);
        const list = await runCli(['--repo', repo, '--json', 'snapshots'], { env, cwd: work.path });
        assert.deepEqual(JSON.parse(list.stdout), []);
      } finally {
        await server.stop();
        await work.cleanup();
      }
    },
  );
});
