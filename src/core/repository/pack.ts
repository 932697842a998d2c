/**
 * Pack files, restic-style: sealed blobs back to back, then a sealed header listing them, then the
 * header's sealed length as a little-endian uint32. A pack is named by the SHA-256 of its bytes, so
 * `check --read-data` can detect any change to it without a key, and with the key can say which blob.
 *
 * Header entry (41 bytes): type (1: 0 data, 1 tree) ‖ id (32) ‖ sealed length (u32) ‖ plain length (u32).
 * Offsets follow from the lengths.
 */
import { createHash } from 'node:crypto';
import { decompressSync } from '../compression.ts';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { chunkId, open, seal, type RepositoryKeys } from '../crypto.ts';
import { discard } from '../memory.ts';

export type BlobType = 'data' | 'tree';

export interface PackedBlob {
  id: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
}

export interface FinishedPack {
  id: string;
  /** The pack, a view of `space`. */
  bytes: Buffer;
  blobs: PackedBlob[];
  /** Where the pack was assembled: the next PackBuilder may reuse it once `bytes` is written. */
  space: Buffer;
}

const ENTRY = 41;

/**
 * Assembles one pack. Blobs are copied into one buffer as they come, and hashed there while they are
 * still in the CPU's cache; the caller may hand in the buffer of a pack already written (`space`), so a
 * long backup allocates no new pack-sized buffer per pack. Many pack-sized allocations and frees were
 * what made a multi-GiB backup's RSS creep up, in freed memory the allocator keeps.
 */
export class PackBuilder {
  private space: Buffer;
  private readonly hash = createHash('sha256');
  private blobs: PackedBlob[] = [];
  size = 0;

