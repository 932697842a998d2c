/**
 * Point-in-time consistency through the oplog, as `mongodump --oplog` / `mongorestore --oplogReplay`.
 *
 * Capture: the newest oplog entry is noted before the first collection is read; once the last one is
 * done, every entry from that one to the then-newest is copied (raw, in natural = timestamp order) into a
 * `.oplog` item. Documents read during the dump may be older or newer than the start; replaying the
 * window on top of them brings every collection to the state of the window's end (oplog operations are
 * idempotent). If the oldest entry of the window is no longer in the oplog when it is read, the capped
 * oplog rolled over during the backup and the window has a hole: the backup fails rather than record an
 * inconsistent point in time.
 *
 * Replay: each entry through `applyOps` (one per entry, `ui` removed because restored collections get new
 * UUIDs — what mongorestore does). Servers without `applyOps` (FerretDB, Amazon DocumentDB) get the same
 * effect through plain writes: inserts as upserts, updates (both the `$v: 1` modifier and the `$v: 2`
 * diff format) applied to the current document, deletes by `_id`; only commands other than create/drop
 * need `applyOps`. Transactions (`applyOps` commands in the oplog, split with `partialTxn` or prepared)
 * are replayed as their inner operations once their commit is seen.
 */
import { deserialize, Timestamp, type Document } from 'bson';
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';
import type { BackupSession, Item } from '../../core/repository/model.ts';
import { Crc64 } from './crc64.ts';
import { CollectionHash } from './hash.ts';
import { mongoError, type ServerInfo } from './connect.ts';
import { EXACT_BSON } from './metadata.ts';
import { decodeDocument, MAX_BSON_SIZE } from './bson-stream.ts';
import { comparePositions, formatPosition, type OplogPosition } from './position.ts';

export const OPLOG_ITEM = '.oplog';

export { comparePositions, formatPosition, type OplogPosition };

export interface OplogWindow {
  start: OplogPosition | null;
  end: OplogPosition | null;
  entries: number;
}

export const position = (ts: Timestamp): OplogPosition => ({ t: ts.t, i: ts.i });

/**
 * By BSON type tag, not `instanceof`: the driver decodes with the CommonJS build of bson and this module
 * imports the ES module build, so the same type comes from two different classes.
 */
export function isTimestamp(v: unknown): v is Timestamp {
  return (v as { _bsontype?: string } | null)?._bsontype === 'Timestamp';
}

/**
 * `--oplog-limit`: replay only entries strictly before this point. Takes mongorestore's `SECONDS[:ORDINAL]`
 * or an ISO 8601 time (`2024-12-01T12:03:00Z`), which is what an operator usually knows ("just before the
 * collection was dropped").
 */
export function parseOplogLimit(text: string): OplogPosition {
  const m = /^(\d+)(?::(\d+))?$/.exec(text.trim());
  if (m) return { t: Number(m[1]), i: Number(m[2] ?? 0) };
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : NaN;
  if (Number.isFinite(ms)) return { t: Math.floor(ms / 1000), i: 0 };
  throw new LifeboatError(
    'USAGE',
    `--oplog-limit "${text}" is neither SECONDS[:ORDINAL] nor an ISO 8601 time`,
    {
      hint: 'e.g. --oplog-limit 1733054580:1 or --oplog-limit 2024-12-01T12:03:00Z',
    },
  );
}

const OPLOG = { db: 'local', collection: 'oplog.rs' } as const;

async function newestEntry(client: MongoClient): Promise<OplogPosition | null> {
  const last = await client
    .db(OPLOG.db)
    .collection(OPLOG.collection)
    .find({}, { sort: { $natural: -1 }, limit: 1, projection: { ts: 1 } })
    .next();
  return isTimestamp(last?.ts) ? position(last.ts) : null;
}

/**
 * Checks the server keeps an oplog and returns its newest position: where the capture window starts.
 * Called before the first collection is read.
 */
