import { CODECS, type Codec } from '../core/compression.ts';
import { KeyFileKeystore } from '../core/keystore/keyfile.ts';
import { Repository } from '../core/repository/repository.ts';
import { openBackend } from '../core/storage/open.ts';
import { int, str, usageError, type Command } from './command.ts';
import { keystoreFor } from './repo.ts';

interface InitResult {
  repositoryId: string;
  location: string;
  keystore: string;
}

export const initCommand: Command<InitResult> = {
  path: ['init'],
  summary: 'create a new encrypted repository',
  options: {
    compression: { type: 'string', arg: 'CODEC', default: 'zstd', description: 'zstd | gzip | none' },
    'compression-level': { type: 'string', arg: 'N', description: 'codec level (zstd 1-19, default 3)' },
    'pack-size': { type: 'string', arg: 'MIB', default: '16', description: 'target pack file size in MiB' },
  },
  help: `The master key is random; only a wrapped copy is stored (keys/). With the default key-file keystore,
back up the key file: without it (or a passphrase added with \`lifeboat key add\`) the data cannot be read.`,
  async run(ctx, values) {
    const codec = str(values.compression) as Codec;
    if (!CODECS.includes(codec)) throw usageError(`--compression must be one of ${CODECS.join(', ')}`);
    const packMiB = int(values['pack-size'], 'pack-size')!;
    if (packMiB < 1 || packMiB > 512) throw usageError('--pack-size must be between 1 and 512 MiB');
    const backend = await openBackend(ctx.globals.repo, ctx.env);
    const keystore = await keystoreFor(ctx);
    if (keystore instanceof KeyFileKeystore) await keystore.ensureExists();
    const repo = await Repository.init(backend, keystore, {
      compression: codec,
      compressionLevel: int(values['compression-level'], 'compression-level'),
      packSize: packMiB * 1024 * 1024,
    });
    return { repositoryId: repo.id, location: backend.location, keystore: keystore.description };
  },
  human(r, out) {
    out.line(`created repository ${r.repositoryId} at ${r.location}`);
    out.line(`key protected by ${r.keystore} — keep a copy of it somewhere safe, away from the repository`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({ details: { repositoryId: r.repositoryId } }),
};
