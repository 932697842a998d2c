/**
 * Worker thread entry for a backup (workers.ts). Two kinds of work:
 *
 * - `cut`: cuts an item's bytes into chunks (FastCDC) and names each (its keyed id). The chunkers' state
 *   lives here between an item's writes, so the session sends every `cut` to the same worker, in order.
 * - `encode`: compresses and seals one new chunk.
 *
 * Bytes are neither moved nor copied to get here: the session writes an item's bytes into a ring of
 * shared memory (SharedRing, given once as workerData) and sends their place; a chunk keeps its place
 * from the cut to the encode. What comes back is ids, places and sealed blobs.
 *
 * Garbage is what made worker threads cost memory before: each worker let tens of MiB of buffers pile up
 * before its own collection, and forcing collections cost ~10 ms each. Here the ciphertext is moved to
 * the main thread with the reply, which frees it once it is in a pack, and the compressor's output is
 * freed as soon as it is sealed (discard, memory.ts): this thread keeps almost nothing.
 */
import { createHmac } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { ByteChunker, gearTable, type ChunkerParams } from '../chunker.ts';
import { compressPartsSync, ownBody, type CompressionOptions } from '../compression.ts';
import { sealParts } from '../crypto.ts';
import { GearScanner } from '../gear.ts';
import { discard } from '../memory.ts';
import { movable, type WorkerReply } from '../workers.ts';

/** Offsets and lengths are places in the shared ring. */
export type BackupWorkerRequest =
  | { op: 'cut'; item: number; offset: number; length: number; last: boolean }
  | { op: 'encode'; offset: number; length: number; compression: CompressionOptions };

/**
 * A chunk cut on a worker: where it lies in the ring, or, for a chunk that spans the ring's end and so
 * is not one range of it, its bytes.
 */
export type CutChunk = { id: string; offset: number; length: number } | { id: string; data: Uint8Array };

export interface CutResult {
  chunks: CutChunk[];
  /** Where the bytes kept for the next chunk start in the ring: the session must not reuse them. */
  holdFrom: number | undefined;
}

/** The chunks an item's bytes completed (`cut`), or a sealed blob in its parts (`encode`). */
export type BackupWorkerResult = CutResult | Uint8Array[];

export interface BackupWorkerData {
  encryption: Uint8Array;
  id: Uint8Array;
  chunker: Uint8Array;
  params: ChunkerParams;
  /** The ring's memory (backup.ts); the ring is its first `ringBytes` bytes. */
  ring: WebAssembly.Memory;
  ringBytes: number;
}

const setup = workerData as BackupWorkerData;
const encryptionKey = Buffer.from(setup.encryption);
const idKey = Buffer.from(setup.id);
// One scanner for every item's chunker: it reads the ring in place.
const scanner = new GearScanner(gearTable(Buffer.from(setup.chunker)), setup.ring, setup.ringBytes);
const ring = new Uint8Array(scanner.buffer, 0, setup.ringBytes);
const chunkers = new Map<number, ByteChunker>();

function cut(request: Extract<BackupWorkerRequest, { op: 'cut' }>): {
  result: CutResult;
  transfer: ArrayBuffer[];
} {
  let chunker = chunkers.get(request.item);
  if (!chunker) chunkers.set(request.item, (chunker = new ByteChunker(scanner, setup.params)));
  const cuts = chunker.pushParts(ring.subarray(request.offset, request.offset + request.length));
  if (request.last) {
    const rest = chunker.flushParts();
    if (rest) cuts.push(rest);
    chunkers.delete(request.item);
  }
  const chunks: CutChunk[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const parts of cuts) {
    const hmac = createHmac('sha256', idKey);
    for (const p of parts) hmac.update(p);
    const id = hmac.digest('hex');
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (parts.every((p, i) => i === 0 || p.byteOffset === parts[i - 1].byteOffset + parts[i - 1].length)) {
      chunks.push({ id, offset: parts[0].byteOffset, length });
    } else {
      const data = Buffer.allocUnsafeSlow(length);
      let at = 0;
      for (const p of parts) {
        data.set(p, at);
        at += p.length;
      }
      chunks.push({ id, data });
      transfer.push(data.buffer);
    }
  }
  return { result: { chunks, holdFrom: chunker.pending[0]?.byteOffset }, transfer };
}

parentPort!.on('message', ({ id, request }: { id: number; request: BackupWorkerRequest }) => {
  let reply: WorkerReply<BackupWorkerResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'cut') {
      const done = cut(request);
      reply = { id, value: done.result };
      transfer = done.transfer;
    } else {
      const chunk = ring.subarray(request.offset, request.offset + request.length);
      const compressed = compressPartsSync(chunk, request.compression);
      const sealed = sealParts(encryptionKey, compressed);
      transfer = sealed.flatMap(movable);
      // The compressor's output is garbage once sealed (memory.ts).
      discard(ownBody(compressed));
      reply = { id, value: sealed };
    }
  } catch (e) {
    reply = { id, error: `encoding a chunk: ${(e as Error).message}` };
  }
  parentPort!.postMessage(reply, transfer);
});