export async function oplogStart(client: MongoClient, info: ServerInfo): Promise<OplogPosition | null> {
  if (!info.replicaSet) {
    throw new LifeboatError(
      'UNSUPPORTED',
      '--oplog needs a replica set member, but the server is standalone (its hello names no replica set)',
      {
        hint: 'drop --oplog, or point --uri at a replica set member (a single-node replica set works: mongod --replSet rs0, then rs.initiate())',
      },
    );
  }
  try {
    const found = await client
      .db(OPLOG.db)
      .listCollections({ name: OPLOG.collection }, { nameOnly: true })
      .toArray();
    if (found.length === 0) {
      throw new LifeboatError(
        'UNSUPPORTED',
        `--oplog: replica set ${info.replicaSet} has no local.oplog.rs`,
        {
          hint: 'the server keeps no oplog to capture; drop --oplog',
        },
      );
    }
    return await newestEntry(client);
  } catch (e) {
    throw mongoError(e, 'reading the oplog (the backup user needs the "backup" role for local.oplog.rs)');
  }
}

/** Copies the oplog window [start, newest] into the `.oplog` item. Called after the last collection. */
export async function captureOplog(
  client: MongoClient,
  session: BackupSession,
  start: OplogPosition | null,
  signal?: AbortSignal,
): Promise<{ item: Item; window: OplogWindow }> {
  const writer = session.newItem({ name: OPLOG_ITEM, kind: 'oplog' }, 'records');
  const hash = new CollectionHash();
  const crc = new Crc64();
  let end: OplogPosition | null;
  try {
    end = await newestEntry(client);
    if (end) {
      const range: Document = { $lte: new Timestamp(end) };
      if (start) range.$gte = new Timestamp(start);
      const cursor = client
        .db(OPLOG.db)
        .collection(OPLOG.collection)
        .find({ ts: range }, { raw: true, sort: { $natural: 1 }, batchSize: 1000 });
      let previous: OplogPosition | null = null;
      try {
        for await (const raw of cursor) {
          if (signal?.aborted) throw signal.reason;
          const doc = raw as unknown as Uint8Array;
          const ts = entryPosition(doc);
          if (previous === null && start && comparePositions(ts, start) !== 0) {
            throw new LifeboatError(
              'INTEGRITY',
              `the oplog rolled over during the backup: its entry at ${formatPosition(start)} is gone (oldest in the window is ${formatPosition(ts)}), so changes made meanwhile are lost`,
              {
                hint: 'grow the oplog (replSetResizeOplog) or make the backup shorter (--parallel), then back up again',
              },
            );
          }
          if (previous && comparePositions(ts, previous) < 0) {
            throw new LifeboatError(
              'INTEGRITY',
              `the server returned oplog entries out of order (${formatPosition(ts)} after ${formatPosition(previous)})`,
              { hint: 'this server cannot give a replayable oplog; back up without --oplog' },
            );
          }
          previous = ts;
          hash.add(doc);
          crc.update(doc);
          await writer.write(doc);
        }
        if (previous === null && start) {
          throw new LifeboatError(
            'INTEGRITY',
            `the oplog rolled over during the backup: nothing is left of the window from ${formatPosition(start)}`,
            { hint: 'grow the oplog (replSetResizeOplog) or make the backup shorter, then back up again' },
          );
        }
      } finally {
        await cursor.close().catch(() => {});
      }
    }
  } catch (e) {
    throw mongoError(e, 'capturing the oplog');
  }
  const item = await writer.finish();
  item.meta = {
    db: '',
    collection: 'oplog',
    type: 'oplog',
    metadata: '',
    count: hash.count,
    bytes: hash.bytes,
    hash: hash.hex(),
    crc64: crc.digest().toString(16).padStart(16, '0'),
    start,
    end,
  };
  return { item, window: { start, end, entries: hash.count } };
}

/** Reads only the `ts` of a raw oplog entry. */
function entryPosition(raw: Uint8Array): OplogPosition {
  const doc = deserialize(raw, { promoteValues: false, promoteLongs: false });
  if (!isTimestamp(doc.ts)) {
    throw new LifeboatError('INTEGRITY', 'an oplog entry has no timestamp (ts)', {
      hint: 'the oplog item is damaged or not an oplog',
    });
  }
  return position(doc.ts);
}

