/**
 * Property-based tests of the readers of mongodump formats, through the functions `mongodb import` and
 * `mongodb restore` use: the archive reader (readArchive over openArchiveFile, importArchive), the dump
 * directory reader (listDumpDir, readBsonFile, readMetadataFile, importDir), the BSON splitter and document
 * decoding restore applies to every stored record, metadata.json, and the oplog handling that needs no
 * server (oplogNamespaces, applyDiff). No server is needed.
 *
 * Inputs start as the real mongodump archives in ../shared/testdata/mongodump and are mutated
 * (test/env/mutate.ts). Whatever the bytes, a reader either returns what its callers can use or throws a
 * LifeboatError (INTEGRITY, naming the file or item), and never crashes, hangs or allocates from a
 * damaged length field. fast-check prints the seed and shrunk counterexample on failure.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { deserialize, serialize, type Document } from 'bson';
import fc from 'fast-check';
import type { BackupSession, Item, ItemInput } from '../../src/core/repository/model.ts';
import { readArchive, type ArchiveEvent } from '../../src/sources/mongodb/archive.ts';
import { decodeDocument, splitBson } from '../../src/sources/mongodb/bson-stream.ts';
import {
  DumpDirWriter,
  listDumpDir,
  queryUnescape,
  readBsonFile,
  readMetadataFile,
} from '../../src/sources/mongodb/dumpdir.ts';
import {
  EXACT_BSON,
  formatMetadataJson,
  indexSpecForCreate,
  parseMetadataJson,
} from '../../src/sources/mongodb/metadata.ts';
import { applyDiff, oplogNamespaces } from '../../src/sources/mongodb/oplog.ts';
import { importArchive, importDir } from '../../src/sources/mongodb/transfer.ts';
import { SHARED_DIR, tempDir, type TempDir } from '../env/index.ts';
import {
  PROPERTY_TIMEOUT,
  RUNS,
  applyByteMutations,
  byteMutations,
  jsonMutations,
  mutateJson,
  outcome,
  outcomeAsync,
  wrongValue,
} from '../env/mutate.ts';
import { chunked, collect } from '../env/data.ts';

const ARCHIVES = path.join(SHARED_DIR, 'testdata/mongodump');
const OPLOG_ARCHIVE = readFileSync(path.join(ARCHIVES, 'with-oplog-server4.0.archive'));
const TS_ARCHIVE = readFileSync(path.join(ARCHIVES, 'timeseries-server5.0.archive'));
/** File and stream readers are slower per run than pure parsers. */
const IO_RUNS = Math.ceil(RUNS / 2);

/** A backup session that only counts: import's reading and bookkeeping without a repository. */
function countingSession(): BackupSession {
  const newItem = (input: ItemInput) => {
    let size = 0;
    let records = 0;
    return {
      async write(d: Uint8Array) {
        size += d.length;
        records++;
      },
      async writeFrom(): Promise<number> {
        throw new Error('not used');
      },
      async discard() {},
      diverged: false,
      async matches() {
        return true;
      },
      async finish(): Promise<Item> {
        return { ...input, meta: input.meta ?? {}, size, sha256: '', records };
      },
    };
  };
  return {
    newItem,
    async addItem(input, data) {
      const w = newItem(input);
      if (data instanceof Uint8Array) await w.write(data);
      else for await (const d of data) await w.write(d);
      return w.finish();
    },
    progress: { bytesProcessed: 0, bytesAdded: 0 },
    async reuseItem() {
      throw new Error('not used');
    },
    async expectItem() {
      throw new Error('not used');
    },
    async commit() {
      throw new Error('not used');
    },
    async abort() {},
  };
}

// The pieces of the real archives every property starts from.
const events = {
  oplog: [] as ArchiveEvent[],
  ts: [] as ArchiveEvent[],
};
const docsOf = (evs: ArchiveEvent[], ns: string) =>
  evs.flatMap((e) => (e.kind === 'document' && `${e.ns.db}.${e.ns.collection}` === ns ? [e.doc] : []));
let oplogEntries: Uint8Array[];
let collectionDocs: Uint8Array[];
let metadataTexts: string[];

let tmp: TempDir;
let fileCounter = 0;
/** A fresh path in the temp dir: properties run many times and must not see each other's files. */
const freshPath = (name: string) => path.join(tmp.path, `${++fileCounter}-${name}`);

