/**
 * Opening the repository and keystore from the global options: shared by every command, so every command
 * gets the same order and safety: the repository is bound to the command's cancellation (SIGINT/SIGTERM),
 * damaged objects are reported once as warnings, the lock is taken before anything is read, and the lock
 * is released and storage closed when the command ends, however it ends.
 */
import { openKeystore } from '../core/keystore/open.ts';
import type { Keystore } from '../core/keystore/keystore.ts';
import type { LockMode } from '../core/repository/lock.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import type { CommandContext } from './command.ts';

export function keystoreFor(ctx: CommandContext): Promise<Keystore> {
  return openKeystore(
    { keystore: ctx.globals.keystore, passwordFile: ctx.globals.passwordFile, keyFile: ctx.globals.keyFile },
    ctx.env,
  );
}

export interface OpenFor {
  /**
   * `shared` for anything that reads data (restore, export, validate, check); `exclusive` for anything
   * that deletes or rewrites (prune, forget, key changes). Backups take their shared lock through their
   * session; listing commands take none.
   */
  lock?: LockMode;
  /** Shown to whoever finds the lock (`repository is locked by files restore …`). */
  purpose?: string;
  /** Off for commands whose whole report is the damage (check, repair): said once there, not twice. */
  warnOnDamage?: boolean;
  /** Another repository than --repo (the target of `copy`), opened with its own keystore. */
  location?: string;
  keystore?: Keystore;
}

export async function openRepository(ctx: CommandContext, how: OpenFor = {}): Promise<Repository> {
  const backend = await openBackend(how.location ?? ctx.globals.repo, ctx.env);
  const keystore = how.keystore ?? (await keystoreFor(ctx));
  ctx.log.debug('opening repository', { location: backend.location, keystore: keystore.description });
  let repo: Repository;
  try {
    repo = await Repository.open(backend, keystore, {
      signal: ctx.signal,
      // The reasons name the object already; say once that it was left out and where to look.
      onDamage: (d) => {
        if (how.warnOnDamage !== false) ctx.warn(`${d.reason}; left it out (see \`lifeboat check\`)`);
      },
    });
  } catch (e) {
    await backend.close().catch(() => {});
    throw e;
  }
  ctx.defer(() => repo.close());
  if (how.location === undefined) ctx.repository = repo;
  if (how.lock) {
    await repo.lock(how.lock, how.purpose ?? ctx.command);
    ctx.log.debug(`${how.lock} lock held`, { repository: repo.id });
  }
  return repo;
}
