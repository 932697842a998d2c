/**
 * The mongodump archive format (`mongodump --archive`), read and written as a stream. Grammar (see
 * ../shared/reference/mongodump-format.md and mongo-tools common/archive/spec.md):
 *
 *   archive  = magic, header, *collection-metadata, TERM, *(namespace-segment | namespace-eof)
 *   segment  = namespace-header(EOF=false, CRC=0), *document, TERM
 *   eof      = namespace-header(EOF=true, CRC=crc64 of all the namespace's documents), TERM
 *
 * The reader yields fine-grained events in archive order (so a re-write reproduces the segmentation byte
 * for byte) and checks every structural rule mongorestore checks, CRCs included. The writer emits the
 * same events; `writeNamespace` is the convenience most callers want.
 */
import { deserialize, Long, serialize } from 'bson';
import { LifeboatError } from '../../core/errors.ts';
import { ByteReader, readDocument } from './bson-stream.ts';
import { Crc64 } from './crc64.ts';

export const ARCHIVE_MAGIC = 0x8199e26d;
const TERM = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
/** mongodump cuts a namespace's data into segments of about this size when it interleaves namespaces. */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

export interface ArchiveHeader {
  concurrentCollections: number;
  version: string;
  serverVersion: string;
  toolVersion: string;
}

export interface PreludeCollection {
  db: string;
  collection: string;
  /** The collection's metadata.json text ('' for the oplog). */
  metadata: string;
  size: number;
  /** '', 'collection', 'view', 'timeseries'; undefined in archives from tools that did not write it. */
  type?: string;
}

export interface Namespace {
  db: string;
  collection: string;
}

export type ArchiveEvent =
  | { kind: 'header'; header: ArchiveHeader }
  | { kind: 'collection'; collection: PreludeCollection }
  | { kind: 'prelude-end' }
  | { kind: 'segment-start'; ns: Namespace }
  | { kind: 'document'; ns: Namespace; doc: Uint8Array }
  | { kind: 'segment-end'; ns: Namespace }
  | { kind: 'eof'; ns: Namespace; crc: bigint; documents: number; bytes: number };

export function nsKey(ns: Namespace): string {
  return `${ns.db}.${ns.collection}`;
}

function bad(
  what: string,
  message: string,
  hint = 'the archive is corrupted or not a mongodump archive',
): LifeboatError {
  return new LifeboatError('INTEGRITY', `${what}: ${message}`, { hint });
}

function decode(doc: Uint8Array, what: string): Record<string, unknown> {
  try {
    return deserialize(doc, { useBigInt64: true, promoteBuffers: true }) as Record<string, unknown>;
  } catch (e) {
    throw bad(what, `undecodable BSON (${(e as Error).message})`);
  }
}

function str(v: unknown, field: string, what: string): string {
  if (typeof v !== 'string') throw bad(what, `field "${field}" must be a string`);
  return v;
}

function int(v: unknown, field: string, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  throw bad(what, `field "${field}" must be an integer`);
}

/**
 * Reads an archive from a byte stream (gunzip it first if it is gzipped: see `maybeGunzip`). Documents
 * are yielded as raw BSON, never decoded.
 */