// ---------------------------------------------------------------------------------------------------
// Replay

export interface ReplayResult {
  /** `applyOps`, or `writes` on servers without it. */
  method: 'applyOps' | 'writes';
  applied: number;
  /** No-ops and entries on server-internal namespaces. */
  skipped: number;
  /** Entries at or after --oplog-limit, not replayed. */
  beyondLimit: number;
  limit?: OplogPosition;
  /** Position of the last replayed entry. */
  last?: OplogPosition;
  /** Namespaces the replay wrote to. */
  namespaces: string[];
  /** Operations applied per namespace (as targetNamespace names it): what an atomic restore verifies. */
  perNamespace?: Record<string, number>;
}

/**
 * An entry's namespace (`''` when it has none). A real entry's is a string; one of any other type comes
 * from a damaged oplog item, and is INTEGRITY here rather than a TypeError from turning it into text.
 */
export function entryNamespace(op: Document): string {
  const ns = op.ns ?? '';
  if (typeof ns === 'string') return ns;
  throw new LifeboatError(
    'INTEGRITY',
    `an oplog entry's namespace (ns) is not a string but of type ${typeof ns}`,
    {
      hint: 'the oplog item is damaged or not an oplog',
    },
  );
}

/** Text for a field of an entry in a message; never throws, whatever the (damaged) value is. */
function shown(value: unknown): string {
  return typeof value === 'object' && value !== null
    ? `a ${value.constructor?.name ?? 'object'}`
    : String(value);
}

/** Entries on these are never replayed: server internals that a restore must not rewrite. */
export function isReplayable(op: Document): boolean {
  const ns = entryNamespace(op);
  const dot = ns.indexOf('.');
  const db = dot < 0 ? ns : ns.slice(0, dot);
  const coll = dot < 0 ? '' : ns.slice(dot + 1);
  if (db === 'local' || db === 'config' || db === '') return false;
  if (db === 'admin' && (op.op !== 'c' || coll !== '$cmd')) return false;
  if (coll.startsWith('system.') && !coll.startsWith('system.buckets.')) return false;
  return true;
}

/** The namespace an entry writes to (for commands: the collection they name, when they name one). */
export function targetNamespace(op: Document): string | undefined {
  const ns = entryNamespace(op);
  if (op.op !== 'c') return ns;
  const db = ns.slice(0, ns.indexOf('.'));
  const o = (op.o ?? {}) as Document;
  for (const k of ['create', 'drop', 'collMod', 'createIndexes', 'dropIndexes', 'deleteIndexes']) {
    if (typeof o[k] === 'string') return `${db}.${o[k]}`;
  }
  if (typeof o.renameCollection === 'string') return o.to ? String(o.to) : o.renameCollection;
  return undefined;
}

/**
 * Applies a `$v: 2` update diff (the format MongoDB 5.0+ logs) to a decoded document, in place.
 * Sections: `d` deletes fields, `u` updates them in place, `i` appends new ones, `s<field>` descends into
 * a sub-document or array; an array diff (`a: true`) may resize to `l` and update (`u<n>`) or descend
 * into (`s<n>`) elements by index.
 */
export function applyDiff(target: Document, diff: Document): Document {
  if (diff.a === true) throw unknownDiff('an array diff applied to a document');
  for (const [key, value] of Object.entries(diff)) {
    if (key === 'd') for (const f of Object.keys(section(value, key))) delete target[f];
    else if (key === 'u' || key === 'i') Object.assign(target, section(value, key));
    else if (key.startsWith('s'))
      target[key.slice(1)] = applySubDiff(target[key.slice(1)], section(value, key));
    else if (key !== '$v') throw unknownDiff(`unknown diff section "${key}"`);
  }
  return target;
}

/** A diff section must be a document: a damaged entry is INTEGRITY, not a TypeError mid-replay. */
function section(value: unknown, key: string): Document {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw unknownDiff(`diff section "${key}" is not a document`);
  return value as Document;
}

