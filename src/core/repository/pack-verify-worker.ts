/**
 * Worker thread entry for `check --read-data` (workers.ts): verifies the blobs of one pack range per
 * message with verifyBlobs. The repository keys arrive once, as workerData; the range's bytes are moved
 * in and freed here once verified (discard), as verifyBlobs frees each blob's plain bytes: so this
 * thread holds about one range and needs no forced collection.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { RepositoryKeys } from '../crypto.ts';
import { discard, discardFrees, releaseBuffers } from '../memory.ts';
import type { WorkerReply } from '../workers.ts';
import { verifyBlobs, type BlobsVerdict, type PackedBlob } from './pack.ts';

export interface PackVerifyRequest {
  packId: string;
  /** The range's bytes, starting at `offset` in the pack. */
  bytes: Uint8Array;
  offset: number;
  blobs: PackedBlob[];
}

const raw = workerData as { encryption: Uint8Array; id: Uint8Array; chunker: Uint8Array };
const keys: RepositoryKeys = {
  encryption: Buffer.from(raw.encryption),
  id: Buffer.from(raw.id),
  chunker: Buffer.from(raw.chunker),
};

/**
 * Bytes of blobs too small to free at once (discard leaves them to the collector: database records
 * average 16 KiB) verified since the last collection. A full collection costs ~10 ms here, so one per
 * 32 MiB of them keeps this thread small at a few percent of its time; file data never needs one.
 */
const COLLECT_EVERY_SMALL_BYTES = 32 * 1024 * 1024;
let smallSinceCollect = 0;

parentPort!.on('message', ({ id, request }: { id: number; request: PackVerifyRequest }) => {
  let reply: WorkerReply<BlobsVerdict>;
  let bytes: Buffer | undefined;
  try {
    bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
    reply = { id, value: verifyBlobs(keys, request.packId, bytes, request) };
    for (const b of request.blobs)
      if (!discardFrees(b.rawLength)) smallSinceCollect += b.length + b.rawLength;
  } catch (e) {
    reply = { id, error: `verifying pack ${request.packId}: ${(e as Error).message}` };
  } finally {
    discard(bytes);
  }
  parentPort!.postMessage(reply);
  if (smallSinceCollect >= COLLECT_EVERY_SMALL_BYTES) {
    smallSinceCollect = 0;
    setImmediate(() => releaseBuffers());
  }
});