before(async () => {
  tmp = await tempDir('lifeboat-props-');
  events.oplog = await collect(readArchive(chunked(OPLOG_ARCHIVE, 4096)));
  events.ts = await collect(readArchive(chunked(TS_ARCHIVE, 4096)));
  oplogEntries = docsOf(events.oplog, '.oplog');
  // test.foo's small documents and two time-series buckets (~4 KiB each, nested, many BSON types).
  collectionDocs = [
    ...docsOf(events.oplog, 'test.foo'),
    ...docsOf(events.ts, 'timeseries_test.system.buckets.foo_ts').slice(0, 2),
  ];
  metadataTexts = [...events.oplog, ...events.ts].flatMap((e) =>
    e.kind === 'collection' && e.collection.metadata ? [e.collection.metadata] : [],
  );
  assert.equal(oplogEntries.length, 18);
  assert.ok(metadataTexts.length >= 4);
});
after(() => tmp?.cleanup());

const archive = fc.constantFrom(OPLOG_ARCHIVE, TS_ARCHIVE);
/**
 * Tiny reads (every document straddles reads) sometimes; mostly file-sized ones: a 40 KB archive read a
 * byte at a time costs 40,000 awaits, which on 2 busy cores is the whole time budget.
 */
const chunkSize = fc.oneof(
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }) },
  { weight: 7, arbitrary: fc.integer({ min: 17, max: 65536 }) },
);

/** What a completed archive read must look like, whatever bytes produced it. */
function checkArchiveEvents(evs: ArchiveEvent[]): void {
  assert.equal(evs[0]?.kind, 'header');
  const ended = new Set(evs.flatMap((e) => (e.kind === 'eof' ? [`${e.ns.db}.${e.ns.collection}`] : [])));
  for (const e of evs) {
    if (e.kind === 'document') {
      assert.ok(ended.has(`${e.ns.db}.${e.ns.collection}`), 'documents of a namespace without an EOF block');
      assert.ok(e.doc.length >= 5);
    }
  }
}

describe('mongodump archive', () => {
  test('a damaged archive stream reads completely or is INTEGRITY', PROPERTY_TIMEOUT, async () => {
    await fc.assert(
      fc.asyncProperty(archive, byteMutations, chunkSize, async (a, ms, size) => {
        const bytes = applyByteMutations(a, ms);
        const r = await outcomeAsync(
          () => collect(readArchive(chunked(bytes, size), 'test.archive')),
          'test.archive',
        );
        if (r.ok) checkArchiveEvents(r.value);
      }),
      { numRuns: RUNS },
    );
  });

  test('damage inside a document is always caught by the CRC', PROPERTY_TIMEOUT, async () => {
    // A byte changed strictly inside a document (not its length or its final 0x00) still frames: only the
    // namespace's CRC-64 can catch it, and it must.
    const offsets: number[] = [];
    for (let o = OPLOG_ARCHIVE.indexOf(collectionDocs[0]); o >= 0 && offsets.length < 25;) {
      offsets.push(o);
      o += OPLOG_ARCHIVE.readUInt32LE(o);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...offsets),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (doc, at, xor) => {
          const len = OPLOG_ARCHIVE.readUInt32LE(doc);
          const bytes = Buffer.from(OPLOG_ARCHIVE);
          bytes[doc + 4 + (at % (len - 5))] ^= xor;
          const r = await outcomeAsync(
            () => collect(readArchive(chunked(bytes, 512), 'test.archive')),
            'test.archive',
          );
          assert.equal(r.ok, false);
          if (!r.ok) assert.match(r.error.message, /CRC mismatch/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('random bytes are INTEGRITY (or, rarely, an archive)', PROPERTY_TIMEOUT, async () => {
    const magic = Buffer.from([0x6d, 0xe2, 0x99, 0x81]);
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ maxLength: 300 }), async (withMagic, body) => {
        const bytes = withMagic ? Buffer.concat([magic, body]) : Buffer.from(body);
        const r = await outcomeAsync(() => collect(readArchive(chunked(bytes, 7), 'x.archive')), 'x.archive');
        if (r.ok) checkArchiveEvents(r.value);
      }),
      { numRuns: RUNS },
    );
  });

  test(
    '`mongodb import --archive` of a damaged file (plain or gzipped) imports or is INTEGRITY',
    PROPERTY_TIMEOUT,
    async () => {
      await fc.assert(
        fc.asyncProperty(archive, fc.boolean(), byteMutations, async (a, gzip, ms) => {
          const file = freshPath('damaged.archive');
          await writeFile(file, applyByteMutations(gzip ? gzipSync(a) : a, ms));
          const r = await outcomeAsync(() => importArchive(countingSession(), file), file);
          if (r.ok) for (const i of r.value.items) assert.equal(typeof i.name, 'string');
          await rm(file);
        }),
        { numRuns: IO_RUNS },
      );
    },
  );
});

