/**
 * restic-style locks: `locks/<random id>` objects, sealed. Backups, restores, exports, validate and check
 * take shared locks (several may run at once); prune, forget and key changes take an exclusive one, so
 * nothing deletes data another process is reading or about to reference.
 *
 * Order (restic's `cmd/restic/cmd_backup.go`): the lock is taken *before* the index is loaded and
 * snapshots are listed, so what a command sees cannot be pruned under it.
 *
 * A held lock is refreshed every 5 minutes and is stale after 30 minutes without refresh, or at once when
 * it belongs to a process on this host that no longer exists (a killed backup). When refreshing fails
 * until the lock is about to go stale — or the lock was removed by someone else (`unlock --remove-all`) —
 * the holder can no longer rely on it: `onLost` fires and the operation is cancelled (restic
 * `internal/repository/lock.go`), rather than carry on while a prune may start.
 *
 * Lock objects are written and removed through the backend *without* the operation's cancellation
 * signal: an interrupted command must still be able to release its lock.
 *
 * Named locks (`Lock.acquireNamed`, e.g. `pipeline:daily`) are a mutual exclusion between processes that
 * do the same job — one pipeline run per repository and slot — not a guard of the data: they conflict
 * only with live holders of the same name and are ignored by shared and exclusive locks (a pipeline's
 * retention stage takes the exclusive lock while its own run holds the slot). Same objects, same refresh
 * and the same staleness rules, so a killed run's slot lock frees itself (dead pid on this host, or no
 * refresh for 30 minutes) and `lifeboat unlock` removes it like any other stale lock.
 */
import { hostname } from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.ts';
import { open, randomId, seal } from '../crypto.ts';
import { systemClock, type Clock } from '../clock.ts';
import type { Backend } from '../storage/backend.ts';

export const LOCK_REFRESH_MS = 5 * 60_000;
export const LOCK_STALE_MS = 30 * 60_000;
/** How often, and how long apart, a named lock is tried again when it met a holder that just started. */
export const NAMED_LOCK_RETRIES = 4;
const NAMED_LOCK_FRESH_MS = 30_000;

export type LockMode = 'shared' | 'exclusive';

export interface LockInfo {
  time: string;
  exclusive: boolean;
  host: string;
  pid: number;
  purpose: string;
  /** Set for a named mutual-exclusion lock (see above); absent for shared/exclusive data locks. */
  name?: string;
}

/** What locking needs of a repository: its storage (not cancelled), its sealing key, and a clock. */
export interface LockStore {
  backend: Backend;
  key: Buffer;
  clock?: Clock;
}

export interface ListedLock {
  id: string;
  /** Undefined when the lock object cannot be read (damaged): it then counts as held until removed. */
  info?: LockInfo;
}

