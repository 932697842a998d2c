/** Opening the repository and keystore from the global options: shared by every command. */
import { openKeystore } from '../core/keystore/open.ts';
import type { Keystore } from '../core/keystore/keystore.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import type { CommandContext } from './command.ts';

export function keystoreFor(ctx: CommandContext): Promise<Keystore> {
  return openKeystore(
    { keystore: ctx.globals.keystore, passwordFile: ctx.globals.passwordFile, keyFile: ctx.globals.keyFile },
    ctx.env,
  );
}

export async function openRepository(ctx: CommandContext): Promise<Repository> {
  const backend = await openBackend(ctx.globals.repo, ctx.env);
  const keystore = await keystoreFor(ctx);
  ctx.log.debug('opening repository', { location: backend.location, keystore: keystore.description });
  return Repository.open(backend, keystore);
}
