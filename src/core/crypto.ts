/**
 * Authenticated encryption and keyed hashing for everything the repository stores.
 *
 * - One random 32-byte master key per repository; sub-keys are derived with HKDF so a key used to name
 *   chunks is never the key used to encrypt them.
 * - Sealed objects: nonce (12 random bytes) ‖ AES-256-GCM ciphertext ‖ tag (16). Random nonces are safe for
 *   well below 2^32 objects per key, far beyond any repository's blob count.
 * - Chunk ids are HMAC-SHA-256 of the plain chunk under the id key: deterministic (so identical data
 *   deduplicates) but they reveal nothing about content to someone without the key.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { LifeboatError } from './errors.ts';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;
export const MASTER_KEY_BYTES = 32;

export interface RepositoryKeys {
  /** AES-256-GCM key for every stored object. */
  encryption: Buffer;
  /** HMAC-SHA-256 key naming chunks. */
  id: Buffer;
  /** Seeds the chunker's gear table so chunk boundaries don't leak content patterns either. */
  chunker: Buffer;
}

export function newMasterKey(): Buffer {
  return randomBytes(MASTER_KEY_BYTES);
}

export function deriveKeys(master: Buffer): RepositoryKeys {
  const derive = (info: string) =>
    Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `lifeboat/v1/${info}`, 32));
  return { encryption: derive('encryption'), id: derive('chunk-id'), chunker: derive('chunker') };
}

/** `plaintext` may come in parts (compressParts' codec byte and body): they are sealed as one. */
export function seal(key: Buffer, plaintext: Uint8Array | Uint8Array[], aad?: string): Buffer {
  return Buffer.concat(sealParts(key, plaintext, aad));
}

/**
 * seal, as the parts of the sealed object in order (nonce, ciphertext pieces, tag), not joined: a worker
 * thread moves the ciphertext to the main thread as it is, instead of leaving a joined copy's source
 * behind as garbage.
 */
export function sealParts(key: Buffer, plaintext: Uint8Array | Uint8Array[], aad?: string): Uint8Array[] {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  if (aad) cipher.setAAD(Buffer.from(aad));
  const parts: Uint8Array[] = [nonce];
  for (const p of Array.isArray(plaintext) ? plaintext : [plaintext]) parts.push(cipher.update(p));
  parts.push(cipher.final(), cipher.getAuthTag());
  return parts.filter((p) => p.length > 0);
}

/** Decrypts and authenticates; any tampering, truncation or wrong key throws INTEGRITY with `what`. */
export function open(key: Buffer, sealed: Uint8Array, what: string, aad?: string): Buffer {
  if (sealed.length < SEAL_OVERHEAD) {
    throw new LifeboatError('INTEGRITY', `${what} is truncated (${sealed.length} bytes)`, {
      hint: 'run `lifeboat check --read-data` to list damaged objects',
    });
  }
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const nonce = buf.subarray(0, NONCE_BYTES);
  const tag = buf.subarray(buf.length - TAG_BYTES);
  const body = buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    if (aad) decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(tag);
    const plain = decipher.update(body);
    const rest = decipher.final();
    // GCM is a stream mode: final() only authenticates and returns nothing, so no copy is needed.
    return rest.length ? Buffer.concat([plain, rest]) : plain;
  } catch {
    throw new LifeboatError('INTEGRITY', `${what} failed authentication (corrupted or tampered)`, {
      hint: 'run `lifeboat check --read-data` to list damaged objects and affected snapshots',
    });
  }
}

/**
 * On the calling thread. WebCrypto's HMAC on libuv's pool was tried for restores: its copy of each input
 * cost the main thread about what hashing there does, and 12 MiB more memory (docs/performance.md).
 */
export function chunkId(idKey: Buffer, data: Uint8Array): string {
  return createHmac('sha256', idKey).update(data).digest('hex');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function randomId(): string {
  return randomBytes(32).toString('hex');
}