/**
 * Longest array a diff may make: every element of a BSON array takes at least 3 bytes (type, key, NUL),
 * so no document the server could log holds more. A damaged `l` or index must not make the replay
 * allocate (or loop) without bound.
 */
const MAX_ARRAY_LENGTH = Math.floor(MAX_BSON_SIZE / 3);

/** A field or element that a diff descends into: the (possibly new) value with the diff applied. */
function applySubDiff(current: unknown, sub: Document): unknown {
  if (sub.a === true) {
    const arr = Array.isArray(current) ? current : [];
    applyArrayDiff(arr, sub);
    return arr;
  }
  const doc = typeof current === 'object' && current !== null && !Array.isArray(current) ? current : {};
  return applyDiff(doc as Document, sub);
}

function applyArrayDiff(arr: unknown[], diff: Document): void {
  if (diff.l !== undefined) {
    const length = Number(diff.l);
    if (!Number.isInteger(length) || length < 0 || length > MAX_ARRAY_LENGTH)
      throw unknownDiff(`array length ${String(diff.l)}`);
    if (length < arr.length) arr.length = length;
    else while (arr.length < length) arr.push(null);
  }
  for (const [key, value] of Object.entries(diff)) {
    if (key === 'a' || key === 'l') continue;
    const m = /^([us])(\d+)$/.exec(key);
    if (!m || Number(m[2]) > MAX_ARRAY_LENGTH) throw unknownDiff(`unknown array diff section "${key}"`);
    const index = Number(m[2]);
    while (arr.length < index) arr.push(null);
    if (m[1] === 'u') arr[index] = value;
    else arr[index] = applySubDiff(arr[index], section(value, key));
  }
}

function unknownDiff(what: string): LifeboatError {
  return new LifeboatError('INTEGRITY', `oplog replay: ${what} in a $v:2 update`, {
    hint: 'this update format cannot be replayed through plain writes: restore into MongoDB (applyOps), or without --oplog-replay',
  });
}

/**
 * Groups transaction entries: plain entries pass through one by one; an `applyOps` command yields its
 * inner operations; `partialTxn` and prepared transactions are held until their commit (and dropped on
 * abort). Pure: no I/O, so it is tested on its own.
 */
export class TransactionAssembler {
  private readonly pending = new Map<string, Document[]>();

  /** The operations to apply now for this entry (possibly none). */
  take(entry: Document): Document[] {
    if (entry.op !== 'c') return [entry];
    const o = (entry.o ?? {}) as Document;
    const key = txnKey(entry);
    if (Array.isArray(o.applyOps)) {
      const ops = (o.applyOps as Document[]).map((inner) => ({ ...inner, ts: entry.ts }));
      if (o.partialTxn === true || o.prepare === true) {
        this.pending.set(key, [...(this.pending.get(key) ?? []), ...ops]);
        return [];
      }
      const held = this.pending.get(key) ?? [];
      this.pending.delete(key);
      return [...held, ...ops];
    }
    if (o.commitTransaction !== undefined) {
      const held = this.pending.get(key) ?? [];
      this.pending.delete(key);
      return held;
    }
    if (o.abortTransaction !== undefined) {
      this.pending.delete(key);
      return [];
    }
    return [entry];
  }

  /** Transactions whose commit lies beyond the window (or the limit): not applied, like uncommitted ones. */
  get unfinished(): number {
    return this.pending.size;
  }
}

function txnKey(entry: Document): string {
  const lsid = (entry.lsid ?? {}) as Document;
  const id = lsid.id as { _bsontype?: string; toString(enc?: string): string } | null | undefined;
  // A session id is a UUID (Binary); anything else is a damaged entry, and toString('hex') on, say, an
  // Int32 throws a RangeError: key it by its plain string form instead.
  const idText = id?._bsontype === 'Binary' ? id.toString('hex') : id == null ? '' : String(id);
  return `${idText}:${String(entry.txnNumber ?? '')}`;
}

