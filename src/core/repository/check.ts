/**
 * Integrity checking, restic's `check`:
 * - structure: config, keys, every index file and snapshot decrypts; every pack the index names exists
 *   with the right size; every blob a snapshot references is indexed;
 * - `readData`: every pack (or a subset) is read in full, range by range, its SHA-256 compared with its
 *   name, its header authenticated and compared with the index, and every blob decrypted, decompressed
 *   and re-hashed against its id on worker threads.
 * Damaged packs are reported with the snapshots that need them, so an operator knows what is lost.
 * Every problem is said once, with the command that deals with it: a damaged index file once (not once per
 * pack it listed), packs no index lists as one line, damaged snapshot objects by id.
 */
import { createHash } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { mapLimit } from '../concurrency.ts';
import { WorkerPool, movable, workerCount, workerEntry } from '../workers.ts';
import { PACK_TRAILER, headerMismatch, parsePackHeader, planPackRanges, type BlobsVerdict } from './pack.ts';
import type { PackVerifyRequest } from './pack-verify-worker.ts';
import type { IndexedPack, Repository } from './repository.ts';
import type { Snapshot } from './model.ts';

/** Packs read at once, and worker threads verifying their blobs (fewer on fewer cores). */
const MAX_VERIFY_WORKERS = 4;
/**
 * Bytes of a pack read at once. Each pack being read holds at most two ranges (one verified on a worker,
 * the next being read), so memory stays near a few ranges per core instead of whole packs.
 */
const RANGE_BYTES = 4 * 1024 * 1024;

