/**
 * MongoDB benchmark pieces for `npm run bench` (bench/run.ts calls `benchMongo`): on a generated
 * Rocket.Chat-like data set, backup and restore throughput (MiB/s of BSON and documents/s) through the
 * real CLI, each run's peak RSS, the day-2 backup's new bytes, and RSS at two data sizes (flat is the
 * goal). The server is the FerretDB the tests use, or LIFEBOAT_TEST_MONGODB_URI.
 *
 * FerretDB is slow (~3 MiB/s) and absolute figures say more about it than about Lifeboat, so each figure is
 * compared with a *baseline* measured in the same run on the same server with the plain driver, at
 * Lifeboat's own batch sizes and parallelism (4 collections at once, 1000 documents per batch, 2 insert
 * batches in flight per collection):
 * - find baseline: a raw-BSON `find` loop over every collection (the documents go to local files, which
 *   the insert baseline then reads);
 * - insert baseline: an `insertMany` loop of the same documents into a scratch database, decoded exactly
 *   as Lifeboat decodes them (no indexes built: Lifeboat's restore builds them too, so it is slightly
 *   disadvantaged).
 * Backup is compared with the find baseline, restore (with and without verification) with the insert one.
 *
 * mongodump/mongorestore are not measured: mongo-tools cannot be built here (the Go module proxy refuses
 * github.com/mongodb/mongo-tools: "403 Forbidden — This module version is not available").
 *
 * Size: LIFEBOAT_BENCH_MONGO_BYTES (default 64 MiB of BSON; FerretDB loads it in about a minute). Run
 * alone: `node bench/mongodb.ts`.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { MongoClient, type Document } from 'mongodb';
import { mapLimit } from '../src/core/concurrency.ts';
import { decodeDocument, splitBson } from '../src/sources/mongodb/bson-stream.ts';
import { EXACT_BSON } from '../src/sources/mongodb/metadata.ts';
import { startMongo } from '../test/env/ferretdb.ts';
import { tempDir } from '../test/env/index.ts';
import { mkdir, rm } from 'node:fs/promises';
import { buildRuntime, measureCli, sizeFromEnv } from './lib.ts';
import { generateSample, simulateDay2, specForBytes } from '../src/sources/mongodb/sample-data.ts';

export interface MongoBenchResult {
  server: string;
  dataBytes: number;
  documents: number;
  generateMs: number;
  backup: { ms: number; mibPerSec: number; docsPerSec: number; peakRssMiB: number; bytesAdded: number };
  restore: { ms: number; mibPerSec: number; docsPerSec: number; peakRssMiB: number };
  day2: { newMessages: number; bytesAdded: number; bytesProcessed: number; percentAdded: number; ms: number };
  rssAtQuarterSizeMiB: { backup: number; restore: number };
  baseline: { findMs: number; insertMs: number };
  /** Lifeboat's speed / the baseline's (above 1: faster than the plain driver loop). */
  ratios: { backupVsFind: number; restoreNoVerifyVsInsert: number; restoreVerifiedVsInsert: number };
  restoreNoVerify: { ms: number; peakRssMiB: number };
  mongodumpComparison: string;
}

const PARALLEL = 4;
const BATCH_DOCS = 1000;
const BATCH_BYTES = 8 * 1024 * 1024;
const INSERTS_IN_FLIGHT = 2;

