/**
 * Pack files, restic-style: sealed blobs back to back, then a sealed header listing them, then the
 * header's sealed length as a little-endian uint32. A pack is named by the SHA-256 of its bytes, so
 * `check --read-data` can detect any change to it without a key, and with the key can say which blob.
 *
 * Header entry (41 bytes): type (1: 0 data, 1 tree) ‖ id (32) ‖ sealed length (u32) ‖ plain length (u32).
 * Offsets follow from the lengths.
 */
import { createHash } from 'node:crypto';
import { LifeboatError } from '../errors.ts';
import { open, seal } from '../crypto.ts';

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
  bytes: Buffer;
  blobs: PackedBlob[];
}

const ENTRY = 41;

export class PackBuilder {
  private parts: Buffer[] = [];
  private blobs: PackedBlob[] = [];
  size = 0;

  get count(): number {
    return this.blobs.length;
  }

  add(type: BlobType, id: string, sealed: Buffer, rawLength: number): void {
    this.blobs.push({ id, type, offset: this.size, length: sealed.length, rawLength });
    this.parts.push(sealed);
    this.size += sealed.length;
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
    const bytes = Buffer.concat([...this.parts, sealedHeader, len]);
    const id = createHash('sha256').update(bytes).digest('hex');
    return { id, bytes, blobs: this.blobs };
  }
}

/** Bytes at the end of a pack holding the sealed header length. */
export const PACK_TRAILER = 4;

/** Reads the header of a whole pack (for check and prune); throws INTEGRITY naming the pack. */
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
