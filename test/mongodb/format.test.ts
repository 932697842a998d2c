/**
 * mongodump formats at the byte level: CRC-64/XZ, the streaming BSON splitter, the archive reader/writer
 * on real mongodump archives (../shared/testdata/mongodump), metadata.json, directory dumps and name
 * escaping. Needs no server.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { serialize, deserialize, Int32, Long } from 'bson';
import { SHARED_DIR, tempDir } from '../env/index.ts';
import { crc64, Crc64 } from '../../src/sources/mongodb/crc64.ts';
import { splitBson, MAX_BSON_SIZE } from '../../src/sources/mongodb/bson-stream.ts';
import { ArchiveWriter, readArchive, nsKey, type ArchiveEvent } from '../../src/sources/mongodb/archive.ts';
import {
  formatMetadataJson,
  indexSpecForCreate,
  parseMetadataJson,
} from '../../src/sources/mongodb/metadata.ts';
import {
  DumpDirWriter,
  dumpFileStem,
  listDumpDir,
  openArchiveFile,
  queryEscape,
  queryUnescape,
  readBsonFile,
} from '../../src/sources/mongodb/dumpdir.ts';
import { isLifeboatError } from '../../src/core/errors.ts';
import { NamespaceFilter, NamespaceRenamer, splitNs } from '../../src/sources/mongodb/nsfilter.ts';
import { CollectionHash, addHashes } from '../../src/sources/mongodb/hash.ts';
import { chunked, collect } from '../env/data.ts';

const ARCHIVES = path.join(SHARED_DIR, 'testdata/mongodump');
const OPLOG_ARCHIVE = path.join(ARCHIVES, 'with-oplog-server4.0.archive');
const TS_ARCHIVE = path.join(ARCHIVES, 'timeseries-server5.0.archive');

async function rewrite(events: AsyncIterable<ArchiveEvent> | ArchiveEvent[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const w = new ArchiveWriter({ write: async (d) => void parts.push(Buffer.from(d)) });
  for await (const e of events) {
    if (e.kind === 'header') await w.writeHeader(e.header);
    else if (e.kind === 'collection') await w.writeCollection(e.collection);
    else if (e.kind === 'prelude-end') await w.endPrelude();
    else if (e.kind === 'segment-start') await w.startSegment(e.ns);
    else if (e.kind === 'document') await w.writeDocument(e.doc);
    else if (e.kind === 'segment-end') await w.endSegment();
    else if (e.kind === 'eof') await w.endNamespace(e.ns);
  }
  await w.finish();
  return Buffer.concat(parts);
}

function assertIntegrity(re: RegExp) {
  return (e: unknown) => {
    assert.ok(isLifeboatError(e, 'INTEGRITY'), `expected INTEGRITY, got ${e}`);
    assert.match((e as Error).message, re);
    return true;
  };
}

describe('CRC-64/XZ', () => {
  test('check value of "123456789" is 0x995DC9BBDF1939FA', () => {
    assert.equal(crc64(Buffer.from('123456789')), 0x995dc9bbdf1939fan);
    assert.equal(crc64(new Uint8Array(0)), 0n);
  });
  test('incremental updates at every split point equal the one-shot value', () => {
    const data = createHash('sha512').update('x').digest();
    const whole = crc64(data);
    for (let i = 0; i <= data.length; i++) {
      assert.equal(new Crc64().update(data.subarray(0, i)).update(data.subarray(i)).digest(), whole);
    }
    // A value computed bytewise from the definition (reflected, poly 0xC96C5795D7870F42).
    let c = 0xffffffffffffffffn;
    for (const b of data) {
      c ^= BigInt(b);
      for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ 0xc96c5795d7870f42n : c >> 1n;
    }
    assert.equal(whole, c ^ 0xffffffffffffffffn);
  });
});

describe('BSON splitter', () => {
  const docs = [{ a: 1 }, { b: 'x'.repeat(1000) }, {}, { c: [1, 2, { d: null }] }].map((d) => serialize(d));
  const stream = Buffer.concat(docs);

  test('splits across every chunk size, including 1-byte chunks', async () => {
    for (const size of [1, 3, 4, 5, 7, 64, stream.length]) {
      const got = await collect(splitBson(chunked(stream, size)));
      assert.deepEqual(
        got.map((d) => Buffer.from(d).toString('hex')),
        docs.map((d) => Buffer.from(d).toString('hex')),
      );
    }
  });
  test('a 16 MiB document in 64 KiB chunks', async () => {
    const big = serialize({ s: 'y'.repeat(16 * 1024 * 1024 - 64) });
    const got = await collect(splitBson(chunked(Buffer.concat([big, docs[0]]), 65536)));
    assert.equal(got.length, 2);
    assert.equal(got[0].length, big.length);
    assert.equal(crc64(got[0]), crc64(big));
  });
  test('rejects a length below 5', async () => {
    const bad = Buffer.from([4, 0, 0, 0, 0]);
    await assert.rejects(
      collect(splitBson(chunked(bad, 2), 'x.bson')),
      assertIntegrity(/x\.bson: invalid BSON document length 4 at byte 0/),
    );
  });
  test('rejects a length above the maximum', async () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(MAX_BSON_SIZE + 1);
    await assert.rejects(
      collect(splitBson(chunked(bad, 8))),
      assertIntegrity(/invalid BSON document length/),
    );
  });
  test('rejects a document not ending in 0x00', async () => {
    const bad = Buffer.from(docs[0]);
    bad[bad.length - 1] = 1;
    await assert.rejects(
      collect(splitBson(chunked(Buffer.concat([docs[1], bad]), 5))),
      assertIntegrity(/at byte 1\d\d\d .* does not end with 0x00/),
    );
  });
  test('rejects a truncated stream and names the offset', async () => {
    await assert.rejects(
      collect(splitBson(chunked(stream.subarray(0, stream.length - 3), 10))),
      assertIntegrity(/truncated at byte \d+/),
    );
    await assert.rejects(
      collect(splitBson(chunked(stream.subarray(0, docs[0].length + 2), 10))),
      assertIntegrity(/truncated/),
    );
  });
});

describe('mongodump archives (real ones from mongo-tools test data)', () => {
  test('with-oplog-server4.0: parses, CRCs verify, counts match', async () => {
    const events = await collect(readArchive(createReadStream(OPLOG_ARCHIVE)));
    const header = events.find((e) => e.kind === 'header');
    assert.deepEqual(header, {
      kind: 'header',
      header: {
        concurrentCollections: 4,
        version: '0.1',
        serverVersion: '4.0.2',
        toolVersion: 'r4.1.3-4-gd9eefb54',
      },
    });
    const prelude = events
      .filter((e) => e.kind === 'collection')
      .map((e) => e.kind === 'collection' && nsKey(e.collection));
    assert.deepEqual(prelude, ['test.foo', '.oplog', 'admin.system.version']);
    const eofs = Object.fromEntries(
      events.flatMap((e) =>
        e.kind === 'eof' ? [[nsKey(e.ns), { n: e.documents, crc: e.crc.toString(16) }]] : [],
      ),
    );
    assert.deepEqual(eofs, {
      'admin.system.version': { n: 1, crc: 'cb0ef0ea1d16e0d' },
      'test.foo': { n: 25, crc: '9cc6a0e47a6d6d82' },
      '.oplog': { n: 18, crc: '803bd1a62aaa916c' },
    });
    const foo = events.filter((e) => e.kind === 'document' && e.ns.collection === 'foo');
    assert.deepEqual(
      foo.map((e) => e.kind === 'document' && (deserialize(e.doc).a as number)),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
  });

  for (const file of [OPLOG_ARCHIVE, TS_ARCHIVE]) {
    test(`${path.basename(file)}: re-written from parsed events is byte-equal (read in 1..4096-byte chunks)`, async () => {
      const orig = await readFile(file);
      for (const size of [1, 7, 4096]) {
        const again = await rewrite(readArchive(chunked(orig, size)));
        assert.equal(again.length, orig.length);
        assert.ok(again.equals(orig), `byte-equal with ${size}-byte chunks`);
      }
    });
  }

  test('timeseries-server5.0: types, empty collection, bucket data', async () => {
    const events = await collect(readArchive(createReadStream(TS_ARCHIVE)));
    const cols = events.flatMap((e) => (e.kind === 'collection' ? [e.collection] : []));
    assert.deepEqual(
      cols.map((c) => [nsKey(c), c.type]),
      [
        ['admin.system.views', 'collection'],
        ['timeseries_test.foo_ts', 'timeseries'],
        ['admin.system.version', 'collection'],
      ],
    );
    const eof = events.flatMap((e) => (e.kind === 'eof' ? [[nsKey(e.ns), e.documents]] : []));
    assert.deepEqual(eof, [
      ['admin.system.version', 1],
      ['admin.system.views', 0],
      ['timeseries_test.system.buckets.foo_ts', 10],
    ]);
  });

  test('a flipped byte inside a document fails with a CRC mismatch naming the namespace', async () => {
    const orig = Buffer.from(await readFile(OPLOG_ARCHIVE));
    // The 25 test.foo documents start right after its first namespace header; flip a value byte of one.
    const at = orig.indexOf(Buffer.from('5bb4fd105a4e400df5a45947', 'hex'));
    assert.ok(at > 0);
    orig[at + 2] ^= 0xff;
    await assert.rejects(
      collect(readArchive(chunked(orig, 100))),
      assertIntegrity(/CRC mismatch for namespace test\.foo/),
    );
  });

  test('truncation, bad magic, gzip without un-gzip, two terminators: clear INTEGRITY errors', async () => {
    const orig = await readFile(OPLOG_ARCHIVE);
    await assert.rejects(
      collect(readArchive(chunked(orig.subarray(0, 2000), 64))),
      assertIntegrity(/truncated|ends inside|no EOF/),
    );
    await assert.rejects(
      collect(readArchive(chunked(orig.subarray(0, orig.length - 4), 64))),
      assertIntegrity(/truncated|not followed/),
    );
    const notArchive = Buffer.from(serialize({ a: 1 }));
    await assert.rejects(collect(readArchive(chunked(notArchive, 64))), assertIntegrity(/bad magic number/));
    await assert.rejects(collect(readArchive(chunked(gzipSync(orig), 64))), (e: unknown) => {
      assert.ok(isLifeboatError(e, 'INTEGRITY'));
      assert.match((e as { hint: string }).hint, /gzipped: pass --gzip/);
      return true;
    });
    // A terminator where a namespace header should be.
    const term = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    await assert.rejects(
      collect(readArchive(chunked(Buffer.concat([orig, term]), 64))),
      assertIntegrity(/two terminators in a row/),
    );
  });

  test('openArchiveFile reads gzipped archives (mongodump --archive --gzip) transparently', async () => {
    const dir = await tempDir();
    try {
      const gz = path.join(dir.path, 'a.archive.gz');
      await writeFile(gz, gzipSync(await readFile(OPLOG_ARCHIVE)));
      const again = await rewrite(readArchive(await openArchiveFile(gz)));
      assert.ok(again.equals(await readFile(OPLOG_ARCHIVE)));
    } finally {
      await dir.cleanup();
    }
  });

  test('writeNamespace: interleaved multi-segment output parses back with matching CRCs', async () => {
    const parts: Buffer[] = [];
    const w = new ArchiveWriter({ write: async (d) => void parts.push(Buffer.from(d)) });
    await w.writeHeader({
      concurrentCollections: 4,
      version: '0.1',
      serverVersion: '7.0.0',
      toolVersion: 'lifeboat',
    });
    await w.writeCollection({ db: 'a', collection: 'x', metadata: '{}', size: 0, type: 'collection' });
    await w.writeCollection({ db: 'a', collection: 'empty', metadata: '{}', size: 0, type: 'collection' });
    await w.endPrelude();
    const docs = Array.from({ length: 100 }, (_, i) => serialize({ _id: i, pad: 'z'.repeat(i * 10) }));
    const r = await w.writeNamespace({ db: 'a', collection: 'x' }, docs, 2000);
    const e = await w.writeNamespace({ db: 'a', collection: 'empty' }, []);
    await w.finish();
    assert.equal(r.documents, 100);
    assert.equal(r.crc, crc64(Buffer.concat(docs)));
    assert.equal(e.crc, 0n);
    const events = await collect(readArchive(chunked(Buffer.concat(parts), 333)));
    assert.ok(
      events.filter((x) => x.kind === 'segment-start' && x.ns.collection === 'x').length > 10,
      'several segments',
    );
    const got = events.flatMap((x) => (x.kind === 'document' ? [Buffer.from(x.doc)] : []));
    assert.ok(Buffer.concat(got).equals(Buffer.concat(docs)));
    assert.deepEqual(
      events.flatMap((x) => (x.kind === 'eof' ? [[x.ns.collection, x.documents]] : [])),
      [
        ['x', 100],
        ['empty', 0],
      ],
    );
  });
});

describe('metadata.json', () => {
  test('canonical metadata from mongodump 100.x re-formats byte-equal', async () => {
    const events = await collect(readArchive(createReadStream(TS_ARCHIVE)));
    const metas = events.flatMap((e) => (e.kind === 'collection' ? [e.collection] : []));
    assert.equal(metas.length, 3);
    for (const c of metas) {
      const m = parseMetadataJson(c.metadata, c.collection);
      assert.equal(formatMetadataJson(m), c.metadata);
    }
    const ts = parseMetadataJson(metas[1].metadata, 'x');
    assert.equal(ts.type, 'timeseries');
    assert.ok(ts.options.timeseries.bucketMaxSpanSeconds instanceof Int32);
  });

  test('legacy relaxed JSON with "ns" in index specs is accepted', async () => {
    const events = await collect(readArchive(createReadStream(OPLOG_ARCHIVE)));
    const foo = events.find((e) => e.kind === 'collection' && e.collection.collection === 'foo');
    assert.ok(foo && foo.kind === 'collection');
    const m = parseMetadataJson(foo.collection.metadata, 'foo');
    assert.equal(m.collectionName, 'foo');
    assert.equal(m.uuid, 'd6b7b0bd5dce41c498aa03f115533254');
    assert.equal(m.type, undefined);
    assert.equal(m.indexes[0].ns, 'test.foo');
    assert.deepEqual(Object.keys(indexSpecForCreate(m.indexes[0])), ['v', 'key', 'name']);
    assert.equal(
      formatMetadataJson({ ...m, indexes: m.indexes.map(indexSpecForCreate) }),
      '{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],"uuid":"d6b7b0bd5dce41c498aa03f115533254","collectionName":"foo"}',
    );
  });

  test('damaged metadata is an INTEGRITY error', () => {
    assert.throws(
      () => parseMetadataJson('{"indexes": [', 'c', 'c.metadata.json'),
      assertIntegrity(/c\.metadata\.json: not valid Extended JSON/),
    );
    assert.throws(
      () => parseMetadataJson('{"indexes": 3}', 'c'),
      assertIntegrity(/"indexes" must be an array/),
    );
  });
});

describe('dump directories', () => {
  test('collection names are escaped like Go url.QueryEscape and long ones truncated with a SHA-1', () => {
    assert.equal(queryEscape('a b$c/d.e~f-g_h:é'), 'a+b%24c%2Fd.e~f-g_h%3A%C3%A9');
    assert.equal(queryUnescape('a+b%24c%2Fd.e~f-g_h%3A%C3%A9'), 'a b$c/d.e~f-g_h:é');
    assert.equal(dumpFileStem('system.buckets.foo_ts'), 'system.buckets.foo_ts');
    const long = 'L'.repeat(300);
    const stem = dumpFileStem(long);
    assert.equal(stem.length, 238);
    assert.equal(stem, 'L'.repeat(208) + '%24' + createHash('sha1').update(long).digest('base64url'));
    assert.equal(dumpFileStem('x'.repeat(238)), 'x'.repeat(238));
    assert.throws(() => queryUnescape('bad%zz'), assertIntegrity(/bad escape/));
  });

  for (const gzip of [false, true]) {
    test(`archive -> dump directory${gzip ? ' (--gzip)' : ''} -> read back: same documents, same CRCs`, async () => {
      const dir = await tempDir();
      try {
        const events = await collect(readArchive(createReadStream(TS_ARCHIVE)));
        const writer = new DumpDirWriter(dir.path, { gzip });
        const expected = new Map<string, bigint>();
        const longName = 'n'.repeat(250) + ' ünïcode/$';
        const colls = events.flatMap((e) => (e.kind === 'collection' ? [e.collection] : []));
        for (const c of colls) {
          const meta = parseMetadataJson(c.metadata, c.collection);
          // The time-series data lives under system.buckets.<name>; write it under that name.
          const dataNs = c.type === 'timeseries' ? `system.buckets.${c.collection}` : c.collection;
          const docs = events.flatMap((e) =>
            e.kind === 'document' && e.ns.db === c.db && e.ns.collection === dataNs ? [e.doc] : [],
          );
          const w = await writer.writeCollection(
            c.db,
            { ...meta, collectionName: dataNs },
            chunked(Buffer.concat(docs), 1 << 16),
          );
          const eof = events.find((e) => e.kind === 'eof' && e.ns.db === c.db && e.ns.collection === dataNs);
          assert.ok(eof && eof.kind === 'eof');
          assert.equal(w.crc, eof.crc);
          expected.set(`${c.db}.${dataNs}`, eof.crc);
        }
        const lw = await writer.writeCollection(
          'other',
          { options: {}, indexes: [], collectionName: longName },
          chunked(serialize({ a: new Long(5) }), 3),
        );
        expected.set(`other.${longName}`, lw.crc);
        assert.ok((await readdir(path.join(dir.path, 'other'))).every((f) => f.length <= 255));

        const listing = await listDumpDir(dir.path);
        assert.deepEqual(
          listing.collections.map((c) => `${c.db}.${c.collection}`),
          [...expected.keys()].sort(),
        );
        for (const c of listing.collections) {
          assert.equal(c.gzip, gzip);
          const crc = new Crc64();
          for await (const d of readBsonFile(c.bsonPath!)) crc.update(d);
          assert.equal(crc.digest(), expected.get(`${c.db}.${c.collection}`), `${c.db}.${c.collection}`);
        }
      } finally {
        await dir.cleanup();
      }
    });
  }
});

describe('namespace patterns and the content hash (pure)', () => {
  test('include/exclude patterns with * across dots; renames map each * in order', () => {
    const f = new NamespaceFilter(
      ['rocketchat.*', 'other.users'],
      ['rocketchat.rocketchat_statistics', '*.tmp_*'],
    );
    assert.equal(f.matches('rocketchat.users'), true);
    assert.equal(f.matches('rocketchat.rocketchat_uploads.chunks'), true);
    assert.equal(f.matches('rocketchat.rocketchat_statistics'), false);
    assert.equal(f.matches('rocketchat.tmp_x'), false);
    assert.equal(f.matches('other.users'), true);
    assert.equal(f.matches('other.rooms'), false);
    assert.equal(new NamespaceFilter().matches('anything.at_all'), true);
    const r = new NamespaceRenamer(['rocketchat.*', 'a.*_old'], ['rocketchat_restored.*', 'b.new_*']);
    assert.equal(r.rename('rocketchat.rocketchat_message'), 'rocketchat_restored.rocketchat_message');
    assert.equal(r.rename('a.users_old'), 'b.new_users');
    assert.equal(r.rename('c.d'), 'c.d');
    assert.throws(() => new NamespaceRenamer(['a.*'], ['b.c']), /different numbers of \*/);
    assert.throws(() => new NamespaceFilter(['nodot']), /not a namespace pattern/);
    assert.deepEqual(splitNs('db.coll.with.dots'), { db: 'db', collection: 'coll.with.dots' });
  });

  test('the content hash ignores order and sees every changed, missing or duplicated document', () => {
    const docs = Array.from({ length: 50 }, (_, i) => serialize({ _id: i, v: `x${i}` }));
    const h = (ds: Uint8Array[]) => {
      const c = new CollectionHash();
      for (const d of ds) c.add(d);
      return c.hex();
    };
    const base = h(docs);
    assert.equal(h([...docs].reverse()), base);
    assert.notEqual(h(docs.slice(1)), base);
    assert.notEqual(h([...docs, docs[3]]), base);
    const changed = [...docs];
    changed[7] = serialize({ _id: 7, v: 'changed' });
    assert.notEqual(h(changed), base);
    // Sums compose: the hash of A ∪ B is computable from the parts (used when restoring into a non-empty target).
    assert.equal(addHashes(h(docs.slice(0, 20)), h(docs.slice(20))), base);
    assert.notEqual(addHashes(h(docs.slice(0, 20)), h(docs.slice(21))), base);
  });
});
