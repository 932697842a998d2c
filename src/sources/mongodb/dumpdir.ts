/**
 * mongodump's directory layout: `<root>/<db>/<coll>.bson` (documents back to back) beside
 * `<root>/<db>/<coll>.metadata.json`, both with `.gz` under `--gzip`; the oplog is `<root>/oplog.bson`.
 * Collection names are escaped as Go's url.QueryEscape does; an escaped name longer than 238 bytes
 * becomes its first 208 bytes + `%24` + base64url(SHA-1(name)) so the longest file name
 * (`.metadata.json.gz`) stays within 255 bytes, and the real name is then read from the metadata file.
 * Everything streams: a `.bson` file is never read whole.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, gunzipSync } from 'node:zlib';
import { LifeboatError, fromSystemError } from '../../core/errors.ts';
import { splitBson } from './bson-stream.ts';
import { Crc64 } from './crc64.ts';
import { formatMetadataJson, parseMetadataJson, type CollectionMetadata } from './metadata.ts';

const UNRESERVED = /^[A-Za-z0-9\-_.~]$/;

/** Go's url.QueryEscape: unreserved bytes stay, space becomes '+', every other byte %XX (upper case). */
export function queryEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (byte < 0x80 && UNRESERVED.test(ch)) out += ch;
    else if (byte === 0x20) out += '+';
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Go's url.QueryUnescape; throws on a malformed escape. */
export function queryUnescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '+') bytes.push(0x20);
    else if (c === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new LifeboatError('INTEGRITY', `bad escape "%${hex}" in dump file name "${s}"`, {
          hint: 'file names in a dump directory are URL-query-escaped collection names; rename the file',
        });
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The file name stem mongodump uses for a collection (without `.bson` / `.metadata.json`). */
export function dumpFileStem(collection: string): string {
  const escaped = queryEscape(collection);
  if (escaped.length <= 238) return escaped;
  const hash = createHash('sha1').update(collection, 'utf8').digest('base64url');
  return escaped.slice(0, 208) + '%24' + hash;
}

/** Whether a stem is a truncated one, whose real name only the metadata file knows. */
function isTruncatedStem(stem: string): boolean {
  return stem.length === 238 && stem.includes('%24');
}

export interface DumpEntry {
  db: string;
  collection: string;
  /** Absent for views (mongodump writes only their metadata). */
  bsonPath?: string;
  metadataPath?: string;
  gzip: boolean;
}

export interface DumpListing {
  root: string;
  collections: DumpEntry[];
  oplogPath?: string;
  oplogGzip?: boolean;
}

/** zlib's errors (Z_DATA_ERROR, Z_BUF_ERROR "unexpected end of file") mean damaged or truncated gzip data. */
function readError(e: unknown, file: string): LifeboatError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new LifeboatError('INTEGRITY', `${file} is damaged or truncated (gzip: ${(e as Error).message})`, {
      hint: 'the file is incomplete or corrupted; take it again from its source',
    });
  }
  return fromSystemError(e, `reading ${file}`);
}

async function* fileSource(file: string, gzip: boolean): AsyncGenerator<Uint8Array> {
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  let stream: AsyncIterable<Uint8Array> = raw;
  if (gzip) {
    const gunzip = createGunzip();
    raw.on('error', (e) => gunzip.destroy(e));
    stream = raw.pipe(gunzip);
  }
  // The streams' own errors (bad gzip data, a vanished file) become typed errors naming the file.
  try {
    yield* stream;
  } catch (e) {
    throw readError(e, file);
  }
}

/** The documents of a `.bson` / `.bson.gz` file, one at a time. */
export function readBsonFile(file: string, gzip = file.endsWith('.gz')): AsyncGenerator<Uint8Array> {
  return splitBson(fileSource(file, gzip), file);
}

export async function readMetadataFile(file: string, fallbackName: string): Promise<CollectionMetadata> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
    if (file.endsWith('.gz')) buf = gunzipSync(buf);
  } catch (e) {
    throw readError(e, file);
  }
  return parseMetadataJson(buf.toString('utf8'), fallbackName, file);
}

