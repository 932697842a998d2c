/**
 * Prune: delete data no snapshot references. Planned first (read-only), then applied under an exclusive
 * lock in a crash-safe order:
 *   1. repack partly used packs (sealed blobs are copied as they are: no decryption needed)
 *   2. write a new index describing every kept and new pack
 *   3. delete the old index files
 *   4. delete packs that are now unreferenced (fully unused, repacked, or never indexed — the leftovers of
 *      an interrupted backup)
 *   5. delete temp files of interrupted writes older than every lock (no live writer can own them)
 * A crash at any point leaves a repository that checks clean; re-running prune finishes the job.
 * Prune refuses to run while an index file or a snapshot is damaged: it would delete packs only the damaged
 * index lists, or data the damaged snapshot needs — which a copy of the object could still bring back.
 */
import { LifeboatError } from '../errors.ts';
import type { Leftover } from '../storage/backend.ts';
import { PackBuilder, readPackHeader } from './pack.ts';
import type { IndexedPack, Repository } from './repository.ts';

export interface PruneOptions {
  /** Tolerated unused space in partly used packs, as a percentage of used bytes (restic: 5). */
  maxUnusedPercent?: number;
  onProgress?: (msg: string) => void;
}

export interface PrunePlan {
  usedBlobs: Set<string>;
  keep: IndexedPack[];
  remove: string[];
  repack: IndexedPack[];
  unindexed: { name: string; size: number }[];
  /** Temp files of interrupted writes, older than every lock. */
  leftovers: Leftover[];
  oldIndexFiles: string[];
  stats: { packs: number; totalBytes: number; usedBytes: number; unusedBytes: number; reclaimBytes: number };
}

export interface PruneResult {
  removedPacks: number;
  repackedPacks: number;
  removedUnindexed: number;
  removedLeftovers: number;
  reclaimedBytes: number;
}

/** Every blob id (data and tree) that some snapshot references. */
export async function usedBlobs(repo: Repository): Promise<Set<string>> {
  const used = new Set<string>();
  // Every purpose: a pre-restore or drill snapshot's data is as referenced as a backup's.
  for (const s of await repo.listSnapshots({ purpose: 'any' })) {
    for (const item of s.items) {
      for (const l of item.chunkLists ?? []) used.add(l);
      for await (const id of repo.chunkIds(item)) used.add(id);
    }
  }
  return used;
}

export async function planPrune(repo: Repository, options: PruneOptions = {}): Promise<PrunePlan> {
  // One read of the index files gives both the packs and the blob index (the same pass: consistent).
  const packs = await repo.indexedPacks();
  const index = await repo.loadIndex();
  const badIndex = repo.damagedIndexFiles;
  if (badIndex.length) {
    throw new LifeboatError(
      'INTEGRITY',
      `index file ${badIndex[0].slice(0, 12)} is damaged; pruning now would delete packs only it lists`,
      { hint: 'run `lifeboat repair index` first, then prune' },
    );
  }
  const used = await usedBlobs(repo);
  const badSnapshot = repo.damagedSnapshots[0];
  if (badSnapshot) {
    throw new LifeboatError(
      'INTEGRITY',
      `snapshot ${badSnapshot.id.slice(0, 8)} is damaged; pruning now would delete the data it needs`,
      {
        hint: `restore snapshots/${badSnapshot.id} from a copy, or remove it (\`lifeboat repair snapshots --forget\`), then prune`,
      },
    );
  }
  const oldIndexFiles: string[] = [];
  for await (const o of repo.backend.list('index')) oldIndexFiles.push(o.name);

  const keep: IndexedPack[] = [];
  const remove: string[] = [];
  const partial: { pack: IndexedPack; unused: number }[] = [];
  let totalBytes = 0;
  let usedBytes = 0;
  for (const pack of packs.values()) {
    totalBytes += pack.size;
    // A blob stored twice (two concurrent backups) counts as used only where the index points.
    const live = pack.blobs.filter((b) => used.has(b.id) && index.get(b.id)?.pack === pack.id);
    const liveBytes = live.reduce((n, b) => n + b.length, 0);
    usedBytes += liveBytes;
    if (live.length === 0) remove.push(pack.id);
    else if (live.length === pack.blobs.length) keep.push(pack);
    else partial.push({ pack: { ...pack, blobs: live }, unused: pack.size - liveBytes });
  }
  for (const id of used) {
    if (!index.has(id)) {
      throw new LifeboatError(
        'INTEGRITY',
        `snapshots reference blob ${id.slice(0, 12)} that no index lists`,
        {
          hint: 'run `lifeboat check`; prune refuses to run on a damaged repository',
        },
      );
    }
  }
  // Repack the most wasteful packs first until what is left unused is within the tolerance.
  partial.sort((a, b) => b.unused - a.unused);
  let unusedLeft = partial.reduce((n, p) => n + p.unused, 0);
  const tolerance = ((options.maxUnusedPercent ?? 5) / 100) * usedBytes;
  const repack: IndexedPack[] = [];
  for (const p of partial) {
    if (unusedLeft > tolerance) {
      repack.push(p.pack);
      unusedLeft -= p.unused;
    } else keep.push(packs.get(p.pack.id)!);
  }
  const unindexed: { name: string; size: number }[] = [];
  for await (const o of repo.backend.list('data')) if (!packs.has(o.name)) unindexed.push(o);
  // A temp file is debris once it is older than every lock: writers hold a lock while they write, and
  // the exclusive lock prune holds means no other writer is live. Stale locks count too (their owner may
  // still be writing from a partitioned host); `lifeboat unlock` clears them.
  const locks = await repo.listLocks();
  const oldestLock = Math.min(Date.now(), ...locks.map((l) => (l.info ? Date.parse(l.info.time) : 0)));
  const leftovers: Leftover[] = [];
  for await (const l of repo.backend.listLeftovers?.() ?? [])
    if (l.modified.getTime() < oldestLock) leftovers.push(l);
  const reclaimBytes =
    remove.reduce((n, id) => n + packs.get(id)!.size, 0) +
    repack.reduce((n, p) => n + packs.get(p.id)!.size - p.blobs.reduce((m, b) => m + b.length, 0), 0) +
    unindexed.reduce((n, o) => n + o.size, 0) +
    leftovers.reduce((n, l) => n + l.size, 0);
  return {
    usedBlobs: used,
    keep,
    remove,
    repack,
    unindexed,
    leftovers,
    oldIndexFiles,
    stats: { packs: packs.size, totalBytes, usedBytes, unusedBytes: totalBytes - usedBytes, reclaimBytes },
  };
}

