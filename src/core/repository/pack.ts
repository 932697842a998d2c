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

/** Reads the header of a whole pack (for check and prune); throws INTEGRITY naming the pack. */
export function readPackHeader(key: Buffer, packId: string, bytes: Buffer): PackedBlob[] {
  const what = `pack ${packId}`;
  if (bytes.length < 4) throw new LifeboatError('INTEGRITY', `${what} is truncated (${bytes.length} bytes)`);
  const hlen = bytes.readUInt32LE(bytes.length - 4);
  if (hlen + 4 > bytes.length)
    throw new LifeboatError('INTEGRITY', `${what} is truncated (header length ${hlen} past the start)`);
  const header = open(
    key,
    bytes.subarray(bytes.length - 4 - hlen, bytes.length - 4),
    `${what} header`,
    'pack-header',
  );
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
  if (offset !== bytes.length - 4 - hlen)
    throw new LifeboatError('INTEGRITY', `${what} header does not match its blobs`);
  return blobs;
}