/** The find baseline: every collection of `db` read as raw BSON, written to `dir/<collection>.bson`. */
async function findBaseline(
  client: MongoClient,
  db: string,
  dir: string,
): Promise<{ ms: number; names: string[] }> {
  const names = (await client.db(db).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  const started = performance.now();
  await mapLimit(names, PARALLEL, async (name) => {
    const out = createWriteStream(path.join(dir, `${name}.bson`));
    const cursor = client.db(db).collection(name).find({}, { raw: true, batchSize: BATCH_DOCS });
    for await (const raw of cursor) if (!out.write(raw as unknown as Uint8Array)) await once(out, 'drain');
    out.end();
    await once(out, 'finish');
  });
  return { ms: performance.now() - started, names };
}

/** The insert baseline: those files loaded into `target` the way Lifeboat's restore sends batches. */
async function insertBaseline(
  client: MongoClient,
  names: string[],
  dir: string,
  target: string,
): Promise<number> {
  await client.db(target).dropDatabase();
  const started = performance.now();
  await mapLimit(names, PARALLEL, async (name) => {
    const coll = client.db(target).collection(name);
    const inflight = new Set<Promise<unknown>>();
    let batch: Document[] = [];
    let bytes = 0;
    const send = async () => {
      const p = coll.insertMany(batch, { ordered: true, bypassDocumentValidation: true });
      inflight.add(p);
      void p.finally(() => inflight.delete(p)).catch(() => {});
      batch = [];
      bytes = 0;
      while (inflight.size >= INSERTS_IN_FLIGHT) await Promise.race(inflight);
    };
    for await (const raw of splitBson(createReadStream(path.join(dir, `${name}.bson`)), name)) {
      batch.push(decodeDocument(raw, name, EXACT_BSON));
      bytes += raw.length;
      if (batch.length >= BATCH_DOCS || bytes >= BATCH_BYTES) await send();
    }
    if (batch.length) await send();
    await Promise.all(inflight);
  });
  const ms = performance.now() - started;
  await client.db(target).dropDatabase();
  return ms;
}

const MiB = 1024 * 1024;

async function cycle(uri: string, db: string, bytes: number, work: string, log: (m: string) => void) {
  const env = {
    LIFEBOAT_PASSWORD: 'bench',
    LIFEBOAT_MONGODB_URI: uri,
    LIFEBOAT_CONFIG: '',
    XDG_CONFIG_HOME: path.join(work, 'cfg'),
  };
  const repo = path.join(work, `repo-${db}`);
  const cli = (args: string[]) => measureCli(['--repo', repo, ...args], env, { cwd: work });
  const init = await cli(['init']);
  if (init.code !== 0) throw new Error(init.stderr);
  const client = new MongoClient(uri);
  await client.connect();
  try {
    await client.db(db).dropDatabase();
    await client.db(`${db}_restored`).dropDatabase();
    const t0 = Date.now();
    log(`generating ~${(bytes / MiB).toFixed(0)} MiB of Rocket.Chat-like data in ${db}`);
    await generateSample(client, specForBytes(bytes, db));
    const generateMs = Date.now() - t0;
    log(`backup of ${db}`);
    const b = await cli(['mongodb', 'backup', '--ns-include', `${db}.*`, '--json']);
    if (b.code !== 0) throw new Error(b.stderr);
    const bj = JSON.parse(b.stdout);
    const restore = async (extra: string[]) => {
      const m = await cli([
        'mongodb',
        'restore',
        bj.id,
        '--ns-from',
        `${db}.*`,
        '--ns-to',
        `${db}_restored.*`,
        ...extra,
        '--json',
      ]);
      if (m.code !== 0) throw new Error(m.stderr);
      await client.db(`${db}_restored`).dropDatabase();
      return m;
    };
    log(`restore into ${db}_restored`);
    const r = await restore([]);
    log(`restore into ${db}_restored without verification`);
    const rn = await restore(['--no-verify']);
    log('baselines: raw find loop, insertMany loop');
    const dumpDir = path.join(work, `baseline-${db}`);
    await mkdir(dumpDir, { recursive: true });
    const find = await findBaseline(client, db, dumpDir);
    const insertMs = await insertBaseline(client, find.names, dumpDir, `${db}_baseline`);
    await rm(dumpDir, { recursive: true, force: true });
    return { client, cli, bj, b, r, rn, generateMs, baseline: { findMs: find.ms, insertMs } };
  } catch (e) {
    await client.close();
    throw e;
  }
}

export async function benchMongo(
  options: { bytes?: number; log?: (m: string) => void } = {},
): Promise<MongoBenchResult> {
  const bytes = options.bytes ?? sizeFromEnv('LIFEBOAT_BENCH_MONGO_BYTES', 64 * MiB);
  const log = options.log ?? ((m: string) => console.error(`[bench mongodb] ${m}`));
  const server = await startMongo();
  const work = await tempDir('lifeboat-bench-mongo-');
  try {
    // A quarter-size run first: RSS should not grow with the data.
    const small = await cycle(server.uri, 'bench_small', Math.round(bytes / 4), work.path, log);
    await small.client.db('bench_small').dropDatabase();
    await small.client.close();

    const full = await cycle(server.uri, 'bench', bytes, work.path, log);
    const { bj, b, r, rn, baseline } = full;
    const docs = bj.totals.documents as number;
    const dataBytes = bj.totals.bytes as number;
    log('day 2: 1% new messages, edits/reactions, lastLogin, every room');
    const day = await simulateDay2(full.client, 'bench');
    const d2 = await full.cli(['mongodb', 'backup', '--ns-include', 'bench.*', '--json']);
    if (d2.code !== 0) throw new Error(d2.stderr);
    const d2j = JSON.parse(d2.stdout);
    await full.client.db('bench').dropDatabase();
    await full.client.close();
    const result: MongoBenchResult = {
      server: server.isFerretDB ? 'FerretDB 1.24.2 (SQLite)' : 'LIFEBOAT_TEST_MONGODB_URI',
      dataBytes,
      documents: docs,
      generateMs: full.generateMs,
      backup: {
        ms: b.ms,
        mibPerSec: dataBytes / MiB / (b.ms / 1000),
        docsPerSec: docs / (b.ms / 1000),
        peakRssMiB: b.peakRss / MiB,
        bytesAdded: bj.bytesAdded,
      },
      restore: {
        ms: r.ms,
        mibPerSec: dataBytes / MiB / (r.ms / 1000),
        docsPerSec: docs / (r.ms / 1000),
        peakRssMiB: r.peakRss / MiB,
      },
      day2: {
        newMessages: day.newMessages,
        bytesAdded: d2j.bytesAdded,
        bytesProcessed: d2j.totals.bytes,
        percentAdded: (100 * d2j.bytesAdded) / d2j.totals.bytes,
        ms: d2.ms,
      },
      rssAtQuarterSizeMiB: { backup: small.b.peakRss / MiB, restore: small.r.peakRss / MiB },
      baseline,
      ratios: {
        backupVsFind: baseline.findMs / b.ms,
        restoreNoVerifyVsInsert: baseline.insertMs / rn.ms,
        restoreVerifiedVsInsert: baseline.insertMs / r.ms,
      },
      restoreNoVerify: { ms: rn.ms, peakRssMiB: rn.peakRss / MiB },
      mongodumpComparison:
        'not measured: mongodump/mongorestore cannot be built here (Go module proxy: 403 "This module version is not available" for github.com/mongodb/mongo-tools)',
    };
    return result;
  } finally {
    await server.stop();
    await work.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildRuntime();
  const r = await benchMongo();
  console.log(JSON.stringify(r, null, 2));
}
