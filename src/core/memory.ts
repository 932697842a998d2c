/**
 * Bounded memory for multi-GiB streams. Every byte of a backup, restore or check passes through a few
 * short-lived Buffers (read, decrypted, decompressed, sealed, pack). They live outside V8's heap, and V8
 * only frees them once enough of them have piled up — tens of MiB per thread, more on a busy machine.
 *
 * Two ways to keep that flat:
 * - discard: frees a buffer the moment its owner is done with it. Free, and the memory is reused warm.
 * - releaseBuffers: a full collection, for garbage no one can point at. It costs ~8–12 ms per call even
 *   on a worker's 6 MiB heap (measured here), so per 4 MiB of data it doubled the time of a check.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | undefined;

export function releaseBuffers(): void {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
}

/**
 * Frees the memory behind each view now, by detaching its ArrayBuffer (`transfer(0)`), instead of at a
 * later collection. Every view of that ArrayBuffer becomes empty, so this is only for buffers the
 * caller made itself (a decrypted or decompressed blob, a range read for checking) and has handed to no
 * one. Views of shared memory, of small or already-detached buffers, and of buffers Node marks as not
 * transferable are left to the collector.
 */
export function discard(...views: (Uint8Array | undefined)[]): void {
  for (const view of views) {
    const buffer = view?.buffer;
    if (!(buffer instanceof ArrayBuffer) || buffer.detached || !discardFrees(buffer.byteLength)) continue;
    try {
      buffer.transfer(0);
    } catch {
      // Not detachable (Node's untransferable buffers): the collector frees it as before.
    }
  }
}

/**
 * Whether discard frees a buffer of this many bytes. Up to Buffer.poolSize (64 KiB in Node 24) a buffer
 * may be a slice of Node's shared pool, which is never to be freed (Node also marks its slabs
 * untransferable), so small ones are left to the collector.
 */
export function discardFrees(byteLength: number): boolean {
  return byteLength > Buffer.poolSize;
}