export interface CheckOptions {
  readData?: boolean;
  /** `n/t` (the n-th of t groups of packs) or `p%` (a random p percent). */
  readDataSubset?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface DamagedPack {
  pack: string;
  reason: string;
  snapshots: string[];
}

export interface BrokenSnapshot {
  id: string;
  /** Unknown when the snapshot object itself cannot be read. */
  type?: string;
  timestamp?: string;
  problem: string;
}

export interface CheckReport {
  ok: boolean;
  errors: string[];
  warnings: string[];
  damagedPacks: DamagedPack[];
  /** Snapshots that cannot be restored in full: their own object is damaged, or data they need is. */
  damagedSnapshots: string[];
  /** The same snapshots with the first reason found for each (what `repair snapshots` reports). */
  brokenSnapshots: BrokenSnapshot[];
  /** Index files that cannot be read (`lifeboat repair index` rebuilds the index from the packs). */
  damagedIndexFiles: string[];
  /** Packs no readable index lists: leftovers of interrupted backups, or listed only by a damaged index. */
  unindexedPacks: { count: number; bytes: number };
  /** Temp files of interrupted writes. */
  leftovers: { count: number; bytes: number };
  /** What to run next, in order; empty when the repository is clean. */
  next: string[];
  snapshots: number;
  packs: number;
  packsRead: number;
  blobsRead: number;
}

function selectSubset(ids: string[], subset: string | undefined): string[] {
  if (!subset) return ids;
  const sorted = [...ids].sort();
  let m = /^(\d+)\/(\d+)$/.exec(subset);
  if (m) {
    const n = Number(m[1]);
    const t = Number(m[2]);
    if (n < 1 || n > t)
      throw new LifeboatError('USAGE', `--read-data-subset ${subset}: n must be between 1 and ${t}`);
    return sorted.filter((_, i) => i % t === n - 1);
  }
  m = /^(\d+(?:\.\d+)?)%$/.exec(subset);
  if (m) {
    const p = Number(m[1]) / 100;
    if (p <= 0 || p > 1)
      throw new LifeboatError('USAGE', `--read-data-subset ${subset}: percentage must be in (0, 100]`);
    return sorted.filter(() => Math.random() < p);
  }
  throw new LifeboatError('USAGE', `--read-data-subset "${subset}" is neither n/t nor p%`, {
    hint: 'e.g. 1/5 or 10%',
  });
}

export async function checkRepository(repo: Repository, options: CheckOptions = {}): Promise<CheckReport> {
  const errors: string[] = [];
  const warnings: string[] = [];
  const damaged = new Map<string, string>();

  // Index: a damaged index file is one error; the other index files are still used.
  const packs = await repo.indexedPacks();
  const damagedIndexFiles = repo.damagedIndexFiles;
  for (const name of damagedIndexFiles) {
    const reason = repo.damage.find((d) => d.object === `index/${name}`)?.reason ?? 'damaged';
    errors.push(`index file ${name.slice(0, 12)} is damaged (${reason})`);
  }
  const index = new Map<string, string>();
  for (const p of packs.values()) for (const b of p.blobs) index.set(b.id, p.id);

  const stored = new Map<string, number>();
  for await (const o of repo.backend.list('data')) stored.set(o.name, o.size);
  for (const p of packs.values()) {
    const size = stored.get(p.id);
    if (size === undefined) damaged.set(p.id, 'missing');
    else if (size !== p.size)
      damaged.set(p.id, `size ${size} != ${p.size} in the index (truncated or damaged)`);
  }
  const unindexedPacks = { count: 0, bytes: 0 };
  for (const [name, size] of stored) {
    if (packs.has(name)) continue;
    unindexedPacks.count++;
    unindexedPacks.bytes += size;
  }
  if (unindexedPacks.count) {
    // One line, not one per pack: thousands of them after a damaged index say nothing more.
    const line = `${unindexedPacks.count} pack(s) (${unindexedPacks.bytes} bytes) are not in any readable index`;
    if (damagedIndexFiles.length) errors.push(`${line}: the damaged index file listed them`);
    else warnings.push(`${line}: left by interrupted backups; \`lifeboat prune\` removes them`);
  }
  const leftovers = { count: 0, bytes: 0 };
  for await (const l of repo.backend.listLeftovers?.() ?? []) {
    leftovers.count++;
    leftovers.bytes += l.size;
  }
  if (leftovers.count)
    warnings.push(
      `${leftovers.count} leftover(s) of interrupted writes (temp files, unfinished uploads; ${leftovers.bytes} bytes); \`lifeboat prune\` removes them`,
    );

  // Snapshots and what they reference.
  const snapshots: Snapshot[] = [];
  const broken = new Map<string, BrokenSnapshot>();
  const markBroken = (id: string, problem: string, s?: Snapshot) => {
    if (!broken.has(id)) broken.set(id, { id, type: s?.type, timestamp: s?.timestamp, problem });
  };
  for await (const o of repo.backend.list('snapshots')) {
    repo.throwIfCancelled('check');
    try {
      snapshots.push(await repo.loadSnapshot(o.name));
    } catch (e) {
      if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      errors.push(`snapshot ${o.name.slice(0, 8)} is damaged: ${(e as Error).message}`);
      markBroken(o.name, 'the snapshot object itself is damaged');
    }
  }
  const blobUsers = new Map<string, Set<string>>();
  for (const s of snapshots) {
    let missing = 0;
    for (const item of s.items) {
      const ids = new Set<string>(item.chunkLists ?? []);
      try {
        for await (const id of repo.chunkIds(item)) ids.add(id);
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
        errors.push(
          `snapshot ${s.id.slice(0, 8)} item ${item.name}: cannot read its chunk list: ${(e as Error).message}`,
        );
        markBroken(s.id, `item ${item.name}: cannot read its chunk list`, s);
      }
      for (const id of ids) {
        if (!index.has(id)) {
          missing++;
          continue;
        }
        let users = blobUsers.get(id);
        if (!users) blobUsers.set(id, (users = new Set()));
        users.add(s.id);
      }
    }
    if (missing) {
      errors.push(
        `snapshot ${s.id.slice(0, 8)} (${s.type} ${s.timestamp}): ${missing} blob(s) it needs are not in the index`,
      );
      markBroken(s.id, `${missing} blob(s) it needs are not in the index`, s);
    }
  }

  let packsRead = 0;
  let blobsRead = 0;
  const selected = options.readData
    ? selectSubset(
        [...packs.keys()].filter((id) => !damaged.has(id)),
        options.readDataSubset,
      )
    : [];
  if (selected.length) {
    // Blobs are verified on worker threads (pack-verify-worker.ts), one per core, while the main thread
    // reads and hashes the next range: the main thread alone reached ~300 MB/s here, busy with hashing,
    // decryption and the hand-offs to libuv's pool (docs/performance.md).
    const workers = workerCount(MAX_VERIFY_WORKERS);
    const pool = new WorkerPool<PackVerifyRequest, BlobsVerdict>(
      workerEntry('pack-verify-worker', import.meta.url),
      workers,
      repo.keys,
    );
    try {
      options.onProgress?.(0, selected.length);
      await mapLimit(selected, workers, async (id) => {
        repo.throwIfCancelled('check');
        const verdict = await readPack(repo, pool, packs.get(id)!);
        if (verdict.read) packsRead++;
        blobsRead += verdict.blobsRead;
        if (verdict.reason !== undefined) damaged.set(id, verdict.reason);
        options.onProgress?.(packsRead, selected.length);
      });
    } finally {
      await pool.close();
    }
  }

  const snapshotById = new Map(snapshots.map((s) => [s.id, s]));
  const damagedPacks: DamagedPack[] = [];
  for (const [pack, reason] of damaged) {
    const users = new Set<string>();
    for (const b of packs.get(pack)?.blobs ?? []) for (const s of blobUsers.get(b.id) ?? []) users.add(s);
    for (const id of users) markBroken(id, `pack ${pack.slice(0, 12)}: ${reason}`, snapshotById.get(id));
    damagedPacks.push({ pack, reason, snapshots: [...users].sort() });
    errors.push(
      `pack ${pack}: ${reason}; affects ${users.size ? [...users].map((s) => s.slice(0, 8)).join(', ') : 'no snapshot'}`,
    );
  }

  // The safe order: rebuild the index first (it may bring back what snapshots seemed to miss), then deal
  // with the snapshots that are still broken.
  const next: string[] = [];
  if (damagedIndexFiles.length || (unindexedPacks.count && damagedPacks.some((p) => p.reason === 'missing')))
    next.push('lifeboat repair index');
  if (broken.size)
    next.push(
      'lifeboat repair snapshots (lists them; --forget removes them; restore the objects from a copy if you have one)',
    );
  return {
    ok: errors.length === 0,
    errors,
    warnings,
    damagedPacks,
    damagedSnapshots: [...broken.keys()].sort(),
    brokenSnapshots: [...broken.values()].sort((a, b) => a.id.localeCompare(b.id)),
    damagedIndexFiles,
    unindexedPacks,
    leftovers,
    next,
    snapshots: snapshots.length,
    packs: packs.size,
    packsRead,
    blobsRead,
  };
}

/**
 * Reads one pack range by range, in order: the main thread hashes each range (the SHA-256 must see the
 * bytes in order) and moves it to a worker, which verifies its blobs while the next range is read. At the
 * end the header, from the last range, is authenticated and compared with the index.
 */
async function readPack(
  repo: Repository,
  pool: WorkerPool<PackVerifyRequest, BlobsVerdict>,
  pack: IndexedPack,
): Promise<{ read: boolean; reason?: string; blobsRead: number }> {
  const hash = createHash('sha256');
  let blobsRead = 0;
  let blobReason: string | undefined;
  let verifying: Promise<void> = Promise.resolve();
  let tail: Buffer | undefined;
  const done = async (outcome: { read: boolean; reason?: string }) => {
    await verifying;
    return { ...outcome, blobsRead };
  };
  const ranges = planPackRanges(pack.blobs, pack.size, RANGE_BYTES);
  for (const [i, range] of ranges.entries()) {
    let bytes: Buffer;
    try {
      bytes = await repo.backend.load({ type: 'data', name: pack.id }, range);
    } catch (e) {
      if (!isLifeboatError(e, 'INTEGRITY') && !isLifeboatError(e, 'NOT_FOUND')) throw e;
      return done({ read: false, reason: e.message });
    }
    hash.update(bytes);
    if (bytes.length !== range.length)
      return done({ read: true, reason: `truncated (${range.offset + bytes.length} of ${pack.size} bytes)` });
    if (i === ranges.length - 1 && bytes.length >= PACK_TRAILER) {
      const hlen = bytes.readUInt32LE(bytes.length - PACK_TRAILER);
      // A copy: the range itself is moved to a worker below.
      if (hlen + PACK_TRAILER <= bytes.length)
        tail = Buffer.from(bytes.subarray(bytes.length - hlen - PACK_TRAILER));
    }
    // One range verified per pack at a time: the next is read meanwhile, and memory stays bounded.
    await verifying;
    const request = { packId: pack.id, bytes, offset: range.offset, blobs: range.blobs };
    verifying = pool.run(request, movable(bytes)).then((v) => {
      blobsRead += v.blobsRead;
      if (v.reason !== undefined) blobReason = v.reason;
    });
    // Awaited before the next range or at the end; until then a failure must not count as unhandled.
    verifying.catch(() => {});
  }
  await verifying;
  let reason = hash.digest('hex') === pack.id ? undefined : 'content does not match its SHA-256 name';
  try {
    if (!tail) throw new LifeboatError('INTEGRITY', `pack ${pack.id} header length does not fit the pack`);
    reason =
      headerMismatch(parsePackHeader(repo.keys.encryption, pack.id, tail, pack.size), pack.blobs) ?? reason;
    reason = blobReason ?? reason;
  } catch (e) {
    if (!isLifeboatError(e, 'INTEGRITY')) throw e;
    reason = e.message;
  }
  return { read: true, reason, blobsRead };
}
