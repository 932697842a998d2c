/**
 * `lifeboat validate --type mongodb`: the newest MongoDB snapshot's metadata, without reading data or
 * connecting to a server. Every collection item must carry what restores and drills verify against —
 * its document count, byte count, order-independent content hash and CRC-64 — and agree with what the
 * repository counted while writing it (records and bytes); the oplog window, when captured, must be an
 * ordered range whose entry count matches its item.
 */
import type { Item } from '../../core/repository/model.ts';
import type { LayerValidator } from '../../operations/validate.ts';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX16 = /^[0-9a-f]{16}$/;

interface Position {
  t: number;
  i: number;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
const isPosition = (p: unknown): p is Position =>
  !!p && typeof p === 'object' && isCount((p as Position).t) && isCount((p as Position).i);
const before = (a: Position, b: Position) => a.t < b.t || (a.t === b.t && a.i <= b.i);
const fmt = (p: Position) => `${p.t}:${p.i}`;

/** What is wrong with one collection item's metadata, or undefined. */
export function collectionProblem(item: Item): string | undefined {
  const m = item.meta as Record<string, unknown>;
  if (typeof m?.db !== 'string' || typeof m.collection !== 'string')
    return 'no MongoDB collection metadata (db, collection)';
  if (!isCount(m.count)) return 'no document count recorded';
  if (!isCount(m.bytes)) return 'no byte count recorded';
  if (typeof m.hash !== 'string' || !HEX64.test(m.hash)) return 'no content hash recorded';
  if (typeof m.crc64 !== 'string' || !HEX16.test(m.crc64)) return 'no CRC-64 recorded';
  if (m.count !== item.records)
    return `count ${m.count} recorded, but the repository stored ${item.records} documents`;
  if (m.bytes !== item.size) return `${m.bytes} bytes recorded, but the repository stored ${item.size}`;
  return undefined;
}

export const mongodbValidator: LayerValidator = {
  layer: 'mongodb',
  appliesTo: 'mongodb',
  async validate(ctx) {
    const snap = ctx.snapshot!;
    if (typeof snap.meta.hashAlgorithm !== 'string')
      ctx.fail(
        'metadata',
        'the snapshot records no hash algorithm: not written by `lifeboat mongodb backup`',
      );
    const collections = snap.items.filter((i) => i.kind !== 'oplog');
    let documents = 0;
    const bad: string[] = [];
    for (const item of collections) {
      const problem = collectionProblem(item);
      if (problem) bad.push(`${item.name}: ${problem}`);
      else documents += (item.meta as { count: number }).count;
    }
    for (const b of bad.slice(0, 5)) ctx.fail('metadata', `collection ${b}`);
    if (bad.length > 5)
      ctx.fail('metadata', `and ${bad.length - 5} more collection(s) without counts/hashes`);
    const databases = Array.isArray(snap.meta.databases) ? (snap.meta.databases as string[]) : [];
    for (const db of databases)
      if (!collections.some((i) => (i.meta as { db?: string }).db === db))
        ctx.fail('metadata', `database ${db} is listed but has no collection item`);
    if (!collections.length)
      ctx.warn('metadata', 'the snapshot holds no collection (an --allow-empty backup)');

    const window = snap.meta.oplog as { start?: unknown; end?: unknown; entries?: unknown } | undefined;
    const oplogItem = snap.items.find((i) => i.kind === 'oplog');
    if (window) {
      const { start, end, entries } = window;
      if (!oplogItem) ctx.fail('metadata', 'an oplog window is recorded but the snapshot has no oplog item');
      else if (!isCount(entries) || entries !== oplogItem.records)
        ctx.fail(
          'metadata',
          `the oplog window records ${String(entries)} entries, the oplog item holds ${oplogItem.records}`,
        );
      if (start !== null && !isPosition(start)) ctx.fail('metadata', 'the oplog window has no valid start');
      else if (end !== null && !isPosition(end)) ctx.fail('metadata', 'the oplog window has no valid end');
      else if (isPosition(start) && isPosition(end) && !before(start, end))
        ctx.fail('metadata', `the oplog window ends (${fmt(end)}) before it starts (${fmt(start)})`);
      else if (end === null && isCount(entries) && entries > 0)
        ctx.fail('metadata', 'the oplog window has entries but no end');
    } else if (oplogItem) ctx.fail('metadata', 'the snapshot has an oplog item but no oplog window recorded');

    ctx.note(
      `${collections.length} collection(s), ${documents} document(s)${window ? `, oplog ${String(window.entries)} entries` : ''}`,
    );
  },
};
