/**
 * `fsyncLock` around PVC snapshots (`lifeboat pvc snapshot --mongodb-uri`): the Velero backup-hook pattern
 * (fsyncLock before, fsyncUnlock after) without exec into a pod. While locked, mongod has flushed every
 * write to its files and accepts none, so a volume snapshot cut meanwhile is a clean copy, not merely a
 * crash-consistent one.
 *
 * The unlock is guaranteed on every way out the process survives: the caller's `finally` (failure,
 * timeout, SIGINT/SIGTERM, which the CLI turns into an abort that unwinds through it), and a maximum lock
 * time after which the lock is released on its own and the snapshot is failed (a snapshot cut after the
 * unlock would not be consistent). A SIGKILL cannot be caught: mongod then stays locked until someone runs
 * `db.fsyncUnlock()` (docs/kubernetes.md says so).
 */
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';
import { mongoError } from './connect.ts';

export interface FsyncLock {
  /** Unlocks (once; later calls do nothing). Throws TIMEOUT if the maximum lock time had run out first. */
  release(): Promise<void>;
}

function isMissingCommand(e: unknown): boolean {
  const err = e as { code?: number; codeName?: string; message?: string };
  return (
    err?.code === 59 ||
    err?.codeName === 'CommandNotFound' ||
    /no such (cmd|command)|not (yet )?implemented|not supported|unrecognized command/i.test(
      String(err?.message),
    )
  );
}

export async function fsyncLock(
  client: MongoClient,
  opts: { maxLockMs: number; note?: (m: string) => void },
): Promise<FsyncLock> {
  const admin = client.db('admin');
  try {
    await admin.command({ fsync: 1, lock: true });
  } catch (e) {
    if (isMissingCommand(e))
      throw new LifeboatError(
        'UNSUPPORTED',
        `the MongoDB server has no fsyncLock (${String((e as Error).message)
          .split('\n')[0]
          .slice(0, 160)}), so its volumes cannot be frozen for the snapshot`,
        {
          hint: 'pass --no-fsync-lock to take the snapshots without it (crash-consistent: mongod recovers from its journal, as after a power cut)',
        },
      );
    throw mongoError(e, 'fsyncLock');
  }
  let released = false;
  let expired = false;
  const unlock = async () => {
    try {
      await admin.command({ fsyncUnlock: 1 });
    } catch (e) {
      throw new LifeboatError(
        'UNREACHABLE',
        `fsyncUnlock failed (${String((e as Error).message).split('\n')[0]}): mongod may still refuse writes`,
        { hint: 'run `db.fsyncUnlock()` in mongosh against the server now', cause: e },
      );
    }
  };
  const timer = setTimeout(() => {
    if (released) return;
    released = true;
    expired = true;
    opts.note?.(
      `lifeboat: fsyncLock held for ${Math.round(opts.maxLockMs / 1000)} s, the maximum: unlocking; this snapshot fails`,
    );
    unlock().catch((e) => opts.note?.(`lifeboat: ${(e as Error).message}`));
  }, opts.maxLockMs);
  timer.unref();
  return {
    async release() {
      clearTimeout(timer);
      if (!released) {
        released = true;
        await unlock();
      }
      if (expired)
        throw new LifeboatError(
          'TIMEOUT',
          `the volume snapshots were not cut within the maximum fsyncLock time (${Math.round(opts.maxLockMs / 1000)} s)`,
          {
            hint: 'raise --fsync-lock-max, or check the snapshot controller (kubectl describe volumesnapshot)',
          },
        );
    },
  };
}
