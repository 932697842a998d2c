/**
 * Worker thread entry for `check --read-data` (workers.ts): verifies the blobs of one pack range per
 * message with verifyBlobs. The repository keys arrive once, as workerData; the range's bytes are moved
 * in and dropped here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { RepositoryKeys } from '../crypto.ts';
import { releaseBuffers } from '../memory.ts';
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

parentPort!.on('message', ({ id, request }: { id: number; request: PackVerifyRequest }) => {
  let reply: WorkerReply<BlobsVerdict>;
  try {
    const bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
    reply = { id, value: verifyBlobs(keys, request.packId, bytes, request) };
  } catch (e) {
    reply = { id, error: `verifying pack ${request.packId}: ${(e as Error).message}` };
  }
  parentPort!.postMessage(reply);
  // The range and its blobs are garbage now, once this handler has returned: collecting then keeps this
  // worker near one range (memory.ts). Its heap is small, so the collection is cheap.
  setImmediate(() => releaseBuffers());
});
