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
