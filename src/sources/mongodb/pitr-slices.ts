/**
 * Point-in-time recovery bookkeeping, pure (no I/O): what the oplog slices and base backups in a
 * repository cover, which base and slices a restore to a time needs, and which slices retention keeps.
 *
 * A slice is a snapshot of type `mongodb-oplog` written by `lifeboat mongodb pitr run`: one `.oplog`
 * item (raw oplog entries in timestamp order, through the normal chunk/pack path) and this meta:
 * `from` (exclusive: the position it continues from — the previous slice's `to` or a base backup's
 * oplog window end), `to` (its last entry; `from` when it is empty), and the times it covers. Slices
 * whose `from` is the previous one's `to` form a *segment*: an unbroken record of every change. A gap
 * marker is a `mongodb-oplog` snapshot without items and `kind: 'gap'`: the follower could not continue
 * (the oplog rolled over while it was down), so nothing after it links to what came before.
 *
 * A base is a `mongodb` backup taken with `--oplog` (its window end is a known oplog position). A time T
 * is covered when some base's time is at or before T and the segment holding its window end runs to T
 * or beyond: restore = that base + its own oplog window + the segment's entries after the base, up to T.
 */
import type { Snapshot } from '../../core/repository/model.ts';
import { comparePositions, formatPosition, type OplogPosition } from './oplog.ts';

export const SLICE_TYPE = 'mongodb-oplog';
export const SLICE_TAG = 'pitr';

export interface SliceMeta {
  pitr: 1;
  kind: 'slice' | 'gap';
  replicaSet: string;
  /** Exclusive: the position this slice continues from. */
  from: OplogPosition;
  /** The last entry in the slice (`from` when it holds none). */
  to: OplogPosition;
  entries: number;
  /** ISO times: from the `from` entry's wall clock to the time up to which the oplog was read. */
  coveredFrom: string;
  coveredUntil: string;
  /** Gap markers: the oldest entry the oplog still had, and what the follower continued from (if it did). */
  oldest?: OplogPosition | null;
  continuedFrom?: { base: string; position: OplogPosition } | null;
  message?: string;
}

export interface Slice {
  id: string;
  time: string;
  meta: SliceMeta;
}

export interface Base {
  id: string;
  time: string;
  replicaSet: string;
  /** The oplog window end of the backup: the state the base restores to. */
  end: OplogPosition;
  /**
   * The base's point in time, ms. Conservative: the second after its window end, because the window end is
   * known only to the second (an entry later in that same second may already be in the dump).
   */
  at: number;
}

/** The time of an oplog position when nothing better (an entry's `wall`) is known: its second. */
export const positionTime = (p: OplogPosition): number => p.t * 1000;

export function sliceOf(s: Snapshot): Slice | undefined {
  const m = s.meta as unknown as SliceMeta | undefined;
  if (s.type !== SLICE_TYPE || m?.pitr !== 1 || !m.from || !m.to || typeof m.replicaSet !== 'string')
    return undefined;
  return { id: s.id, time: s.time, meta: m };
}

/**
 * A base for point-in-time recovery: a `mongodb` backup (not a pre-restore, import or drill snapshot) of
 * a replica set, taken with `--oplog` so its window end is an oplog position.
 */
export function baseOf(s: Snapshot): Base | undefined {
  if (s.type !== 'mongodb') return undefined;
  if (s.tags.includes('pre-restore')) return undefined;
  const purpose = (s.meta as { purpose?: unknown }).purpose;
  if (purpose !== undefined && purpose !== 'backup') return undefined;
  const rs = (s.meta as { replicaSet?: unknown }).replicaSet;
  const end = (s.meta as { oplog?: { end?: OplogPosition | null } }).oplog?.end;
  if (typeof rs !== 'string' || !end || typeof end.t !== 'number') return undefined;
  return { id: s.id, time: s.time, replicaSet: rs, end, at: positionTime(end) + 1000 };
}

export interface Segment {
  replicaSet: string;
  from: OplogPosition;
  to: OplogPosition;
  coveredFrom: number;
  coveredUntil: number;
  slices: Slice[];
}

/** Links slices into segments (each slice continuing the previous one's `to`), oldest first. */
export function segments(slices: Slice[]): Segment[] {
  const byRs = new Map<string, Slice[]>();
  for (const s of slices) {
    if (s.meta.kind !== 'slice') continue;
    if (!byRs.has(s.meta.replicaSet)) byRs.set(s.meta.replicaSet, []);
    byRs.get(s.meta.replicaSet)!.push(s);
  }
  const out: Segment[] = [];
  for (const [replicaSet, list] of byRs) {
    list.sort(
      (a, b) =>
        comparePositions(a.meta.from, b.meta.from) ||
        comparePositions(a.meta.to, b.meta.to) ||
        a.time.localeCompare(b.time),
    );
    let current: Segment | undefined;
    for (const s of list) {
      if (current && comparePositions(s.meta.from, current.to) === 0) {
        current.slices.push(s);
        current.to = s.meta.to;
        current.coveredUntil = Math.max(current.coveredUntil, Date.parse(s.meta.coveredUntil));
        continue;
      }
      // Starting before the segment's end: a second follower's copy of entries already linked. Skipped, so
      // no entry is replayed twice.
      if (current && comparePositions(s.meta.from, current.to) < 0) continue;
      current = {
        replicaSet,
        from: s.meta.from,
        to: s.meta.to,
        coveredFrom: Date.parse(s.meta.coveredFrom),
        coveredUntil: Date.parse(s.meta.coveredUntil),
        slices: [s],
      };
      out.push(current);
    }
  }
  return out;
}

