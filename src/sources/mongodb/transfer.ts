/**
 * Interoperability with mongodump/mongorestore: `export` writes a snapshot as a dump directory or an
 * archive in exactly the formats mongorestore reads; `import` reads either into the repository as a
 * mongodb snapshot (migrating old dumps). Everything streams: documents go from repository items to the
 * file, or from the file to items, one at a time.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { createGzip } from 'node:zlib';
import { LifeboatError, fromSystemError } from '../../core/errors.ts';
import type { Repository } from '../../core/repository/repository.ts';
import type { BackupSession, Item, ItemWriter, Snapshot } from '../../core/repository/model.ts';
import { ArchiveWriter, readArchive, writableSink, type Namespace } from './archive.ts';
import { splitBson } from './bson-stream.ts';
import { Crc64 } from './crc64.ts';
import { CollectionHash } from './hash.ts';
import { HASH_ALGORITHM, itemMeta, type CollectionItemMeta } from './backup.ts';
import { DumpDirWriter, listDumpDir, openArchiveFile, readBsonFile, readMetadataFile } from './dumpdir.ts';
import { formatMetadataJson, parseMetadataJson } from './metadata.ts';
import type { NamespaceFilter } from './nsfilter.ts';

export const TOOL_VERSION = 'lifeboat-0.1.0';

export interface ExportedNamespace {
  ns: string;
  documents: number;
  bytes: number;
  crc64: string;
}

function dataNamespace(m: CollectionItemMeta, item: Item): Namespace {
  if (item.kind === 'oplog') return { db: '', collection: 'oplog' };
  return { db: m.db, collection: m.collection };
}

function hasData(item: Item): boolean {
  return item.kind !== 'view' && !isMetadataOnly(item);
}

/** Time-series metadata imported from mongodump: its data lives in a separate buckets item. */
function isMetadataOnly(item: Item): boolean {
  return Boolean((item.meta as { metadataOnly?: boolean }).metadataOnly);
}

function docsOf(repo: Repository, item: Item): AsyncGenerator<Uint8Array> {
  return splitBson(repo.readItem(item), `snapshot item ${item.name}`);
}

function selected(snapshot: Snapshot, filter: NamespaceFilter): Item[] {
  if (snapshot.type !== 'mongodb') {
    throw new LifeboatError(
      'USAGE',
      `snapshot ${snapshot.id.slice(0, 8)} is a ${snapshot.type} snapshot, not a mongodb one`,
      {
        hint: 'list MongoDB snapshots with `lifeboat snapshots --type mongodb`',
      },
    );
  }
  return snapshot.items.filter((i) => i.kind === 'oplog' || filter.matches(i.name));
}

/** Refuses to write into a non-empty directory or over an existing file: an export never overwrites. */
async function assertFreshTarget(target: string, isDir: boolean): Promise<void> {
  try {
    if (isDir) {
      const entries = await readdir(target);
      if (entries.length) {
        throw new LifeboatError('CONFLICT', `${target} exists and is not empty`, {
          hint: 'choose a new --out directory, or remove this one',
        });
      }
    } else {
      await readdir(path.dirname(path.resolve(target)));
      const { existsSync } = await import('node:fs');
      if (existsSync(target))
        throw new LifeboatError('CONFLICT', `${target} already exists`, {
          hint: 'choose another --archive file name, or remove it',
        });
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && isDir) return;
    throw fromSystemError(e, `checking ${target}`);
  }
}

