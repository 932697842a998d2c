/**
 * CRC-64/XZ: Go's `hash/crc64` with the ECMA table, which mongodump writes into every namespace's EOF
 * block and mongorestore checks ("CRC mismatch"). Reflected ECMA-182 polynomial 0xC96C5795D7870F42,
 * initial value and final XOR all ones; check("123456789") = 0x995DC9BBDF1939FA.
 *
 * JavaScript has no fast 64-bit integers (BigInt arithmetic allocates), so the register is kept as two
 * uint32 halves and the input is processed eight bytes at a time with slicing-by-8 tables: this runs on
 * every byte of every dump, so it must keep up with the network.
 */

const POLY = 0xc96c5795d7870f42n;

// T[k][i] for k = 0..7, stored as lo/hi halves: 8 tables x 256 entries.
const LO = new Uint32Array(8 * 256);
const HI = new Uint32Array(8 * 256);
{
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ POLY : c >> 1n;
    LO[i] = Number(c & 0xffffffffn);
    HI[i] = Number(c >> 32n);
  }
  for (let i = 0; i < 256; i++) {
    for (let t = 1; t < 8; t++) {
      // T[t][i] = (T[t-1][i] >> 8) ^ T[0][T[t-1][i] & 0xff]
      const plo = LO[(t - 1) * 256 + i];
      const phi = HI[(t - 1) * 256 + i];
      const idx = plo & 0xff;
      LO[t * 256 + i] = ((plo >>> 8) | (phi << 24)) ^ LO[idx];
      HI[t * 256 + i] = (phi >>> 8) ^ HI[idx];
    }
  }
}

export class Crc64 {
  // The register, pre-inverted (Go keeps the finished value and inverts on entry and exit).
  private lo = 0xffffffff;
  private hi = 0xffffffff;

  update(data: Uint8Array): this {
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const n = data.length;
    const end8 = n - (n % 8);
    for (; i < end8; i += 8) {
      const a = (lo ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
      const b = (hi ^ (data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24))) >>> 0;
      const i7 = 7 * 256 + (a & 0xff);
      const i6 = 6 * 256 + ((a >>> 8) & 0xff);
      const i5 = 5 * 256 + ((a >>> 16) & 0xff);
      const i4 = 4 * 256 + (a >>> 24);
      const i3 = 3 * 256 + (b & 0xff);
      const i2 = 2 * 256 + ((b >>> 8) & 0xff);
      const i1 = 256 + ((b >>> 16) & 0xff);
      const i0 = b >>> 24;
      lo = LO[i7] ^ LO[i6] ^ LO[i5] ^ LO[i4] ^ LO[i3] ^ LO[i2] ^ LO[i1] ^ LO[i0];
      hi = HI[i7] ^ HI[i6] ^ HI[i5] ^ HI[i4] ^ HI[i3] ^ HI[i2] ^ HI[i1] ^ HI[i0];
    }
    for (; i < n; i++) {
      const idx = (lo ^ data[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ LO[idx];
      hi = (hi >>> 8) ^ HI[idx];
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
    return this;
  }

  /** The CRC so far as an unsigned 64-bit value. */
  digest(): bigint {
    return (BigInt(~this.hi >>> 0) << 32n) | BigInt(~this.lo >>> 0);
  }
}

export function crc64(data: Uint8Array): bigint {
  return new Crc64().update(data).digest();
}
