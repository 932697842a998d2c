/**
 * `lifeboat mongodb backup`: every selected collection streams as raw BSON (driver cursors with
 * `raw: true`, so documents are never decoded) into one repository item per collection, one record per
 * document, with the collection's metadata.json (options, indexes, uuid, type) beside it in the item.
 *
 * Documents are read in natural (storage) order, not sorted: on MongoDB (WiredTiger record ids) and on
 * FerretDB/SQLite (row ids) new documents land at the end and in-place updates keep their position, so
 * tomorrow's dump of a mostly unchanged collection repeats today's byte runs and reuses their chunks.
 * Sorting by `_id` would scatter new documents with random string ids (as Rocket.Chat's) all over the
 * dump and defeat deduplication. Nothing depends on the order for correctness: the content hash is
 * order-independent (hash.ts). Memory stays at one cursor batch per collection being copied.
 */
import type { Document, MongoClient } from 'mongodb';
import { mapLimit } from '../../core/concurrency.ts';
import { LifeboatError } from '../../core/errors.ts';
import type { BackupSession, Item, Snapshot, SnapshotPurpose } from '../../core/repository/model.ts';
import { Crc64 } from './crc64.ts';
import { CollectionHash } from './hash.ts';
import { EXACT_BSON, formatMetadataJson, uuidHex, type CollectionMetadata } from './metadata.ts';
import { isLifeboatNamespace, isSystemNamespace, type NamespaceFilter } from './nsfilter.ts';
import { mongoError, safeUri, serverInfo } from './connect.ts';
import { captureOplog, oplogStart, type OplogWindow } from './oplog.ts';
import { AUTHZ_DB, planUsersAndRoles } from './users.ts';

export const HASH_ALGORITHM = 'sum-sha256';

export interface PlannedCollection {
  db: string;
  collection: string;
  type: 'collection' | 'view' | 'timeseries';
  metadata: CollectionMetadata;
  /**
   * A time-series collection is kept as mongodump keeps it: an item with its metadata only, and its
   * data as the raw buckets of `system.buckets.<name>` in a second item that names it here. Buckets are
   * what the server stores, so they restore exactly and export to mongodump format unchanged.
   */
  bucketsOf?: string;
  metadataOnly?: boolean;
}

/** The item meta of a MongoDB collection in a snapshot. */
export interface CollectionItemMeta {
  db: string;
  collection: string;
  type: string;
  /** The collection's metadata.json text, exactly as mongodump would write it. */
  metadata: string;
  count: number;
  bytes: number;
  /** Order-independent content hash (see hash.ts). */
  hash: string;
  /** CRC-64/XZ of the documents in item order: what a mongodump archive of them carries. */
  crc64: string;
  /** For time-series data: the time-series collection these buckets belong to. */
  bucketsOf?: string;
  /** A time-series collection's own item: metadata only, its data is in the buckets item. */
  metadataOnly?: boolean;
}

export interface CollectionSummary {
  ns: string;
  type: string;
  count: number;
  bytes: number;
  hash: string;
}

/**
 * Lists what a backup would copy (no data read): databases, collections, their options and indexes; with
 * `includeUsers`, also `admin.system.users` and `admin.system.roles` (all users and roles: they are
 * instance-wide, whatever the namespace filter).
 */
export async function planBackup(
  client: MongoClient,
  filter: NamespaceFilter,
  options: { includeUsers?: boolean } = {},
): Promise<PlannedCollection[]> {
  const out: PlannedCollection[] = [];
  try {
    const dbs = await client.db('admin').admin().listDatabases({ nameOnly: true });
    for (const { name: db } of dbs.databases.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const infos = (await client
        .db(db)
        .listCollections({}, { ...EXACT_BSON, nameOnly: false })
        .toArray()) as Document[];
      for (const info of infos.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const name = String(info.name);
        if (isSystemNamespace(db, name)) continue;
        // A restore's journal, shadow and set-aside copies (see restore.ts) are never data to back up.
        if (isLifeboatNamespace(name)) continue;
        if (!filter.matches(`${db}.${name}`)) continue;
        const type = (String(info.type ?? 'collection') as PlannedCollection['type']) ?? 'collection';
        const indexes: Document[] =
          type === 'view'
            ? []
            : await client
                .db(db)
                .collection(name)
                .listIndexes({ ...EXACT_BSON })
                .toArray();
        const metadata: CollectionMetadata = {
          options: (info.options as Document) ?? {},
          indexes,
          collectionName: name,
          type,
        };
        const uuid = uuidHex((info.info as Document | undefined)?.uuid);
        if (uuid) metadata.uuid = uuid;
        if (type === 'timeseries') {
          out.push({ db, collection: name, type, metadata, metadataOnly: true });
          const buckets = `system.buckets.${name}`;
          out.push({
            db,
            collection: buckets,
            type: 'collection',
            metadata: { options: {}, indexes: [], collectionName: buckets },
            bucketsOf: name,
          });
        } else {
          out.push({ db, collection: name, type, metadata });
        }
      }
    }
    if (options.includeUsers) {
      for (const { collection, metadata } of await planUsersAndRoles(client))
        out.push({ db: AUTHZ_DB, collection, type: 'collection', metadata });
    }
  } catch (e) {
    throw mongoError(e, 'listing databases and collections');
  }
  return out;
}

