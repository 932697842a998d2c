/** Deterministic pseudo-random test data, fast enough to generate gigabytes on the fly (AES-CTR keystream). */
import { createCipheriv, createHash } from 'node:crypto';

export function pseudoRandom(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

/** Yields `total` bytes in `part`-sized buffers, never holding more than one part. */
export async function* pseudoRandomStream(
  seed: string,
  total: number,
  part = 4 * 1024 * 1024,
): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(part);
  for (let done = 0; done < total; done += part) {
    yield cipher.update(zeros.subarray(0, Math.min(part, total - done)));
  }
}

/** Feeds a buffer in pieces of `size` bytes (1 = every document straddles chunk borders). */
export async function* chunked(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
