/**
 * Key management. The master key never changes; keys are wrappings of it, so rotation rewrites one small
 * object and no data. A new keystore is named with --new-keystore / --new-password-file / --new-key-file,
 * or LIFEBOAT_NEW_KEYSTORE, LIFEBOAT_NEW_PASSWORD, LIFEBOAT_NEW_PASSWORD_FILE.
 */
import { openKeystore } from '../core/keystore/open.ts';
import { Repository } from '../core/repository/repository.ts';
import { str, usageError, type Command, type CommandContext, type OptionValues } from './command.ts';
import { keystoreFor, openRepository } from './repo.ts';

const NEW_KEY_OPTIONS = {
  'new-keystore': {
    type: 'string',
    arg: 'SPEC',
    env: 'LIFEBOAT_NEW_KEYSTORE',
    description: 'keystore for the new key (passphrase | keyfile[:PATH] | azurekv://…)',
  },
  'new-password-file': {
    type: 'string',
    arg: 'FILE',
    env: 'LIFEBOAT_NEW_PASSWORD_FILE',
    description: 'new passphrase from FILE (else LIFEBOAT_NEW_PASSWORD)',
  },
  'new-key-file': {
    type: 'string',
    arg: 'FILE',
    env: 'LIFEBOAT_NEW_KEY_FILE',
    description: 'new local key file (created if missing)',
  },
} as const;

async function newKeystore(ctx: CommandContext, values: OptionValues) {
  const spec = str(values['new-keystore']);
  const keyFile = str(values['new-key-file']);
  const passwordFile = str(values['new-password-file']);
  if (!spec && !keyFile && !passwordFile && ctx.env.LIFEBOAT_NEW_PASSWORD === undefined) {
    throw usageError(
      'no new key given',
      'use --new-keystore, --new-key-file, --new-password-file or LIFEBOAT_NEW_PASSWORD',
    );
  }
  return openKeystore(
    { keystore: spec ?? (keyFile ? `keyfile:${keyFile}` : undefined), passwordFile },
    ctx.env,
    'LIFEBOAT_NEW',
  );
}

interface KeyRow {
  id: string;
  kind: string;
  created: string;
  current: boolean;
  damaged?: string;
}

export const keyListCommand: Command<KeyRow[]> = {
  path: ['key', 'list'],
  summary: 'list the keys that open this repository',
  options: {},
  async run(ctx) {
    const repo = await openRepository(ctx);
    return (await Repository.listKeyRecords(repo.backend)).map((k) => ({
      id: k.id,
      kind: k.record.kind,
      created: k.record.created,
      current: k.id === repo.keyId,
      ...(k.damaged ? { damaged: k.damaged } : {}),
    }));
  },
  human(rows, out) {
    out.table(
      rows.map((r) => [
        r.current ? '*' : ' ',
        r.id.slice(0, 12),
        r.kind,
        r.created,
        r.damaged ? `DAMAGED: ${r.damaged}` : '',
      ]),
      [' ', 'ID', 'KIND', 'CREATED', ''],
    );
  },
};

export const keyAddCommand: Command<{ id: string; kind: string }> = {
  path: ['key', 'add'],
  summary: 'add another key (e.g. a recovery passphrase next to the key file)',
  options: { ...NEW_KEY_OPTIONS },
  async run(ctx, values) {
    const ks = await newKeystore(ctx, values);
    const repo = await openRepository(ctx, { lock: 'exclusive' });
    return { id: await repo.addKey(ks), kind: ks.kind };
  },
  human(r, out) {
    out.line(`added ${r.kind} key ${r.id.slice(0, 12)}`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({ details: { kind: r.kind, added: r.id.slice(0, 12) } }),
};

export const keyRotateCommand: Command<{ added: string; removed: string; kind: string }> = {
  path: ['key', 'rotate'],
  summary: 're-wrap the master key with a new key and remove the current one (no data is rewritten)',
  options: { ...NEW_KEY_OPTIONS },
  async run(ctx, values) {
    const ks = await newKeystore(ctx, values);
    const current = await keystoreFor(ctx);
    const repo = await openRepository(ctx, { lock: 'exclusive' });
    const added = await repo.addKey(ks);
    // Prove the new key opens the repository before the old one goes.
    await Repository.open(repo.backend, ks);
    await repo.removeKey(repo.keyId, { keystore: current, rotating: true });
    return { added, removed: repo.keyId, kind: ks.kind };
  },
  human(r, out) {
    out.line(`rotated: new ${r.kind} key ${r.added.slice(0, 12)}, removed ${r.removed.slice(0, 12)}`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({ details: { kind: r.kind, added: r.added.slice(0, 12), removed: r.removed.slice(0, 12) } }),
};

export const keyRemoveCommand: Command<{ removed: string }> = {
  path: ['key', 'remove'],
  summary: 'remove a key by id or unique prefix (never the key in use, never the last one)',
  usage: 'KEY-ID',
  options: {},
  help: 'KEY-ID is an id from `lifeboat key list`, or an unambiguous prefix of at least 4 characters.',
  async run(ctx, _values, args) {
    if (args.length !== 1) throw usageError('give one KEY-ID (see `lifeboat key list`)');
    const repo = await openRepository(ctx, { lock: 'exclusive' });
    const removed = await repo.removeKey(args[0]);
    return { removed: removed.id };
  },
  human(r, out) {
    out.line(`removed key ${r.removed.slice(0, 12)}`);
  },
  effect: 'change',
  layer: 'repository',
  event: (r) => ({ details: { removed: r.removed.slice(0, 12) } }),
};
