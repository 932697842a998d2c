/**
 * Chooses the keystore from `--keystore` / LIFEBOAT_KEYSTORE, or from what the environment offers:
 *   passphrase            LIFEBOAT_PASSWORD, or the file named by --password-file / LIFEBOAT_PASSWORD_FILE
 *   keyfile[:PATH]        a local key file (default ~/.config/lifeboat/default.key, or LIFEBOAT_KEY_FILE)
 *   azurekv://VAULT/NAME, azurekv://VAULT/keys/NAME (= azurekv-key://VAULT/NAME), https://VAULT-HOST/secrets|keys/NAME
 *                         Azure Key Vault, secret or envelope (wrap-key) mode (docs/keys.md)
 * With no spec: a passphrase if one is given, else the default key file (the embedded default).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { LifeboatError } from '../errors.ts';
import { KeyFileKeystore } from './keyfile.ts';
import type { Keystore } from './keystore.ts';
import { PassphraseKeystore } from './passphrase.ts';

export interface KeystoreOptions {
  keystore?: string;
  passwordFile?: string;
  keyFile?: string;
}

export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LIFEBOAT_KEY_FILE) return env.LIFEBOAT_KEY_FILE;
  const config = env.XDG_CONFIG_HOME ?? path.join(homedir(), '.config');
  return path.join(config, 'lifeboat', 'default.key');
}

function passphraseFrom(
  opts: KeystoreOptions,
  env: NodeJS.ProcessEnv,
  prefix = 'LIFEBOAT',
): PassphraseKeystore | undefined {
  const file = opts.passwordFile ?? env[`${prefix}_PASSWORD_FILE`];
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new LifeboatError(
        'KEY_UNAVAILABLE',
        `cannot read password file ${file} (${(e as NodeJS.ErrnoException).code})`,
        {
          hint: 'check the path and its permissions',
        },
      );
    }
    return new PassphraseKeystore(text.replace(/\r?\n$/, ''), `file ${file}`);
  }
  const pw = env[`${prefix}_PASSWORD`];
  if (pw !== undefined) return new PassphraseKeystore(pw, `${prefix}_PASSWORD`);
  return undefined;
}

export async function openKeystore(
  opts: KeystoreOptions = {},
  env: NodeJS.ProcessEnv = process.env,
  prefix = 'LIFEBOAT',
): Promise<Keystore> {
  const spec = opts.keystore ?? env[`${prefix}_KEYSTORE`];
  if (!spec)
    return passphraseFrom(opts, env, prefix) ?? new KeyFileKeystore(opts.keyFile ?? defaultKeyFile(env));
  if (spec === 'passphrase') {
    const ks = passphraseFrom(opts, env, prefix);
    if (!ks) {
      throw new LifeboatError('USAGE', 'keystore "passphrase" needs a passphrase', {
        hint: `set ${prefix}_PASSWORD or ${prefix}_PASSWORD_FILE (or --password-file)`,
      });
    }
    return ks;
  }
  if (spec === 'keyfile' || spec.startsWith('keyfile:')) {
    const file = spec.slice('keyfile:'.length) || opts.keyFile || defaultKeyFile(env);
    return new KeyFileKeystore(file);
  }
  if (/^(azurekv|azurekv-key|https):\/\//i.test(spec)) {
    // Loaded lazily: the Azure SDKs are heavy and most runs use a passphrase or key file.
    const { AzureKeyVaultKeystore } = await import('./azure-keyvault.ts');
    return new AzureKeyVaultKeystore(spec);
  }
  throw new LifeboatError('USAGE', `unknown keystore "${spec}"`, {
    hint: 'use passphrase, keyfile[:PATH], azurekv://VAULT/SECRET or azurekv://VAULT/keys/KEY',
  });
}
