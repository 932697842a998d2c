/**
 * Continuous point-in-time recovery: `lifeboat mongodb pitr run` (the follower), `pitr status`, and the
 * oplog entries `mongodb restore --time T` replays.
 *
 * The follower keeps no buffer of its own: the server's capped oplog is the buffer. Every slice
 * interval it opens a backup session (the shared lock, only for this write), streams the entries after
 * its position to the end of the oplog (at most MAX_SLICE_BYTES) straight into a `.oplog` item and commits
 * a `mongodb-oplog` snapshot (pitr-slices.ts). So memory stays at one cursor batch however busy the
 * server is, nothing is lost when the follower is killed (the next one starts from the newest slice),
 * and between slices it holds no lock, so prune and forget are never blocked for longer than one slice
 * write.
 *
 * Continuity: every slice read starts with the entry at its position, which must still be in the oplog;
 * if it is not, the oplog rolled over in between and changes are lost — a gap. The follower then logs an
 * error, writes a gap marker and waits for a new base backup (`mongodb backup --oplog`) whose window end
 * is still in the oplog, and continues from there.
 */
import { deserialize, serialize, Timestamp, type Document } from 'bson';
import type { MongoClient } from 'mongodb';
import { LifeboatError, isLifeboatError, isTransient } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { startBackup } from '../../core/repository/backup.ts';
import type { Snapshot } from '../../core/repository/model.ts';
import type { Repository } from '../../core/repository/repository.ts';
import { decodeDocument, splitBson } from './bson-stream.ts';
import { mongoError, safeUri, serverInfo } from './connect.ts';
import { CollectionHash } from './hash.ts';
import { Crc64 } from './crc64.ts';
import { EXACT_BSON } from './metadata.ts';
import type { NamespaceFilter, NamespaceRenamer } from './nsfilter.ts';
import {
  OPLOG_ITEM,
  comparePositions,
  entryNamespace,
  formatPosition,
  isTimestamp,
  position,
  type OplogPosition,
} from './oplog.ts';
import {
  SLICE_TAG,
  SLICE_TYPE,
  baseOf,
  coveredRanges,
  describeRanges,
  positionTime,
  resolveTime,
  segments,
  sliceOf,
  type Base,
  type CoveredRange,
  type PointInTime,
  type Slice,
  type SliceMeta,
} from './pitr-slices.ts';

const OPLOG = { db: 'local', collection: 'oplog.rs' } as const;
/** A slice stops at this much oplog; the next one follows at once (catching up after downtime). */
export const MAX_SLICE_BYTES = 64 * 1024 * 1024;
/** An idle oplog is covered up to the server's clock at the read, less this (writes still in flight). */
const IN_FLIGHT_MARGIN_MS = 1000;

const oplog = (client: MongoClient) => client.db(OPLOG.db).collection(OPLOG.collection);

interface Entry {
  ts: OplogPosition;
  /** The entry's `wall` clock (ms), else the second of its timestamp. */
  time: number;
}

function entryOf(raw: Uint8Array): Entry {
  const doc = deserialize(raw, { promoteValues: false, promoteLongs: false });
  if (!isTimestamp(doc.ts))
    throw new LifeboatError('INTEGRITY', 'an oplog entry has no timestamp (ts)', {
      hint: 'the oplog item is damaged or not an oplog',
    });
  const ts = position(doc.ts);
  const wall = doc.wall instanceof Date ? doc.wall.getTime() : NaN;
  return { ts, time: Number.isFinite(wall) ? wall : positionTime(ts) };
}

function docTime(doc: Document | null): number | undefined {
  if (!doc) return undefined;
  if (doc.wall instanceof Date) return doc.wall.getTime();
  return isTimestamp(doc.ts) ? positionTime(position(doc.ts)) : undefined;
}

/** The server's clock (hello's localTime), or ours if it does not say. */
async function serverTime(client: MongoClient): Promise<number> {
  const hello = await client.db('admin').command({ hello: 1 });
  return hello.localTime instanceof Date ? hello.localTime.getTime() : Date.now();
}

