/**
 * Azure Key Vault keystores. Two modes:
 *
 * - secret (`azurekv://VAULT/NAME`, `azurekv://VAULT/secrets/NAME`, `https://HOST[:PORT]/secrets/NAME`):
 *   the repository master key is stored as a Key Vault secret, tagged with the repository id, as the
 *   guide does it. The record in `keys/` names the vault, the secret and the exact version, so a later
 *   write to the same name never makes an old repository unreadable.
 * - key (`azurekv://VAULT/keys/NAME`, or `azurekv-key://VAULT/NAME`, `https://HOST[:PORT]/keys/NAME`): envelope encryption — the master
 *   key is wrapped with a Key Vault RSA key (RSA-OAEP-256) and only the wrapped bytes are stored in the
 *   repository; the private key never leaves the vault. The record pins the key version, so rotating the
 *   key in the vault (new version) keeps old records readable; `lifeboat key add` re-wraps with the
 *   newest version.
 *
 * `azurekv://VAULT/…` means https://VAULT.vault.azure.net. The https form takes any vault URL (sovereign
 * clouds, private endpoints, emulators); for hosts outside the public Key Vault domains the SDK's check
 * that the challenge names a vault.azure.net resource is turned off, since such a host is what the
 * operator explicitly asked for. TLS verification is never turned off: add a private CA with
 * NODE_EXTRA_CA_CERTS.
 *
 * Authentication: DefaultAzureCredential (managed identity, AKS workload identity, `az login`), or a
 * credential passed in. Roles: docs/keys.md.
 */
import { defaultAzureCredential } from '../azure-credential.ts';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenCredential } from '@azure/core-auth';
import { LifeboatError } from '../errors.ts';
import type { KeyContext, KeyRecord, Keystore } from './keystore.ts';

export type KeyVaultMode = 'secret' | 'key';

export interface KeyVaultSpec {
  mode: KeyVaultMode;
  /** https://… without a trailing slash. */
  vaultUrl: string;
  name: string;
}

const PUBLIC_VAULT_SUFFIXES = [
  '.vault.azure.net',
  '.vault.azure.cn',
  '.vault.usgovcloudapi.net',
  '.managedhsm.azure.net',
];
const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const SPEC_HINT =
  'use azurekv://VAULT/SECRET, azurekv://VAULT/keys/KEY, or https://VAULT-HOST/secrets/NAME | /keys/NAME';

export function isKeyVaultSpec(spec: string): boolean {
  return /^azurekv(-key)?:\/\//i.test(spec) || /^https:\/\//i.test(spec);
}

export function parseKeyVaultSpec(spec: string): KeyVaultSpec {
  let vaultUrl: string;
  let rest: string[];
  // `azurekv-key://VAULT/NAME` is shorthand for `azurekv://VAULT/keys/NAME`.
  const short = /^azurekv-key:\/\/([^/]+)\/([^/]+)$/i.exec(spec);
  if (short) spec = `azurekv://${short[1]}/keys/${short[2]}`;
  const kv = /^azurekv:\/\/([^/]+)\/(.+)$/i.exec(spec);
  if (kv) {
    if (!/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(kv[1])) {
      throw new LifeboatError('USAGE', `invalid Key Vault name ${JSON.stringify(kv[1])} in ${spec}`, {
        hint: 'vault names are 3-24 letters, digits and hyphens, starting with a letter',
      });
    }
    vaultUrl = `https://${kv[1].toLowerCase()}.vault.azure.net`;
    rest = kv[2].split('/');
  } else if (/^https:\/\//i.test(spec)) {
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new LifeboatError('USAGE', `invalid Key Vault URL ${JSON.stringify(spec)}`, { hint: SPEC_HINT });
    }
    if (u.username || u.password || u.search) {
      throw new LifeboatError('USAGE', `Key Vault URL ${u.host} must not carry credentials or a query`, {
        hint: SPEC_HINT,
      });
    }
    vaultUrl = `https://${u.host}`;
    rest = u.pathname.split('/').filter(Boolean);
  } else {
    throw new LifeboatError('USAGE', `not a Key Vault keystore: ${JSON.stringify(spec)}`, {
      hint: SPEC_HINT,
    });
  }
  let mode: KeyVaultMode;
  let name: string | undefined;
  if (rest.length === 1 && kv) [mode, name] = ['secret', rest[0]];
  else if (rest.length === 2 && (rest[0] === 'secrets' || rest[0] === 'keys'))
    [mode, name] = [rest[0] === 'keys' ? 'key' : 'secret', rest[1]];
  else
    throw new LifeboatError(
      'USAGE',
      `cannot tell secret or key from Key Vault keystore ${JSON.stringify(spec)}`,
      { hint: SPEC_HINT },
    );
  if (!NAME_RE.test(name)) {
    throw new LifeboatError('USAGE', `invalid Key Vault ${mode} name ${JSON.stringify(name)}`, {
      hint: 'names are 1-127 letters, digits and hyphens',
    });
  }
  return { mode, vaultUrl, name };
}

