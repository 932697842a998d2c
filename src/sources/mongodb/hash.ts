/**
 * The content hash of a collection: the sum, modulo 2^256, of the SHA-256 of each document's raw BSON.
 * A sum does not depend on order, and servers return documents in no guaranteed order (FerretDB's
 * differs between runs; a restored MongoDB collection's natural order differs from the source's), so
 * this is what backup records and restore verification recomputes from the target. Any changed, lost
 * or duplicated document changes it.
 */
import { createHash } from 'node:crypto';

export class CollectionHash {
  // Eight 32-bit limbs, little-endian; carries propagate on each add.
  private readonly limbs = new Uint32Array(8);
  count = 0;
  bytes = 0;

  add(doc: Uint8Array): void {
    const d = createHash('sha256').update(doc).digest();
    let carry = 0;
    for (let i = 0; i < 8; i++) {
      const s = this.limbs[i] + d.readUInt32LE(i * 4) + carry;
      this.limbs[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
    this.count++;
    this.bytes += doc.length;
  }

  hex(): string {
    const b = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) b.writeUInt32LE(this.limbs[i], i * 4);
    return b.toString('hex');
  }
}

/** The hash of the union of two document sets, from their hashes (what a restore into a non-empty target expects). */
export function addHashes(a: string, b: string): string {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  const out = Buffer.alloc(32);
  let carry = 0;
  for (let i = 0; i < 8; i++) {
    const s = x.readUInt32LE(i * 4) + y.readUInt32LE(i * 4) + carry;
    out.writeUInt32LE(s >>> 0, i * 4);
    carry = s > 0xffffffff ? 1 : 0;
  }
  return out.toString('hex');
}
