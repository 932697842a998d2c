/**
 * Copying snapshots into a second repository (restic's `copy`, Kopia's `sync-to`): the guide's "Multiple
 * Locations". The target has its own keys and chunker, so blob ids differ between the two: every item is
 * read from the source (authenticated and verified against its SHA-256 on the way) and written through
 * an ordinary backup session of the target, which chunks, deduplicates, compresses and seals it under the
 * target's keys. An item the target already holds from an earlier copy (same SHA-256 and size) is reused
 * without reading it, so a daily copy costs what the day added.
 *
 * Which snapshots to copy is decided by content, not by name (`contentKey`): the same snapshot copied
 * twice, or copied back, is recognised. Each snapshot is one target session — packs, then index, then the
 * snapshot — so a copy killed at any point leaves the target consistent (at worst some unreferenced
 * packs for prune), and the next run copies what is still missing.
 */
import { createHash } from 'node:crypto';
import { LifeboatError } from '../errors.ts';
import { startBackup } from './backup.ts';
import type { Item, Snapshot } from './model.ts';
import { snapshotPurpose, type Repository } from './repository.ts';

/** Identity of a snapshot across repositories: what it is of, when, and the exact content of each item. */
export function contentKey(s: Pick<Snapshot, 'type' | 'time' | 'host' | 'paths' | 'tags' | 'items'>): string {
  const identity = [
    s.type,
    s.time,
    s.host,
    [...s.paths],
    [...s.tags].sort(),
    s.items.map((i) => [i.name, i.kind, i.size, i.sha256]),
  ];
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

export interface CopyPlan {
  /** Source snapshots the target does not hold, oldest first (so an interrupted copy keeps the oldest). */
  toCopy: Snapshot[];
  /** Source snapshots already in the target, with the target's id. */
  present: { source: Snapshot; target: string }[];
}

/** Pure: which of `selected` the target still lacks. */
export function planCopy(selected: Snapshot[], targetSnapshots: Snapshot[]): CopyPlan {
  const inTarget = new Map(targetSnapshots.map((t) => [contentKey(t), t.id]));
  const plan: CopyPlan = { toCopy: [], present: [] };
  const seen = new Set<string>();
  for (const s of [...selected].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0))) {
    const key = contentKey(s);
    if (seen.has(key)) continue;
    seen.add(key);
    const there = inTarget.get(key);
    if (there) plan.present.push({ source: s, target: there });
    else plan.toCopy.push(s);
  }
  return plan;
}

export interface CopyProgress {
  /** Plain bytes read from the source (reused items count as read: nothing had to be). */
  bytesRead: number;
  /** Stored bytes the target gained. */
  bytesAdded: number;
  itemsReused: number;
  itemsCopied: number;
}

export interface CopiedSnapshot {
  source: string;
  target: string;
  type: string;
  time: string;
  bytesRead: number;
  bytesAdded: number;
  itemsReused: number;
  itemsCopied: number;
  verified: boolean;
}

/** Items of the target's snapshots by content, for reuse across copies. */
export function reusableItems(targetSnapshots: Snapshot[]): Map<string, Item> {
  const byContent = new Map<string, Item>();
  for (const s of targetSnapshots) for (const i of s.items) byContent.set(`${i.sha256}:${i.size}`, i);
  return byContent;
}

/**
 * Copies one snapshot. `reuse` (from `reusableItems`) is extended with what this copy wrote. With
 * `verify`, the target snapshot is read back in full (every blob authenticated, every item re-hashed).
 */
export async function copySnapshot(
  source: Repository,
  target: Repository,
  snapshot: Snapshot,
  options: { reuse: Map<string, Item>; verify?: boolean; progress?: CopyProgress },
): Promise<CopiedSnapshot> {
  const progress = options.progress ?? { bytesRead: 0, bytesAdded: 0, itemsReused: 0, itemsCopied: 0 };
  const result = { bytesRead: 0, bytesAdded: 0, itemsReused: 0, itemsCopied: 0 };
  const addedBefore = progress.bytesAdded;
  const session = await startBackup(target, `copy of ${snapshot.id.slice(0, 8)}`);
  const items: Item[] = [];
  let committed: Snapshot;
  try {
    for (const item of snapshot.items) {
      const input = { name: item.name, kind: item.kind, meta: item.meta };
      const known = options.reuse.get(`${item.sha256}:${item.size}`);
      const reused = known ? await session.reuseItem(input, known) : undefined;
      if (reused) {
        items.push(reused);
        result.itemsReused++;
        progress.itemsReused++;
        result.bytesRead += item.size;
        progress.bytesRead += item.size;
        continue;
      }
      // Record items (database documents) were cut between records in the source; each source chunk is
      // a run of whole records, so handing it over as one record keeps every cut between records.
      const chunking = item.records > 0 ? 'records' : 'file';
      const writer = session.newItem(input, chunking);
      for await (const part of source.readItem(item)) {
        await writer.write(part);
        result.bytesRead += part.length;
        progress.bytesRead += part.length;
        progress.bytesAdded = addedBefore + session.progress.bytesAdded;
      }
      const written = await writer.finish();
      if (written.sha256 !== item.sha256 || written.size !== item.size) {
        throw new LifeboatError(
          'INTEGRITY',
          `copy of ${item.name} in snapshot ${snapshot.id.slice(0, 8)} does not match the source's SHA-256`,
          { hint: 'run `lifeboat check --read-data` on both repositories' },
        );
      }
      // The record count is the source's (documents), not the number of chunks handed over.
      const copied: Item = { ...written, records: item.records };
      items.push(copied);
      options.reuse.set(`${item.sha256}:${item.size}`, copied);
      result.itemsCopied++;
      progress.itemsCopied++;
    }
    committed = await session.commit({
      type: snapshot.type,
      tags: snapshot.tags,
      paths: snapshot.paths,
      meta: { ...snapshot.meta, copiedFrom: { repository: source.id, snapshot: snapshot.id } },
      items,
      allowEmpty: true,
      origin: { time: snapshot.time, host: snapshot.host },
      purpose: snapshotPurpose(snapshot),
    });
  } catch (e) {
    await session.abort().catch(() => {});
    throw e;
  }
  result.bytesAdded = committed.summary.bytesAdded;
  progress.bytesAdded = addedBefore + result.bytesAdded;
  if (options.verify) {
    for (const item of committed.items) for await (const _ of target.readItem(item));
  }
  return {
    source: snapshot.id,
    target: committed.id,
    type: snapshot.type,
    time: snapshot.time,
    ...result,
    verified: Boolean(options.verify),
  };
}
