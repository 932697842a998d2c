/**
 * Repair, restic's `repair index` and `repair snapshots`: make a damaged repository usable again with
 * what is still intact, and say exactly what is lost.
 *
 * - `repairIndex` rebuilds the index from the packs themselves. A pack some readable index file lists with
 *   the right size keeps that entry; every other pack (unlisted, or listed only by a damaged index file)
 *   has its header read with two small ranged loads. New index files are written first, then every old
 *   one is removed — a crash in between leaves duplicates, which readers merge. Packs whose header cannot
 *   be read stay unindexed and are reported; the snapshots that needed them show up in `repair snapshots`.
 * - `repairSnapshots` finds every snapshot that cannot be restored in full (its object is damaged, or a
 *   blob it needs is missing or, with readData, damaged) and, with `forget`, removes those snapshot
 *   objects so the rest of the repository — every other snapshot — stays usable and prune can run.
 *   It refuses while an index file is damaged: snapshots would look broken that `repair index` can save.
 */
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { checkRepository, type BrokenSnapshot } from './check.ts';
import { PACK_TRAILER, parsePackHeader, type PackedBlob } from './pack.ts';
import type { IndexedPack, Repository } from './repository.ts';

export interface RepairIndexOptions {
  /** Read the header of every pack, not only of those no readable index lists correctly. */
  readAllPacks?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface RepairIndexResult {
  packs: number;
  headersRead: number;
  /** Packs whose header could not be read: not indexed. */
  damagedPacks: { pack: string; reason: string }[];
  removedIndexFiles: number;
  writtenIndexFiles: number;
}

const PACKS_PER_INDEX_FILE = 500;

async function readHeader(repo: Repository, pack: string, size: number): Promise<PackedBlob[]> {
  if (size < PACK_TRAILER) throw new LifeboatError('INTEGRITY', `pack ${pack} is truncated (${size} bytes)`);
  const trailer = await repo.backend.load(
    { type: 'data', name: pack },
    { offset: size - PACK_TRAILER, length: PACK_TRAILER },
  );
  const hlen = trailer.readUInt32LE(0);
  if (hlen + PACK_TRAILER > size)
    throw new LifeboatError('INTEGRITY', `pack ${pack} header length ${hlen} does not fit its ${size} bytes`);
  const tail = await repo.backend.load(
    { type: 'data', name: pack },
    { offset: size - PACK_TRAILER - hlen, length: hlen + PACK_TRAILER },
  );
  return parsePackHeader(repo.keys.encryption, pack, tail, size);
}

/** Call with the exclusive lock held. */
export async function repairIndex(
  repo: Repository,
  options: RepairIndexOptions = {},
): Promise<RepairIndexResult> {
  const known = await repo.indexedPacks();
  const oldIndexFiles: string[] = [];
  for await (const o of repo.backend.list('index')) oldIndexFiles.push(o.name);
  const stored: { name: string; size: number }[] = [];
  for await (const o of repo.backend.list('data')) stored.push(o);

  const packs: IndexedPack[] = [];
  const damagedPacks: RepairIndexResult['damagedPacks'] = [];
  let headersRead = 0;
  for (const [i, o] of stored.entries()) {
    repo.throwIfCancelled('repair index');
    options.onProgress?.(i, stored.length);
    const listed = known.get(o.name);
    if (listed && listed.size === o.size && !options.readAllPacks) {
      packs.push(listed);
      continue;
    }
    try {
      const blobs = await readHeader(repo, o.name, o.size);
      headersRead++;
      packs.push({ id: o.name, size: o.size, blobs });
    } catch (e) {
      if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      damagedPacks.push({ pack: o.name, reason: (e as Error).message });
    }
  }
  options.onProgress?.(stored.length, stored.length);

  let written = 0;
  for (let i = 0; i < packs.length; i += PACKS_PER_INDEX_FILE) {
    await repo.writeIndex(packs.slice(i, i + PACKS_PER_INDEX_FILE));
    written++;
  }
  // Only now that the new index is complete do the old files go (damaged ones included).
  for (const f of oldIndexFiles) await repo.backend.remove({ type: 'index', name: f });
  await repo.loadIndex(true);
  return {
    packs: packs.length,
    headersRead,
    damagedPacks,
    removedIndexFiles: oldIndexFiles.length,
    writtenIndexFiles: written,
  };
}

export interface RepairSnapshotsOptions {
  /** Remove the snapshots found broken (otherwise only report them). */
  forget?: boolean;
  /** Also read every pack, so damaged (not just missing) data is found. */
  readData?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface RepairSnapshotsResult {
  snapshots: number;
  broken: BrokenSnapshot[];
  forgotten: number;
}

/** Call with the exclusive lock held when `forget` is set (a shared one otherwise). */
export async function repairSnapshots(
  repo: Repository,
  options: RepairSnapshotsOptions = {},
): Promise<RepairSnapshotsResult> {
  const report = await checkRepository(repo, { readData: options.readData, onProgress: options.onProgress });
  if (report.damagedIndexFiles.length) {
    throw new LifeboatError(
      'INTEGRITY',
      `index file ${report.damagedIndexFiles[0].slice(0, 12)} is damaged, so snapshots would look broken that are not`,
      { hint: 'run `lifeboat repair index` first, then `lifeboat repair snapshots` again' },
    );
  }
  const broken = report.brokenSnapshots;
  let forgotten = 0;
  if (options.forget) {
    for (const b of broken) {
      repo.throwIfCancelled('repair snapshots');
      await repo.removeSnapshot(b.id);
      forgotten++;
    }
  }
  return { snapshots: report.snapshots, broken, forgotten };
}
