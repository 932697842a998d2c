/**
 * Content-defined chunking, so that an insertion or an edit only changes the chunks around it.
 *
 * Byte streams use FastCDC (Xia et al., 2016) with normalized chunking (level 1): a gear rolling hash, a stricter
 * mask before the target size and a looser one after it, which tightens the size distribution around the
 * average. The gear table is derived from the repository's chunker key ("keyed FastCDC"), so boundaries do
 * not reveal content to someone who can see chunk sizes.
 *
 * Record streams (BSON documents, JSON objects) cut only *between* records, with a cut probability
 * proportional to each record's length, so chunks average the target size whatever the record size.
 * Small chunks (16 KiB) keep scattered document updates cheap; see
 * ../shared/reference/repository-and-performance.md for the measurements behind that choice.
 */
import { createHash } from 'node:crypto';
import { GearScanner } from './gear.ts';

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

/**
 * 512 KiB average: measured over 40 random chunker keys, a 1% overwrite plus a 1 KiB insertion in 64 MiB
 * re-stores 3.5% median / 6% worst with these parameters, against 5% median / 10–15% worst with a 1 MiB
 * average (boundaries resynchronise less often after an edit). The index cost of twice the chunks is small.
 */
export const FILE_CHUNKING: ChunkerParams = { min: 192 * 1024, avg: 512 * 1024, max: 4 * 1024 * 1024 };
export const RECORD_CHUNKING: ChunkerParams = { min: 4 * 1024, avg: 16 * 1024, max: 64 * 1024 };

export function gearTable(key: Buffer): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i += 8) {
    const block = createHash('sha256').update(key).update(Uint8Array.of(i)).digest();
    for (let j = 0; j < 8; j++) table[i + j] = block.readInt32LE(j * 4);
  }
  return table;
}

function highMask(bits: number): number {
  // Gear hash bit k depends on the last k+1 bytes only, so the mask uses the top bits. An int32, as the
  // hash is (gear.wat, and RecordChunker's loop below).
  return bits >= 32 ? -1 : ((2 ** bits - 1) * 2 ** (32 - bits)) | 0;
}

export interface Chunker {
  /**
   * Feeds data; returns the chunks completed by it. The chunker keeps references to `data`, and a chunk
   * that lies wholly inside one `data` is a view of it rather than a copy (a copy per chunk was a
   * measurable share of a backup's allocations), so callers must not modify `data` afterwards: stream
   * reads and driver documents are fresh buffers anyway.
   */
  push(data: Uint8Array): Buffer[];
  /** Returns the final partial chunk, if any. */
  flush(): Buffer | undefined;
}

/** FastCDC over a byte stream; the gear loop itself runs in WebAssembly (gear.ts). */
export class ByteChunker implements Chunker {
  private readonly scanner: GearScanner;
  private readonly min: number;
  private readonly normal: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private parts: Uint8Array[] = [];
  private length = 0;
  private hash = 0;

  /** Given a gear table, the chunker scans with the scanner every chunker of that table shares. */
  constructor(gear: Int32Array | GearScanner, params: ChunkerParams) {
    this.scanner = gear instanceof GearScanner ? gear : ownScanner(gear);
    this.min = params.min;
    this.normal = params.avg;
    this.max = params.max;
    const bits = Math.round(Math.log2(params.avg));
    // Normalization level 1: level 2 tightens sizes further but resynchronises worse after edits.
    this.maskS = highMask(bits + 1);
    this.maskL = highMask(bits - 1);
  }

  push(data: Uint8Array): Buffer[] {
    return this.pushParts(data).map(joined);
  }

