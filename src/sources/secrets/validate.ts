/**
 * `lifeboat validate --type secrets`: the secrets layer lives in Azure Key Vault (src/sources/secrets/),
 * so that is where it is checked. Every namespace manifest Lifeboat wrote is read, and every Secret it
 * lists is read back part by part: each part must carry the manifest's digest and the joined value must
 * hash (salted) to it — a secret changed in the vault behind Lifeboat's back fails, named by namespace,
 * Secret and vault name. Values are never shown, logged or kept.
 *
 * The layer is present when a vault is given (`--vault`, LIFEBOAT_SECRETS_VAULT, `secrets.vault`), with
 * or without a `secrets` snapshot in the repository; without vault access it is a warning.
 */
import { isLifeboatError, type ErrorCode } from '../../core/errors.ts';
import { NoAccess, type LayerValidator } from '../../operations/validate.ts';
import { readManifest, readParts, secretDigest, type SecretPayload } from './secrets.ts';
import { MANAGED_BY, MANAGED_BY_TAG } from './vault.ts';

const NO_ACCESS: ErrorCode[] = ['UNREACHABLE', 'AUTH', 'PERMISSION'];

function noAccess(e: unknown): never {
  if (NO_ACCESS.some((c) => isLifeboatError(e, c)))
    throw new NoAccess(`no Key Vault access (${(e as Error).message})`);
  throw e;
}

export const secretsValidator: LayerValidator = {
  layer: 'secrets',
  appliesTo: 'secrets',
  missingHint: 'and no Key Vault given (--vault or LIFEBOAT_SECRETS_VAULT)',
  async outside(peers) {
    try {
      return (await peers.vault()) !== undefined;
    } catch {
      return true; // a vault is given but cannot be opened: the layer is there, validate says why
    }
  },
  async validate(ctx) {
    const vault = await ctx.peers.vault();
    if (!vault) throw new NoAccess('no Key Vault given (--vault or LIFEBOAT_SECRETS_VAULT)');
    const listing = await vault.list().catch(noAccess);
    const namespaces = [...listing.values()]
      .filter((e) => e.tags[MANAGED_BY_TAG] === MANAGED_BY && e.tags['lifeboat-kind'] === 'manifest')
      .filter((e) => e.tags.part === undefined || e.tags.part.startsWith('1/'))
      .map((e) => e.tags['k8s-namespace'])
      .sort();
    if (!namespaces.length) {
      ctx.fail('vault', `${vault.url} holds no Lifeboat secrets manifest: run \`lifeboat secrets backup\``);
      return;
    }
    let verified = 0;
    for (const ns of namespaces) {
      ctx.signal.throwIfAborted();
      let manifest;
      try {
        manifest = await readManifest(vault, ns, listing);
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY') && !isLifeboatError(e, 'NOT_FOUND')) noAccess(e);
        ctx.fail('vault', `manifest of namespace ${ns}: ${(e as Error).message}`);
        continue;
      }
      if (!manifest) {
        ctx.fail('vault', `manifest of namespace ${ns} cannot be read`);
        continue;
      }
      for (const entry of manifest.secrets) {
        const what = `secret ${ns}/${entry.name} (Key Vault ${entry.vaultName})`;
        try {
          const text = await readParts(vault, entry.vaultName, entry.parts, entry.digest, (v) =>
            secretDigest(manifest.salt, v),
          );
          const payload = JSON.parse(text) as Pick<SecretPayload, 'namespace' | 'name'>;
          if (payload.namespace !== ns || payload.name !== entry.name)
            ctx.fail('vault', `${what} holds another Secret than the manifest lists`);
          else verified++;
        } catch (e) {
          if (!isLifeboatError(e, 'INTEGRITY') && !isLifeboatError(e, 'NOT_FOUND')) noAccess(e);
          const why = isLifeboatError(e, 'NOT_FOUND')
            ? 'a part is missing'
            : /digest/.test((e as Error).message)
              ? 'does not match the manifest digest (changed outside Lifeboat)'
              : 'a part is from another backup (written outside Lifeboat or by an interrupted backup)';
          ctx.fail('vault', `${what}: ${why}; run \`lifeboat secrets backup\` again`);
        }
      }
    }
    ctx.note(`${verified} secret(s) in ${namespaces.length} namespace(s) match their digests`);
  },
};
