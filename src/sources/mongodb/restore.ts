/**
 * `lifeboat mongodb restore`: plan (pure: which snapshot items go to which target namespaces), inspect
 * (what the target already holds), then apply, in mongorestore's order: collections and their data
 * (time-series buckets after their collection), verification (count and content hash of every restored
 * collection, as dumped), the oplog replay (--oplog-replay), indexes, views, and last users and roles
 * (--include-users); on any failure a rollback of every namespace it touched.
 *
 * Rollback: before touching a namespace that already exists, its current content is backed up into the
 * repository as a `pre-restore` snapshot (cheap: unchanged data deduplicates against earlier backups).
 * If the restore fails or is interrupted, each touched namespace is dropped and, if it existed, restored
 * from that snapshot; if the server is gone (the usual reason for failing half-way) the rollback waits
 * for it to come back. The pre-restore snapshot stays in the repository either way, so even a rollback
 * that could not run leaves a way back.
 */
import type { Document } from 'bson';
import type { MongoClient } from 'mongodb';
import { mapLimit } from '../../core/concurrency.ts';
import { LifeboatError, isLifeboatError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository/repository.ts';
import type { Item, Snapshot } from '../../core/repository/model.ts';
import { startBackup } from '../../core/repository/backup.ts';
import { decodeDocument, splitBson } from './bson-stream.ts';
import { backupMongo, itemMeta, planBackup, type CollectionItemMeta } from './backup.ts';
import { CollectionHash, addHashes } from './hash.ts';
import { EXACT_BSON, indexSpecForCreate, parseMetadataJson, type CollectionMetadata } from './metadata.ts';
import {
  NamespaceFilter,
  NamespaceRenamer,
  RESTORE_JOURNAL,
  isLifeboatNamespace,
  isSystemNamespace,
  splitNs,
} from './nsfilter.ts';
import {
  RECOVERY_HINT,
  newRestoreId,
  rollBack,
  saveReplay,
  setPhase,
  sideName,
  startHeartbeat,
  testKillPoint,
  thisHost,
  writeJournal,
  type JournalEntry,
  type Recovery,
  type RestoreJournal,
} from './journal.ts';
import {
  assertCanRestoreUsers,
  isAuthzNamespace,
  restoreUsersAndRoles,
  type UsersRestored,
} from './users.ts';
import { mongoError } from './connect.ts';
import {
  OPLOG_ITEM,
  formatPosition,
  oplogNamespaces,
  redirectOp,
  replayOplog,
  scanOplog,
  type OplogPosition,
  type OplogScan,
  type ReplayResult,
} from './oplog.ts';

export interface RestoreEntry {
  item: Item;
  source: string;
  target: string;
  db: string;
  collection: string;
  type: string;
  meta: CollectionItemMeta;
  metadata: CollectionMetadata;
  /** Time-series buckets: `target` is `system.buckets.<the time-series collection's target>`. */
  bucketsOf?: RestoreEntry;
  /** Filled by inspectTargets. */
  exists?: boolean;
  existingCount?: number;
}

export interface RestorePlan {
  snapshot: string;
  entries: RestoreEntry[];
  skipped: { ns: string; reason: string }[];
  /** The oplog item to replay after the data (--oplog-replay). */
  oplog?: Item;
  /** admin.system.users / admin.system.roles items to merge (--include-users). */
  usersAndRoles: Item[];
}

export interface NotRestored {
  ns: string;
  what: string;
  reason: string;
}

export interface RestoredCollection {
  source: string;
  target: string;
  type: string;
  count: number;
  hash: string;
  verified: boolean;
}

export interface RestoreResult {
  snapshot: string;
  dryRun: boolean;
  collections: RestoredCollection[];
  skipped: { ns: string; reason: string }[];
  notRestored: NotRestored[];
  preRestoreSnapshot?: string;
  /** With --include-users: how many users and roles were merged. */
  usersAndRoles?: UsersRestored;
  /** With --oplog-replay: what was replayed (or, in a dry run, would be: `entries`). */
  oplog?: ReplayResult | { entries: number; start: unknown; end: unknown };
  plan?: { source: string; target: string; type: string; count: number; action: string }[];
  /** Whether the restore went through shadows and a journaled swap (else: in place, and why). */
  atomic?: boolean;
  inPlaceReason?: string;
  restoreId?: string;
  /** Interrupted restores this one recovered first. */
  recovered?: Recovery[];
}

/** Pure: which items go where. */
export function planRestore(
  snapshot: Snapshot,
  filter: NamespaceFilter,
  renamer: NamespaceRenamer,
  options: { oplogReplay?: boolean; includeUsers?: boolean } = {},
): RestorePlan {
  if (snapshot.type !== 'mongodb') {
    throw new LifeboatError(
      'USAGE',
      `snapshot ${snapshot.id.slice(0, 8)} is a ${snapshot.type} snapshot, not a mongodb one`,
      {
        hint: 'list MongoDB snapshots with `lifeboat snapshots --type mongodb`',
      },
    );
  }
  const plan: RestorePlan = { snapshot: snapshot.id, entries: [], skipped: [], usersAndRoles: [] };
  const targets = new Map<string, string>();
  for (const item of snapshot.items) {
    const meta = itemMeta(item);
    const source = item.name;
    if (item.kind === 'oplog') {
      if (options.oplogReplay) plan.oplog = item;
      else
        plan.skipped.push({
          ns: source,
          reason: `${meta.count} oplog entries not replayed (restore with --oplog-replay to apply them)`,
        });
      continue;
    }
    // Buckets follow their time-series collection (selected and renamed with it), below.
    if (meta.bucketsOf !== undefined) continue;
    if (isAuthzNamespace(meta.db, meta.collection)) {
      if (options.includeUsers) plan.usersAndRoles.push(item);
      else
        plan.skipped.push({
          ns: source,
          reason: `${meta.count} ${meta.collection === 'system.users' ? 'users' : 'roles'} not restored (restore with --include-users to merge them)`,
        });
      continue;
    }
    if (!filter.matches(source)) continue;
    if (isSystemNamespace(meta.db, meta.collection)) {
      plan.skipped.push({ ns: source, reason: 'server-internal namespace' });
      continue;
    }
    if (isLifeboatNamespace(meta.collection)) {
      plan.skipped.push({ ns: source, reason: "an interrupted restore's journal or side copy" });
      continue;
    }
    const target = renamer.rename(source);
    const { db, collection } = splitNs(target);
    const other = targets.get(target);
    if (other) {
      throw new LifeboatError('USAGE', `${other} and ${source} would both be restored into ${target}`, {
        hint: 'adjust --ns-from/--ns-to so every collection gets its own target',
      });
    }
    targets.set(target, source);
    const metadata = parseMetadataJson(meta.metadata, meta.collection, `${source} metadata`);
    plan.entries.push({
      item,
      source,
      target,
      db,
      collection,
      type: meta.type || 'collection',
      meta,
      metadata,
    });
  }
  for (const item of snapshot.items) {
    const meta = itemMeta(item);
    if (meta.bucketsOf === undefined) continue;
    const owner = plan.entries.find(
      (e) => e.meta.db === meta.db && e.meta.collection === meta.bucketsOf && e.type === 'timeseries',
    );
    if (!owner) {
      if (filter.matches(`${meta.db}.${meta.bucketsOf}`))
        plan.skipped.push({
          ns: item.name,
          reason: `time-series buckets without their collection ${meta.db}.${meta.bucketsOf} in the snapshot`,
        });
      continue;
    }
    const collection = `system.buckets.${owner.collection}`;
    plan.entries.push({
      item,
      source: item.name,
      target: `${owner.db}.${collection}`,
      db: owner.db,
      collection,
      type: 'collection',
      meta,
      metadata: { options: {}, indexes: [], collectionName: collection },
      bucketsOf: owner,
    });
  }
  if (options.includeUsers && plan.usersAndRoles.length === 0) {
    throw new LifeboatError(
      'NOT_FOUND',
      `snapshot ${snapshot.id.slice(0, 8)} has no users or roles (it was taken without --include-users)`,
      {
        hint: 'restore without --include-users, or choose a snapshot taken with `mongodb backup --include-users`',
      },
    );
  }
  if (options.oplogReplay && !plan.oplog) {
    throw new LifeboatError(
      'NOT_FOUND',
      `snapshot ${snapshot.id.slice(0, 8)} has no oplog to replay (it was taken without --oplog)`,
      { hint: 'restore without --oplog-replay, or choose a snapshot taken with `mongodb backup --oplog`' },
    );
  }
  return plan;
}

/** Reads what the target already has for each planned namespace. */
export async function inspectTargets(client: MongoClient, plan: RestorePlan): Promise<void> {
  try {
    const byDb = new Map<string, Set<string>>();
    for (const e of plan.entries) {
      if (!byDb.has(e.db)) {
        const names = await client.db(e.db).listCollections({}, { nameOnly: true }).toArray();
        byDb.set(e.db, new Set(names.map((n) => n.name)));
      }
      e.exists = byDb.get(e.db)!.has(e.collection);
      e.existingCount = e.exists ? await client.db(e.db).collection(e.collection).countDocuments({}) : 0;
    }
  } catch (e) {
    throw mongoError(e, 'inspecting the target');
  }
}

/**
 * The result's line for an entry restored as its snapshot recorded it. A view holds no documents and is
 * never read back.
 */
function restoredEntry(e: RestoreEntry, verified: boolean): RestoredCollection {
  const view = e.type === 'view';
  return {
    source: e.source,
    target: e.target,
    type: e.type,
    count: view ? 0 : e.meta.count,
    hash: e.meta.hash,
    verified: view ? false : verified,
  };
}

/** Reads a collection back: count, bytes and content hash. */
export async function hashCollection(
  client: MongoClient,
  db: string,
  collection: string,
): Promise<CollectionHash> {
  const h = new CollectionHash();
  const cursor = client.db(db).collection(collection).find({}, { raw: true, batchSize: 1000 });
  try {
    for await (const d of cursor) h.add(d as unknown as Uint8Array);
  } finally {
    await cursor.close().catch(() => {});
  }
  return h;
}

/** Server answers that mean "this server cannot do that" rather than "your data is wrong". */
function isUnsupported(e: unknown): boolean {
  const err = e as { code?: number; codeName?: string; message?: string };
  if (
    [238, 115, 72, 9, 2, 67, 197].includes(err?.code ?? -1) &&
    /not (yet )?(implemented|supported)|unsupported|unknown|invalid/i.test(String(err?.message))
  )
    return true;
  return /not (yet )?implemented|not supported|unsupported/i.test(String(err?.message ?? ''));
}

function reasonOf(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split('\n')[0]
    .slice(0, 300);
}

export interface ApplyOptions {
  client: MongoClient;
  repo: Repository;
  plan: RestorePlan;
  drop: boolean;
  parallel?: number;
  insertionWorkers?: number;
  batchSize?: number;
  rollback?: boolean;
  /** How long a rollback waits for an unreachable server to come back (ms). */
  rollbackWaitMs?: number;
  verify?: boolean;
  /** With an oplog in the plan: replay only entries before this point. */
  oplogLimit?: OplogPosition;
  /** The entries to replay instead of the plan's oplog item (`restore --time`: base window + slices, pitr.ts). */
  oplogEntries?: () => AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
  note?: (msg: string) => void;
  onBytes?: (n: number) => void;
  /** Restore straight into the targets (no shadow copies: no extra disk, but not atomic). */
  inPlace?: boolean;
}

interface Touch {
  db: string;
  collection: string;
  target: string;
  existed: boolean;
}

const touchOf = (e: RestoreEntry): Touch => ({
  db: e.db,
  collection: e.collection,
  target: e.target,
  existed: Boolean(e.exists),
});

/** The entries to replay: `restore --time`'s (base window + slices) or the snapshot's own oplog item. */
function oplogSource(opts: ApplyOptions, item: Item): AsyncIterable<Uint8Array> {
  return opts.oplogEntries?.() ?? splitBson(opts.repo.readItem(item), `snapshot item ${OPLOG_ITEM}`);
}

/**
 * Namespaces the oplog replay will write to beyond the planned collections (created or changed during
 * the backup window), with whether each exists on the target now: rollback must cover them too.
 */
async function oplogOnlyTargets(opts: ApplyOptions, scan?: OplogScan): Promise<Touch[]> {
  if (!opts.plan.oplog) return [];
  const planned = new Set(opts.plan.entries.map((e) => e.target));
  const out: Touch[] = [];
  // The scan applyRestore made already, when it made one: the oplog is read once.
  const names = scan?.written ?? (await oplogNamespaces(oplogSource(opts, opts.plan.oplog), opts.oplogLimit));
  const existing = new Map<string, Set<string>>();
  try {
    for (const ns of names) {
      if (planned.has(ns)) continue;
      const { db, collection } = splitNs(ns);
      if (!existing.has(db)) {
        const list = await opts.client.db(db).listCollections({}, { nameOnly: true }).toArray();
        existing.set(db, new Set(list.map((c) => c.name)));
      }
      out.push({ db, collection, target: ns, existed: existing.get(db)!.has(collection) });
    }
  } catch (e) {
    throw mongoError(e, 'inspecting the target');
  }
  return out;
}

async function createTarget(
  opts: ApplyOptions,
  e: RestoreEntry,
  notRestored: NotRestored[],
  name = e.collection,
): Promise<void> {
  const db = opts.client.db(e.db);
  const options = { ...e.metadata.options };
  if (e.type === 'view') {
    try {
      await db.createCollection(name, options);
    } catch (err) {
      if (!isUnsupported(err)) throw mongoError(err, `creating view ${e.target}`);
      notRestored.push({ ns: e.target, what: 'view', reason: reasonOf(err) });
    }
    return;
  }
  if (Object.keys(options).length === 0) {
    await db.createCollection(name);
    return;
  }
  try {
    await db.createCollection(name, options);
  } catch (err) {
    if (!isUnsupported(err)) throw mongoError(err, `creating ${e.target}`);
    if (e.type === 'timeseries') {
      // Its data is buckets only a time-series collection can hold, and a plain collection in its
      // place would change what the application reads: fail (and roll back) rather than lose it quietly.
      throw new LifeboatError(
        'UNSUPPORTED',
        `the server cannot create time-series collection ${e.target} (${reasonOf(err)}), so its data cannot be restored`,
        {
          hint: `restore into MongoDB 5.0 or later, or leave it out with --ns-exclude '${e.source}'`,
          cause: err,
        },
      );
    }
    notRestored.push({
      ns: e.target,
      what: `collection options ${JSON.stringify(Object.keys(options))}`,
      reason: reasonOf(err),
    });
    await db.createCollection(name);
  }
}

async function insertData(opts: ApplyOptions, e: RestoreEntry, name = e.collection): Promise<void> {
  const coll = opts.client.db(e.db).collection(name);
  const workers = Math.max(1, opts.insertionWorkers ?? 2);
  const maxDocs = opts.batchSize ?? 1000;
  const maxBytes = 8 * 1024 * 1024;
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  const send = (batch: Document[]) => {
    const p = coll
      .insertMany(batch, { ordered: true, bypassDocumentValidation: true })
      .then(() => testKillPoint('batch-inserted'))
      .catch((err) => {
        failure ??= mongoError(err, `inserting into ${e.target}`);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  let batch: Document[] = [];
  let bytes = 0;
  for await (const raw of splitBson(opts.repo.readItem(e.item), `snapshot item ${e.source}`)) {
    if (failure) break;
    if (opts.signal?.aborted) throw opts.signal.reason;
    // Decoded with every value kept at its exact BSON type, so re-encoding gives the same bytes.
    batch.push(decodeDocument(raw, `snapshot item ${e.source}`, EXACT_BSON));
    bytes += raw.length;
    opts.onBytes?.(raw.length);
    if (batch.length >= maxDocs || bytes >= maxBytes) {
      send(batch);
      batch = [];
      bytes = 0;
      while (inflight.size >= workers) await Promise.race(inflight);
    }
  }
  if (!failure && batch.length) send(batch);
  await Promise.all(inflight);
  if (failure) throw failure;
}

async function createIndexes(
  opts: ApplyOptions,
  e: RestoreEntry,
  notRestored: NotRestored[],
  name = e.collection,
): Promise<void> {
  if (e.type === 'view') return;
  const coll = opts.client.db(e.db).collection(name);
  for (const spec of e.metadata.indexes) {
    if (spec.name === '_id_') continue;
    const { key, name, v: _v, ...rest } = indexSpecForCreate(spec);
    void _v;
    try {
      await coll.createIndex(key, { name, ...rest });
    } catch (err) {
      if (isUnsupported(err))
        notRestored.push({ ns: e.target, what: `index ${name}`, reason: reasonOf(err) });
      else throw mongoError(err, `building index ${name} on ${e.target}`);
    }
  }
}

async function waitForServer(client: MongoClient, ms: number, note?: (m: string) => void): Promise<void> {
  const deadline = Date.now() + ms;
  let told = false;
  for (;;) {
    try {
      await client.db('admin').command({ ping: 1 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw mongoError(e, 'waiting for the server to roll back');
      if (!told) note?.('lifeboat: server unreachable — rollback waiting for it to come back');
      told = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Backs up what a restore is about to replace, as a `pre-restore` snapshot (never "latest"). */
async function savePreRestore(opts: ApplyOptions, planned: Awaited<ReturnType<typeof planBackup>>) {
  opts.note?.(
    `lifeboat: keeping ${planned.length} existing namespace(s) in a pre-restore snapshot for rollback`,
  );
  const session = await startBackup(opts.repo, 'mongodb pre-restore');
  const pre = await backupMongo({
    client: opts.client,
    uri: 'pre-restore',
    session,
    collections: planned,
    parallel: opts.parallel,
    purpose: 'pre-restore',
    tags: ['pre-restore', `restore-of:${opts.plan.snapshot.slice(0, 8)}`],
    // The rollback point of what exists, whatever it holds.
    allowEmpty: true,
  });
  testKillPoint('pre-restore-saved');
  return pre;
}

/**
 * Today's in-place restore: straight into the target collections, with the pre-restore snapshot as the
 * way back. Used where the atomic path cannot be (see inPlaceReason) and for its own rollback.
 */
async function applyInPlace(opts: ApplyOptions, scan?: OplogScan): Promise<RestoreResult> {
  const { client, plan } = opts;
  const notRestored: NotRestored[] = [];
  const result: RestoreResult = {
    snapshot: plan.snapshot,
    dryRun: false,
    collections: [],
    skipped: plan.skipped,
    notRestored,
  };
  const rollback = opts.rollback ?? true;
  if (plan.usersAndRoles.length) await assertCanRestoreUsers(client);

  // Keep the current content of every namespace we are about to change.
  const existing = plan.entries.filter((e) => e.exists && !e.bucketsOf);
  const oplogTouches = await oplogOnlyTargets(opts, scan);
  const preHashes = new Map<string, { count: number; hash: string }>();
  let preSnapshot: Snapshot | undefined;
  if (existing.length || oplogTouches.some((t) => t.existed)) {
    const wanted = new Set([
      ...existing.map((e) => e.target),
      ...oplogTouches.filter((t) => t.existed).map((t) => t.target),
    ]);
    const planned = (await planBackup(client, new NamespaceFilter())).filter(
      (c) =>
        wanted.has(`${c.db}.${c.collection}`) ||
        (c.bucketsOf !== undefined && wanted.has(`${c.db}.${c.bucketsOf}`)),
    );
    if (rollback) {
      const pre = await savePreRestore(opts, planned);
      preSnapshot = pre.snapshot;
      result.preRestoreSnapshot = pre.snapshot.id;
      for (const c of pre.collections) preHashes.set(c.ns, { count: c.count, hash: c.hash });
    } else if (!opts.drop) {
      for (const e of existing) {
        const h = await hashCollection(client, e.db, e.collection);
        preHashes.set(e.target, { count: h.count, hash: h.hex() });
      }
    }
  }

  const touched: Touch[] = [];
  try {
    const views = plan.entries.filter((e) => e.type === 'view');
    const collections = plan.entries.filter((e) => e.type !== 'view' && !e.bucketsOf);
    const buckets = plan.entries.filter((e) => e.bucketsOf);
    const verify = opts.verify ?? true;
    // Read back and compared as soon as its own data is in — while other collections are still loading,
    // so the read-back overlaps the inserts instead of being a second pass after them — and always
    // before the oplog replay changes the data on purpose. A time-series collection's own item holds no
    // data: its buckets are what is read back.
    const settle = async (e: RestoreEntry) => {
      if (e.meta.metadataOnly) return;
      if (verify) await verifyEntry(e);
      result.collections.push(restoredEntry(e, verify));
    };
    const verifyEntry = async (e: RestoreEntry) => {
      const h = await hashCollection(client, e.db, e.collection);
      let count = e.meta.count;
      let hash = e.meta.hash;
      const pre = preHashes.get(e.target);
      if (e.exists && !opts.drop && pre) {
        count += pre.count;
        hash = addHashes(hash, pre.hash);
      }
      if (h.count !== count || h.hex() !== hash) {
        throw new LifeboatError(
          'VERIFY_FAILED',
          `verification of ${e.target} failed: ${h.count} documents with hash ${h.hex().slice(0, 12)}, expected ${count} with ${hash.slice(0, 12)}`,
          {
            hint: 'the server changed or dropped data during the restore; check its logs, then restore again with --drop',
          },
        );
      }
    };
    await mapLimit(collections, opts.parallel ?? 4, async (e) => {
      touched.push(touchOf(e));
      try {
        if (e.exists && opts.drop) await client.db(e.db).collection(e.collection).drop();
        if (!e.exists || opts.drop) await createTarget(opts, e, notRestored);
        await insertData(opts, e);
      } catch (err) {
        throw isLifeboatError(err) ? err : mongoError(err, `restoring ${e.target}`);
      }
      await settle(e);
    });
    // Buckets go into the time-series collections created above (dropping one drops its buckets, so
    // they need no rollback of their own).
    await mapLimit(buckets, opts.parallel ?? 4, async (e) => {
      try {
        await insertData(opts, e);
      } catch (err) {
        throw isLifeboatError(err) ? err : mongoError(err, `restoring ${e.target}`);
      }
      await settle(e);
    });
    if (plan.oplog) {
      touched.push(...oplogTouches);
      result.oplog = await replayOplog(
        client,
        opts.oplogEntries?.() ?? splitBson(opts.repo.readItem(plan.oplog), `snapshot item ${OPLOG_ITEM}`),
        { limit: opts.oplogLimit, signal: opts.signal, note: opts.note },
      );
      opts.note?.(
        `lifeboat: replayed ${result.oplog.applied} oplog entries` +
          (result.oplog.last ? ` up to ${formatPosition(result.oplog.last)}` : '') +
          ` (${result.oplog.method})`,
      );
    }
    // Indexes after the data (faster, and a unique index cannot block half a collection).
    await mapLimit(collections, opts.parallel ?? 4, (e) => createIndexes(opts, e, notRestored));
    for (const e of views) {
      touched.push(touchOf(e));
      if (e.exists) await client.db(e.db).collection(e.collection).drop();
      await createTarget(opts, e, notRestored);
    }
    if (plan.usersAndRoles.length)
      result.usersAndRoles = await restoreUsersAndRoles(client, opts.repo, plan.usersAndRoles, opts.drop);
    for (const e of views) result.collections.push(restoredEntry(e, false));
    result.collections.sort((a, b) => (a.target < b.target ? -1 : 1));
    return result;
  } catch (failure) {
    const err = isLifeboatError(failure) ? failure : mongoError(failure, 'restore');
    if (!rollback || touched.length === 0) throw err;
    opts.note?.(`lifeboat: restore failed (${err.message}) — rolling back ${touched.length} namespace(s)`);
    const rolledBack: string[] = [];
    try {
      await waitForServer(client, opts.rollbackWaitMs ?? 120_000, opts.note);
      for (const t of touched) {
        await client
          .db(t.db)
          .collection(t.collection)
          .drop()
          .catch(() => {});
        rolledBack.push(t.target);
      }
      const back = touched.filter((t) => t.existed).map((t) => t.target);
      if (back.length && preSnapshot) {
        const rplan = planRestore(preSnapshot, new NamespaceFilter(back), new NamespaceRenamer());
        await inspectTargets(client, rplan);
        await applyInPlace({
          ...opts,
          plan: rplan,
          drop: true,
          rollback: false,
          signal: undefined,
          onBytes: undefined,
        });
      }
    } catch (rbErr) {
      throw new LifeboatError(err.code, `${err.message}; ROLLBACK FAILED (${(rbErr as Error).message})`, {
        hint: preSnapshot
          ? `the previous content is in snapshot ${preSnapshot.id.slice(0, 8)}: restore it with \`lifeboat mongodb restore ${preSnapshot.id.slice(0, 8)} --drop\``
          : 'restore the namespaces again with --drop',
        details: { rolledBack, preRestoreSnapshot: preSnapshot?.id },
        cause: failure,
      });
    }
    throw new LifeboatError(err.code, `${err.message} (rolled back: ${rolledBack.join(', ')})`, {
      hint: err.hint,
      details: { ...(err.details ?? {}), rolledBack, preRestoreSnapshot: preSnapshot?.id },
      cause: failure,
    });
  }
}

/**
 * Why this restore cannot take the atomic path (undefined: it can). The in-place path is today's: a kill
 * can leave it half-done, and only the pre-restore snapshot leads back.
 */
async function inPlaceReason(
  opts: ApplyOptions,
  journalDb: string | undefined,
  scan: OplogScan | undefined,
): Promise<string | undefined> {
  if (opts.inPlace) return '--in-place was given';
  if (opts.plan.entries.some((e) => e.type === 'timeseries'))
    return 'time-series collections cannot be renamed into place';
  if (scan?.unredirectable)
    return `the oplog replay holds ${scan.unredirectable}, a command that names no single collection, so it cannot be pointed at the shadow copies`;
  if (scan?.special.length)
    return `the oplog replay creates ${scan.special[0].what} ${scan.special[0].ns}, which cannot be renamed into place`;
  const replayed = (scan?.namespaces ?? []).map(splitNs);
  if (replayed.some((n) => n.collection.startsWith('system.buckets.')))
    return 'the oplog replay writes time-series buckets, and time-series collections cannot be renamed into place';
  if (!journalDb) return undefined;
  // Can this server rename within a database (FerretDB can; dropTarget it cannot, so the swap never uses it)?
  const db = opts.client.db(journalDb);
  const probe = `lifeboat_probe_${newRestoreId()}`;
  try {
    await db.createCollection(probe);
  } catch (e) {
    throw mongoError(e, `creating a collection in ${journalDb}`);
  }
  let at = probe;
  try {
    await db.renameCollection(at, `${probe}_r`);
    at = `${probe}_r`;
  } catch (e) {
    await db
      .collection(at)
      .drop()
      .catch(() => {});
    return `the server cannot rename collections (${reasonOf(e)})`;
  }
  // FerretDB renames, but not into a name with a dot (GridFS's `fs.chunks`, `rocketchat_uploads.chunks`).
  const dotted = [
    ...opts.plan.entries.filter((e) => e.type !== 'view'),
    ...replayed.map((n) => ({ ...n, target: `${n.db}.${n.collection}` })),
  ].find((e) => e.collection.includes('.'));
  try {
    if (dotted) {
      await db.renameCollection(at, `${probe}.r`);
      at = `${probe}.r`;
    }
    return undefined;
  } catch (e) {
    return `the server cannot rename into a collection name with a dot, as ${dotted!.target} needs (${reasonOf(e)})`;
  } finally {
    await db
      .collection(at)
      .drop()
      .catch(() => {});
  }
}

/**
 * Restores `opts.plan`. Atomically where it can (see applyAtomic): each collection is loaded into a shadow
 * beside its target, verified and indexed there, then all are swapped in by renames under a journal, so a
 * kill at any moment leaves the target recoverable to exactly the old or exactly the new state. Otherwise
 * in place (applyInPlace), with a note saying why.
 */
export async function applyRestore(opts: ApplyOptions): Promise<RestoreResult> {
  // Read before anything is touched: which namespaces the replay writes (each needs a shadow too) and
  // how many operations each must receive (what the replay is verified against).
  const scan =
    opts.plan.oplog && !opts.inPlace
      ? await scanOplog(oplogSource(opts, opts.plan.oplog), opts.oplogLimit)
      : undefined;
  const dbs = [
    ...new Set([
      ...opts.plan.entries.filter((e) => e.type !== 'view').map((e) => e.db),
      ...(scan?.namespaces ?? []).map((ns) => splitNs(ns).db),
    ]),
  ].sort();
  const why = await inPlaceReason(opts, dbs[0], scan);
  if (why === undefined) return applyAtomic(opts, dbs[0], scan);
  opts.note?.(
    `lifeboat: restoring in place, not atomically: ${why}; a kill can leave it half-done (the pre-restore snapshot is the way back)`,
  );
  return { ...(await applyInPlace(opts, scan)), atomic: false, inPlaceReason: why };
}

/**
 * What a shadow must hold once loaded: the snapshot's data, plus (without --drop) the target's own; after
 * an oplog replay, what the replay left in it. `e` is absent for a namespace only the replay writes.
 */
interface ShadowPlan {
  e?: RestoreEntry;
  /** The target namespace. */
  ns: string;
  j: JournalEntry;
  count: number;
  hash: string;
}

async function collectionNames(client: MongoClient, db: string): Promise<Set<string>> {
  const list = await client.db(db).listCollections({}, { nameOnly: true }).toArray();
  return new Set(list.map((c) => c.name));
}

/** How often the replay's progress is saved in the journal (informational: recovery undoes a replay). */
const REPLAY_PROGRESS_EVERY = 500;

/**
 * Step 3b of applyAtomic: the oplog into the shadows, verified, and what each shadow then holds recorded
 * (`sp.count`/`sp.hash`, the journal entries, `result.collections`).
 */
async function replayIntoShadows(
  opts: ApplyOptions,
  oplog: Item,
  scan: OplogScan,
  shadows: ShadowPlan[],
  journal: RestoreJournal | undefined,
  result: RestoreResult,
): Promise<void> {
  const { client } = opts;
  const shadowOf = new Map(shadows.map((sp) => [sp.ns, `${sp.j.db}.${sp.j.shadow}`]));
  for (const sp of shadows) {
    sp.j.ops = scan.expected[sp.ns] ?? 0;
    sp.j.applied = 0;
  }
  const progress = { state: 'running' as const, ops: scan.total, applied: 0 };
  if (journal) {
    journal.replay = progress;
    await saveReplay(client, journal);
  }
  testKillPoint('replay-started');
  const replay = await replayOplog(client, oplogSource(opts, oplog), {
    limit: opts.oplogLimit,
    signal: opts.signal,
    note: opts.note,
    redirect: (op) => redirectOp(op, (ns) => shadowOf.get(ns)),
    onApplied: async (applied, ts) => {
      testKillPoint('replay-mid');
      if (journal && applied % REPLAY_PROGRESS_EVERY === 0) {
        journal.replay = { ...progress, applied, ...(ts ? { last: ts } : {}) };
        await saveReplay(client, journal);
      }
    },
  });
  // The entries are read a second time here: had they changed meanwhile (a slice forgotten or added
  // under the restore), the shadows would hold something no one asked for.
  const wrong = Object.keys({ ...scan.expected, ...replay.perNamespace }).find(
    (ns) => (scan.expected[ns] ?? 0) !== (replay.perNamespace?.[ns] ?? 0),
  );
  if (wrong !== undefined || replay.applied !== scan.total) {
    const ns = wrong ?? 'the restore';
    throw new LifeboatError(
      'VERIFY_FAILED',
      `verification of the oplog replay failed: ${wrong !== undefined ? (replay.perNamespace?.[wrong] ?? 0) : replay.applied} operations applied to ${ns}, expected ${wrong !== undefined ? (scan.expected[wrong] ?? 0) : scan.total}`,
      {
        hint: 'the oplog in the repository changed while the restore read it (a `forget` or `pitr run` at the same time?); restore again',
      },
    );
  }
  const names = new Map<string, Set<string>>();
  for (const sp of shadows) {
    sp.j.applied = replay.perNamespace?.[sp.ns] ?? 0;
    if (!names.has(sp.j.db)) names.set(sp.j.db, await collectionNames(client, sp.j.db));
    if (!names.get(sp.j.db)!.has(sp.j.shadow)) {
      sp.j.absent = true;
      continue;
    }
    if (opts.verify ?? true) {
      const h = await hashCollection(client, sp.j.db, sp.j.shadow);
      sp.count = h.count;
      sp.hash = h.hex();
    } else {
      sp.count = await client.db(sp.j.db).collection(sp.j.shadow).countDocuments({});
      sp.hash = '';
    }
    result.collections.push({
      source: sp.e?.source ?? OPLOG_ITEM,
      target: sp.ns,
      type: sp.e?.type ?? 'collection',
      count: sp.count,
      hash: sp.hash,
      verified: opts.verify ?? true,
    });
  }
  if (journal) {
    journal.replay = {
      state: 'done',
      ops: scan.total,
      applied: replay.applied,
      ...(replay.last ? { last: replay.last } : {}),
    };
    await saveReplay(client, journal);
  }
  testKillPoint('replay-done');
  result.oplog = replay;
  opts.note?.(
    `lifeboat: replayed ${replay.applied} oplog entries into the shadow copies` +
      (replay.last ? ` up to ${formatPosition(replay.last)}` : '') +
      ` (${replay.method})`,
  );
}

/** Without --drop over an existing collection, the shadow starts as a copy of it (options, indexes, data). */
async function copyExisting(opts: ApplyOptions, sp: ShadowPlan): Promise<void> {
  const db = opts.client.db(sp.j.db);
  const [info] = await db.listCollections({ name: sp.j.target }, { ...EXACT_BSON }).toArray();
  await db.createCollection(sp.j.shadow, ((info as Document | undefined)?.options as Document) ?? {});
  const shadow = db.collection(sp.j.shadow);
  for (const spec of await db
    .collection(sp.j.target)
    .listIndexes({ ...EXACT_BSON })
    .toArray()) {
    if (spec.name === '_id_') continue;
    const { key, name, v: _v, ns: _ns, ...rest } = spec as Document;
    void _v;
    void _ns;
    await shadow.createIndex(key, { name, ...rest });
  }
  const h = new CollectionHash();
  let batch: Document[] = [];
  const cursor = db.collection(sp.j.target).find({}, { raw: true, batchSize: 1000 });
  try {
    for await (const raw of cursor) {
      const bytes = raw as unknown as Uint8Array;
      h.add(bytes);
      batch.push(decodeDocument(bytes, sp.ns, EXACT_BSON));
      if (batch.length >= 1000) {
        await shadow.insertMany(batch, { ordered: true, bypassDocumentValidation: true });
        batch = [];
      }
    }
  } finally {
    await cursor.close().catch(() => {});
  }
  if (batch.length) await shadow.insertMany(batch, { ordered: true, bypassDocumentValidation: true });
  sp.count += h.count;
  sp.hash = addHashes(sp.hash, h.hex());
}

/**
 * The atomic restore. Order, with the journal step each kill point names (journal.ts says what recovery
 * does after a kill in each phase):
 *  1. pre-restore snapshot of what will be replaced (unless --no-rollback): the way back after the end;
 *  2. journal written, phase `loading` (journal-written);
 *  3. per collection, in parallel: shadow created (shadow-created) — a copy of the target without --drop —
 *     data inserted (batch-inserted), count and hash verified (shadow-verified), indexes built
 *     (indexes-built; with an oplog, after the replay);
 *  3b. with an oplog (--oplog-replay, --time): the replay into the shadows, after every shadow is verified
 *     against its snapshot: each operation's namespaces pointed at their shadows (redirectOp), including
 *     those of collections only the oplog writes, which got journal entries of their own up front (started
 *     as a copy of the target without --drop, else from nothing, as the oplog creates them). Journal
 *     progress `replay` (replay-started, replay-mid after each operation, replay-done); then the replay is
 *     verified — every namespace received exactly the operations the scan before the restore counted — and
 *     each shadow's count and hash recorded (the backup's no longer apply), then indexes built
 *     (indexes-built), after the data as in place. A kill during the replay is undone like any other
 *     `loading` kill, never resumed from where it stopped: resuming needs the repository and the exact
 *     entry stream (the base window plus the slices up to T, selected and renamed), which recovery does not
 *     have (it works from the server's journal alone), and a half-replayed shadow is worth nothing on its
 *     own. Undoing is always exact, and running the same restore again redoes it from scratch;
 *  4. phase `swapping` (swap-begin); per collection: target renamed aside (target-aside), shadow renamed in
 *     (shadow-in) — or, where the replay left no collection, only the target set aside; then every target
 *     counted against its shadow;
 *  5. phase `committed` (committed); set-aside copies dropped (old-dropped); journal removed;
 *  6. views and users (not atomic: views have no data, users are merged), as in place.
 * A failure before 5 undoes everything (the targets end exactly as they were); a kill is recovered by the
 * next restore, or `restore --resume | --rollback`.
 */
async function applyAtomic(
  opts: ApplyOptions,
  journalDb: string | undefined,
  scan: OplogScan | undefined,
): Promise<RestoreResult> {
  const { client, plan } = opts;
  const notRestored: NotRestored[] = [];
  const id = newRestoreId();
  const result: RestoreResult = {
    snapshot: plan.snapshot,
    dryRun: false,
    collections: [],
    skipped: plan.skipped,
    notRestored,
    atomic: true,
    restoreId: id,
  };
  const rollback = opts.rollback ?? true;
  const parallel = opts.parallel ?? 4;
  if (plan.usersAndRoles.length) await assertCanRestoreUsers(client);
  const views = plan.entries.filter((e) => e.type === 'view');
  const collections = plan.entries.filter((e) => e.type !== 'view');

  // Namespaces only the oplog replay writes: set aside and swapped like the others.
  const plannedTargets = new Set(plan.entries.map((e) => e.target));
  const oplogOnly: { db: string; collection: string; existed: boolean }[] = [];
  try {
    const byDb = new Map<string, Set<string>>();
    for (const ns of scan?.namespaces ?? []) {
      if (plannedTargets.has(ns)) continue;
      const { db, collection } = splitNs(ns);
      if (!byDb.has(db)) byDb.set(db, await collectionNames(client, db));
      oplogOnly.push({ db, collection, existed: byDb.get(db)!.has(collection) });
    }
  } catch (e) {
    throw mongoError(e, 'inspecting the target');
  }

  const existing = [
    ...plan.entries.filter((e) => e.exists).map((e) => e.target),
    ...oplogOnly.filter((o) => o.existed).map((o) => `${o.db}.${o.collection}`),
  ];
  if (rollback && existing.length) {
    const wanted = new Set(existing);
    const planned = (await planBackup(client, new NamespaceFilter())).filter((c) =>
      wanted.has(`${c.db}.${c.collection}`),
    );
    result.preRestoreSnapshot = (await savePreRestore(opts, planned)).snapshot.id;
  }

  const shadows: ShadowPlan[] = collections.map((e) => ({
    e,
    ns: e.target,
    j: {
      db: e.db,
      target: e.collection,
      shadow: sideName(e.db, e.collection, 'shadow', id),
      old: sideName(e.db, e.collection, 'old', id),
      existed: Boolean(e.exists),
    },
    count: e.meta.count,
    hash: e.meta.hash,
  }));
  for (const o of oplogOnly)
    shadows.push({
      ns: `${o.db}.${o.collection}`,
      j: {
        db: o.db,
        target: o.collection,
        shadow: sideName(o.db, o.collection, 'shadow', id),
        old: sideName(o.db, o.collection, 'old', id),
        existed: o.existed,
        oplogOnly: true,
      },
      count: 0,
      hash: new CollectionHash().hex(),
    });
  let journal: RestoreJournal | undefined;
  if (journalDb) {
    const now = new Date();
    journal = {
      _id: id,
      snapshot: plan.snapshot,
      ...(result.preRestoreSnapshot ? { preRestoreSnapshot: result.preRestoreSnapshot } : {}),
      host: thisHost(),
      pid: process.pid,
      started: now,
      heartbeat: now,
      phase: 'loading',
      entries: shadows.map((s) => s.j),
      journalDb,
    };
    await writeJournal(client, journal);
    testKillPoint('journal-written');
  }
  const stopHeartbeat = journal ? startHeartbeat(client, journal) : () => {};
  // Undoes everything before the commit: the targets end exactly as they were.
  const undo = async (failure: unknown, stage: string): Promise<never> => {
    stopHeartbeat();
    const err = isLifeboatError(failure) ? failure : mongoError(failure, 'restore');
    if (!journal) throw err;
    opts.note?.(`lifeboat: restore failed ${stage} (${err.message}) — undoing it`);
    try {
      await waitForServer(client, opts.rollbackWaitMs ?? 120_000, opts.note);
      await rollBack(client, journal);
    } catch (rbErr) {
      throw new LifeboatError(err.code, `${err.message}; UNDO FAILED (${(rbErr as Error).message})`, {
        hint: `the restore journal in ${journal.journalDb} records what to undo: ${RECOVERY_HINT}`,
        details: { restoreId: id, preRestoreSnapshot: result.preRestoreSnapshot },
        cause: failure,
      });
    }
    throw new LifeboatError(err.code, `${err.message} (undone: the target collections are unchanged)`, {
      hint: err.hint,
      details: { ...(err.details ?? {}), restoreId: id, preRestoreSnapshot: result.preRestoreSnapshot },
      cause: failure,
    });
  };

  try {
    await mapLimit(shadows, parallel, async (sp) => {
      const { e, j } = sp;
      if (!e) {
        // Without --drop the replay goes on top of what is there, as in place; with it, from nothing.
        if (j.existed && !opts.drop) await copyExisting(opts, sp);
        return;
      }
      try {
        if (e.exists && !opts.drop) await copyExisting(opts, sp);
        else await createTarget(opts, e, notRestored, j.shadow);
        testKillPoint('shadow-created');
        if (!e.meta.metadataOnly) await insertData(opts, e, j.shadow);
        if (opts.verify ?? true) {
          const h = await hashCollection(client, e.db, j.shadow);
          if (h.count !== sp.count || h.hex() !== sp.hash) {
            throw new LifeboatError(
              'VERIFY_FAILED',
              `verification of ${e.target} failed: ${h.count} documents with hash ${h.hex().slice(0, 12)}, expected ${sp.count} with ${sp.hash.slice(0, 12)}`,
              {
                hint: 'the server changed or dropped data during the restore; check its logs, then restore again',
              },
            );
          }
          testKillPoint('shadow-verified');
        }
        if (!scan) {
          await createIndexes(opts, e, notRestored, j.shadow);
          testKillPoint('indexes-built');
        }
      } catch (err) {
        throw isLifeboatError(err) ? err : mongoError(err, `restoring ${e.target}`);
      }
      if (!scan) result.collections.push(restoredEntry(e, opts.verify ?? true));
    });
  } catch (failure) {
    return undo(failure, 'while loading');
  }

  if (scan && plan.oplog) {
    try {
      await replayIntoShadows(opts, plan.oplog, scan, shadows, journal, result);
      await mapLimit(shadows, parallel, async (sp) => {
        if (!sp.e || sp.j.absent) return;
        await createIndexes(opts, sp.e, notRestored, sp.j.shadow);
        testKillPoint('indexes-built');
      });
    } catch (failure) {
      return undo(failure, 'while replaying the oplog');
    }
  }

  if (journal) {
    try {
      await setPhase(client, journal, 'swapping');
      testKillPoint('swap-begin');
      for (const { j } of shadows) {
        const db = client.db(j.db);
        if (j.existed) {
          await db.renameCollection(j.target, j.old);
          testKillPoint('target-aside');
        }
        if (j.absent) continue;
        await db.renameCollection(j.shadow, j.target);
        testKillPoint('shadow-in');
      }
      // The whole restore verified before anything set aside is let go: each target against what its
      // shadow held (after a replay, the counts taken once it was done).
      for (const sp of shadows) {
        if (sp.j.absent) {
          if ((await collectionNames(client, sp.j.db)).has(sp.j.target))
            throw new LifeboatError(
              'VERIFY_FAILED',
              `after the swap ${sp.ns} exists, but the oplog replay had dropped it`,
              {
                hint: 'something wrote to the target during the restore: stop the application, then restore again',
              },
            );
          continue;
        }
        const n = await client.db(sp.j.db).collection(sp.j.target).countDocuments({});
        if (n !== sp.count)
          throw new LifeboatError(
            'VERIFY_FAILED',
            `after the swap ${sp.ns} holds ${n} documents, expected ${sp.count}`,
            {
              hint: 'something wrote to the target during the restore: stop the application, then restore again',
            },
          );
      }
      await setPhase(client, journal, 'committed');
      testKillPoint('committed');
    } catch (failure) {
      return undo(failure, 'while swapping');
    }
    stopHeartbeat();
    // Committed: from here a failure leaves only set-aside copies, which the next restore drops.
    try {
      for (const { j } of shadows) {
        if (!j.existed) continue;
        await client.db(j.db).collection(j.old).drop();
        testKillPoint('old-dropped');
      }
      await client
        .db(journal.journalDb)
        .collection(RESTORE_JOURNAL)
        .deleteOne({ _id: id as never });
      if ((await client.db(journal.journalDb).collection(RESTORE_JOURNAL).countDocuments({})) === 0)
        await client.db(journal.journalDb).collection(RESTORE_JOURNAL).drop();
    } catch (e) {
      opts.note?.(
        `lifeboat: warning: the restore is complete, but its set-aside copies could not all be dropped (${reasonOf(e)}); \`lifeboat mongodb restore --resume\` drops them`,
      );
    }
  }

  for (const e of views) {
    if (e.exists) await client.db(e.db).collection(e.collection).drop();
    await createTarget(opts, e, notRestored);
    result.collections.push(restoredEntry(e, false));
  }
  if (plan.usersAndRoles.length)
    result.usersAndRoles = await restoreUsersAndRoles(client, opts.repo, plan.usersAndRoles, opts.drop);
  result.collections.sort((a, b) => (a.target < b.target ? -1 : 1));
  return result;
}
