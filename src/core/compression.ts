/**
 * Per-blob compression. zstd (Node 24's built-in, no native addon) by default, gzip for compatibility,
 * none for incompressible data.
 *
 * Compression's async functions run on libuv's thread pool, so the caller goes on while the pool
 * compresses (backups of files compress on worker threads instead, with compressPartsSync); zstd
 * decompression runs in place (see decompress). At most one pool call per core runs at a time:
 * each async zstd call allocates a fresh context, and with many in flight the allocator thrashes (measured
 * here: level 3 falls from ~430 MiB/s to ~130 MiB/s with every call in parallel, ~290 with two).
 *
 * A compressed blob starts with one byte naming its codec, so readers never need the writer's settings.
 */
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { LifeboatError } from './errors.ts';
import { discard, discardFrees } from './memory.ts';

export type Codec = 'zstd' | 'gzip' | 'none';
export const CODECS: readonly Codec[] = ['zstd', 'gzip', 'none'];

const CODEC_BYTE: Record<Codec, number> = { none: 0, zstd: 1, gzip: 2 };
const CODEC_PREFIX: Record<Codec, Uint8Array> = {
  none: Uint8Array.of(CODEC_BYTE.none),
  zstd: Uint8Array.of(CODEC_BYTE.zstd),
  gzip: Uint8Array.of(CODEC_BYTE.gzip),
};

export interface CompressionOptions {
  codec: Codec;
  /** zstd 1–19 (default 3), gzip 1–9 (default 6). */
  level?: number;
}

/**
 * Media uploads and already-compressed files make up much of a chat server's volume data. Compressing a
 * 64 KiB sample first (zstd level 1, cheap) tells whether the whole chunk is worth compressing, so such
 * data costs almost nothing to store. zstd alone would pass incompressible blocks through quickly too,
 * but it would allocate a chunk-sized output for each of them: without the probe, that garbage made a
 * 3 GiB backup of random data peak 68 MiB higher than a 256 MiB one (test/core/large-stream.test.ts).
 */
const PROBE_BYTES = 64 * 1024;

const zstdCompressAsync = promisify(zlib.zstdCompress);
const gzipAsync = promisify(zlib.gzip);
const gunzipAsync = promisify(zlib.gunzip);

const SLOTS = Math.max(1, availableParallelism());
let active = 0;
const waiting: (() => void)[] = [];

async function inSlot<T>(fn: () => Promise<T>): Promise<T> {
  while (active >= SLOTS) await new Promise<void>((resolve) => waiting.push(resolve));
  active++;
  try {
    return await fn();
  } finally {
    active--;
    waiting.shift()?.();
  }
}

/**
 * zlib's one-shot functions emit their output in `chunkSize` pieces (16 KiB by default) and concatenate
 * them at the end: for a 512 KiB blob that is dozens of callbacks and copies on the main thread, which
 * profiling showed as the largest single cost of backup and restore. Sizing the output buffer to the
 * largest possible result makes every call return one piece. zstd's and deflate's worst-case growth are
 * both well under 1% + 1 KiB.
 */
function outputBound(inputLength: number): number {
  return Math.max(MIN_OUTPUT_BYTES, inputLength + (inputLength >> 7) + 1024);
}
const MIN_OUTPUT_BYTES = 64 * 1024;

/** compress, as one buffer (metadata objects: index, snapshots). */
export async function compress(data: Uint8Array, opts: CompressionOptions): Promise<Buffer> {
  return Buffer.concat(await compressParts(data, opts));
}

/**
 * compress, as its two parts (the codec byte, then the body), which seal() encrypts in turn: joining
 * them first would copy every blob once more, an allocation per chunk that the backup's garbage
 * collector then has to pay for.
 */
export function compressParts(data: Uint8Array, opts: CompressionOptions): Promise<Uint8Array[]> {
  return inSlot(async () => {
    if (opts.codec === 'none') return framed('none', data);
    const sample = probeSample(data);
    if (sample && incompressible(await zstdCompressAsync(sample, PROBE_OPTIONS))) return framed('none', data);
    const body =
      opts.codec === 'zstd'
        ? await zstdCompressAsync(data, zstdOptions(data, opts))
        : await gzipAsync(data, gzipOptions(data, opts));
    return smaller(opts.codec, data, body);
  });
}

/**
 * compressParts on the calling thread, for worker threads (blob-encode-worker.ts) and for small blobs:
 * each async call costs the main thread ~0.2 ms of set-up (measured), more than compressing a 64 KiB
 * blob takes.
 */
export function compressPartsSync(data: Uint8Array, opts: CompressionOptions): Uint8Array[] {
  if (opts.codec === 'none') return framed('none', data);
  const sample = probeSample(data);
  if (sample && incompressible(zlib.zstdCompressSync(sample, PROBE_OPTIONS))) return framed('none', data);
  const body =
    opts.codec === 'zstd'
      ? zlib.zstdCompressSync(data, zstdOptions(data, opts))
      : zlib.gzipSync(data, gzipOptions(data, opts));
  return smaller(opts.codec, data, body);
}

