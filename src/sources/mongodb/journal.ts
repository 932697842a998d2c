/**
 * The restore journal of an atomic restore (restore.ts), and the recovery of one that was interrupted.
 *
 * Where it lives: one document in `<first target database>.lifeboat_restore_journal` on the target server,
 * not in the repository. It must be found by whoever next touches that server (a restore from another
 * repository, a backup, an operator with the mongo shell), survive with the data it describes (a disk
 * snapshot of the volume carries both), and be written by a user who may only have readWrite on the
 * databases it restores into. The repository may be unreachable, read-only, or another one entirely.
 *
 * What it holds: the restore id, the snapshot, who runs it (host, pid, a heartbeat), the phase, and for
 * every collection the three names involved: the target, its shadow (`<coll>_lifeboat_shadow_<id>`) and
 * where the replaced collection is set aside (`<coll>_lifeboat_old_<id>`), and whether the target existed.
 *
 * Phases, and what recovery does after a kill in each:
 * - `loading`: shadows are being filled, verified and indexed — and, for `--oplog-replay` and `--time`,
 *   the oplog replayed into them (`replay` records its progress); the targets are untouched. Recovery can
 *   only undo: drop the shadows (the target is exactly the old state).
 * - `swapping`: every shadow is verified; targets are renamed aside and shadows renamed in, one by one.
 *   `--resume` (and the default) finishes the swap (exactly the new state); `--rollback` renames the old
 *   collections back (exactly the old state). Both work from what exists, not from what the journal last
 *   said, so a kill between a rename and the journal update is harmless, and both are idempotent (a kill
 *   during recovery is recovered by running it again).
 * - `committed`: every shadow is in and counted; only the set-aside copies remain to be dropped. Recovery
 *   finishes that; a rollback is no longer possible (the pre-restore snapshot, if one was taken, is).
 *
 * The journal document is deleted last; an empty journal collection is dropped with it.
 */
