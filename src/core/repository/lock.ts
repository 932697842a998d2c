/**
 * restic-style locks: `locks/<random id>` objects, sealed. Backups take shared locks (several may run at
 * once); prune takes an exclusive one, so it never deletes data a running backup is about to reference.
 * A lock is refreshed every 5 minutes and is stale after 30 minutes without refresh, or at once when it
 * belongs to a process on this host that no longer exists (a killed backup).
 */
import { hostname } from 'node:os';
import { LifeboatError } from '../errors.ts';
import { randomId } from '../crypto.ts';
import type { Repository } from './repository.ts';

export const LOCK_REFRESH_MS = 5 * 60_000;
export const LOCK_STALE_MS = 30 * 60_000;

export interface LockInfo {
  time: string;
  exclusive: boolean;
  host: string;
  pid: number;
  purpose: string;
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

export class Lock {
  readonly id: string;
  private readonly repo: Repository;
  private info: LockInfo;
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  private constructor(repo: Repository, id: string, info: LockInfo) {
    this.repo = repo;
    this.id = id;
    this.info = info;
  }

  static async acquire(repo: Repository, exclusive: boolean, purpose: string): Promise<Lock> {
    const id = randomId();
    const info: LockInfo = {
      time: new Date().toISOString(),
      exclusive,
      host: hostname(),
      pid: process.pid,
      purpose,
    };
    const lock = new Lock(repo, id, info);
    await repo.saveSealed('locks', id, info, true);
    try {
      // Re-check after writing our own lock: two processes racing both see each other and one backs off.
      const conflicts = (await repo.listLocks()).filter(
        (l) => l.id !== id && !isStale(l.info) && (exclusive || l.info.exclusive),
      );
      if (conflicts.length) {
        const c = conflicts[0].info;
        throw new LifeboatError(
          'LOCKED',
          `repository is locked by ${c.purpose} (pid ${c.pid} on ${c.host}, ${c.exclusive ? 'exclusive' : 'shared'}, since ${c.time})`,
          {
            hint: exclusive
              ? 'wait for running backups to finish, then retry; `lifeboat unlock` removes stale locks'
              : 'wait for the prune to finish, then retry; `lifeboat unlock` removes stale locks',
          },
        );
      }
    } catch (e) {
      await repo.backend.remove({ type: 'locks', name: id }).catch(() => {});
      throw e;
    }
    lock.timer = setInterval(() => void lock.refresh(), LOCK_REFRESH_MS);
    lock.timer.unref();
    return lock;
  }

  private async refresh(): Promise<void> {
    if (this.released) return;
    this.info = { ...this.info, time: new Date().toISOString() };
    await this.repo.saveSealed('locks', this.id, this.info, true).catch(() => {});
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.repo.backend.remove({ type: 'locks', name: this.id });
  }
}

/** Removes stale locks (all locks with `all`); returns how many were removed. */
export async function removeLocks(repo: Repository, all = false): Promise<number> {
  let n = 0;
  for (const l of await repo.listLocks()) {
    if (all || isStale(l.info)) {
      await repo.backend.remove({ type: 'locks', name: l.id });
      n++;
    }
  }
  return n;
}