/** What `applyOps` is given for one operation: the operation itself, without the source UUID. */
export function applyOpsEntry(op: Document): Document {
  const out: Document = { op: op.op, ns: op.ns, o: op.o };
  if (op.o2 !== undefined) out.o2 = op.o2;
  if (op.b !== undefined) out.b = op.b;
  return out;
}

function splitNamespace(ns: string): { db: string; collection: string } {
  const i = ns.indexOf('.');
  return { db: ns.slice(0, i), collection: ns.slice(i + 1) };
}

function isCommandNotFound(e: unknown): boolean {
  const err = e as { code?: number; message?: string };
  return (
    err?.code === 59 ||
    /no such (command|cmd)|not implemented|unrecognized command/i.test(String(err?.message))
  );
}

function describeEntry(op: Document): string {
  const ts = isTimestamp(op.ts) ? ` at ${formatPosition(position(op.ts))}` : '';
  return `${shown(op.op)} on ${shown(op.ns)}${ts}`;
}

/** Replays one operation through plain writes (servers without applyOps). */
async function applyWithWrites(client: MongoClient, op: Document): Promise<void> {
  const { db, collection } = splitNamespace(entryNamespace(op));
  const o = (op.o ?? {}) as Document;
  if (op.op === 'c') {
    const commandDb = client.db(db);
    if (typeof o.create === 'string') {
      const { create, ...options } = o;
      const exists = await commandDb.listCollections({ name: create }, { nameOnly: true }).toArray();
      if (exists.length === 0) await commandDb.createCollection(String(create), options);
      return;
    }
    if (typeof o.drop === 'string') {
      await commandDb
        .collection(String(o.drop))
        .drop()
        .catch((e: { code?: number }) => {
          if (e?.code !== 26) throw e; // NamespaceNotFound: already gone, as a replayed drop may find
        });
      return;
    }
    throw new LifeboatError(
      'UNSUPPORTED',
      `oplog replay: the server has no applyOps, and the command ${Object.keys(o)[0] ?? '?'} (${describeEntry(op)}) cannot be replayed without it`,
      { hint: 'restore into a MongoDB server, or restore without --oplog-replay (the data as dumped)' },
    );
  }
  const coll = client.db(db).collection(collection);
  if (op.op === 'i') {
    await coll.replaceOne({ _id: o._id }, o, { upsert: true });
  } else if (op.op === 'd') {
    await coll.deleteOne(o);
  } else if (op.op === 'u') {
    const filter = (op.o2 ?? {}) as Document;
    const keys = Object.keys(o).filter((k) => k !== '$v');
    if (o.diff !== undefined && Number(o.$v) === 2) {
      const current = await coll.findOne(filter, { raw: true });
      const doc = current
        ? deserialize(current as unknown as Uint8Array, EXACT_BSON)
        : ({ _id: filter._id } as Document);
      await coll.replaceOne(filter, applyDiff(doc, o.diff as Document), { upsert: true });
    } else if (keys.length > 0 && keys.every((k) => k.startsWith('$'))) {
      const modifiers: Document = {};
      for (const k of keys) modifiers[k] = o[k];
      await coll.updateOne(filter, modifiers, { upsert: true });
    } else {
      await coll.replaceOne(filter, o, { upsert: true });
    }
  } else {
    throw new LifeboatError(
      'INTEGRITY',
      `oplog replay: unknown operation "${shown(op.op)}" (${describeEntry(op)})`,
      {
        hint: 'the oplog item is damaged or from an unsupported server version',
      },
    );
  }
}

export interface ReplayOptions {
  limit?: OplogPosition;
  signal?: AbortSignal;
  note?: (msg: string) => void;
  /**
   * Rewrites each operation before it is applied (an atomic restore points it at the shadow collections,
   * redirectOp); undefined skips it. Namespaces and counts in the result stay those of the original.
   */
  redirect?: (op: Document) => Document | undefined;
  /** Called after each applied operation (progress in the restore journal, kill points). */
  onApplied?: (applied: number, ts: OplogPosition | undefined) => void | Promise<void>;
}