describe('BSON streams (dump files, stored records)', () => {
  test('a damaged BSON stream splits and decodes, or is INTEGRITY naming it', PROPERTY_TIMEOUT, async () => {
    // What restore does with every stored record: split the item's bytes, decode each document.
    await fc.assert(
      fc.asyncProperty(byteMutations, chunkSize, async (ms, size) => {
        const damaged = applyByteMutations(Buffer.concat(collectionDocs), ms);
        await outcomeAsync(async () => {
          for await (const raw of splitBson(chunked(damaged, size), 'snapshot item test.foo'))
            decodeDocument(raw, 'snapshot item test.foo', EXACT_BSON);
        }, 'snapshot item test.foo');
      }),
      { numRuns: RUNS },
    );
  });

  test(
    'a damaged .bson / .bson.gz file reads or is INTEGRITY naming the file',
    PROPERTY_TIMEOUT,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.boolean(), byteMutations, async (gzip, ms) => {
          const plain = Buffer.concat(collectionDocs);
          const file = freshPath(gzip ? 'c.bson.gz' : 'c.bson');
          await writeFile(file, applyByteMutations(gzip ? gzipSync(plain) : plain, ms));
          const r = await outcomeAsync(() => collect(readBsonFile(file)), file);
          if (r.ok) for (const d of r.value) assert.equal(d[d.length - 1], 0);
          await rm(file);
        }),
        { numRuns: IO_RUNS },
      );
    },
  );
});

describe('metadata.json', () => {
  /** What import and restore do with parsed metadata: re-format it, build index specs. */
  function useMetadata(m: ReturnType<typeof parseMetadataJson>): void {
    assert.equal(typeof m.collectionName, 'string');
    assert.ok(Array.isArray(m.indexes));
    for (const spec of m.indexes) indexSpecForCreate(spec);
    const again = parseMetadataJson(formatMetadataJson(m), 'x');
    assert.equal(again.collectionName, m.collectionName);
  }

  test('damaged metadata text parses to usable metadata or is INTEGRITY naming it', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.oneof(
          byteMutations.map((ms) => ({ bytes: ms })),
          jsonMutations.map((ms) => ({ json: ms })),
        ),
        (which, m) => {
          const original = metadataTexts[which % metadataTexts.length];
          const text =
            'bytes' in m
              ? applyByteMutations(Buffer.from(original), m.bytes).toString('utf8')
              : mutateJson(JSON.parse(original), m.json);
          const r = outcome(
            () => parseMetadataJson(text, 'fallback', 'foo.metadata.json'),
            'foo.metadata.json',
          );
          if (r.ok) useMetadata(r.value);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test(
    'a damaged .metadata.json(.gz) file reads or is INTEGRITY naming the file',
    PROPERTY_TIMEOUT,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat(), fc.boolean(), byteMutations, async (which, gzip, ms) => {
          const text = Buffer.from(metadataTexts[which % metadataTexts.length]);
          const file = freshPath(gzip ? 'c.metadata.json.gz' : 'c.metadata.json');
          await writeFile(file, applyByteMutations(gzip ? gzipSync(text) : text, ms));
          const r = await outcomeAsync(() => readMetadataFile(file, 'c'), file);
          if (r.ok) useMetadata(r.value);
          await rm(file);
        }),
        { numRuns: IO_RUNS },
      );
    },
  );
});

describe('dump directory', () => {
  /** The test archive as mongodump would have written it with --out (and --gzip). */
  async function writeDump(root: string, gzip: boolean): Promise<void> {
    const w = new DumpDirWriter(root, { gzip });
    for (const e of events.oplog) {
      if (e.kind !== 'collection') continue;
      const ns = `${e.collection.db}.${e.collection.collection}`;
      if (ns === '.oplog') await w.writeOplog(chunkedDocs(oplogEntries));
      else
        await w.writeCollection(
          e.collection.db,
          parseMetadataJson(e.collection.metadata, e.collection.collection),
          chunkedDocs(docsOf(events.oplog, ns)),
        );
    }
  }
  async function* chunkedDocs(docs: Uint8Array[]) {
    yield* docs;
  }
  async function filesUnder(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
      if (e.isFile()) out.push(path.join(e.parentPath, e.name));
    return out.sort();
  }

  test(
    '`mongodb import --dir` of a dump with a damaged file imports or is INTEGRITY',
    PROPERTY_TIMEOUT,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.boolean(), fc.nat(), byteMutations, async (gzip, which, ms) => {
          const root = freshPath('dump');
          await writeDump(root, gzip);
          const files = await filesUnder(root);
          const victim = files[which % files.length];
          await writeFile(victim, applyByteMutations(await readFile(victim), ms));
          const r = await outcomeAsync(() => importDir(countingSession(), root), victim);
          if (r.ok) assert.ok(r.value.items.length > 0);
          await rm(root, { recursive: true });
        }),
        { numRuns: Math.ceil(RUNS / 4) },
      );
    },
  );

  test('dump file names unescape or are INTEGRITY', PROPERTY_TIMEOUT, async () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('%', '+', 'a', '2', 'F', 'g', 'é', '.', ' ') }),
        (name) => {
          const r = outcome(() => queryUnescape(name), name);
          if (r.ok) assert.equal(typeof r.value, 'string');
        },
      ),
      { numRuns: RUNS },
    );
    // And through listDumpDir, on a real directory.
    const root = freshPath('names');
    await mkdir(path.join(root, 'db'), { recursive: true });
    await writeFile(path.join(root, 'db', 'bad%zz.bson'), '');
    const r = await outcomeAsync(() => listDumpDir(root), 'bad%zz');
    assert.equal(r.ok, false);
  });
});