export interface KeyVaultKeystoreOptions {
  credential?: TokenCredential;
  /** SDK retries for transient failures (default 2). */
  maxRetries?: number;
}

export const KIND_SECRET = 'azurekv-secret';
export const KIND_KEY = 'azurekv-key';
const WRAP_ALG = 'RSA-OAEP-256';
const TAG_REPO = 'lifeboat-repository';
const TAG_PURPOSE = 'lifeboat-purpose';

/** A short, one-way fingerprint of the master key: tells "wrong secret" from "corrupt data" on unwrap. */
function checkValue(master: Buffer): string {
  return createHash('sha256').update('lifeboat key check value\0').update(master).digest('hex').slice(0, 32);
}

export class AzureKeyVaultKeystore implements Keystore {
  readonly kind: string;
  readonly description: string;
  readonly spec: KeyVaultSpec;
  private readonly credential: TokenCredential;
  private readonly clientOptions: Record<string, unknown>;

  constructor(spec: string | KeyVaultSpec, options: KeyVaultKeystoreOptions = {}) {
    this.spec = typeof spec === 'string' ? parseKeyVaultSpec(spec) : spec;
    this.kind = this.spec.mode === 'secret' ? KIND_SECRET : KIND_KEY;
    this.description = `Azure Key Vault ${this.spec.mode} ${this.spec.vaultUrl}/${this.spec.mode === 'secret' ? 'secrets' : 'keys'}/${this.spec.name}`;
    this.credential = options.credential ?? defaultAzureCredential();
    const host = new URL(this.spec.vaultUrl).hostname;
    this.clientOptions = {
      disableChallengeResourceVerification: !PUBLIC_VAULT_SUFFIXES.some((s) => host.endsWith(s)),
      retryOptions: { maxRetries: options.maxRetries ?? 2, retryDelayInMs: 200, maxRetryDelayInMs: 2000 },
    };
  }

  async wrap(masterKey: Buffer, context: KeyContext): Promise<KeyRecord> {
    return this.spec.mode === 'secret' ? this.wrapSecret(masterKey, context) : this.wrapKey(masterKey);
  }