/** Replays the raw oplog entries of a snapshot, in order, onto the target. */
export async function replayOplog(
  client: MongoClient,
  entries: AsyncIterable<Uint8Array>,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const result: ReplayResult = {
    method: 'applyOps',
    applied: 0,
    skipped: 0,
    beyondLimit: 0,
    namespaces: [],
  };
  if (options.limit) result.limit = options.limit;
  const namespaces = new Set<string>();
  const perNamespace: Record<string, number> = {};
  const txns = new TransactionAssembler();
  const admin = client.db('admin');
  for await (const raw of entries) {
    if (options.signal?.aborted) throw options.signal.reason;
    const entry = decodeDocument(raw, 'oplog entry', EXACT_BSON);
    const ts = isTimestamp(entry.ts) ? position(entry.ts) : undefined;
    if (options.limit && ts && comparePositions(ts, options.limit) >= 0) {
      result.beyondLimit++;
      continue;
    }
    if (entry.op === 'n') {
      result.skipped++;
      continue;
    }
    for (const original of txns.take(entry)) {
      if (!isReplayable(original)) {
        result.skipped++;
        continue;
      }
      const op = options.redirect ? options.redirect(original) : original;
      if (!op) {
        result.skipped++;
        continue;
      }
      try {
        if (result.method === 'applyOps') {
          try {
            await admin.command({ applyOps: [applyOpsEntry(op)] });
          } catch (e) {
            if (!isCommandNotFound(e)) throw e;
            result.method = 'writes';
            options.note?.('lifeboat: the server has no applyOps; replaying the oplog through plain writes');
            await applyWithWrites(client, op);
          }
        } else {
          await applyWithWrites(client, op);
        }
      } catch (e) {
        if (e instanceof LifeboatError) throw e;
        throw mongoError(e, `replaying oplog entry ${describeEntry(op)}`);
      }
      const target = targetNamespace(original);
      if (target) {
        namespaces.add(target);
        perNamespace[target] = (perNamespace[target] ?? 0) + 1;
      }
      result.applied++;
      await options.onApplied?.(result.applied, ts);
    }
    if (ts) result.last = ts;
  }
  result.namespaces = [...namespaces].sort();
  result.perNamespace = perNamespace;
  return result;
}

/** Commands whose value is the one collection (in the command's database) they act on. */
const COLLECTION_COMMANDS = [
  'create',
  'drop',
  'collMod',
  'createIndexes',
  'dropIndexes',
  'deleteIndexes',
  'startIndexBuild',
  'commitIndexBuild',
  'abortIndexBuild',
] as const;

/**
 * Every namespace an operation names (a rename: both ends), or undefined for a command that names no
 * single collection (dropDatabase, anything unknown): such a command cannot be pointed at a shadow.
 */
export function opNamespaces(op: Document): string[] | undefined {
  const ns = entryNamespace(op);
  if (op.op !== 'c') return [ns];
  const db = ns.slice(0, ns.indexOf('.'));
  const o = (op.o ?? {}) as Document;
  if (Array.isArray(o.applyOps)) {
    const out: string[] = [];
    for (const inner of o.applyOps as Document[]) {
      const names = opNamespaces(inner);
      if (!names) return undefined;
      out.push(...names);
    }
    return out;
  }
  for (const k of COLLECTION_COMMANDS) if (typeof o[k] === 'string') return [`${db}.${o[k]}`];
  if (typeof o.renameCollection === 'string' && typeof o.to === 'string') return [o.renameCollection, o.to];
  return undefined;
}

/**
 * The operation with every namespace it names replaced through `map` (undefined: the operation is
 * outside the restore and skipped). Pure. `map` must keep the database: a shadow lives beside its target,
 * so a command's `<db>.$cmd` stays right.
 */