/** Lists a dump directory's collections (sorted by db, then collection) and its oplog. */
export async function listDumpDir(root: string): Promise<DumpListing> {
  let top: import('node:fs').Dirent[];
  try {
    top = await readdir(root, { withFileTypes: true });
  } catch (e) {
    throw fromSystemError(e, `reading dump directory ${root}`);
  }
  const listing: DumpListing = { root, collections: [] };
  for (const d of top) {
    if (d.isFile() && (d.name === 'oplog.bson' || d.name === 'oplog.bson.gz')) {
      listing.oplogPath = path.join(root, d.name);
      listing.oplogGzip = d.name.endsWith('.gz');
    }
  }
  for (const d of top.filter((x) => x.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const db = d.name;
    const files = await readdir(path.join(root, db));
    const byStem = new Map<string, DumpEntry>();
    for (const f of files.sort()) {
      const m = /^(.*)\.(bson|metadata\.json)(\.gz)?$/.exec(f);
      if (!m) continue;
      const [, stem, kind, gz] = m;
      let e = byStem.get(stem);
      if (!e) {
        e = { db, collection: '', gzip: !!gz };
        byStem.set(stem, e);
      }
      if (kind === 'bson') e.bsonPath = path.join(root, db, f);
      else e.metadataPath = path.join(root, db, f);
    }
    for (const [stem, e] of byStem) {
      if (isTruncatedStem(stem)) {
        if (!e.metadataPath) {
          throw new LifeboatError(
            'INTEGRITY',
            `${db}/${stem}: a truncated collection file name needs its metadata.json`,
            {
              hint: 'copy the matching .metadata.json file into the dump directory',
            },
          );
        }
        const meta = await readMetadataFile(e.metadataPath, '');
        if (!meta.collectionName) {
          throw new LifeboatError(
            'INTEGRITY',
            `${e.metadataPath}: no collectionName for a truncated file name`,
            {
              hint: 'the metadata file is damaged',
            },
          );
        }
        e.collection = meta.collectionName;
      } else e.collection = queryUnescape(stem);
      listing.collections.push(e);
    }
  }
  listing.collections.sort((a, b) =>
    a.db === b.db ? (a.collection < b.collection ? -1 : 1) : a.db < b.db ? -1 : 1,
  );
  return listing;
}

let tmpCounter = 0;

/** Writes a stream to a file via a temporary name, so a failed write leaves no half file behind. */
async function writeStreamToFile(
  file: string,
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  gzip: boolean,
): Promise<void> {
  // A short temporary name: the final name may already be at the 255-byte limit.
  const tmp = path.join(path.dirname(file), `.lifeboat-partial-${process.pid}-${++tmpCounter}`);
  try {
    const out = createWriteStream(tmp, { mode: 0o600 });
    if (gzip) await pipeline(data, createGzip(), out);
    else await pipeline(data, out);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw fromSystemError(e, `writing ${file}`);
  }
}

export interface WrittenCollection {
  db: string;
  collection: string;
  documents: number;
  bytes: number;
  crc: bigint;
}

/** Writes mongodump-layout dump directories. */
export class DumpDirWriter {
  readonly root: string;
  readonly gzip: boolean;

  constructor(root: string, options: { gzip?: boolean } = {}) {
    this.root = root;
    this.gzip = options.gzip ?? false;
  }

  private suffix(): string {
    return this.gzip ? '.gz' : '';
  }

  async writeCollection(
    db: string,
    meta: CollectionMetadata,
    docs: AsyncIterable<Uint8Array> | null,
    options: { metadata?: boolean } = {},
  ): Promise<WrittenCollection> {
    const dir = path.join(this.root, db);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stem = dumpFileStem(meta.collectionName);
    const result: WrittenCollection = {
      db,
      collection: meta.collectionName,
      documents: 0,
      bytes: 0,
      crc: 0n,
    };
    // Views have no data file, as with mongodump.
    if (docs !== null) {
      const crc = new Crc64();
      async function* counted() {
        for await (const d of docs!) {
          crc.update(d);
          result.documents++;
          result.bytes += d.length;
          yield d;
        }
      }
      await writeStreamToFile(path.join(dir, `${stem}.bson${this.suffix()}`), counted(), this.gzip);
      result.crc = crc.digest();
    }
    // Time-series buckets have no metadata file of their own: their collection's file describes them.
    if (options.metadata === false) return result;
    const json = Buffer.from(formatMetadataJson(meta), 'utf8');
    await writeStreamToFile(path.join(dir, `${stem}.metadata.json${this.suffix()}`), [json], this.gzip);
    return result;
  }

  async writeOplog(docs: AsyncIterable<Uint8Array>): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await writeStreamToFile(path.join(this.root, `oplog.bson${this.suffix()}`), docs, this.gzip);
  }
}

/**
 * Opens a mongodump archive file as a byte stream, un-gzipping it when it starts with the gzip magic
 * (`mongodump --archive --gzip` gzips the whole stream), so callers need not know which it is.
 */
export async function openArchiveFile(file: string): Promise<AsyncIterable<Uint8Array>> {
  try {
    const s = await stat(file);
    if (!s.isFile())
      throw new LifeboatError('USAGE', `${file} is not a file`, {
        hint: 'give the path of a mongodump --archive file',
      });
  } catch (e) {
    throw fromSystemError(e, `opening archive ${file}`);
  }
  const fh = await open(file, 'r');
  const head = Buffer.alloc(2);
  const { bytesRead } = await fh.read(head, 0, 2, 0).finally(() => fh.close());
  return fileSource(file, bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b);
}