  async unwrap(record: KeyRecord, _context: KeyContext): Promise<Buffer> {
    if (record.kind !== this.kind) {
      throw new LifeboatError(
        'WRONG_KEY',
        `key record of kind ${record.kind} cannot be opened by ${this.description}`,
      );
    }
    const vault = String(record.vault);
    const name = String(this.spec.mode === 'secret' ? record.secret : record.key);
    if (vault !== this.spec.vaultUrl || name.toLowerCase() !== this.spec.name.toLowerCase()) {
      // Another vault object's record: let the repository try its next record.
      throw new LifeboatError(
        'WRONG_KEY',
        `key record belongs to ${vault} ${name}, not to ${this.description}`,
      );
    }
    const master =
      this.spec.mode === 'secret' ? await this.unwrapSecret(record) : await this.unwrapKey(record);
    const expected = Buffer.from(String(record.check ?? ''), 'hex');
    const actual = Buffer.from(checkValue(master), 'hex');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw new LifeboatError(
        'WRONG_KEY',
        `${this.description} does not hold this repository's key (check value differs)`,
        {
          hint: 'the secret was overwritten or belongs to another repository; use the key record of another keystore (`lifeboat key list`)',
        },
      );
    }
    return master;
  }

  async forget(record: KeyRecord, _context: KeyContext): Promise<void> {
    // Secret mode: disable (not delete) the version this record pointed at — reversible, and no longer
    // readable by anyone holding only "get" rights. Key mode: the vault key may protect other
    // repositories; it stays.
    if (this.spec.mode !== 'secret' || record.kind !== KIND_SECRET) return;
    const client = await this.secretClient();
    try {
      await client.updateSecretProperties(String(record.secret), String(record.version), { enabled: false });
    } catch (e) {
      throw await this.mapError(e, `disable secret ${record.secret} version ${record.version}`);
    }
  }

  // ---- secret mode

  private async secretClient() {
    const { SecretClient } = await import('@azure/keyvault-secrets');
    return new SecretClient(this.spec.vaultUrl, this.credential, this.clientOptions);
  }

  private async wrapSecret(master: Buffer, context: KeyContext): Promise<KeyRecord> {
    const client = await this.secretClient();
    const name = this.spec.name;
    // Refuse to reuse a secret that holds another repository's key: versions are kept, so nothing would
    // be lost, but two repositories sharing one name is a mistake waiting for a `forget`.
    try {
      const current = await client.getSecret(name);
      const owner = current.properties.tags?.[TAG_REPO];
      if (owner && owner !== context.repositoryId) {
        throw new LifeboatError(
          'CONFLICT',
          `Key Vault secret ${name} already holds the key of repository ${owner}`,
          {
            hint: 'choose another secret name for this repository (--keystore azurekv://VAULT/ANOTHER-NAME)',
          },
        );
      }
    } catch (e) {
      if (e instanceof LifeboatError) throw e;
      const status = (e as { statusCode?: number }).statusCode;
      // Absent or disabled: fine, a new version is written. Anything else (denied, unreachable) is final.
      if (status !== 404 && !(status === 403 && /disabled/i.test(String((e as Error).message)))) {
        throw await this.mapError(e, `read secret ${name}`);
      }
    }
    let stored;
    try {
      stored = await client.setSecret(name, master.toString('base64'), {
        contentType: 'application/vnd.lifeboat.master-key;encoding=base64',
        tags: { [TAG_REPO]: context.repositoryId, [TAG_PURPOSE]: 'repository-master-key' },
      });
    } catch (e) {
      throw await this.mapError(e, `write secret ${name}`);
    }
    return {
      kind: KIND_SECRET,
      created: new Date().toISOString(),
      vault: this.spec.vaultUrl,
      secret: name,
      version: stored.properties.version,
      check: checkValue(master),
    };
  }

  private async unwrapSecret(record: KeyRecord): Promise<Buffer> {
    const client = await this.secretClient();
    const name = String(record.secret);
    let secret;
    try {
      secret = await client.getSecret(name, { version: String(record.version ?? '') });
    } catch (e) {
      throw await this.mapError(e, `read secret ${name} version ${record.version}`);
    }
    const master = Buffer.from(secret.value ?? '', 'base64');
    if (master.length !== 32) {
      throw new LifeboatError(
        'WRONG_KEY',
        `Key Vault secret ${name} version ${record.version} is not a Lifeboat master key`,
        {
          hint: 'the secret was replaced by something else; restore the right version or use another key record',
        },
      );
    }
    return master;
  }

  // ---- key (envelope) mode

  private async cryptoClient(keyId: string) {
    const { CryptographyClient } = await import('@azure/keyvault-keys');
    return new CryptographyClient(keyId, this.credential, this.clientOptions);
  }

  private async wrapKey(master: Buffer): Promise<KeyRecord> {
    // Resolve the newest version first: the record must pin it, and a missing/disabled key is reported
    // here rather than as a failed wrap.
    const { KeyClient } = await import('@azure/keyvault-keys');
    const keys = new KeyClient(this.spec.vaultUrl, this.credential, this.clientOptions);
    let keyId: string;
    try {
      const key = await keys.getKey(this.spec.name);
      if (key.properties.enabled === false)
        throw Object.assign(new Error('Operation wrapKey is not allowed on a disabled key.'), {
          statusCode: 403,
        });
      keyId = key.id!;
    } catch (e) {
      throw await this.mapError(e, `read key ${this.spec.name}`);
    }
    try {
      const res = await (await this.cryptoClient(keyId)).wrapKey(WRAP_ALG, master);
      return {
        kind: KIND_KEY,
        created: new Date().toISOString(),
        vault: this.spec.vaultUrl,
        key: this.spec.name,
        keyId: res.keyID ?? keyId,
        alg: WRAP_ALG,
        wrapped: Buffer.from(res.result).toString('base64'),
        check: checkValue(master),
      };
    } catch (e) {
      throw await this.mapError(e, `wrap with key ${this.spec.name}`);
    }
  }

  private async unwrapKey(record: KeyRecord): Promise<Buffer> {
    const keyId = String(record.keyId);
    if (!keyId.startsWith(`${this.spec.vaultUrl}/keys/`)) {
      throw new LifeboatError('WRONG_KEY', `key record names ${keyId}, outside ${this.spec.vaultUrl}`);
    }
    try {
      const res = await (
        await this.cryptoClient(keyId)
      ).unwrapKey(
        String(record.alg ?? WRAP_ALG) as typeof WRAP_ALG,
        Buffer.from(String(record.wrapped), 'base64'),
      );
      return Buffer.from(res.result);
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 400) {
        throw new LifeboatError('WRONG_KEY', `Key Vault key ${keyId} cannot unwrap this record`, {
          hint: 'the record was wrapped by another key or is damaged; use another key record (`lifeboat key list`)',
          cause: e,
        });
      }
      throw await this.mapError(e, `unwrap with key ${keyId}`);
    }
  }

  // ---- errors

  private async mapError(e: unknown, what: string): Promise<LifeboatError> {
    if (e instanceof LifeboatError) return e;
    const err = e as { statusCode?: number; code?: string; message?: string; name?: string };
    const where = `${what} in ${this.spec.vaultUrl}`;
    const status = err.statusCode;
    const msg = String(err.message ?? '').split('\n')[0];
    const isSecret = this.spec.mode === 'secret';
    const noun = isSecret ? 'secret' : 'key';
    if (
      err.name === 'CredentialUnavailableError' ||
      err.name === 'AuthenticationError' ||
      err.name === 'AggregateAuthenticationError'
    ) {
      return new LifeboatError('AUTH', `${where}: no usable Azure credential (${msg})`, {
        hint: 'use a managed identity / AKS workload identity, or `az login`; see docs/keys.md',
        cause: e,
      });
    }
    if (status === undefined) {
      const code =
        /(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|EAI_AGAIN|EHOSTUNREACH|CERT_|UNABLE_TO_VERIFY|SELF_SIGNED)[A-Z_]*/.exec(
          `${err.code ?? ''} ${msg}`,
        )?.[0];
      const tlsProblem = code !== undefined && /CERT|VERIFY|SIGNED/.test(code);
      return new LifeboatError(
        'KEY_UNAVAILABLE',
        `${where}: cannot reach the vault (${code ?? msg}); nothing was changed`,
        {
          hint: tlsProblem
            ? 'the vault certificate is not trusted: add its CA with NODE_EXTRA_CA_CERTS (never disable TLS checks)'
            : 'check the vault name/URL, DNS, and the vault firewall / private endpoint; then run the command again',
          cause: e,
        },
      );
    }
    if (status === 401) {
      return new LifeboatError('AUTH', `${where}: the vault rejected the credential (${msg})`, {
        hint: 'check the identity and its tenant; see docs/keys.md',
        cause: e,
      });
    }
    if (status === 403 && /disabled/i.test(msg)) {
      return new LifeboatError('KEY_UNAVAILABLE', `${where}: the ${noun} ${this.spec.name} is disabled`, {
        hint: `re-enable it: az keyvault ${noun} set-attributes --enabled true --vault-name VAULT --name ${this.spec.name}${isSecret ? ' [--version V]' : ''}`,
        cause: e,
      });
    }
    if (status === 403) {
      return new LifeboatError('PERMISSION', `${where}: access denied (${msg})`, {
        hint: isSecret
          ? 'grant "Key Vault Secrets Officer" (init, key add) or "Key Vault Secrets User" (backup, restore) on the vault or secret'
          : 'grant "Key Vault Crypto User" (get, wrapKey, unwrapKey) on the vault or key',
        cause: e,
      });
    }
    if (status === 409 && /deleted but recoverable/i.test(msg)) {
      return new LifeboatError(
        'KEY_UNAVAILABLE',
        `${where}: the ${noun} name ${this.spec.name} is soft-deleted and cannot be reused`,
        {
          hint: `recover it (az keyvault ${noun} recover --vault-name VAULT --name ${this.spec.name}) or choose another name; purging destroys the old key`,
          cause: e,
        },
      );
    }
    if (status === 404) {
      const deleted = await this.deletedInfo();
      if (deleted) {
        return new LifeboatError(
          'KEY_UNAVAILABLE',
          `${where}: the ${noun} ${this.spec.name} was deleted${deleted.deletedOn ? ' on ' + deleted.deletedOn.toISOString() : ''} and is recoverable${deleted.purgeOn ? ' until ' + deleted.purgeOn.toISOString() : ''}`,
          {
            hint: `recover it: az keyvault ${noun} recover --vault-name VAULT --name ${this.spec.name} (nothing in the repository was changed)`,
            cause: e,
          },
        );
      }
      return new LifeboatError(
        'KEY_UNAVAILABLE',
        `${where}: the ${noun} ${this.spec.name} (or the version the repository needs) does not exist`,
        {
          hint: 'check the name; if it was purged, open the repository with another key record (`lifeboat key list`)',
          cause: e,
        },
      );
    }
    return new LifeboatError('KEY_UNAVAILABLE', `${where}: ${status} ${err.code ?? ''} ${msg}`.trim(), {
      cause: e,
    });
  }

  private async deletedInfo(): Promise<{ deletedOn?: Date; purgeOn?: Date } | undefined> {
    try {
      if (this.spec.mode === 'secret') {
        const d = await (await this.secretClient()).getDeletedSecret(this.spec.name);
        return { deletedOn: d.properties.deletedOn, purgeOn: d.properties.scheduledPurgeDate };
      }
      const { KeyClient } = await import('@azure/keyvault-keys');
      const d = await new KeyClient(this.spec.vaultUrl, this.credential, this.clientOptions).getDeletedKey(
        this.spec.name,
      );
      return { deletedOn: d.properties.deletedOn, purgeOn: d.properties.scheduledPurgeDate };
    } catch {
      return undefined;
    }
  }
}