export async function* readArchive(
  source: AsyncIterable<Uint8Array>,
  what = 'mongodump archive',
): AsyncGenerator<ArchiveEvent> {
  const reader = new ByteReader(source);
  try {
    const magic = await reader.peekUint32(what);
    if (magic !== ARCHIVE_MAGIC) {
      throw bad(
        what,
        magic === null
          ? 'empty file'
          : `bad magic number 0x${magic.toString(16).padStart(8, '0')} (expected 0x8199e26d)`,
        magic !== null && (magic & 0xffff) === 0x8b1f
          ? 'the archive is gzipped: pass --gzip'
          : 'this is not a mongodump --archive file (a dump directory needs --dir)',
      );
    }
    await reader.read(4, what);

    const headerDoc = await readDocument(reader, what);
    if (headerDoc === null) throw bad(what, 'missing archive header');
    const h = decode(headerDoc, `${what} header`);
    yield {
      kind: 'header',
      header: {
        concurrentCollections:
          h.concurrent_collections === undefined
            ? 4
            : int(h.concurrent_collections, 'concurrent_collections', what),
        version: str(h.version ?? '', 'version', what),
        serverVersion: str(h.server_version ?? '', 'server_version', what),
        toolVersion: str(h.tool_version ?? '', 'tool_version', what),
      },
    };

    // Prelude: one metadata document per namespace, then TERM.
    const declared = new Set<string>();
    for (;;) {
      const d = await readDocument(reader, `${what} prelude`, true);
      if (d === null) throw bad(what, 'archive ends inside its prelude');
      if (d === 'TERM') break;
      const m = decode(d, `${what} prelude`);
      const c: PreludeCollection = {
        db: str(m.db, 'db', what),
        collection: str(m.collection, 'collection', what),
        metadata: str(m.metadata ?? '', 'metadata', what),
        size: m.size === undefined ? 0 : int(m.size, 'size', what),
      };
      if (m.type !== undefined) c.type = str(m.type, 'type', what);
      declared.add(nsKey(c));
      yield { kind: 'collection', collection: c };
    }
    yield { kind: 'prelude-end' };

    const state = new Map<string, { crc: Crc64; documents: number; bytes: number; closed: boolean }>();
    for (;;) {
      const at = reader.position;
      const d = await readDocument(reader, what, true);
      if (d === null) break;
      if (d === 'TERM') throw bad(what, `two terminators in a row at byte ${at}`);
      const nh = decode(d, `${what} namespace header`);
      for (const k of Object.keys(nh)) {
        if (!['db', 'collection', 'EOF', 'CRC'].includes(k))
          throw bad(what, `unknown field "${k}" in namespace header at byte ${at}`);
      }
      const ns: Namespace = {
        db: str(nh.db, 'db', what),
        collection: str(nh.collection, 'collection', what),
      };
      const key = nsKey(ns);
      let st = state.get(key);
      if (!st) {
        st = { crc: new Crc64(), documents: 0, bytes: 0, closed: false };
        state.set(key, st);
      }
      if (st.closed) throw bad(what, `namespace ${key} continues after its EOF block (byte ${at})`);
      if (nh.EOF === true) {
        const t = await readDocument(reader, what, true);
        if (t !== 'TERM') throw bad(what, `EOF block of ${key} is not followed by a terminator`);
        const expected = BigInt.asUintN(
          64,
          typeof nh.CRC === 'bigint' ? nh.CRC : BigInt(int(nh.CRC ?? 0, 'CRC', what)),
        );
        const actual = st.crc.digest();
        if (actual !== expected) {
          throw bad(
            what,
            `CRC mismatch for namespace ${key}: computed ${actual.toString(16)}, archive says ${expected.toString(16)}`,
            'the archive was altered or damaged in transfer; take it again from its source',
          );
        }
        st.closed = true;
        yield { kind: 'eof', ns, crc: actual, documents: st.documents, bytes: st.bytes };
        continue;
      }
      yield { kind: 'segment-start', ns };
      for (;;) {
        const doc = await readDocument(reader, `${what} (${key})`, true);
        if (doc === null)
          throw bad(
            what,
            `archive ends inside a segment of ${key}`,
            'the archive is truncated; take it again from its source',
          );
        if (doc === 'TERM') break;
        st.crc.update(doc);
        st.documents++;
        st.bytes += doc.length;
        yield { kind: 'document', ns, doc };
      }
      yield { kind: 'segment-end', ns };
    }
    for (const [key, st] of state) {
      if (!st.closed)
        throw bad(
          what,
          `namespace ${key} has no EOF block`,
          'the archive is truncated; take it again from its source',
        );
    }
    void declared;
  } finally {
    await reader.close();
  }
}

/** Where archive bytes go. `write` resolves when the bytes may be reused and backpressure allows more. */
export interface ByteSink {
  write(data: Uint8Array): Promise<void>;
}

/** Adapts a Node writable stream (file, gzip, socket) to a ByteSink that honours backpressure. */
export function writableSink(w: NodeJS.WritableStream): ByteSink {
  return {
    write(data) {
      return new Promise((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        w.once('error', onError);
        const ok = w.write(data, (err) => {
          if (err) reject(err);
        });
        const done = () => {
          w.off('error', onError);
          resolve();
        };
        if (ok) done();
        else w.once('drain', done);
      });
    },
  };
}

/**
 * Writes an archive. Small writes are gathered into 1 MiB blocks so that a collection of small
 * documents does not cost a syscall (or a gzip call) per document.
 */
export class ArchiveWriter {
  private readonly sink: ByteSink;
  private block = new Uint8Array(1 << 20);
  private used = 0;
  private phase: 'start' | 'prelude' | 'data' = 'start';
  private current: Namespace | null = null;
  private readonly crcs = new Map<string, { crc: Crc64; closed: boolean }>();

  constructor(sink: ByteSink) {
    this.sink = sink;
  }