describe('oplog (the parts replay runs without a server)', () => {
  test('namespaces of a damaged oplog stream are found or it is INTEGRITY', PROPERTY_TIMEOUT, async () => {
    await fc.assert(
      fc.asyncProperty(byteMutations, chunkSize, async (ms, size) => {
        const bytes = applyByteMutations(Buffer.concat(oplogEntries), ms);
        const r = await outcomeAsync(() =>
          oplogNamespaces(splitBson(chunked(bytes, size), 'snapshot item .oplog')),
        );
        if (r.ok) assert.ok(r.value.every((ns) => typeof ns === 'string'));
      }),
      { numRuns: RUNS },
    );
  });

  test('oplog entries with fields of the wrong type are handled or INTEGRITY', PROPERTY_TIMEOUT, async () => {
    // The fields replay reads, set to values of every shape; `op: 'c'` makes most entries commands
    // (transactions, renames), the paths with the most structure to get wrong.
    const field = fc.constantFrom(
      'op',
      'ns',
      'o',
      'o2',
      'ts',
      'lsid',
      'lsid.id',
      'txnNumber',
      'o.applyOps',
      'o.partialTxn',
      'o.prepare',
      'o.commitTransaction',
      'o.abortTransaction',
      'o.create',
      'o.renameCollection',
      'o.to',
    );
    const change = fc.record({
      asCommand: fc.boolean(),
      sets: fc.array(fc.record({ field, value: fc.oneof(wrongValue, fc.constant([{ op: 'i' }, 7, null])) }), {
        minLength: 1,
        maxLength: 4,
      }),
    });
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.oneof(jsonMutations, change), async (which, m) => {
        const entries: unknown[] = oplogEntries.map((raw) => deserialize(raw));
        const i = which % entries.length;
        if (Array.isArray(m)) {
          // Mutations of the entry's JSON shape, re-encoded as BSON.
          entries[i] = JSON.parse(mutateJson(JSON.parse(JSON.stringify(entries[i])), m));
        } else {
          const e = entries[i] as Document;
          if (m.asCommand) e.op = 'c';
          for (const { field, value } of m.sets) {
            const [head, tail] = field.split('.');
            if (tail === undefined) e[head] = value;
            else e[head] = { ...(typeof e[head] === 'object' ? e[head] : {}), [tail]: value };
          }
        }
        const raws = entries.map((e) =>
          serialize(e && typeof e === 'object' && !Array.isArray(e) ? e : { v: e }),
        );
        const r = await outcomeAsync(() =>
          oplogNamespaces(splitBson(chunked(Buffer.concat(raws), 100), 'oplog')),
        );
        if (r.ok) assert.ok(r.value.every((ns) => typeof ns === 'string'));
      }),
      { numRuns: RUNS },
    );
  });

  // $v:2 update diffs, as MongoDB 5.0+ logs them, with sections of every shape a damaged entry can have.
  const diffKey = fc.constantFrom('d', 'u', 'i', 'sa', 'sb', 'a', 'l', 'u0', 'u3', 's1', 'x', '$v');
  const diff = fc.letrec<{ diff: Document; value: unknown }>((tie) => ({
    // noNullPrototype: BSON decoding never makes objects without a prototype.
    diff: fc.dictionary(diffKey, tie('value'), { maxKeys: 4, noNullPrototype: true }),
    // Past maxDepth, oneof takes its first (non-recursive) choice: diffs stay small.
    value: fc.oneof(
      { maxDepth: 4, depthIdentifier: 'diff' },
      wrongValue,
      fc.constant(true),
      fc.constantFrom(2 ** 40, 1e9, -5, 4.5, 16 * 1024 * 1024),
      tie('diff'),
      tie('diff'),
    ),
  })).diff;
  const target = fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.jsonValue({ maxDepth: 2 }), {
    maxKeys: 3,
    noNullPrototype: true,
  });

  test('a damaged $v:2 diff applies or is INTEGRITY, in bounded time and memory', PROPERTY_TIMEOUT, () => {
    fc.assert(
      fc.property(target, diff, (t, d) => {
        const r = outcome(() => applyDiff(structuredClone(t), d));
        if (r.ok) assert.equal(typeof r.value, 'object');
      }),
      { numRuns: RUNS * 3 },
    );
  });
});
