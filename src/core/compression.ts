/**
 * Per-blob compression. zstd (Node 24's built-in, no native addon) by default, gzip for compatibility,
 * none for incompressible data. Async calls run on libuv's thread pool, which is what lets a backup use
 * both cores: the main thread chunks, hashes and encrypts while the pool compresses.
 *
 * A compressed blob starts with one byte naming its codec, so readers never need the writer's settings.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { LifeboatError } from './errors.ts';

export type Codec = 'zstd' | 'gzip' | 'none';
export const CODECS: readonly Codec[] = ['zstd', 'gzip', 'none'];

const CODEC_BYTE: Record<Codec, number> = { none: 0, zstd: 1, gzip: 2 };

const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress);
const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

export interface CompressionOptions {
  codec: Codec;
  /** zstd 1–19 (default 3), gzip 1–9 (default 6). */
  level?: number;
}

const PROBE_BYTES = 64 * 1024;

/**
 * Media uploads and already-compressed files make up much of a chat server's volume data. Compressing a
 * 64 KiB sample first (zstd level 1, cheap) tells whether the whole chunk is worth compressing, so such
 * data costs almost nothing to store.
 */
async function looksIncompressible(data: Uint8Array): Promise<boolean> {
  if (data.length < 4 * PROBE_BYTES) return false;
  const start = Math.floor((data.length - PROBE_BYTES) / 2);
  const sample = data.subarray(start, start + PROBE_BYTES);
  const packed = await zstdCompress(sample, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } });
  return packed.length > PROBE_BYTES * 0.97;
}

export async function compress(data: Uint8Array, opts: CompressionOptions): Promise<Buffer> {
  let body: Buffer;
  let codec = opts.codec;
  if (codec !== 'none' && (await looksIncompressible(data))) codec = 'none';
  if (codec === 'zstd') {
    body = await zstdCompress(data, {
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: opts.level ?? 3,
        [zlib.constants.ZSTD_c_checksumFlag]: 0,
      },
    });
  } else if (codec === 'gzip') {
    body = await gzip(data, { level: opts.level ?? 6 });
  } else {
    body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  // Incompressible data (media uploads, already-compressed files) is stored as is.
  if (codec !== 'none' && body.length >= data.length) {
    codec = 'none';
    body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = CODEC_BYTE[codec];
  body.copy(out, 1);
  return out;
}

export async function decompress(data: Buffer, what: string): Promise<Buffer> {
  const body = data.subarray(1);
  try {
    switch (data[0]) {
      case 0:
        return body;
      case 1:
        return await zstdDecompress(body);
      case 2:
        return await gunzip(body);
    }
  } catch (e) {
    throw new LifeboatError('INTEGRITY', `${what}: cannot decompress (${(e as Error).message})`, {
      hint: 'run `lifeboat check --read-data`',
    });
  }
  throw new LifeboatError('INTEGRITY', `${what}: unknown compression codec ${data[0]}`, {
    hint: 'this repository was written by a newer Lifeboat, or the blob is damaged',
  });
}