import { randomBytes, createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';
import { mongoError } from './connect.ts';
import { RESTORE_JOURNAL } from './nsfilter.ts';

export type JournalPhase = 'loading' | 'swapping' | 'committed';

export interface JournalEntry {
  db: string;
  /** The collection names (within `db`). */
  target: string;
  shadow: string;
  old: string;
  existed: boolean;
  /** Only written to by the oplog replay (a collection created in its window): the shadow may never appear. */
  oplogOnly?: boolean;
  /** With a replay: how many operations it must apply here, and how many it has. */
  ops?: number;
  applied?: number;
  /** The replay dropped (or renamed away) the collection: the new state has none, so the swap only sets the target aside. */
  absent?: boolean;
}

/** Progress of the oplog replay into the shadows (phase `loading`; see restore.ts for why recovery undoes it). */
export interface ReplayProgress {
  state: 'running' | 'done';
  /** Operations to apply in all, and applied so far (saved every few hundred, and at the end). */
  ops: number;
  applied: number;
  last?: { t: number; i: number };
}

export interface RestoreJournal {
  _id: string;
  snapshot: string;
  preRestoreSnapshot?: string;
  host: string;
  pid: number;
  started: Date;
  heartbeat: Date;
  phase: JournalPhase;
  entries: JournalEntry[];
  replay?: ReplayProgress;
  /** The database holding this document. */
  journalDb: string;
}

/** A journal whose restore is still running stops being "running" after this long without a heartbeat. */
export const HEARTBEAT_STALE_MS = 60_000;
const HEARTBEAT_EVERY_MS = 10_000;

/** MongoDB before 4.4 (and the conservative choice everywhere): db + "." + collection ≤ 120 bytes. */
const MAX_NS_BYTES = 120;

export function newRestoreId(): string {
  return randomBytes(4).toString('hex');
}

/**
 * `<coll>_lifeboat_<kind>_<id>` beside the target, or — where that would pass the namespace length limit
 * — `lifeboat_<kind>_<id>_<hash of coll>`. An underscore, not a dot: FerretDB refuses to rename into a
 * name with a dot. The journal records the names, so recovery never recomputes them.
 */
export function sideName(db: string, collection: string, kind: 'shadow' | 'old', id: string): string {
  const beside = `${collection}_lifeboat_${kind}_${id}`;
  if (Buffer.byteLength(`${db}.${beside}`) <= MAX_NS_BYTES) return beside;
  return `lifeboat_${kind}_${id}_${createHash('sha256').update(collection).digest('hex').slice(0, 16)}`;
}

/**
 * Test hook, for the kill-anywhere test only: `LIFEBOAT_TEST_KILL_AT=<step>[:<n>]` makes the process
 * SIGKILL itself the n-th time (default 1st) it reaches the named step, exactly as the OOM killer or an
 * expired grace period would. Steps: pre-restore-saved, journal-written, shadow-created, batch-inserted,
 * shadow-verified, (with an oplog replay: replay-started, replay-mid — after each applied operation —,
 * replay-done,) indexes-built, swap-begin, target-aside, shadow-in, committed, old-dropped,
 * recovery-step. Without the variable it does nothing.
 */
const killHits = new Map<string, number>();
export function testKillPoint(step: string): void {
  const spec = process.env.LIFEBOAT_TEST_KILL_AT;
  if (!spec) return;
  const [name, nth] = spec.split(':');
  if (name !== step) return;
  const n = (killHits.get(step) ?? 0) + 1;
  killHits.set(step, n);
  if (n === Number(nth ?? '1')) process.kill(process.pid, 'SIGKILL');
}

function journalColl(client: MongoClient, db: string) {
  return client.db(db).collection<RestoreJournal>(RESTORE_JOURNAL);
}

export async function writeJournal(client: MongoClient, j: RestoreJournal): Promise<void> {
  try {
    await journalColl(client, j.journalDb).insertOne(j);
  } catch (e) {
    throw mongoError(e, `writing the restore journal ${j.journalDb}.${RESTORE_JOURNAL}`);
  }
}

export async function setPhase(client: MongoClient, j: RestoreJournal, phase: JournalPhase): Promise<void> {
  j.phase = phase;
  j.heartbeat = new Date();
  await journalColl(client, j.journalDb).updateOne(
    { _id: j._id },
    { $set: { phase, heartbeat: j.heartbeat } },
  );
}

/** Saves the replay's progress and the per-collection counts (the whole entries array: few, small). */
export async function saveReplay(client: MongoClient, j: RestoreJournal): Promise<void> {
  j.heartbeat = new Date();
  await journalColl(client, j.journalDb).updateOne(
    { _id: j._id },
    { $set: { replay: j.replay, entries: j.entries, heartbeat: j.heartbeat } },
  );
}

/** Keeps the heartbeat fresh while a restore runs (so no one takes it for interrupted); stop() ends it. */
export function startHeartbeat(client: MongoClient, j: RestoreJournal): () => void {
  const t = setInterval(() => {
    journalColl(client, j.journalDb)
      .updateOne({ _id: j._id }, { $set: { heartbeat: new Date() } })
      .catch(() => {});
  }, HEARTBEAT_EVERY_MS);
  t.unref();
  return () => clearInterval(t);
}

async function removeJournal(client: MongoClient, j: RestoreJournal): Promise<void> {
  const coll = journalColl(client, j.journalDb);
  await coll.deleteOne({ _id: j._id });
  if ((await coll.countDocuments({})) === 0) await coll.drop().catch(() => {});
}

/** Every restore journal on the server (normally none). */
export async function findJournals(client: MongoClient): Promise<RestoreJournal[]> {
  const out: RestoreJournal[] = [];
  try {
    const dbs = await client.db('admin').admin().listDatabases({ nameOnly: true });
    for (const { name } of dbs.databases) {
      if (['admin', 'local', 'config'].includes(name)) continue;
      const has = await client
        .db(name)
        .listCollections({ name: RESTORE_JOURNAL }, { nameOnly: true })
        .toArray();
      if (!has.length) continue;
      for (const j of await journalColl(client, name).find({}).toArray()) out.push({ ...j, journalDb: name });
    }
  } catch (e) {
    throw mongoError(e, 'looking for an interrupted restore');
  }
  return out;
}

/** Whether the restore that wrote a journal may still be running (then nobody may recover it). */
export function isRunning(j: RestoreJournal, now = Date.now()): boolean {
  if (j.host === thisHost()) {
    if (j.pid === process.pid) return false;
    try {
      process.kill(j.pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
    }
  }
  return now - new Date(j.heartbeat).getTime() < HEARTBEAT_STALE_MS;
}

export function thisHost(): string {
  return process.env.LIFEBOAT_HOST ?? hostname();
}

/** The one-line description of an interrupted restore and what to run (for warnings and errors). */
export function describeInterrupted(j: RestoreJournal): string {
  const what =
    j.phase === 'loading'
      ? j.replay
        ? `it was replaying the oplog into its shadow copies (${j.replay.state === 'done' ? 'done' : `${j.replay.applied} of ${j.replay.ops} operations applied`}); the collections are unchanged`
        : 'it was loading data; the collections are unchanged'
      : j.phase === 'swapping'
        ? 'it was swapping collections in; some may hold the new data and others the old'
        : 'it had finished; only its set-aside copies remain';
  return (
    `a restore of snapshot ${j.snapshot.slice(0, 8)} into ${[...new Set(j.entries.map((e) => e.db))].join(', ')} ` +
    `was interrupted (restore ${j._id}, started ${new Date(j.started).toISOString()} on ${j.host}; ${what})`
  );
}

export const RECOVERY_HINT =
  'run `lifeboat mongodb restore --resume` to finish it (or undo it if it had not loaded everything) or `lifeboat mongodb restore --rollback` to undo it';

export interface Recovery {
  restore: string;
  snapshot: string;
  phase: JournalPhase;
  outcome: 'completed' | 'rolled-back';
  collections: string[];
}

async function names(client: MongoClient, db: string): Promise<Set<string>> {
  const list = await client.db(db).listCollections({}, { nameOnly: true }).toArray();
  return new Set(list.map((c) => c.name));
}

async function rename(client: MongoClient, db: string, from: string, to: string): Promise<void> {
  await client.db(db).renameCollection(from, to);
  testKillPoint('recovery-step');
}

async function drop(client: MongoClient, db: string, name: string): Promise<void> {
  await client
    .db(db)
    .collection(name)
    .drop()
    .catch((e) => {
      if (!/ns not found|does not exist|NamespaceNotFound/i.test(String((e as Error).message))) throw e;
    });
  testKillPoint('recovery-step');
}

/** Puts every shadow in place of its target (setting the replaced collection aside), then commits. */
export async function rollForward(client: MongoClient, j: RestoreJournal): Promise<void> {
  if (j.phase === 'loading')
    throw new LifeboatError('INTERNAL', `restore ${j._id} had not loaded everything; it cannot be finished`);
  if (j.phase === 'swapping') {
    for (const e of j.entries) {
      const has = await names(client, e.db);
      if (has.has(e.shadow)) {
        if (has.has(e.target)) {
          if (e.existed && !has.has(e.old)) await rename(client, e.db, e.target, e.old);
          else
            throw new LifeboatError(
              'CONFLICT',
              `cannot finish restore ${j._id}: ${e.db}.${e.target} exists beside its shadow ${e.shadow}${e.existed ? ` and the set-aside ${e.old}` : ''}`,
              {
                hint: `something else created ${e.db}.${e.target} during the restore: look at it, drop what is not wanted, then run \`lifeboat mongodb restore --resume\` again`,
              },
            );
        }
        await rename(client, e.db, e.shadow, e.target);
      } else if (e.absent) {
        // The new state has no such collection: the target only goes aside (and is dropped on commit).
        if (has.has(e.target)) {
          if (e.existed && !has.has(e.old)) await rename(client, e.db, e.target, e.old);
          else
            throw new LifeboatError(
              'CONFLICT',
              `cannot finish restore ${j._id}: ${e.db}.${e.target} exists, but the restored state has no such collection${e.existed ? ` and the set-aside ${e.old} exists too` : ''}`,
              {
                hint: `something else created ${e.db}.${e.target} during the restore: look at it, drop what is not wanted, then run \`lifeboat mongodb restore --resume\` again`,
              },
            );
        }
      } else if (!has.has(e.target)) {
        throw new LifeboatError(
          'INTEGRITY',
          `cannot finish restore ${j._id}: neither ${e.db}.${e.target} nor its shadow ${e.shadow} exists`,
          {
            hint: `the collection was dropped during the restore; restore snapshot ${j.snapshot.slice(0, 8)} again`,
          },
        );
      }
    }
    await setPhase(client, j, 'committed');
    testKillPoint('committed');
  }
  for (const e of j.entries) {
    if (e.existed) {
      await drop(client, e.db, e.old);
      testKillPoint('old-dropped');
    }
  }
  await removeJournal(client, j);
}

/** Undoes an uncommitted restore: every target back to what it was, every shadow dropped. */
export async function rollBack(client: MongoClient, j: RestoreJournal): Promise<void> {
  if (j.phase === 'committed') {
    throw new LifeboatError(
      'CONFLICT',
      `restore ${j._id} of snapshot ${j.snapshot.slice(0, 8)} had already committed: the data it replaced is no longer kept aside`,
      {
        hint: j.preRestoreSnapshot
          ? `finish it with \`lifeboat mongodb restore --resume\`, then restore what it replaced with \`lifeboat mongodb restore ${j.preRestoreSnapshot.slice(0, 8)} --drop\``
          : 'finish it with `lifeboat mongodb restore --resume`, then restore the snapshot you want with --drop',
      },
    );
  }
  for (const e of j.entries) {
    const has = await names(client, e.db);
    if (has.has(e.old)) {
      if (has.has(e.target)) await drop(client, e.db, e.target);
      await rename(client, e.db, e.old, e.target);
    } else if (!e.existed && !e.absent && j.phase === 'swapping' && has.has(e.target) && !has.has(e.shadow)) {
      // The shadow was swapped into a namespace that did not exist before: it is ours.
      await drop(client, e.db, e.target);
    }
    if (has.has(e.shadow)) await drop(client, e.db, e.shadow);
  }
  await removeJournal(client, j);
}

/**
 * Recovers every interrupted restore on the server. `auto` (a plain restore) and `resume` finish what can
 * be finished (swapping, committed) and undo the rest (loading); `rollback` undoes what can be undone.
 * A restore that may still be running is refused, never touched.
 */
export async function recoverInterrupted(
  client: MongoClient,
  mode: 'auto' | 'resume' | 'rollback',
  note?: (m: string) => void,
): Promise<Recovery[]> {
  const out: Recovery[] = [];
  for (const j of await findJournals(client)) {
    if (isRunning(j)) {
      throw new LifeboatError(
        'LOCKED',
        `restore ${j._id} of snapshot ${j.snapshot.slice(0, 8)} is running against this server (${j.host}, pid ${j.pid})`,
        {
          hint: `wait for it to end; if it is gone, its heartbeat goes stale within ${HEARTBEAT_STALE_MS / 1000} s and \`lifeboat mongodb restore --resume\` recovers it`,
        },
      );
    }
    const undo = mode === 'rollback' || j.phase === 'loading';
    note?.(
      `lifeboat: ${describeInterrupted(j)} — ${undo ? 'undoing it' : 'finishing it'} (${mode === 'auto' ? 'before this restore' : `--${mode}`})`,
    );
    try {
      if (undo) await rollBack(client, j);
      else await rollForward(client, j);
    } catch (e) {
      throw mongoError(e, `recovering restore ${j._id}`);
    }
    out.push({
      restore: j._id,
      snapshot: j.snapshot,
      phase: j.phase,
      outcome: undo ? 'rolled-back' : 'completed',
      collections: j.entries.map((e) => `${e.db}.${e.target}`),
    });
  }
  return out;
}

/** For other commands against the server: a warning per interrupted restore (never fails the command). */
export async function warnInterrupted(client: MongoClient, note: (m: string) => void): Promise<void> {
  let journals: RestoreJournal[];
  try {
    journals = await findJournals(client);
  } catch {
    return;
  }
  for (const j of journals) {
    if (isRunning(j))
      note(
        `lifeboat: warning: restore ${j._id} of snapshot ${j.snapshot.slice(0, 8)} is running on ${j.host}`,
      );
    else note(`lifeboat: warning: ${describeInterrupted(j)}; ${RECOVERY_HINT}`);
  }
}
