/**
 * Streaming access to length-prefixed BSON: a byte reader over an async stream of chunks (file reads,
 * gunzip output, repository item reads) and a document splitter on top of it. Documents may straddle
 * chunk borders, and are never assembled from more than the bytes they need, so memory stays at one
 * document plus one chunk whatever the file size.
 */
import { deserialize, type DeserializeOptions, type Document } from 'bson';
import { LifeboatError } from '../../core/errors.ts';

/** Smallest BSON document: int32 length + terminating 0x00. */
export const MIN_BSON_SIZE = 5;
/**
 * Largest document accepted. The server limits user documents to 16 MiB but lets internal ones (oplog
 * entries of a 16 MiB document, command replies) grow by 16 KiB; mongorestore's archive parser takes
 * 16 MiB. Anything larger is not BSON a server produced, so it is corruption, not data.
 */
export const MAX_BSON_SIZE = 16 * 1024 * 1024 + 16 * 1024;

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Uint8Array = new Uint8Array(0);
  private off = 0;
  private done = false;
  /** Bytes consumed so far: error messages name the offset of the bad data. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private get available(): number {
    return this.buf.length - this.off;
  }

  /** Makes at least n bytes available unless the stream ends first; returns whether it could. */
  private async fill(n: number): Promise<boolean> {
    if (this.available >= n) return true;
    if (this.done) return false;
    // Collect whole chunks until n bytes are there, then copy once: a 16 MiB document arriving in
    // 64 KiB reads costs one copy, not a quadratic series of them.
    const parts: Uint8Array[] = [this.buf.subarray(this.off)];
    let have = this.available;
    while (have < n) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const chunk = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBufferLike);
      if (chunk.length === 0) continue;
      parts.push(chunk);
      have += chunk.length;
    }
    if (parts.length === 1) return have >= n;
    if (parts.length === 2 && parts[0].length === 0) {
      this.buf = parts[1];
    } else {
      const joined = new Uint8Array(have);
      let o = 0;
      for (const p of parts) {
        joined.set(p, o);
        o += p.length;
      }
      this.buf = joined;
    }
    this.off = 0;
    return have >= n;
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Reads a little-endian uint32 without consuming it; null at a clean end of stream. */
  async peekUint32(what: string): Promise<number | null> {
    if (!(await this.fill(4))) {
      if (this.available === 0) return null;
      throw truncated(what, this.position, 4, this.available);
    }
    const b = this.buf;
    const o = this.off;
    return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
  }

  /**
   * Consumes exactly n bytes. The result may be a view into a chunk the stream handed over (no copy);
   * streams here never reuse their buffers, so the view stays valid.
   */
  async read(n: number, what: string): Promise<Uint8Array> {
    if (!(await this.fill(n))) throw truncated(what, this.position, n, this.available);
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    this.position += n;
    return out;
  }

  /** Stops the underlying stream (closes the file) when the caller gives up early. */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}

function truncated(what: string, at: number, wanted: number, had: number): LifeboatError {
  return new LifeboatError(
    'INTEGRITY',
    `${what}: truncated at byte ${at} (needed ${wanted} bytes, ${had} left)`,
    {
      hint: 'the file is incomplete (interrupted copy or dump); take it again from its source',
    },
  );
}

/**
 * Reads one BSON document; null at a clean end of stream. `allowTerminator` makes 0xFFFFFFFF (the
 * mongodump archive terminator) return the string 'TERM' instead of failing.
 */
export async function readDocument(reader: ByteReader, what: string): Promise<Uint8Array | null>;
export async function readDocument(
  reader: ByteReader,
  what: string,
  allowTerminator: true,
): Promise<Uint8Array | 'TERM' | null>;
export async function readDocument(
  reader: ByteReader,
  what: string,
  allowTerminator = false,
): Promise<Uint8Array | 'TERM' | null> {
  const at = reader.position;
  const len = await reader.peekUint32(what);
  if (len === null) return null;
  if (allowTerminator && len === 0xffffffff) {
    await reader.read(4, what);
    return 'TERM';
  }
  if (len < MIN_BSON_SIZE || len > MAX_BSON_SIZE) {
    throw new LifeboatError(
      'INTEGRITY',
      `${what}: invalid BSON document length ${len} at byte ${at} (must be ${MIN_BSON_SIZE}..${MAX_BSON_SIZE})`,
      { hint: 'the file is not BSON or is corrupted; check that it is a mongodump .bson file or archive' },
    );
  }
  const doc = await reader.read(len, what);
  if (doc[len - 1] !== 0) {
    throw new LifeboatError(
      'INTEGRITY',
      `${what}: BSON document at byte ${at} (length ${len}) does not end with 0x00`,
      {
        hint: 'the file is corrupted; take it again from its source',
      },
    );
  }
  return doc;
}

/** Splits a stream of back-to-back BSON documents (a `.bson` dump file) into documents. */
export async function* splitBson(
  source: AsyncIterable<Uint8Array>,
  what = 'BSON stream',
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    for (;;) {
      const doc = await readDocument(reader, what);
      if (doc === null) return;
      yield doc;
    }
  } finally {
    await reader.close();
  }
}

/**
 * Decodes one raw document. A document whose framing is intact but whose inside is not valid BSON (a
 * damaged .bson file: dump directories carry no checksum) is INTEGRITY naming where it came from, not a
 * bare BSONError from deep inside a restore.
 */
export function decodeDocument(raw: Uint8Array, what: string, options?: DeserializeOptions): Document {
  try {
    return deserialize(raw, options);
  } catch (e) {
    throw new LifeboatError('INTEGRITY', `${what}: a document is not valid BSON (${(e as Error).message})`, {
      hint: 'the data is damaged; if it was imported from a dump directory, check the original .bson file',
    });
  }
}
