/**
 * Bounded memory for multi-GiB streams. Every byte of a backup passes through a few short-lived Buffers
 * (read, chunk, compressed, sealed, pack); they live outside V8's heap, and V8 only collects them once
 * enough external memory has piled up — tens of MiB per generation, more on a busy machine. Releasing a
 * finished pack is the natural moment to collect, so the backup asks for a collection then: at 16 MiB
 * packs that is a few dozen small-heap collections per GiB, and peak RSS stays flat.
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
