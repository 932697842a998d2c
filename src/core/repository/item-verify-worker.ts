/**
 * Worker thread entry for reading an item back (Repository.readItem, workers.ts): the two hashes that
 * verify what a restore writes. A restore's main thread took ~0.8 s of its ~1.5 s of CPU per 512 MiB in
 * them (HMAC-SHA-256 of each blob against its id, then the item's SHA-256), while the other core idled.
 *
 * Each `verify` moves one opened blob's bytes here and back again (no copy either way); the item's
 * SHA-256 needs them in order, so one item's requests are all pinned to one worker, which runs them in
 * the order sent. Nothing is allocated per blob but the digest, so this thread makes no garbage.
 */
import { createHash, createHmac, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerReply } from '../workers.ts';

export type ItemVerifyRequest =
  /** Checks one blob against its id and adds it to item `item`'s SHA-256 (only if it matched). */
  | { op: 'verify'; item: number; id: string; buffer: ArrayBuffer; offset: number; length: number }
  /** The item's SHA-256 (hex); the item is forgotten. */
  | { op: 'digest'; item: number }
  /** Forgets an item read only in part (its reader stopped or failed). */
  | { op: 'drop'; item: number };

/** A blob's bytes, given back, and whether they matched its id; or an item's digest. */
export type ItemVerifyResult =
  { buffer: ArrayBuffer; offset: number; length: number; matches: boolean } | string;

const idKey = Buffer.from((workerData as { id: Uint8Array }).id);
const hashes = new Map<number, Hash>();

function verify(request: Extract<ItemVerifyRequest, { op: 'verify' }>): ItemVerifyResult {
  const { buffer, offset, length } = request;
  const bytes = new Uint8Array(buffer, offset, length);
  const matches = createHmac('sha256', idKey).update(bytes).digest('hex') === request.id;
  if (matches) {
    let hash = hashes.get(request.item);
    if (!hash) hashes.set(request.item, (hash = createHash('sha256')));
    hash.update(bytes);
  }
  return { buffer, offset, length, matches };
}

parentPort!.on('message', ({ id, request }: { id: number; request: ItemVerifyRequest }) => {
  let reply: WorkerReply<ItemVerifyResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'verify') {
      reply = { id, value: verify(request) };
      transfer = [request.buffer];
    } else {
      const hash = hashes.get(request.item) ?? createHash('sha256');
      hashes.delete(request.item);
      reply = { id, value: request.op === 'digest' ? hash.digest('hex') : '' };
    }
  } catch (e) {
    reply = { id, error: `verifying an item's content: ${(e as Error).message}` };
  }
  parentPort!.postMessage(reply, transfer);
});