export async function applyPrune(
  repo: Repository,
  plan: PrunePlan,
  options: PruneOptions = {},
): Promise<PruneResult> {
  const say = options.onProgress ?? (() => {});
  const newPacks: IndexedPack[] = [];
  let builder = new PackBuilder();
  const flush = async () => {
    if (builder.count === 0) return;
    const pack = builder.finish(repo.keys.encryption);
    await repo.backend.save({ type: 'data', name: pack.id }, pack.bytes);
    // The written pack's buffer is free once save resolves (Backend.save's rule): the next pack fills it
    // instead of growing a fresh one by doubling.
    builder = new PackBuilder(pack.space);
    newPacks.push({ id: pack.id, size: pack.bytes.length, blobs: pack.blobs });
  };
  for (const [i, pack] of plan.repack.entries()) {
    repo.throwIfCancelled('prune');
    say(`repacking ${i + 1}/${plan.repack.length}`);
    const bytes = await repo.backend.load({ type: 'data', name: pack.id });
    // Verify the header before copying, so prune never spreads damage into new packs.
    const header = new Map(readPackHeader(repo.keys.encryption, pack.id, bytes).map((b) => [b.id, b]));
    for (const b of pack.blobs) {
      const h = header.get(b.id);
      if (!h || h.offset !== b.offset || h.length !== b.length) {
        throw new LifeboatError(
          'INTEGRITY',
          `pack ${pack.id} does not match the index (blob ${b.id.slice(0, 12)})`,
          {
            hint: 'run `lifeboat check --read-data` before pruning',
          },
        );
      }
      builder.add(b.type, b.id, bytes.subarray(b.offset, b.offset + b.length), b.rawLength);
      if (builder.size >= repo.config.packSize) await flush();
    }
  }
  await flush();

  // One new index for everything that stays; split so no index file grows unbounded.
  const all = [...plan.keep, ...newPacks];
  for (let i = 0; i < all.length; i += 500) await repo.writeIndex(all.slice(i, i + 500));
  for (const f of plan.oldIndexFiles) await repo.backend.remove({ type: 'index', name: f });
  const doomed = [...plan.remove, ...plan.repack.map((p) => p.id), ...plan.unindexed.map((o) => o.name)];
  for (const [i, name] of doomed.entries()) {
    if (i % 50 === 0) say(`deleting packs ${i + 1}/${doomed.length}`);
    await repo.backend.remove({ type: 'data', name });
  }
  for (const l of plan.leftovers) await repo.backend.removeLeftover?.(l.id);
  await repo.loadIndex(true);
  return {
    removedPacks: plan.remove.length,
    repackedPacks: plan.repack.length,
    removedUnindexed: plan.unindexed.length,
    removedLeftovers: plan.leftovers.length,
    reclaimedBytes: plan.stats.reclaimBytes,
  };
}

export async function prune(
  repo: Repository,
  options: PruneOptions & { dryRun?: boolean } = {},
): Promise<{ plan: PrunePlan; result?: PruneResult }> {
  const lock = await repo.lock('exclusive', 'prune');
  try {
    const plan = await planPrune(repo, options);
    if (options.dryRun) return { plan };
    return { plan, result: await applyPrune(repo, plan, options) };
  } finally {
    await lock.release();
  }
}