export interface MongoBackupOptions {
  client: MongoClient;
  uri: string;
  session: BackupSession;
  collections: PlannedCollection[];
  parallel?: number;
  batchSize?: number;
  tags?: string[];
  /** Default `backup`; a restore's rollback copy is `pre-restore` (never "latest"). */
  purpose?: SnapshotPurpose;
  /** Capture the oplog window of the dump (replica sets only): the restore can replay it. */
  oplog?: boolean;
  /** Commit a snapshot even when no collection matched (otherwise the backup fails with EMPTY). */
  allowEmpty?: boolean;
  signal?: AbortSignal;
  onCollectionDone?: (c: CollectionSummary) => void | Promise<void>;
  /** Called as a collection starts (documents 0) and then every 1000 documents: for progress display. */
  onCollectionProgress?: (ns: string, documents: number) => void;
}

async function copyCollection(opts: MongoBackupOptions, c: PlannedCollection): Promise<Item> {
  const ns = `${c.db}.${c.collection}`;
  const hash = new CollectionHash();
  const crc = new Crc64();
  const writer = opts.session.newItem({ name: ns, kind: c.type }, 'records');
  opts.onCollectionProgress?.(ns, 0);
  if (c.type !== 'view' && !c.metadataOnly) {
    const cursor = opts.client
      .db(c.db)
      .collection(c.collection)
      .find({}, { raw: true, batchSize: opts.batchSize ?? 1000 });
    try {
      for await (const raw of cursor) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const doc = raw as unknown as Uint8Array;
        hash.add(doc);
        crc.update(doc);
        await writer.write(doc);
        if (hash.count % 1000 === 0) opts.onCollectionProgress?.(ns, hash.count);
      }
    } catch (e) {
      throw mongoError(e, `reading ${ns}`);
    } finally {
      await cursor.close().catch(() => {});
    }
  }
  const item = await writer.finish();
  const meta: CollectionItemMeta = {
    db: c.db,
    collection: c.collection,
    type: c.type,
    // Buckets have no metadata.json of their own in a dump: the time-series collection's carries it.
    metadata: c.bucketsOf ? '' : formatMetadataJson(c.metadata),
    count: hash.count,
    bytes: hash.bytes,
    hash: hash.hex(),
    crc64: crc.digest().toString(16).padStart(16, '0'),
  };
  if (c.bucketsOf) meta.bucketsOf = c.bucketsOf;
  if (c.metadataOnly) meta.metadataOnly = true;
  item.meta = meta as unknown as Record<string, unknown>;
  await opts.onCollectionDone?.({ ns, type: c.type, count: meta.count, bytes: meta.bytes, hash: meta.hash });
  return item;
}

export async function backupMongo(
  opts: MongoBackupOptions,
): Promise<{ snapshot: Snapshot; collections: CollectionSummary[]; oplog?: OplogWindow }> {
  const info = await serverInfo(opts.client).catch((e) => {
    throw mongoError(e, 'reading server information');
  });
  try {
    // The window starts before the first document is read, so every change the dump may have missed
    // is in it.
    const start = opts.oplog ? await oplogStart(opts.client, info) : undefined;
    const items = await mapLimit(opts.collections, opts.parallel ?? 4, (c) => copyCollection(opts, c));
    let oplog: OplogWindow | undefined;
    if (start !== undefined) {
      const captured = await captureOplog(opts.client, opts.session, start, opts.signal);
      items.push(captured.item);
      oplog = captured.window;
    }
    const snapshot = await opts.session.commit({
      type: 'mongodb',
      purpose: opts.purpose ?? 'backup',
      tags: opts.tags,
      paths: [safeUri(opts.uri)],
      meta: {
        server: info.version,
        ferretdb: info.ferretdb,
        replicaSet: info.replicaSet ?? null,
        hashAlgorithm: HASH_ALGORITHM,
        databases: [...new Set(opts.collections.map((c) => c.db))],
        ...(oplog ? { oplog } : {}),
      },
      items,
      empty: opts.collections.length === 0,
      allowEmpty: opts.allowEmpty,
      emptyHint:
        'no collection matched: check the database in --uri and --ns-include/--ns-exclude (`lifeboat mongodb backup --dry-run` lists what would be backed up); --allow-empty commits an empty snapshot anyway',
    });
    return {
      snapshot,
      collections: items.filter((i) => i.kind !== 'oplog').map(summaryOf),
      ...(oplog ? { oplog } : {}),
    };
  } catch (e) {
    await opts.session.abort();
    if (e instanceof LifeboatError) throw e;
    throw mongoError(e, 'backup');
  }
}

export function itemMeta(item: Item): CollectionItemMeta {
  const m = item.meta as unknown as CollectionItemMeta;
  if (!m || typeof m.db !== 'string' || typeof m.collection !== 'string') {
    throw new LifeboatError('INTEGRITY', `snapshot item ${item.name} has no MongoDB collection metadata`, {
      hint: 'this is not a snapshot written by `lifeboat mongodb backup` or `import`',
    });
  }
  return m;
}

export function summaryOf(item: Item): CollectionSummary {
  const m = itemMeta(item);
  return { ns: item.name, type: m.type, count: m.count, bytes: m.bytes, hash: m.hash };
}
