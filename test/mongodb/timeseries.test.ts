/**
 * Time-series collections, kept as mongodump keeps them: the collection's metadata in one item, its raw
 * buckets (`system.buckets.<name>`) in another; restored by creating the time-series collection and
 * inserting the buckets.
 *
 * Server: FerretDB (no time-series: the restore must refuse clearly and leave the target as it was) or,
 * with LIFEBOAT_TEST_MONGODB_URI, a real MongoDB 5.0+ (native backup, restore and export of a live
 * time-series collection). The planning is tested without a server.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { createReadStream } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { startMongo, type MongoTestServer } from '../env/ferretdb.ts';
import { runCli } from '../env/cli.ts';
import { SHARED_DIR, tempDir, type TempDir } from '../env/index.ts';
import { planRestore, hashCollection } from '../../src/sources/mongodb/restore.ts';
import { NamespaceFilter, NamespaceRenamer } from '../../src/sources/mongodb/nsfilter.ts';
import { readArchive, nsKey } from '../../src/sources/mongodb/archive.ts';
import type { Item, Snapshot } from '../../src/core/repository/model.ts';

const TS_ARCHIVE = path.join(SHARED_DIR, 'testdata/mongodump/timeseries-server5.0.archive');

function item(name: string, meta: Record<string, unknown>): Item {
  return { name, kind: 'collection', meta, size: 0, sha256: '', records: 0 };
}

describe('time-series planning, no server', () => {
  const snapshot = {
    id: 'a'.repeat(64),
    type: 'mongodb',
    items: [
      item('metrics.cpu', {
        db: 'metrics',
        collection: 'cpu',
        type: 'timeseries',
        metadata:
          '{"options":{"timeseries":{"timeField":"t"}},"indexes":[],"collectionName":"cpu","type":"timeseries"}',
        count: 0,
        bytes: 0,
        hash: '0',
        crc64: '0',
        metadataOnly: true,
      }),
      item('metrics.system.buckets.cpu', {
        db: 'metrics',
        collection: 'system.buckets.cpu',
        type: 'collection',
        metadata: '',
        count: 3,
        bytes: 100,
        hash: '1',
        crc64: '1',
        bucketsOf: 'cpu',
      }),
    ],
  } as unknown as Snapshot;

  test('buckets follow their collection when it is renamed', () => {
    const plan = planRestore(
      snapshot,
      new NamespaceFilter(),
      new NamespaceRenamer(['metrics.*'], ['metrics_restored.*']),
    );
    assert.deepEqual(
      plan.entries.map((e) => [e.source, e.target, e.type]),
      [
        ['metrics.cpu', 'metrics_restored.cpu', 'timeseries'],
        ['metrics.system.buckets.cpu', 'metrics_restored.system.buckets.cpu', 'collection'],
      ],
    );
  });

  test('excluding the collection excludes its buckets', () => {
    const plan = planRestore(snapshot, new NamespaceFilter([], ['metrics.cpu']), new NamespaceRenamer());
    assert.deepEqual(plan.entries, []);
  });
});

describe('time-series against a server', () => {
  let server: MongoTestServer;
  let client: MongoClient;
  let work: TempDir;
  let env: NodeJS.ProcessEnv;
  let repo: string;
  const cli = (args: string[]) => runCli(['--repo', repo, ...args], { env, cwd: work.path });

  before(async () => {
    server = await startMongo();
    client = new MongoClient(server.uri);
    await client.connect();
    work = await tempDir();
    repo = path.join(work.path, 'repo');
    env = {
      LIFEBOAT_PASSWORD: 'timeseries test',
      LIFEBOAT_MONGODB_URI: server.uri,
      XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
    };
    assert.equal((await cli(['init'])).code, 0);
  });

  after(async () => {
    await client
      ?.db('timeseries_test')
      .dropDatabase()
      .catch(() => {});
    await client
      ?.db('lifeboat_ts')
      .dropDatabase()
      .catch(() => {});
    await client?.close();
    await server?.stop();
    await work?.cleanup();
  });

  test('the real mongodump 5.0 time-series archive: restored where the server can, refused clearly where not', async () => {
    const im = await cli(['--json', 'mongodb', 'import', '--archive', TS_ARCHIVE]);
    assert.equal(im.code, 0, im.stderr);
    const id = (JSON.parse(im.stdout).id as string).slice(0, 12);
    await client.db('timeseries_test').dropDatabase();
    await client
      .db('timeseries_test')
      .collection('keep')
      .insertOne({ _id: 1 as never, kept: true });
    const r = await cli(['--json', 'mongodb', 'restore', id]);
    if (server.isFerretDB) {
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stderr,
        /cannot create time-series collection timeseries_test\.foo_ts .* --ns-exclude 'timeseries_test\.foo_ts'/,
      );
      // The error is the last line (a note about the rollback precedes it).
      assert.match(
        r.stderr.trim().split('\n').at(-1)!,
        /^lifeboat: .*rolled back: timeseries_test\.foo_ts\).* — /,
      );
      // Nothing left behind: no plain collection in its place, no buckets, the rest untouched.
      const names = (await client.db('timeseries_test').listCollections().toArray()).map((c) => c.name);
      assert.deepEqual(names, ['keep']);
      assert.deepEqual(await client.db('timeseries_test').collection('keep').find().toArray(), [
        { _id: 1, kept: true },
      ]);
    } else {
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      const buckets = out.collections.find(
        (c: { target: string }) => c.target === 'timeseries_test.system.buckets.foo_ts',
      );
      assert.equal(buckets.count, 10);
      assert.equal(buckets.verified, true);
      const info = await client.db('timeseries_test').listCollections({ name: 'foo_ts' }).next();
      assert.equal(info?.type, 'timeseries');
      assert.ok((await client.db('timeseries_test').collection('foo_ts').countDocuments()) > 0);
    }
  });

  test(
    'native backup of a live time-series collection keeps its buckets: restore and mongodump export are exact',
    {
      skip: process.env.LIFEBOAT_TEST_MONGODB_URI
        ? false
        : 'needs MongoDB 5.0+ (FerretDB has no time-series)',
    },
    async () => {
      const db = client.db('lifeboat_ts');
      await db.dropDatabase();
      await db.createCollection('cpu', {
        timeseries: { timeField: 't', metaField: 'host', granularity: 'seconds' },
      });
      await db.collection('cpu').insertMany(
        Array.from({ length: 500 }, (_, i) => ({
          t: new Date(1_700_000_000_000 + i * 1000),
          host: `h${i % 3}`,
          v: i,
        })),
      );
      const before = await hashCollection(client, 'lifeboat_ts', 'system.buckets.cpu');
      const b = await cli([
        '--json',
        'mongodb',
        'backup',
        '--ns-include',
        'lifeboat_ts.*',
        '--retention-days',
        '0',
      ]);
      assert.equal(b.code, 0, b.stderr);
      const id = JSON.parse(b.stdout).id as string;
      const archive = path.join(work.path, 'ts.archive');
      const ex = await cli(['mongodb', 'export', id, '--archive', archive]);
      assert.equal(ex.code, 0, ex.stderr);
      const seen: string[] = [];
      for await (const e of readArchive(createReadStream(archive))) {
        if (e.kind === 'collection') seen.push(`prelude ${nsKey(e.collection)} ${e.collection.type}`);
        if (e.kind === 'eof') seen.push(`data ${nsKey(e.ns)} ${e.documents}`);
      }
      assert.deepEqual(seen.sort(), [
        `data lifeboat_ts.system.buckets.cpu ${before.count}`,
        'prelude lifeboat_ts.cpu timeseries',
      ]);
      await db.dropDatabase();
      const r = await cli(['--json', 'mongodb', 'restore', id]);
      assert.equal(r.code, 0, r.stderr);
      const after = await hashCollection(client, 'lifeboat_ts', 'system.buckets.cpu');
      assert.equal(after.hex(), before.hex());
      assert.equal(await db.collection('cpu').countDocuments(), 500);
    },
  );
});