async function endEntry(client: MongoClient, dir: 1 | -1): Promise<Entry | undefined> {
  const d = await oplog(client)
    .find({}, { sort: { $natural: dir }, limit: 1, projection: { ts: 1, wall: 1 } })
    .next();
  return d && isTimestamp(d.ts) ? { ts: position(d.ts), time: docTime(d)! } : undefined;
}

/** The oldest position still in the oplog (for gap reports; null when it cannot be read). */
const oldestPosition = (client: MongoClient): Promise<OplogPosition | null> =>
  endEntry(client, 1).then(
    (e) => e?.ts ?? null,
    () => null,
  );

/** The oldest and newest entries on the server, with their times. */
export async function oplogBounds(
  client: MongoClient,
): Promise<{ oldest?: Entry; newest?: Entry; serverTime: number }> {
  const now = await serverTime(client);
  return { oldest: await endEntry(client, 1), newest: await endEntry(client, -1), serverTime: now };
}

/** The entry at `p` if the oplog still has it (else it rolled over past it). */
async function entryAt(client: MongoClient, p: OplogPosition): Promise<Entry | undefined> {
  const d = await oplog(client)
    .find(
      { ts: { $gte: new Timestamp(p) } },
      { sort: { $natural: 1 }, limit: 1, projection: { ts: 1, wall: 1 } },
    )
    .next();
  if (!d || !isTimestamp(d.ts) || comparePositions(position(d.ts), p) !== 0) return undefined;
  return { ts: p, time: docTime(d)! };
}

export class GapError extends LifeboatError {
  readonly from: OplogPosition;
  readonly oldest: OplogPosition | null;
  constructor(replicaSet: string, from: OplogPosition, oldest: OplogPosition | null) {
    super(
      'INTEGRITY',
      `GAP in point-in-time recovery for replica set ${replicaSet}: the oplog no longer has the entry at ${formatPosition(from)} (its oldest is ${oldest ? formatPosition(oldest) : 'none'}): it rolled over while the follower was not reading, so changes after ${new Date(positionTime(from)).toISOString()} are lost for point-in-time restores`,
      {
        hint: 'take a new base backup now (`lifeboat mongodb backup --oplog`): the follower continues from it; grow the oplog (replSetResizeOplog) so it outlasts follower downtime',
      },
    );
    this.from = from;
    this.oldest = oldest;
  }
}

export interface PitrState {
  bases: Base[];
  slices: Slice[];
}

export async function loadPitrState(repo: Repository): Promise<PitrState> {
  const all = await repo.listSnapshots();
  return {
    bases: all.map(baseOf).filter((b): b is Base => Boolean(b)),
    slices: all.map(sliceOf).filter((s): s is Slice => Boolean(s)),
  };
}

// ---------------------------------------------------------------------------------------------------
// The follower

export interface FollowerOptions {
  /** Opens the repository (again after a lost lock cancelled the previous one). */
  openRepo: () => Promise<Repository>;
  client: MongoClient;
  uri: string;
  sliceIntervalMs: number;
  /** Stop: flush one last slice, then return. */
  signal: AbortSignal;
  /** Bounds the last flush after `signal` (aborts storage and reads). */
  flushSignal?: AbortSignal;
  log: Logger;
  maxBackoffMs?: number;
  maxSliceBytes?: number;
}

export interface SliceWritten {
  snapshot: string;
  replicaSet: string;
  from: OplogPosition;
  to: OplogPosition;
  entries: number;
  bytes: number;
  coveredUntil: string;
  durationMs: number;
}

