/**
 * Worker thread entry for reading blobs (workers.ts, Repository.openBlob): authenticates, decompresses
 * and re-hashes one sealed blob per message, the work a restore's main thread otherwise does alone.
 *
 * The sealed blob is moved in, the plain content moved back. Everything else this leaves behind would
 * be garbage here: each worker would let tens of MiB pile up before its own collection (the reason an
 * earlier trial of restore on workers peaked 100 MiB higher, docs/performance.md). So the spent sealed
 * blob and the decrypted body are moved to the main thread with the reply too, where they are collected
 * with the main thread's own garbage.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { RepositoryKeys } from '../crypto.ts';
import { isLifeboatError, type ErrorCode } from '../errors.ts';
import type { WorkerReply } from '../workers.ts';
import { openBlobSync } from './pack.ts';

export interface BlobOpenRequest {
  sealed: Uint8Array;
  id: string;
  rawLength: number;
  /** For messages: `blob 1f2e… in pack 9a8b…`. */
  what: string;
}

/** The plain content, or the operator-facing error the main thread would have thrown. */
export type BlobOpenResult = { plain: Uint8Array } | { code: ErrorCode; message: string; hint?: string };

/**
 * Only a buffer that large can be moved without harm: smaller Buffers may share one of Node's 8 KiB
 * pool slabs with others still in use.
 */
const MOVABLE_MIN_BYTES = 64 * 1024;

const raw = workerData as { encryption: Uint8Array; id: Uint8Array; chunker: Uint8Array };
const keys: RepositoryKeys = {
  encryption: Buffer.from(raw.encryption),
  id: Buffer.from(raw.id),
  chunker: Buffer.from(raw.chunker),
};

parentPort!.on('message', ({ id, request }: { id: number; request: BlobOpenRequest }) => {
  let reply: WorkerReply<BlobOpenResult>;
  const transfer = new Set<ArrayBuffer>();
  try {
    const { sealed, id: blob, rawLength, what } = request;
    const { plain, opened } = openBlobSync(keys, sealed, blob, rawLength, what);
    reply = { id, value: { plain } };
    // The plain content's buffer, then the spent ones: the decrypted body (the plain content's own
    // buffer for a stored blob, a view past the codec byte) and the sealed input.
    for (const b of [plain.buffer, opened.buffer, request.sealed.buffer])
      if (b instanceof ArrayBuffer && b.byteLength >= MOVABLE_MIN_BYTES) transfer.add(b);
  } catch (e) {
    reply = isLifeboatError(e)
      ? { id, value: { code: e.code, message: e.message, hint: e.hint } }
      : { id, error: `opening ${request.what}: ${(e as Error).message}` };
  }
  parentPort!.postMessage(reply, [...transfer]);
});
