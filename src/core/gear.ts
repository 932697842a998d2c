/**
 * FastCDC's gear loop, the inner loop of cutting a byte stream (chunker.ts), run as WebAssembly (gear.wat):
 * V8's JIT runs the same loop in JavaScript at 0.5-1.0 GB/s on this kind of machine, the WebAssembly form
 * at 1.5-2 GB/s, and cutting is most of the cost of re-reading unchanged files.
 *
 * WebAssembly reads only its own memory. A scanner made over a backup's ring of shared memory
 * (scanMemory) hashes the ring's bytes where they lie; any other input is copied into the scanner's memory
 * a window at a time, which costs ~1/20 of hashing it.
 */
import { GEAR_WASM } from './gear-wasm.ts';

const PAGE_BYTES = 64 * 1024;
const TABLE_BYTES = 256 * 4;
/** Bytes copied in per scan for inputs outside the scanner's memory. */
const WINDOW_BYTES = 256 * 1024;

interface GearExports {
  scan(p: number, end: number, hash: number, mask: number): number;
  table: WebAssembly.Global;
  hash: WebAssembly.Global;
}

let compiled: WebAssembly.Module | undefined;

/**
 * Shared memory whose first `size` bytes a GearScanner made over it reads in place (a backup's ring); the
 * scanner keeps its table and copy window after them.
 */
export function scanMemory(size: number): WebAssembly.Memory {
  const pages = Math.ceil((align(size) + TABLE_BYTES + WINDOW_BYTES) / PAGE_BYTES);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

export class GearScanner {
  /** The memory's buffer: inputs that are views of it are scanned where they lie. */
  readonly buffer: SharedArrayBuffer;
  private readonly window: Uint8Array;
  private readonly wasm: GearExports;

  /**
   * `gear` is the chunker's table (chunker.ts gearTable). Over `memory` (from scanMemory(size)), the first
   * `size` bytes are left to the caller; a scanner of its own memory is what a chunker uses by default.
   */
  constructor(gear: Int32Array, memory = scanMemory(0), size = 0) {
    compiled ??= new WebAssembly.Module(Buffer.from(GEAR_WASM, 'base64'));
    const instance = new WebAssembly.Instance(compiled, { lifeboat: { memory } });
    this.wasm = instance.exports as unknown as GearExports;
    this.buffer = memory.buffer as SharedArrayBuffer;
    const tableAt = align(size);
    if (tableAt + TABLE_BYTES + WINDOW_BYTES > this.buffer.byteLength)
      throw new RangeError(`a ${this.buffer.byteLength}-byte memory has no room after ${size} bytes`);
    // WebAssembly is little-endian whatever the host is.
    const table = new DataView(this.buffer, tableAt, TABLE_BYTES);
    for (let i = 0; i < 256; i++) table.setInt32(i * 4, gear[i], true);
    this.wasm.table.value = tableAt;
    this.window = new Uint8Array(this.buffer, tableAt + TABLE_BYTES, WINDOW_BYTES);
  }

  /** The running hash where the last scan stopped: at its cut, or at its end. */
  get hash(): number {
    return this.wasm.hash.value;
  }

  /**
   * Rolls `hash` over data[from, to): hash = ((hash << 1) + gear[byte]) | 0, byte by byte. Returns the
   * index in `data` just after the first byte where (hash & mask) is 0, or -1 if there is none.
   */
  scan(data: Uint8Array, from: number, to: number, hash: number, mask: number): number {
    if (data.buffer === this.buffer) {
      const base = data.byteOffset;
      const cut = this.wasm.scan(base + from, base + to, hash, mask);
      return cut < 0 ? -1 : cut - base;
    }
    const windowAt = this.window.byteOffset;
    for (let at = from; at < to; at += WINDOW_BYTES) {
      const n = Math.min(WINDOW_BYTES, to - at);
      this.window.set(data.subarray(at, at + n));
      const cut = this.wasm.scan(windowAt, windowAt + n, hash, mask);
      if (cut >= 0) return at + (cut - windowAt);
      hash = this.wasm.hash.value;
    }
    this.wasm.hash.value = hash;
    return -1;
  }
}

function align(n: number): number {
  return Math.ceil(n / 4) * 4;
}