export interface FollowerResult {
  replicaSet: string;
  slices: number;
  entries: number;
  position: OplogPosition | null;
  gaps: number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Errors worth waiting out (server or storage away, lock held by prune): retried with backoff. */
function isRetryable(e: unknown): boolean {
  if (e instanceof GapError) return false;
  if (isLifeboatError(e))
    return ['UNREACHABLE', 'TIMEOUT', 'LOCKED', 'INTERRUPTED'].includes(e.code) || isTransient(e);
  const name = String((e as Error)?.name ?? '');
  return /^Mongo(Network|ServerSelection|NotConnected|Topology|PoolCleared)/.test(name);
}

export async function runFollower(opts: FollowerOptions): Promise<FollowerResult> {
  const { client, log } = opts;
  const info = await serverInfo(opts.client).catch((e) => {
    throw mongoError(e, 'reading server information');
  });
  if (!info.replicaSet)
    throw new LifeboatError(
      'UNSUPPORTED',
      'pitr run needs a replica set member, but the server is standalone',
      {
        hint: 'point --uri at a replica set member (a single-node replica set works: mongod --replSet rs0, then rs.initiate())',
      },
    );
  const rs = info.replicaSet;
  const result: FollowerResult = { replicaSet: rs, slices: 0, entries: 0, position: null, gaps: 0 };
  let repo = await opts.openRepo();
  const reopen = async () => {
    if (!repo.signal.aborted || opts.signal.aborted) return;
    await repo.close().catch(() => {});
    repo = await opts.openRepo();
  };
  /** Where to continue from; undefined while waiting for a base backup. */
  let pos: OplogPosition | undefined;
  let waitingSince: OplogPosition | null | undefined;
  let lastWaitLog = 0;

  const writeGapMarker = async (
    from: OplogPosition,
    oldest: OplogPosition | null,
    message: string,
    continuedFrom: SliceMeta['continuedFrom'],
  ) => {
    const session = await startBackup(repo, 'mongodb pitr gap marker');
    try {
      const now = new Date().toISOString();
      const meta: SliceMeta = {
        pitr: 1,
        kind: 'gap',
        replicaSet: rs,
        from,
        to: from,
        entries: 0,
        coveredFrom: now,
        coveredUntil: now,
        oldest,
        continuedFrom,
        message,
      };
      await session.commit({
        type: SLICE_TYPE,
        tags: [SLICE_TAG, 'gap'],
        paths: [safeUri(opts.uri)],
        meta: meta as unknown as Record<string, unknown>,
        items: [],
        allowEmpty: true,
      });
    } catch (e) {
      await session.abort();
      throw e;
    }
    result.gaps++;
  };

  /** Decides the start: the newest slice's end, else the newest base's window end, whichever the oplog still has. */
  const findStart = async (): Promise<void> => {
    const state = await loadPitrState(repo);
    const slices = state.slices.filter((s) => s.meta.replicaSet === rs && s.meta.kind === 'slice');
    const gaps = state.slices.filter((s) => s.meta.replicaSet === rs && s.meta.kind === 'gap');
    const bases = state.bases
      .filter((b) => b.replicaSet === rs)
      .sort((a, b) => comparePositions(a.end, b.end));
    const lastSlice = slices.sort((a, b) => comparePositions(a.meta.to, b.meta.to)).at(-1);
    const lastBase = bases.at(-1);
    const lastGap = gaps.sort((a, b) => comparePositions(a.meta.from, b.meta.from)).at(-1);
    if (lastSlice && (!lastGap || comparePositions(lastGap.meta.from, lastSlice.meta.to) < 0)) {
      if (await entryAt(client, lastSlice.meta.to)) {
        pos = lastSlice.meta.to;
        log.info('pitr: resuming after the newest slice', {
          replicaSet: rs,
          position: formatPosition(pos),
          slice: lastSlice.id.slice(0, 8),
        });
        return;
      }
    }
    const from = lastSlice?.meta.to ?? null;
    if (
      lastBase &&
      (!from || comparePositions(lastBase.end, from) > 0) &&
      (await entryAt(client, lastBase.end))
    ) {
      pos = lastBase.end;
      if (from && !(lastGap && comparePositions(lastGap.meta.from, from) >= 0)) {
        const message = `the oplog rolled over since slice ${lastSlice!.id.slice(0, 8)} (${formatPosition(from)}); continuing from base backup ${lastBase.id.slice(0, 8)}: times between ${new Date(positionTime(from)).toISOString()} and ${new Date(lastBase.at).toISOString()} are not covered`;
        log.error(`pitr: GAP: ${message}`, { replicaSet: rs });
        await writeGapMarker(from, await oldestPosition(client), message, {
          base: lastBase.id,
          position: lastBase.end,
        });
      }
      log.info('pitr: starting after base backup', {
        replicaSet: rs,
        base: lastBase.id.slice(0, 8),
        position: formatPosition(pos),
      });
      waitingSince = undefined;
      return;
    }
    if (from || lastBase) {
      const at = from ?? lastBase!.end;
      if (!(lastGap && comparePositions(lastGap.meta.from, at) >= 0)) {
        const gap = new GapError(rs, at, await oldestPosition(client));
        log.error(gap.message, { replicaSet: rs, hint: gap.hint });
        await writeGapMarker(at, gap.oldest, gap.message, null);
      }
      waitingSince = at;
    } else waitingSince = null;
    pos = undefined;
    if (Date.now() - lastWaitLog > 10 * 60_000) {
      lastWaitLog = Date.now();
      log.error(
        waitingSince
          ? `pitr: waiting for a new base backup of replica set ${rs}: point-in-time recovery is NOT continuous until one is taken (lifeboat mongodb backup --oplog)`
          : `pitr: no base backup with an oplog window for replica set ${rs} in the repository; waiting for one (lifeboat mongodb backup --oplog)`,
        { replicaSet: rs },
      );
    }
  };

  const writeSlice = async (
    from: OplogPosition,
    signal: AbortSignal,
  ): Promise<SliceWritten & { capped: boolean }> => {
    const started = Date.now();
    // Entries still in flight at this moment may become visible later: coverage stops a little before it.
    const readAt = await serverTime(client);
    const session = await startBackup(repo, 'mongodb pitr slice');
    try {
      const writer = session.newItem({ name: OPLOG_ITEM, kind: 'oplog' }, 'records');
      const hash = new CollectionHash();
      const crc = new Crc64();
      let to = from;
      let fromTime: number | undefined;
      let lastTime: number | undefined;
      let first = true;
      let capped = false;
      const cursor = oplog(client).find(
        { ts: { $gte: new Timestamp(from) } },
        { raw: true, sort: { $natural: 1 }, batchSize: 1000 },
      );
      try {
        for await (const raw of cursor) {
          if (signal.aborted) throw signal.reason;
          const doc = raw as unknown as Uint8Array;
          const e = entryOf(doc);
          if (first) {
            first = false;
            if (comparePositions(e.ts, from) !== 0)
              throw new GapError(rs, from, (await oldestPosition(client)) ?? e.ts);
            fromTime = e.time;
            continue;
          }
          if (comparePositions(e.ts, to) <= 0)
            throw new LifeboatError(
              'INTEGRITY',
              `the server returned oplog entries out of order (${formatPosition(e.ts)} after ${formatPosition(to)})`,
              {
                hint: 'this server cannot give a replayable oplog',
              },
            );
          hash.add(doc);
          crc.update(doc);
          await writer.write(doc);
          to = e.ts;
          lastTime = e.time;
          if (hash.bytes >= (opts.maxSliceBytes ?? MAX_SLICE_BYTES)) {
            capped = true;
            break;
          }
        }
      } catch (e) {
        if (e instanceof LifeboatError) throw e;
        throw mongoError(e, 'reading the oplog');
      } finally {
        await cursor.close().catch(() => {});
      }
      if (first) throw new GapError(rs, from, await oldestPosition(client));
      const item = await writer.finish();
      item.meta = {
        db: '',
        collection: 'oplog',
        type: 'oplog',
        metadata: '',
        count: hash.count,
        bytes: hash.bytes,
        hash: hash.hex(),
        crc64: crc.digest().toString(16).padStart(16, '0'),
        start: from,
        end: to,
      };
      const until = Math.max(lastTime ?? 0, fromTime ?? 0, capped ? 0 : readAt - IN_FLIGHT_MARGIN_MS);
      const meta: SliceMeta = {
        pitr: 1,
        kind: 'slice',
        replicaSet: rs,
        from,
        to,
        entries: hash.count,
        coveredFrom: new Date(fromTime ?? positionTime(from)).toISOString(),
        coveredUntil: new Date(until).toISOString(),
      };
      const snap: Snapshot = await session.commit({
        type: SLICE_TYPE,
        tags: [SLICE_TAG],
        paths: [safeUri(opts.uri)],
        meta: meta as unknown as Record<string, unknown>,
        items: [item],
        allowEmpty: true,
        empty: hash.count === 0,
      });
      return {
        snapshot: snap.id,
        replicaSet: rs,
        from,
        to,
        entries: hash.count,
        bytes: hash.bytes,
        coveredUntil: meta.coveredUntil,
        durationMs: Date.now() - started,
        capped,
      };
    } catch (e) {
      await session.abort().catch(() => {});
      throw e;
    }
  };

  const step = async (signal: AbortSignal): Promise<boolean> => {
    if (!pos) await findStart();
    if (!pos) return false;
    try {
      const s = await writeSlice(pos, signal);
      pos = s.to;
      result.position = pos;
      result.slices++;
      result.entries += s.entries;
      const { capped, ...fields } = s;
      log.info('pitr: slice written', {
        ...fields,
        snapshot: s.snapshot.slice(0, 12),
        from: formatPosition(s.from),
        to: formatPosition(s.to),
        lagMs: Date.now() - Date.parse(s.coveredUntil),
      });
      return capped;
    } catch (e) {
      if (!(e instanceof GapError)) throw e;
      log.error(e.message, { replicaSet: rs, hint: e.hint });
      await writeGapMarker(e.from, e.oldest, e.message, null);
      pos = undefined;
      waitingSince = e.from;
      return false;
    }
  };

  log.info('pitr: follower started', {
    replicaSet: rs,
    sliceIntervalMs: opts.sliceIntervalMs,
    server: info.version,
  });
  let backoff = 1000;
  while (!opts.signal.aborted) {
    let again: boolean;
    try {
      await reopen();
      again = await step(opts.signal);
      backoff = 1000;
    } catch (e) {
      if (opts.signal.aborted) break;
      if (!isRetryable(e) && !repo.signal.aborted) throw e;
      log.warn(`pitr: ${(e as Error).message} — retrying in ${Math.round(backoff / 1000)} s, position kept`, {
        replicaSet: rs,
        position: pos ? formatPosition(pos) : null,
      });
      await sleep(backoff, opts.signal);
      backoff = Math.min(backoff * 2, opts.maxBackoffMs ?? 60_000);
      continue;
    }
    if (!again) await sleep(opts.sliceIntervalMs, opts.signal);
  }
  // Stopped: one last slice, so nothing read since the previous one waits for the next follower.
  if (pos) {
    const flush = opts.flushSignal ?? new AbortController().signal;
    try {
      await reopen();
      await step(flush);
    } catch (e) {
      log.warn(
        `pitr: the last slice before stopping was not written (${(e as Error).message}); the next follower reads it again`,
        {
          replicaSet: rs,
        },
      );
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Status

export interface PitrStatus {
  replicaSets: {
    replicaSet: string;
    ranges: CoveredRange[];
    bases: number;
    slices: number;
    newestSlice: { id: string; to: OplogPosition; coveredUntil: string } | null;
    /** now − newest slice's coveredUntil, ms (null without slices). */
    lagMs: number | null;
    gaps: { id: string; time: string; from: OplogPosition; message: string }[];
    /** When the server was reachable: its oldest oplog entry and how far back that is. */
    oplog?: { oldest: string | null; headroomMs: number | null; newest: string | null } | { error: string };
  }[];
}

export async function pitrStatus(
  repo: Repository,
  client?: MongoClient,
  now = Date.now(),
): Promise<PitrStatus> {
  const { bases, slices } = await loadPitrState(repo);
  const sets = [
    ...new Set([...bases.map((b) => b.replicaSet), ...slices.map((s) => s.meta.replicaSet)]),
  ].sort();
  let server: { rs?: string; bounds?: Awaited<ReturnType<typeof oplogBounds>>; error?: string } | undefined;
  if (client) {
    try {
      const info = await serverInfo(client);
      server = { rs: info.replicaSet, bounds: await oplogBounds(client) };
      if (info.replicaSet && !sets.includes(info.replicaSet)) sets.push(info.replicaSet);
    } catch (e) {
      server = { error: mongoError(e, 'reading the oplog').message };
    }
  }
  const segs = segments(slices);
  return {
    replicaSets: sets.map((rs) => {
      const mine = slices.filter((s) => s.meta.replicaSet === rs);
      const newest = mine
        .filter((s) => s.meta.kind === 'slice')
        .sort((a, b) => comparePositions(a.meta.to, b.meta.to))
        .at(-1);
      const out: PitrStatus['replicaSets'][number] = {
        replicaSet: rs,
        ranges: coveredRanges(
          bases.filter((b) => b.replicaSet === rs),
          segs.filter((s) => s.replicaSet === rs),
        ),
        bases: bases.filter((b) => b.replicaSet === rs).length,
        slices: mine.filter((s) => s.meta.kind === 'slice').length,
        newestSlice: newest
          ? { id: newest.id, to: newest.meta.to, coveredUntil: newest.meta.coveredUntil }
          : null,
        lagMs: newest ? now - Date.parse(newest.meta.coveredUntil) : null,
        gaps: mine
          .filter((s) => s.meta.kind === 'gap')
          .map((s) => ({ id: s.id, time: s.time, from: s.meta.from, message: s.meta.message ?? '' })),
      };
      if (server?.error) out.oplog = { error: server.error };
      else if (server?.rs === rs && server.bounds) {
        const b = server.bounds;
        out.oplog = {
          oldest: b.oldest ? new Date(b.oldest.time).toISOString() : null,
          newest: b.newest ? new Date(b.newest.time).toISOString() : null,
          headroomMs: b.oldest ? b.serverTime - b.oldest.time : null,
        };
      }
      return out;
    }),
  };
}

// ---------------------------------------------------------------------------------------------------
// Restore to a point in time

/** `--time`: an ISO 8601 time with a zone (Z or ±hh:mm), to the millisecond. */
export function parsePitrTime(text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text.trim())
    ? Date.parse(text.trim())
    : NaN;
  if (!Number.isFinite(ms))
    throw new LifeboatError('USAGE', `--time "${text}" is not an ISO 8601 time with a zone`, {
      hint: 'e.g. --time 2024-12-01T12:00:00Z (see the covered ranges with `lifeboat mongodb pitr status`)',
    });
  return ms;
}

/** The base backup and slices a restore to `time` needs, or a NOT_FOUND naming what is covered. */
export async function resolvePointInTime(repo: Repository, time: number): Promise<PointInTime> {
  const { bases, slices } = await loadPitrState(repo);
  const segs = segments(slices);
  const found = resolveTime(time, bases, segs);
  if (found) return found;
  const ranges = coveredRanges(bases, segs);
  throw new LifeboatError(
    'NOT_FOUND',
    `${new Date(time).toISOString()} is not covered by point-in-time recovery; covered: ${describeRanges(ranges)}`,
    {
      hint: ranges.length
        ? 'choose a time in a covered range (`lifeboat mongodb pitr status`), or restore a backup with --timestamp'
        : 'point-in-time recovery needs a `mongodb backup --oplog` and `mongodb pitr run` following it',
      details: { ranges },
    },
  );
}

export interface PitrReplayStats {
  slices: number;
  /** Entries after the base's window, up to the time, handed to the replay. */
  entries: number;
  /** The first entry after the time, where the replay stopped (none: the slices end at or before it). */
  stoppedBefore?: OplogPosition;
  last?: OplogPosition;
}

/** Maps an entry's namespaces through --ns-include/--ns-exclude and --ns-from/--ns-to (undefined: skip it). */
function remapEntry(
  entry: Document,
  filter: NamespaceFilter,
  renamer: NamespaceRenamer,
): Document | undefined {
  const mapNs = (ns: string) => (filter.matches(ns) ? renamer.rename(ns) : undefined);
  if (entry.op === 'n') return entry;
  if (entry.op !== 'c') {
    const ns = mapNs(entryNamespace(entry));
    return ns ? { ...entry, ns } : undefined;
  }
  const o = (entry.o ?? {}) as Document;
  const namespace = entryNamespace(entry);
  const db = namespace.slice(0, namespace.indexOf('.'));
  if (Array.isArray(o.applyOps)) {
    const inner = (o.applyOps as Document[]).map((op) => remapEntry(op, filter, renamer)).filter(Boolean);
    return { ...entry, o: { ...o, applyOps: inner } };
  }
  if (o.commitTransaction !== undefined || o.abortTransaction !== undefined) return entry;
  for (const k of ['create', 'drop', 'collMod', 'createIndexes', 'dropIndexes', 'deleteIndexes']) {
    if (typeof o[k] !== 'string') continue;
    const ns = mapNs(`${db}.${o[k]}`);
    if (!ns) return undefined;
    const dot = ns.indexOf('.');
    return { ...entry, ns: `${ns.slice(0, dot)}.$cmd`, o: { ...o, [k]: ns.slice(dot + 1) } };
  }
  throw new LifeboatError(
    'UNSUPPORTED',
    `restore --time with --ns-*: the oplog entry ${Object.keys(o)[0] ?? '?'} on ${namespace} names no single collection, so it cannot be selected or renamed`,
    { hint: 'restore to the time without --ns-include/--ns-exclude/--ns-from/--ns-to' },
  );
}

/**
 * The entries `restore --time` replays, in order: the base's own oplog window, then the slices' entries
 * after the base's window end, stopping at the first entry after the time. With namespace options, every
 * entry is selected and renamed as the collections are.
 */
export function pointInTimeEntries(
  repo: Repository,
  pit: PointInTime,
  base: Snapshot,
  ns?: { filter: NamespaceFilter; renamer: NamespaceRenamer },
  stats?: PitrReplayStats,
): () => AsyncIterable<Uint8Array> {
  return async function* () {
    if (stats) Object.assign(stats, { slices: pit.slices.length, entries: 0, stoppedBefore: undefined });
    const map = (raw: Uint8Array): Uint8Array | undefined => {
      if (!ns) return raw;
      const out = remapEntry(decodeDocument(raw, 'oplog entry', EXACT_BSON), ns.filter, ns.renamer);
      return out ? serialize(out) : undefined;
    };
    const own = base.items.find((i) => i.kind === 'oplog');
    if (own) {
      for await (const raw of splitBson(repo.readItem(own), `snapshot item ${OPLOG_ITEM}`)) {
        const m = map(raw);
        if (m) yield m;
      }
    }
    for (const s of pit.slices) {
      const snap = await repo.loadSnapshot(s.id);
      const item = snap.items.find((i) => i.kind === 'oplog');
      if (!item) continue;
      for await (const raw of splitBson(repo.readItem(item), `slice ${s.id.slice(0, 8)}`)) {
        const e = entryOf(raw);
        if (comparePositions(e.ts, pit.base.end) <= 0) continue;
        if (e.time > pit.time) {
          if (stats) stats.stoppedBefore = e.ts;
          return;
        }
        if (stats) {
          stats.entries++;
          stats.last = e.ts;
        }
        const m = map(raw);
        if (m) yield m;
      }
    }
  };
}