  constructor(space: Buffer = Buffer.alloc(0)) {
    this.space = space;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** `sealed` may come in parts (sealParts). */
  add(type: BlobType, id: string, sealed: Uint8Array | Uint8Array[], rawLength: number): void {
    const parts = Array.isArray(sealed) ? sealed : [sealed];
    const length = parts.reduce((n, p) => n + p.length, 0);
    this.blobs.push({ id, type, offset: this.size, length, rawLength });
    this.append(parts, length);
  }

  finish(key: Buffer): FinishedPack {
    const header = Buffer.alloc(this.blobs.length * ENTRY);
    this.blobs.forEach((b, i) => {
      const o = i * ENTRY;
      header[o] = b.type === 'data' ? 0 : 1;
      Buffer.from(b.id, 'hex').copy(header, o + 1);
      header.writeUInt32LE(b.length, o + 33);
      header.writeUInt32LE(b.rawLength, o + 37);
    });
    const sealedHeader = seal(key, header, 'pack-header');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(sealedHeader.length);
    this.append([sealedHeader, len], sealedHeader.length + len.length);
    const bytes = this.space.subarray(0, this.size);
    return { id: this.hash.digest('hex'), bytes, blobs: this.blobs, space: this.space };
  }

  private append(parts: Uint8Array[], length: number): void {
    if (this.size + length > this.space.length) {
      // Outgrown (a first pack, or more small blobs than the header room expected): double, then keep.
      const larger = Buffer.allocUnsafe(Math.max(2 * this.space.length, this.size + length, 64 * 1024));
      this.space.copy(larger, 0, 0, this.size);
      this.space = larger;
    }
    for (const part of parts) {
      this.space.set(part, this.size);
      this.hash.update(this.space.subarray(this.size, (this.size += part.length)));
    }
  }
}

/** Bytes at the end of a pack holding the sealed header length. */
export const PACK_TRAILER = 4;

/** Reads the header of a whole pack in memory (prune); throws INTEGRITY naming the pack. */
export function readPackHeader(key: Buffer, packId: string, bytes: Buffer): PackedBlob[] {
  const what = `pack ${packId}`;
  if (bytes.length < PACK_TRAILER)
    throw new LifeboatError('INTEGRITY', `${what} is truncated (${bytes.length} bytes)`);
  const hlen = bytes.readUInt32LE(bytes.length - PACK_TRAILER);
  if (hlen + PACK_TRAILER > bytes.length)
    throw new LifeboatError('INTEGRITY', `${what} is truncated (header length ${hlen} past the start)`);
  return parsePackHeader(key, packId, bytes.subarray(bytes.length - PACK_TRAILER - hlen), bytes.length);
}

/**
 * Parses a pack's tail — the sealed header and the length after it — given the whole pack's size, so the
 * header can be read with two small ranged loads instead of the whole pack (`repair index`).
 */
export function parsePackHeader(key: Buffer, packId: string, tail: Buffer, packSize: number): PackedBlob[] {
  const what = `pack ${packId}`;
  if (tail.length < PACK_TRAILER) throw new LifeboatError('INTEGRITY', `${what} is truncated`);
  const hlen = tail.readUInt32LE(tail.length - PACK_TRAILER);
  if (hlen + PACK_TRAILER !== tail.length || tail.length > packSize)
    throw new LifeboatError('INTEGRITY', `${what} header length ${hlen} does not fit the pack`);
  const header = open(key, tail.subarray(0, hlen), `${what} header`, 'pack-header');
  if (header.length % ENTRY !== 0) throw new LifeboatError('INTEGRITY', `${what} header has a bad size`);
  const blobs: PackedBlob[] = [];
  let offset = 0;
  for (let o = 0; o < header.length; o += ENTRY) {
    const length = header.readUInt32LE(o + 33);
    blobs.push({
      type: header[o] === 0 ? 'data' : 'tree',
      id: header.subarray(o + 1, o + 33).toString('hex'),
      offset,
      length,
      rawLength: header.readUInt32LE(o + 37),
    });
    offset += length;
  }
  if (offset !== packSize - tail.length)
    throw new LifeboatError('INTEGRITY', `${what} header does not match its blobs`);
  return blobs;
}

export interface BlobsVerdict {
  /** Why a blob is damaged (the last one found); absent when every blob is whole. */
  reason?: string;
  /** Blobs that opened and matched their ids. */
  blobsRead: number;
}

/**
 * One piece of a pack that `check --read-data` reads at once: whole blobs (those that start in it),
 * back to back. Together the ranges cover every byte of the pack, header included, in order, so the
 * pack's SHA-256 is computed over them as they arrive.
 */
export interface PackRange {
  offset: number;
  length: number;
  blobs: PackedBlob[];
}

/**
 * Plans the ranges of a pack: blobs in offset order, up to `target` bytes per range (more when one blob
 * is larger), the last range running to the end of the pack. Reading a 16 MiB pack as four ranges keeps a
 * few MiB per pack in memory instead of the whole pack. Index entries that overlap an earlier blob or lie
 * past the pack's end are in no range: the header comparison reports them.
 */
export function planPackRanges(blobs: readonly PackedBlob[], packSize: number, target: number): PackRange[] {
  const ranges: PackRange[] = [];
  let current: PackRange = { offset: 0, length: 0, blobs: [] };
  for (const b of [...blobs].sort((x, y) => x.offset - y.offset)) {
    const end = b.offset + b.length;
    if (b.offset < current.offset + current.length || end > packSize) continue;
    if (current.blobs.length && end - current.offset > target) {
      ranges.push(current);
      current = { offset: current.offset + current.length, length: 0, blobs: [] };
    }
    current.blobs.push(b);
    current.length = end - current.offset;
  }
  current.length = packSize - current.offset;
  ranges.push(current);
  return ranges;
}

/**
 * Authenticates, decompresses and re-hashes one sealed blob on the calling thread, as Repository.openBlob
 * does for a restore; INTEGRITY naming `what` on any mismatch. Keeps nothing: the plain bytes are freed
 * as soon as they are hashed (discard), which is what lets a verifying worker run without forced
 * collections.
 */
function verifyBlobSync(
  keys: RepositoryKeys,
  sealed: Buffer,
  id: string,
  rawLength: number,
  what: string,
): void {
  const decrypted = open(keys.encryption, sealed, what);
  let plain: Buffer | undefined;
  try {
    plain = decompressSync(decrypted, what, rawLength);
    if (plain.length !== rawLength || chunkId(keys.id, plain) !== id)
      throw new LifeboatError('INTEGRITY', `${what} does not match its id`, {
        hint: 'run `lifeboat check --read-data`',
      });
  } finally {
    discard(plain, decrypted);
  }
}

/**
 * Authenticates, decompresses and re-hashes each blob of one range (`bytes` starts at `range.offset` in
 * pack `packId`) on the calling thread: a worker's (pack-verify-worker.ts). Only damage is a verdict;
 * anything else (a bug) throws.
 */
export function verifyBlobs(
  keys: RepositoryKeys,
  packId: string,
  bytes: Buffer,
  range: { offset: number; blobs: readonly PackedBlob[] },
): BlobsVerdict {
  let reason: string | undefined;
  let blobsRead = 0;
  for (const b of range.blobs) {
    const what = `blob ${b.id.slice(0, 12)} in pack ${packId}`;
    try {
      const start = b.offset - range.offset;
      const sealed = bytes.subarray(start, start + b.length);
      if (sealed.length !== b.length) throw new LifeboatError('INTEGRITY', `${what} is truncated`);
      verifyBlobSync(keys, sealed, b.id, b.rawLength, what);
      blobsRead++;
    } catch (e) {
      if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      reason = `blob ${b.id.slice(0, 12)}: ${e.message}`;
    }
  }
  return reason === undefined ? { blobsRead } : { reason, blobsRead };
}

/** Why the pack's header disagrees with what the index says it holds, if it does. */
export function headerMismatch(
  header: readonly PackedBlob[],
  indexed: readonly PackedBlob[],
): string | undefined {
  const byId = new Map(header.map((b) => [b.id, b]));
  let reason: string | undefined;
  for (const b of indexed) {
    const h = byId.get(b.id);
    if (!h || h.offset !== b.offset || h.length !== b.length)
      reason = `blob ${b.id.slice(0, 12)} in the index is not in the pack header`;
  }
  return reason;
}