/** Whether a base's window end lies in a segment (so the segment carries on from the base). */
export function segmentHolds(seg: Segment, base: Base): boolean {
  return (
    seg.replicaSet === base.replicaSet &&
    comparePositions(seg.from, base.end) <= 0 &&
    comparePositions(base.end, seg.to) <= 0
  );
}

export interface CoveredRange {
  replicaSet: string;
  /** ISO times, inclusive. */
  from: string;
  until: string;
  /** Base backups this range restores from (oldest first). */
  bases: string[];
  slices: number;
}

/** What a restore to a time can reach: per segment, from its oldest base to its end. */
export function coveredRanges(bases: Base[], segs: Segment[]): CoveredRange[] {
  const out: CoveredRange[] = [];
  for (const seg of segs) {
    const inside = bases.filter((b) => segmentHolds(seg, b)).sort((a, b) => a.at - b.at);
    if (!inside.length) continue;
    const from = inside[0].at;
    if (from > seg.coveredUntil) continue;
    out.push({
      replicaSet: seg.replicaSet,
      from: new Date(from).toISOString(),
      until: new Date(seg.coveredUntil).toISOString(),
      bases: inside.map((b) => b.id),
      slices: seg.slices.length,
    });
  }
  return out.sort((a, b) => a.from.localeCompare(b.from));
}

export interface PointInTime {
  time: number;
  replicaSet: string;
  base: Base;
  /** The slices to replay after the base, in order (their entries after `base.end` and up to `time`). */
  slices: Slice[];
}

/** The newest base at or before `time` whose segment reaches `time`, and the slices up to it. */
export function resolveTime(time: number, bases: Base[], segs: Segment[]): PointInTime | undefined {
  const candidates = bases.filter((b) => b.at <= time).sort((a, b) => b.at - a.at);
  for (const base of candidates) {
    const seg = segs.find((s) => segmentHolds(s, base));
    if (!seg || seg.coveredUntil < time) continue;
    const slices: Slice[] = [];
    for (const s of seg.slices) {
      if (comparePositions(s.meta.to, base.end) <= 0) continue;
      slices.push(s);
      if (Date.parse(s.meta.coveredUntil) >= time) break;
    }
    return { time, replicaSet: base.replicaSet, base, slices };
  }
  return undefined;
}

export function describeRanges(ranges: CoveredRange[]): string {
  if (!ranges.length) return 'nothing is covered yet';
  return ranges.map((r) => `${r.replicaSet} ${r.from} – ${r.until}`).join(', ');
}

export interface SliceRetention {
  keep: { slice: Slice; reason: string }[];
  remove: Slice[];
}

/**
 * Slices are not judged by keep-* rules: a slice is kept while a retained base needs it (it lies in the
 * segment holding that base's window end, after the oldest such base), and the newest slice of each
 * replica set always stays (it is where the follower resumes). Gap markers stay while newer than the
 * oldest retained base of their replica set.
 */
export function sliceRetention(slices: Slice[], retainedBases: Base[]): SliceRetention {
  const keep = new Map<string, string>();
  for (const seg of segments(slices)) {
    const inside = retainedBases.filter((b) => segmentHolds(seg, b));
    if (!inside.length) continue;
    const oldest = inside.reduce((a, b) => (comparePositions(a.end, b.end) <= 0 ? a : b));
    for (const s of seg.slices)
      if (comparePositions(s.meta.to, oldest.end) > 0)
        keep.set(s.id, `needed by base ${oldest.id.slice(0, 8)} and newer`);
  }
  const newest = new Map<string, Slice>();
  for (const s of slices) {
    if (s.meta.kind !== 'slice') continue;
    const n = newest.get(s.meta.replicaSet);
    if (!n || comparePositions(s.meta.to, n.meta.to) > 0) newest.set(s.meta.replicaSet, s);
  }
  for (const s of newest.values())
    if (!keep.has(s.id)) keep.set(s.id, 'newest slice (the follower resumes here)');
  for (const s of slices) {
    if (s.meta.kind !== 'gap') continue;
    const bases = retainedBases.filter((b) => b.replicaSet === s.meta.replicaSet);
    if (bases.some((b) => comparePositions(b.end, s.meta.from) <= 0))
      keep.set(s.id, 'gap after a retained base');
  }
  return {
    keep: slices.filter((s) => keep.has(s.id)).map((slice) => ({ slice, reason: keep.get(slice.id)! })),
    remove: slices.filter((s) => !keep.has(s.id)),
  };
}

export const describeSlice = (s: Slice): string =>
  `${s.meta.kind} ${s.id.slice(0, 8)} ${formatPosition(s.meta.from)}..${formatPosition(s.meta.to)}`;