export async function exportToDir(
  repo: Repository,
  snapshot: Snapshot,
  out: string,
  options: { gzip?: boolean; filter: NamespaceFilter },
): Promise<ExportedNamespace[]> {
  const items = selected(snapshot, options.filter);
  await assertFreshTarget(out, true);
  // Written into a sibling temporary directory and renamed at the end: a failed export leaves nothing.
  const tmp = `${path.resolve(out)}.lifeboat-partial`;
  await rm(tmp, { recursive: true, force: true });
  const writer = new DumpDirWriter(tmp, { gzip: options.gzip });
  const result: ExportedNamespace[] = [];
  try {
    for (const item of items) {
      const m = itemMeta(item);
      if (item.kind === 'oplog') {
        await writer.writeOplog(docsOf(repo, item));
        continue;
      }
      const meta = m.metadata
        ? parseMetadataJson(m.metadata, m.collection)
        : { options: {}, indexes: [], collectionName: m.collection };
      const w = await writer.writeCollection(
        m.db,
        { ...meta, collectionName: m.collection },
        hasData(item) ? docsOf(repo, item) : null,
        {
          metadata: !m.bucketsOf,
        },
      );
      result.push({
        ns: item.name,
        documents: w.documents,
        bytes: w.bytes,
        crc64: w.crc.toString(16).padStart(16, '0'),
      });
    }
    await rm(out, { recursive: true, force: true });
    await mkdir(path.dirname(path.resolve(out)), { recursive: true });
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return result;
}

export async function exportToArchive(
  repo: Repository,
  snapshot: Snapshot,
  file: string,
  options: { gzip?: boolean; filter: NamespaceFilter },
): Promise<ExportedNamespace[]> {
  const items = selected(snapshot, options.filter);
  await assertFreshTarget(file, false);
  const tmp = `${file}.lifeboat-partial`;
  const result: ExportedNamespace[] = [];
  const fileStream = createWriteStream(tmp, { mode: 0o600 });
  const head = new PassThrough({ highWaterMark: 1 << 20 });
  const done = options.gzip ? pipeline(head, createGzip(), fileStream) : pipeline(head, fileStream);
  done.catch(() => {});
  try {
    const w = new ArchiveWriter(writableSink(head));
    const server = typeof snapshot.meta.server === 'string' ? snapshot.meta.server : '';
    const dataItems = items.filter(hasData);
    await w.writeHeader({
      concurrentCollections: 4,
      version: '0.1',
      serverVersion: server,
      toolVersion: TOOL_VERSION,
    });
    for (const item of items) {
      const m = itemMeta(item);
      if (m.bucketsOf) continue;
      if (item.kind === 'oplog')
        await w.writeCollection({ db: '', collection: 'oplog', metadata: '', size: 0 });
      else
        await w.writeCollection({
          db: m.db,
          collection: m.collection,
          metadata: m.metadata,
          size: 0,
          type: m.type || 'collection',
        });
    }
    await w.endPrelude();
    for (const item of dataItems) {
      const m = itemMeta(item);
      const r = await w.writeNamespace(dataNamespace(m, item), docsOf(repo, item));
      result.push({
        ns: item.name,
        documents: r.documents,
        bytes: r.bytes,
        crc64: r.crc.toString(16).padStart(16, '0'),
      });
    }
    await w.finish();
    head.end();
    await done;
    await rename(tmp, file);
  } catch (e) {
    head.destroy();
    await done.catch(() => {});
    await rm(tmp, { force: true });
    throw fromSystemError(e, `writing archive ${file}`);
  }
  return result;
}

interface OpenNs {
  writer: ItemWriter;
  hash: CollectionHash;
  crc: Crc64;
}

function itemKind(type: string | undefined): string {
  return type === 'view' || type === 'timeseries' ? type : 'collection';
}

/** Imports a mongodump archive (gzipped or not) as items of `session`; returns them for the commit. */
export async function importArchive(
  session: BackupSession,
  file: string,
): Promise<{ items: Item[]; server: string; tool: string }> {
  const prelude = new Map<
    string,
    { db: string; collection: string; metadata: string; type?: string; order: number }
  >();
  const open = new Map<string, OpenNs>();
  const finished = new Map<string, Item>();
  let server = '';
  let tool = '';
  const key = (ns: Namespace) =>
    ns.db === '' && ns.collection === 'oplog' ? '.oplog' : `${ns.db}.${ns.collection}`;
  for await (const ev of readArchive(await openArchiveFile(file), file)) {
    if (ev.kind === 'header') {
      server = ev.header.serverVersion;
      tool = ev.header.toolVersion;
    } else if (ev.kind === 'collection') {
      const c = ev.collection;
      prelude.set(key(c), {
        db: c.db,
        collection: c.collection,
        metadata: c.metadata,
        type: c.type,
        order: prelude.size,
      });
    } else if (ev.kind === 'segment-start') {
      const k = key(ev.ns);
      if (!open.has(k)) {
        const kind = k === '.oplog' ? 'oplog' : itemKind(prelude.get(k)?.type);
        open.set(k, {
          writer: session.newItem({ name: k, kind }, 'records'),
          hash: new CollectionHash(),
          crc: new Crc64(),
        });
      }
    } else if (ev.kind === 'document') {
      const o = open.get(key(ev.ns))!;
      o.hash.add(ev.doc);
      o.crc.update(ev.doc);
      await o.writer.write(ev.doc);
    } else if (ev.kind === 'eof') {
      const k = key(ev.ns);
      let o = open.get(k);
      if (!o) {
        o = {
          writer: session.newItem(
            { name: k, kind: k === '.oplog' ? 'oplog' : itemKind(prelude.get(k)?.type) },
            'records',
          ),
          hash: new CollectionHash(),
          crc: new Crc64(),
        };
      }
      open.delete(k);
      const item = await o.writer.finish();
      const p = prelude.get(k);
      const buckets = ev.ns.collection.startsWith('system.buckets.')
        ? ev.ns.collection.slice('system.buckets.'.length)
        : undefined;
      const meta: CollectionItemMeta = {
        db: ev.ns.db,
        collection: ev.ns.collection,
        type: k === '.oplog' ? 'oplog' : (p?.type ?? 'collection') || 'collection',
        metadata: p?.metadata ?? '',
        count: o.hash.count,
        bytes: o.hash.bytes,
        hash: o.hash.hex(),
        crc64: o.crc.digest().toString(16).padStart(16, '0'),
      };
      if (buckets !== undefined && prelude.get(`${ev.ns.db}.${buckets}`)?.type === 'timeseries')
        meta.bucketsOf = buckets;
      item.meta = meta as unknown as Record<string, unknown>;
      finished.set(k, item);
    }
  }
  // Namespaces declared in the prelude without data of their own (views, time-series metadata).
  for (const [k, p] of prelude) {
    if (finished.has(k)) continue;
    const item = await session.newItem({ name: k, kind: itemKind(p.type) }, 'records').finish();
    const meta = {
      db: p.db,
      collection: p.collection,
      type: p.type || 'collection',
      metadata: p.metadata,
      count: 0,
      bytes: 0,
      hash: new CollectionHash().hex(),
      crc64: '0000000000000000',
      metadataOnly: true,
    };
    item.meta = meta;
    finished.set(k, item);
  }
  // Prelude order first (what mongodump declared), then data-only namespaces (time-series buckets).
  const order = (k: string) => prelude.get(k)?.order ?? Number.MAX_SAFE_INTEGER;
  const items = [...finished.entries()].sort((a, b) => order(a[0]) - order(b[0])).map(([, i]) => i);
  return { items, server, tool };
}

/** Imports a mongodump dump directory. */
export async function importDir(session: BackupSession, dir: string): Promise<{ items: Item[] }> {
  const listing = await listDumpDir(dir);
  const items: Item[] = [];
  const metaTypes = new Map<string, string | undefined>();
  const metas = new Map<string, string>();
  for (const c of listing.collections) {
    if (!c.metadataPath) continue;
    const m = await readMetadataFile(c.metadataPath, c.collection);
    metaTypes.set(`${c.db}.${c.collection}`, m.type);
    metas.set(`${c.db}.${c.collection}`, formatMetadataJson(m));
  }
  if (listing.collections.length === 0 && !listing.oplogPath) {
    throw new LifeboatError('NOT_FOUND', `${dir} holds no mongodump collections`, {
      hint: 'point --dir at the directory mongodump wrote (it has one folder per database)',
    });
  }
  const add = async (
    name: string,
    kind: string,
    base: Omit<CollectionItemMeta, 'count' | 'bytes' | 'hash' | 'crc64'>,
    bson?: string,
    extra: Record<string, unknown> = {},
  ) => {
    const w = session.newItem({ name, kind }, 'records');
    const hash = new CollectionHash();
    const crc = new Crc64();
    if (bson) {
      for await (const d of readBsonFile(bson)) {
        hash.add(d);
        crc.update(d);
        await w.write(d);
      }
    }
    const item = await w.finish();
    item.meta = {
      ...base,
      count: hash.count,
      bytes: hash.bytes,
      hash: hash.hex(),
      crc64: crc.digest().toString(16).padStart(16, '0'),
      ...extra,
    };
    items.push(item);
  };
  for (const c of listing.collections) {
    const ns = `${c.db}.${c.collection}`;
    const type = metaTypes.get(ns) ?? 'collection';
    const buckets = c.collection.startsWith('system.buckets.') ? c.collection.slice(15) : undefined;
    const extra: Record<string, unknown> = {};
    if (buckets !== undefined && metaTypes.get(`${c.db}.${buckets}`) === 'timeseries')
      extra.bucketsOf = buckets;
    if (!c.bsonPath) extra.metadataOnly = true;
    await add(
      ns,
      itemKind(type),
      { db: c.db, collection: c.collection, type, metadata: metas.get(ns) ?? '' },
      c.bsonPath,
      extra,
    );
  }
  if (listing.oplogPath)
    await add(
      '.oplog',
      'oplog',
      { db: '', collection: 'oplog', type: 'oplog', metadata: '' },
      listing.oplogPath,
    );
  return { items };
}

export { HASH_ALGORITHM };