export function redirectOp(op: Document, map: (ns: string) => string | undefined): Document | undefined {
  const collectionOf = (ns: string) => ns.slice(ns.indexOf('.') + 1);
  if (op.op !== 'c') {
    const ns = map(entryNamespace(op));
    return ns === undefined ? undefined : { ...op, ns };
  }
  const ns = entryNamespace(op);
  const db = ns.slice(0, ns.indexOf('.'));
  const o = (op.o ?? {}) as Document;
  if (Array.isArray(o.applyOps)) {
    const inner = (o.applyOps as Document[])
      .map((i) => redirectOp(i, map))
      .filter((i): i is Document => i !== undefined);
    return inner.length ? { ...op, o: { ...o, applyOps: inner } } : undefined;
  }
  for (const k of COLLECTION_COMMANDS) {
    if (typeof o[k] !== 'string') continue;
    const to = map(`${db}.${o[k]}`);
    if (to === undefined) return undefined;
    const out: Document = { ...o, [k]: collectionOf(to) };
    // Older servers log the _id index with its namespace; the server checks it against the collection.
    if (typeof (o.idIndex as Document | undefined)?.ns === 'string')
      out.idIndex = { ...(o.idIndex as Document), ns: to };
    return { ...op, o: out };
  }
  if (typeof o.renameCollection === 'string' && typeof o.to === 'string') {
    const from = map(o.renameCollection);
    const to = map(o.to);
    if (from === undefined || to === undefined) return undefined;
    return { ...op, o: { ...o, renameCollection: from, to } };
  }
  return undefined;
}

export interface OplogScan {
  /** Operations the replay will apply (as replayOplog counts `applied`). */
  total: number;
  /** Per namespace (targetNamespace), what replayOplog's perNamespace must come to. */
  expected: Record<string, number>;
  /** Every namespace named (rename sources too). */
  namespaces: string[];
  /** Every namespace a replayed operation writes (targetNamespace), redirectable or not: rollback covers them. */
  written: string[];
  /** Namespaces the oplog creates as views or time-series collections (which cannot be renamed into place). */
  special: { ns: string; what: 'view' | 'time-series collection' }[];
  /** The first command that names no single collection (it cannot be pointed at a shadow). */
  unredirectable?: string;
}

/**
 * A first pass over the entries a replay will apply, with replayOplog's own rules (limit, no-ops,
 * transactions, server internals), so the atomic restore knows before it touches anything which
 * namespaces need a shadow and how many operations each must receive.
 */
export async function scanOplog(
  entries: AsyncIterable<Uint8Array>,
  limit?: OplogPosition,
): Promise<OplogScan> {
  const scan: OplogScan = { total: 0, expected: {}, namespaces: [], written: [], special: [] };
  const names = new Set<string>();
  const written = new Set<string>();
  const txns = new TransactionAssembler();
  for await (const raw of entries) {
    const entry = decodeDocument(raw, 'oplog entry', { promoteValues: false });
    if (limit && isTimestamp(entry.ts) && comparePositions(position(entry.ts), limit) >= 0) continue;
    if (entry.op === 'n') continue;
    for (const op of txns.take(entry)) {
      if (!isReplayable(op)) continue;
      const target = targetNamespace(op);
      if (target) written.add(target);
      const named = opNamespaces(op);
      if (!named) {
        scan.unredirectable ??= `${Object.keys((op.o ?? {}) as Document)[0] ?? '?'} ${describeEntry(op).slice(2)}`;
        continue;
      }
      for (const ns of named) names.add(ns);
      const o = (op.o ?? {}) as Document;
      if (op.op === 'c' && typeof o.create === 'string') {
        if (o.viewOn !== undefined) scan.special.push({ ns: named[0], what: 'view' });
        else if (o.timeseries !== undefined)
          scan.special.push({ ns: named[0], what: 'time-series collection' });
      }
      if (target) scan.expected[target] = (scan.expected[target] ?? 0) + 1;
      scan.total++;
    }
  }
  scan.namespaces = [...names].sort();
  scan.written = [...written].sort();
  return scan;
}

/** The namespaces an oplog writes to (a first pass before replay, so rollback can cover them). */
export async function oplogNamespaces(
  entries: AsyncIterable<Uint8Array>,
  limit?: OplogPosition,
): Promise<string[]> {
  return (await scanOplog(entries, limit)).written;
}