  /**
   * push, with each chunk as the views it is made of (one per input it spans), not joined: a caller
   * that copies the chunk somewhere anyway (a backup's shared ring) saves the join.
   */
  pushParts(data: Uint8Array): Uint8Array[][] {
    const out: Uint8Array[][] = [];
    const scanner = this.scanner;
    let start = 0;
    let i = 0;
    const n = data.length;
    while (i < n) {
      let len = this.length + (i - start);
      // Bytes before `min` can never end a chunk: skip them without hashing.
      if (len < this.min) {
        const skip = Math.min(this.min - len, n - i);
        i += skip;
        len += skip;
        if (i >= n) break;
      }
      let cut = -1;
      const normalEnd = Math.min(n, i + Math.max(0, this.normal - len));
      if (i < normalEnd) {
        cut = scanner.scan(data, i, normalEnd, this.hash, this.maskS);
        this.hash = scanner.hash;
        if (cut < 0) i = normalEnd;
      }
      if (cut < 0) {
        len = this.length + (i - start);
        const maxEnd = Math.min(n, i + (this.max - len));
        if (i < maxEnd) {
          cut = scanner.scan(data, i, maxEnd, this.hash, this.maskL);
          this.hash = scanner.hash;
          if (cut < 0) i = maxEnd;
        }
        if (cut < 0 && this.length + (i - start) >= this.max) cut = i;
      }
      if (cut < 0) break;
      out.push(this.take(data, start, cut));
      start = cut;
      i = cut;
    }
    if (start < n) {
      // Keeps a reference, not a copy: callers hand over their buffers (see ItemWriter.write).
      this.parts.push(data.subarray(start, n));
      this.length += n - start;
    }
    return out;
  }

  private take(data: Uint8Array, start: number, end: number): Uint8Array[] {
    const tail = data.subarray(start, end);
    const chunk = this.parts.length === 0 ? [tail] : [...this.parts, tail];
    this.parts = [];
    this.length = 0;
    this.hash = 0;
    return chunk;
  }

  flush(): Buffer | undefined {
    const parts = this.flushParts();
    return parts && joined(parts);
  }

  /** The views kept for the chunk not yet cut (see push): the caller must keep their bytes as they are. */
  get pending(): readonly Uint8Array[] {
    return this.parts;
  }

  /**
   * Hands over the bytes kept for the chunk not yet cut and starts afresh: a new chunker fed those bytes
   * goes on cutting exactly where this one would have (a cut depends only on the bytes since the last).
   */
  takePending(): Uint8Array[] {
    const parts = this.parts;
    this.parts = [];
    this.length = 0;
    this.hash = 0;
    return parts;
  }

  flushParts(): Uint8Array[] | undefined {
    if (this.length === 0) return undefined;
    const chunk = this.parts;
    this.parts = [];
    this.length = 0;
    this.hash = 0;
    return chunk;
  }
}

const ownScanners = new WeakMap<Int32Array, GearScanner>();

function ownScanner(gear: Int32Array): GearScanner {
  let scanner = ownScanners.get(gear);
  if (!scanner) ownScanners.set(gear, (scanner = new GearScanner(gear)));
  return scanner;
}

/** One chunk's parts as one Buffer: a view when it is one part, a copy when it spans several. */
function joined(parts: Uint8Array[]): Buffer {
  if (parts.length > 1) return Buffer.concat(parts);
  const p = parts[0];
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
}

/** Cuts only between records (each `push` is one record); a record larger than `max` is split. */
export class RecordChunker implements Chunker {
  private readonly gear: Int32Array;
  private readonly params: ChunkerParams;
  private parts: Uint8Array[] = [];
  private length = 0;

  constructor(gear: Int32Array, params: ChunkerParams) {
    this.gear = gear;
    this.params = params;
  }

  push(record: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    const { min, avg, max } = this.params;
    if (this.length > 0 && this.length + record.length > max) out.push(this.cut());
    if (record.length > max) {
      // One huge record (a 16 MiB document): fixed-size pieces from its start keep memory bounded;
      // they still deduplicate when the record is unchanged.
      for (let off = 0; off < record.length; off += max) {
        this.parts.push(record.subarray(off, Math.min(off + max, record.length)));
        this.length += Math.min(max, record.length - off);
        if (this.length >= max) out.push(this.cut());
      }
      return out;
    }
    this.parts.push(record);
    this.length += record.length;
    if (this.length >= min && this.boundaryAfter(record, avg)) out.push(this.cut());
    return out;
  }

  /** A cut after this record with probability ≈ record.length / avg, decided by the record's tail bytes. */
  private boundaryAfter(record: Uint8Array, avg: number): boolean {
    let h = 0;
    const gear = this.gear;
    for (let i = Math.max(0, record.length - 64); i < record.length; i++)
      h = ((h << 1) + gear[record[i]]) | 0;
    h >>>= 0;
    const threshold = Math.min(1, record.length / avg) * 0x100000000;
    return h < threshold;
  }

  private cut(): Buffer {
    const chunk = Buffer.concat(this.parts);
    this.parts = [];
    this.length = 0;
    return chunk;
  }

  flush(): Buffer | undefined {
    return this.length === 0 ? undefined : this.cut();
  }
}