export function isStale(info: LockInfo, now = Date.now()): boolean {
  if (now - Date.parse(info.time) > LOCK_STALE_MS) return true;
  if (info.host === hostname()) {
    try {
      process.kill(info.pid, 0);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}

export async function listLocks(store: LockStore): Promise<ListedLock[]> {
  const out: ListedLock[] = [];
  for await (const o of store.backend.list('locks')) {
    let raw: Buffer;
    try {
      raw = await store.backend.load({ type: 'locks', name: o.name });
    } catch (e) {
      // A lock removed between list and load is simply gone.
      if (isLifeboatError(e, 'NOT_FOUND')) continue;
      throw e;
    }
    try {
      out.push({ id: o.name, info: JSON.parse(open(store.key, raw, `locks/${o.name}`, 'locks').toString()) });
    } catch {
      out.push({ id: o.name });
    }
  }
  return out;
}

function describe(l: ListedLock): string {
  if (!l.info) return `lock ${l.id.slice(0, 12)}, which cannot be read (damaged)`;
  const c = l.info;
  const kind = c.name ? `lock ${c.name}` : c.exclusive ? 'exclusive' : 'shared';
  return `${c.purpose} (pid ${c.pid} on ${c.host}, ${kind}, since ${c.time})`;
}

export class Lock {
  readonly id: string;
  readonly mode: LockMode;
  private readonly store: LockStore;
  private readonly clock: Clock;
  private info: LockInfo;
  private lastRefresh: number;
  private stopTimer: (() => void) | undefined;
  private refreshing = false;
  private released = false;
  private lost = false;
  private readonly onLost: (e: LifeboatError) => void;

  private constructor(
    store: LockStore,
    id: string,
    mode: LockMode,
    info: LockInfo,
    onLost: (e: LifeboatError) => void,
  ) {
    this.store = store;
    this.clock = store.clock ?? systemClock;
    this.id = id;
    this.mode = mode;
    this.info = info;
    this.lastRefresh = this.clock.now();
    this.onLost = onLost;
  }

  static async acquire(
    store: LockStore,
    mode: LockMode,
    purpose: string,
    onLost: (e: LifeboatError) => void = () => {},
  ): Promise<Lock> {
    const clock = store.clock ?? systemClock;
    const id = randomId();
    const exclusive = mode === 'exclusive';
    const info: LockInfo = {
      time: new Date(clock.now()).toISOString(),
      exclusive,
      host: hostname(),
      pid: process.pid,
      purpose,
    };
    const lock = new Lock(store, id, mode, info, onLost);
    try {
      // Inside the try: a write that failed for us may still have landed (the reply was lost to a timeout
      // or a dropped connection), and a lock object left behind would keep others out until it went stale.
      await lock.write();
      // Re-check after writing our own lock: two processes racing both see each other and one backs off.
      const conflicts = (await listLocks(store)).filter(
        (l) =>
          l.id !== id &&
          (!l.info || (!l.info.name && !isStale(l.info, clock.now()) && (exclusive || l.info.exclusive))),
      );
      if (conflicts.length) {
        const c = conflicts[0];
        throw new LifeboatError('LOCKED', `repository is locked by ${describe(c)}`, {
          hint: !c.info
            ? '`lifeboat unlock` removes a damaged lock'
            : c.info.exclusive
              ? `wait for the ${c.info.purpose} to finish, then retry; \`lifeboat unlock\` removes stale locks`
              : 'wait for running backups and restores to finish, then retry; `lifeboat unlock` removes stale locks',
          details: { lock: c.id, holder: c.info },
        });
      }
    } catch (e) {
      await store.backend.remove({ type: 'locks', name: id }).catch(() => {});
      throw e;
    }
    lock.stopTimer = lock.clock.every(LOCK_REFRESH_MS, () => void lock.refresh());
    return lock;
  }

  /**
   * A named mutual-exclusion lock: taken only when no live (non-stale) lock of the same name exists.
   * Two processes that start at the same moment both see each other and both back off (never both
   * hold it); a holder that is younger than 30 s may be such a racer, so the attempt is repeated after a
   * random pause before `BUSY` is reported. `onLost` fires as for data locks (refresh failing, or the
   * lock removed by `unlock --remove-all`).
   */
  static async acquireNamed(
    store: LockStore,
    name: string,
    purpose: string,
    onLost: (e: LifeboatError) => void = () => {},
    retries = NAMED_LOCK_RETRIES,
  ): Promise<Lock> {
    const clock = store.clock ?? systemClock;
    for (let attempt = 0; ; attempt++) {
      const id = randomId();
      const info: LockInfo = {
        time: new Date(clock.now()).toISOString(),
        exclusive: false,
        host: hostname(),
        pid: process.pid,
        purpose,
        name,
      };
      const lock = new Lock(store, id, 'shared', info, onLost);
      let holder: ListedLock | undefined;
      try {
        await lock.write();
        holder = (await listLocks(store)).find(
          (l) => l.id !== id && (!l.info || (l.info.name === name && !isStale(l.info, clock.now()))),
        );
      } catch (e) {
        await store.backend.remove({ type: 'locks', name: id }).catch(() => {});
        throw e;
      }
      if (!holder) {
        lock.stopTimer = lock.clock.every(LOCK_REFRESH_MS, () => void lock.refresh());
        return lock;
      }
      await store.backend.remove({ type: 'locks', name: id }).catch(() => {});
      const fresh = holder.info && clock.now() - Date.parse(holder.info.time) < NAMED_LOCK_FRESH_MS;
      if (fresh && attempt < retries) {
        await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 600)));
        continue;
      }
      throw new LifeboatError('BUSY', `${name} is held by ${describe(holder)}`, {
        hint: !holder.info
          ? '`lifeboat unlock` removes a damaged lock'
          : `wait for it to finish (or stop it); a holder that was killed frees the lock when it goes stale, or \`lifeboat unlock\` removes it`,
        details: { lock: holder.id, holder: holder.info },
      });
    }
  }

  private write(): Promise<void> {
    return this.store.backend.save(
      { type: 'locks', name: this.id },
      seal(this.store.key, Buffer.from(JSON.stringify(this.info)), 'locks'),
      { overwrite: true },
    );
  }

  /** One refresh; exposed for tests, run by the timer otherwise. */
  async refresh(): Promise<void> {
    if (this.released || this.lost || this.refreshing) return;
    this.refreshing = true;
    try {
      try {
        await this.store.backend.stat({ type: 'locks', name: this.id });
      } catch (e) {
        if (isLifeboatError(e, 'NOT_FOUND')) {
          this.lose(
            new LifeboatError(
              'LOCKED',
              `the repository lock of this ${this.info.purpose} was removed by another process (\`lifeboat unlock --remove-all\`?); stopped, as a prune may now run`,
              { hint: 'run the command again once no prune is running' },
            ),
          );
          return;
        }
        throw e;
      }
      this.info = { ...this.info, time: new Date(this.clock.now()).toISOString() };
      await this.write();
      this.lastRefresh = this.clock.now();
    } catch (e) {
      // Try again at the next tick, unless that would be after the lock went stale for everyone else.
      if (this.clock.now() - this.lastRefresh + LOCK_REFRESH_MS >= LOCK_STALE_MS) {
        const minutes = Math.round((this.clock.now() - this.lastRefresh) / 60_000);
        this.lose(
          new LifeboatError(
            'LOCKED',
            `could not refresh the repository lock for ${minutes} min (${(e as Error).message}); stopped before it went stale`,
            { hint: 'check that the storage is reachable, then run the command again', cause: e },
          ),
        );
      }
    } finally {
      this.refreshing = false;
    }
  }

  private lose(e: LifeboatError): void {
    if (this.lost) return;
    this.lost = true;
    this.stopTimer?.();
    this.onLost(e);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimer?.();
    await this.store.backend.remove({ type: 'locks', name: this.id });
  }
}