  private async put(data: Uint8Array): Promise<void> {
    if (data.length >= this.block.length) {
      await this.flush();
      await this.sink.write(data);
      return;
    }
    if (this.used + data.length > this.block.length) await this.flush();
    this.block.set(data, this.used);
    this.used += data.length;
  }

  /** Hands buffered bytes to the sink. */
  async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.block.subarray(0, this.used);
    // The sink may hold on to `out` until its write callback: give it the block and start a fresh one.
    this.block = new Uint8Array(this.block.length);
    this.used = 0;
    await this.sink.write(out);
  }

  async writeHeader(header: ArchiveHeader): Promise<void> {
    if (this.phase !== 'start') throw new Error('archive header written twice');
    const magic = new Uint8Array(4);
    new DataView(magic.buffer).setUint32(0, ARCHIVE_MAGIC, true);
    await this.put(magic);
    await this.put(
      serialize({
        concurrent_collections: header.concurrentCollections,
        version: header.version,
        server_version: header.serverVersion,
        tool_version: header.toolVersion,
      }),
    );
    this.phase = 'prelude';
  }

  async writeCollection(c: PreludeCollection): Promise<void> {
    if (this.phase !== 'prelude') throw new Error('collection metadata must follow the header');
    const doc: Record<string, unknown> = {
      db: c.db,
      collection: c.collection,
      metadata: c.metadata,
      size: c.size,
    };
    if (c.type !== undefined) doc.type = c.type;
    await this.put(serialize(doc));
  }

  async endPrelude(): Promise<void> {
    if (this.phase !== 'prelude') throw new Error('prelude ended twice');
    await this.put(TERM);
    this.phase = 'data';
  }

  private nsState(ns: Namespace) {
    const key = nsKey(ns);
    let st = this.crcs.get(key);
    if (!st) {
      st = { crc: new Crc64(), closed: false };
      this.crcs.set(key, st);
    }
    if (st.closed) throw new Error(`namespace ${key} already ended`);
    return st;
  }

  async startSegment(ns: Namespace): Promise<void> {
    if (this.phase !== 'data') throw new Error('segments follow the prelude');
    if (this.current) throw new Error('segment already open');
    this.nsState(ns);
    this.current = ns;
    await this.put(serialize({ db: ns.db, collection: ns.collection, EOF: false, CRC: Long.fromBigInt(0n) }));
  }

  async writeDocument(doc: Uint8Array): Promise<void> {
    if (!this.current) throw new Error('no segment open');
    this.nsState(this.current).crc.update(doc);
    await this.put(doc);
  }

  async endSegment(): Promise<void> {
    if (!this.current) throw new Error('no segment open');
    this.current = null;
    await this.put(TERM);
  }

  /** Writes the namespace's EOF block with the CRC of every document written for it; returns the CRC. */
  async endNamespace(ns: Namespace): Promise<bigint> {
    if (this.current) throw new Error('segment still open');
    const st = this.nsState(ns);
    st.closed = true;
    const crc = st.crc.digest();
    await this.put(
      serialize({
        db: ns.db,
        collection: ns.collection,
        EOF: true,
        CRC: Long.fromBigInt(BigInt.asIntN(64, crc)),
      }),
    );
    await this.put(TERM);
    return crc;
  }

  /**
   * Writes a whole namespace: its documents in segments of about `segmentBytes`, then its EOF block.
   * An empty collection gets a single empty segment, as mongodump writes it.
   */
  async writeNamespace(
    ns: Namespace,
    docs: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    segmentBytes = DEFAULT_SEGMENT_BYTES,
  ): Promise<{ crc: bigint; documents: number; bytes: number }> {
    let open = false;
    let inSegment = 0;
    let documents = 0;
    let bytes = 0;
    for await (const doc of docs) {
      if (!open) {
        await this.startSegment(ns);
        open = true;
      }
      await this.writeDocument(doc);
      documents++;
      bytes += doc.length;
      inSegment += doc.length;
      if (inSegment >= segmentBytes) {
        await this.endSegment();
        open = false;
        inSegment = 0;
      }
    }
    if (!open && documents === 0) {
      await this.startSegment(ns);
      open = true;
    }
    if (open) await this.endSegment();
    const crc = await this.endNamespace(ns);
    return { crc, documents, bytes };
  }

  /** Checks every started namespace was ended, and flushes. Does not close the sink. */
  async finish(): Promise<void> {
    if (this.current) throw new Error(`segment of ${nsKey(this.current)} still open`);
    for (const [key, st] of this.crcs) if (!st.closed) throw new Error(`namespace ${key} has no EOF block`);
    await this.flush();
  }
}