/**
 * The body of a compress result when zlib made it in that call and no other view shares its memory: the
 * caller may free it once sealed (memory.ts, discard). Undefined for a stored ('none') body, which is the
 * caller's own input, and for a small body, which may be a slice of Node's shared Buffer pool (the
 * thread-pool path joins its output, and a join that small comes from the pool).
 */
export function ownBody(parts: Uint8Array[]): Uint8Array | undefined {
  const [prefix, body] = parts;
  if (prefix[0] === CODEC_BYTE.none || !(body.buffer instanceof ArrayBuffer)) return undefined;
  return discardFrees(body.buffer.byteLength) ? body : undefined;
}

const framed = (codec: Codec, body: Uint8Array): Uint8Array[] => [CODEC_PREFIX[codec], body];
function smaller(codec: Codec, data: Uint8Array, body: Buffer): Uint8Array[] {
  if (body.length < data.length) return framed(codec, body);
  discard(body);
  return framed('none', data);
}

const PROBE_OPTIONS = {
  chunkSize: outputBound(PROBE_BYTES),
  params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 },
};
/** Whether the probe's output says the chunk is not worth compressing; the output is freed either way. */
function incompressible(probe: Buffer): boolean {
  const verdict = probe.length > PROBE_BYTES * 0.97;
  discard(probe);
  return verdict;
}

/** The middle PROBE_BYTES of a chunk big enough to be worth probing. */
function probeSample(data: Uint8Array): Uint8Array | undefined {
  if (data.length < 4 * PROBE_BYTES) return undefined;
  const start = Math.floor((data.length - PROBE_BYTES) / 2);
  return data.subarray(start, start + PROBE_BYTES);
}

const zstdOptions = (data: Uint8Array, opts: CompressionOptions): zlib.ZstdOptions => ({
  chunkSize: outputBound(data.length),
  params: { [zlib.constants.ZSTD_c_compressionLevel]: opts.level ?? 3 },
});
const gzipOptions = (data: Uint8Array, opts: CompressionOptions): zlib.ZlibOptions => ({
  level: opts.level ?? 6,
  chunkSize: outputBound(data.length),
});

/**
 * `expectedLength`, when the caller knows it (blobs: the index records their plain length), sizes the
 * output in one piece and caps it: a damaged or hostile blob cannot inflate past what it should be.
 *
 * zstd runs on the calling thread: it inflates at 1–2 GB/s, so a blob takes less time than handing it
 * to the thread pool costs the caller (measured here: ~0.35 ms of the main thread per async call, ~0.2 ms
 * to inflate a 512 KiB blob in place). gzip, several times slower, still goes to the pool.
 */
export function decompress(data: Buffer, what: string, expectedLength?: number): Promise<Buffer> {
  const codec = codecOf(data, what);
  if (codec instanceof LifeboatError) return Promise.reject(codec);
  const body = data.subarray(1);
  if (codec === 'none') return Promise.resolve(body);
  if (codec === 'zstd') {
    try {
      return Promise.resolve(zlib.zstdDecompressSync(body, outputSizing(expectedLength)));
    } catch (e) {
      return Promise.reject(cannotDecompress(e, what, expectedLength));
    }
  }
  return inSlot(async () => {
    try {
      return await gunzipAsync(body, outputSizing(expectedLength));
    } catch (e) {
      throw cannotDecompress(e, what, expectedLength);
    }
  });
}

/**
 * decompress on the calling thread, for worker threads (pack-verify-worker.ts): there a thread-pool hop
 * would only add a context switch, and the worker is the parallelism.
 */
export function decompressSync(data: Buffer, what: string, expectedLength?: number): Buffer {
  const codec = codecOf(data, what);
  if (codec instanceof LifeboatError) throw codec;
  const body = data.subarray(1);
  if (codec === 'none') return body;
  try {
    const sizing = outputSizing(expectedLength);
    return codec === 'zstd' ? zlib.zstdDecompressSync(body, sizing) : zlib.gunzipSync(body, sizing);
  } catch (e) {
    throw cannotDecompress(e, what, expectedLength);
  }
}

function codecOf(data: Buffer, what: string): Codec | LifeboatError {
  if (data[0] === CODEC_BYTE.none) return 'none';
  if (data[0] === CODEC_BYTE.zstd) return 'zstd';
  if (data[0] === CODEC_BYTE.gzip) return 'gzip';
  return new LifeboatError('INTEGRITY', `${what}: unknown compression codec ${data[0]}`, {
    hint: 'this repository was written by a newer Lifeboat, or the blob is damaged',
  });
}

function outputSizing(expectedLength: number | undefined): { chunkSize?: number; maxOutputLength?: number } {
  return expectedLength === undefined
    ? {}
    : { chunkSize: Math.max(64, expectedLength + 1), maxOutputLength: expectedLength + 1 };
}

function cannotDecompress(e: unknown, what: string, expectedLength: number | undefined): LifeboatError {
  const why =
    (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      ? `it inflates past its recorded ${expectedLength} bytes`
      : (e as Error).message;
  return new LifeboatError('INTEGRITY', `${what}: cannot decompress (${why})`, {
    hint: 'run `lifeboat check --read-data`',
  });
}
