/**
 * Worker thread entry for a backup (workers.ts). Four kinds of work:
 *
 * - `cut`: cuts an item's bytes into chunks (FastCDC). The chunkers' state lives here between an item's
 *   writes, so the session sends every `cut` to the same worker, in order.
 * - `hash`: adds an item's bytes to its SHA-256, on another worker than the cutting one (HASH_WORKER),
 *   in order, so the main thread is left to read.
 * - `name`: a chunk's keyed id (HMAC-SHA-256), on any worker. The hashes are the costliest steps of
 *   reading unchanged data: on the cutting worker, naming kept the other idle.
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
import { createHash, createHmac, type Hash } from 'node:crypto';
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
  | { op: 'hash'; item: number; offset: number; length: number; last: boolean }
  | { op: 'name'; offset: number; length: number }
  | { op: 'encode'; offset: number; length: number; compression: CompressionOptions };

/**
 * A chunk cut on a worker: where it lies in the ring, to be named there (`name`), or, for a chunk that
 * spans the ring's end and so is not one range of it, its bytes and id (rare: named as it is copied).
 */
export type CutChunk = { offset: number; length: number } | { id: string; data: Uint8Array };

export interface CutResult {
  chunks: CutChunk[];
  /** Where the bytes kept for the next chunk start in the ring: the session must not reuse them. */
  holdFrom: number | undefined;
}

/**
 * The chunks an item's bytes completed (`cut`), its SHA-256 after the last `hash` (else ''), a chunk's id
 * (`name`), or a sealed blob in its parts (`encode`).
 */
export type BackupWorkerResult = CutResult | string | Uint8Array[];

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
const hashes = new Map<number, Hash>();

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
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (parts.every((p, i) => i === 0 || p.byteOffset === parts[i - 1].byteOffset + parts[i - 1].length)) {
      chunks.push({ offset: parts[0].byteOffset, length });
    } else {
      const data = Buffer.allocUnsafeSlow(length);
      let at = 0;
      for (const p of parts) {
        data.set(p, at);
        at += p.length;
      }
      chunks.push({ id: chunkId(data), data });
      transfer.push(data.buffer);
    }
  }
  return { result: { chunks, holdFrom: chunker.pending[0]?.byteOffset }, transfer };
}

/** Adds the bytes to the item's SHA-256; on the last request, returns it (hex) and forgets the item. */
function hash(request: Extract<BackupWorkerRequest, { op: 'hash' }>): string {
  let h = hashes.get(request.item);
  if (!h) hashes.set(request.item, (h = createHash('sha256')));
  h.update(ring.subarray(request.offset, request.offset + request.length));
  if (!request.last) return '';
  hashes.delete(request.item);
  return h.digest('hex');
}

function chunkId(chunk: Uint8Array): string {
  return createHmac('sha256', idKey).update(chunk).digest('hex');
}

parentPort!.on('message', ({ id, request }: { id: number; request: BackupWorkerRequest }) => {
  let reply: WorkerReply<BackupWorkerResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'cut') {
      const done = cut(request);
      reply = { id, value: done.result };
      transfer = done.transfer;
    } else if (request.op === 'hash') {
      reply = { id, value: hash(request) };
    } else if (request.op === 'name') {
      reply = { id, value: chunkId(ring.subarray(request.offset, request.offset + request.length)) };
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
