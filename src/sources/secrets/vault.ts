/**
 * The Key Vault side of the secrets layer: list names with their tags, read values, and write a value
 * only where Lifeboat may (absent, or tagged `managed-by=lifeboat`). A soft-deleted name (409
 * ObjectIsDeletedButRecoverable) is recovered, waited for, then written. Throttling (429 + Retry-After)
 * is retried by the Azure SDK's throttling policy, bounded by `maxRetries`.
 *
 * Errors never carry a value: Azure SDK errors keep the request (with its body) attached, so they are
 * turned into LifeboatErrors from status and service message only, without `cause`.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { SecretClient } from '@azure/keyvault-secrets';
import { defaultAzureCredential } from '../../core/azure-credential.ts';
import { LifeboatError } from '../../core/errors.ts';

export const MANAGED_BY_TAG = 'managed-by';
export const MANAGED_BY = 'lifeboat';

const PUBLIC_VAULT_SUFFIXES = [
  '.vault.azure.net',
  '.vault.azure.cn',
  '.vault.usgovcloudapi.net',
  '.managedhsm.azure.net',
];

export interface VaultOptions {
  credential?: TokenCredential;
  /** SDK retries (429 honouring Retry-After, 5xx, connection errors); default 6. */
  maxRetries?: number;
  /** How long to wait for a recovered name to become usable (default 120 s). */
  recoverTimeoutMs?: number;
}

export interface VaultEntry {
  name: string;
  tags: Record<string, string>;
  /** When its current version was written (ISO), when the vault says. */
  updatedOn?: string;
}

/** A bearer token from the environment (`az account get-access-token --resource https://vault.azure.net`). */
function tokenCredential(token: string): TokenCredential {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
}

export function parseVaultUrl(url: string | undefined): string {
  if (!url)
    throw new LifeboatError('USAGE', 'no Key Vault given', {
      hint: 'pass --vault https://NAME.vault.azure.net (or set LIFEBOAT_SECRETS_VAULT)',
    });
  let u: URL;
  try {
    u = new URL(/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(url) ? `https://${url}.vault.azure.net` : url);
  } catch {
    throw new LifeboatError('USAGE', `invalid Key Vault URL ${JSON.stringify(url)}`, {
      hint: 'use https://NAME.vault.azure.net or just NAME',
    });
  }
  if (u.protocol !== 'https:' || u.username || u.password || u.search || u.pathname.replace(/\/$/, ''))
    throw new LifeboatError('USAGE', `Key Vault URL must be https://HOST with no path or query: ${u.host}`, {
      hint: 'use https://NAME.vault.azure.net',
    });
  return `https://${u.host}`;
}

export class SecretsVault {
  readonly url: string;
  private readonly options: VaultOptions;
  private readonly env: NodeJS.ProcessEnv;
  private client?: Promise<SecretClient>;
  /** Writes made (new versions), for the summary. */
  writes = 0;
  /** Names recovered from soft delete during this run. */
  readonly recovered = new Set<string>();

  constructor(url: string, options: VaultOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    this.url = url;
    this.options = options;
    this.env = env;
  }

  private sdk(): Promise<SecretClient> {
    this.client ??= import('@azure/keyvault-secrets').then((m) => {
      const host = new URL(this.url).hostname;
      const token = this.env.LIFEBOAT_SECRETS_VAULT_TOKEN;
      const credential =
        this.options.credential ?? (token ? tokenCredential(token) : defaultAzureCredential());
      return new m.SecretClient(this.url, credential, {
        // A host outside the public Key Vault domains is what the operator asked for (private endpoint,
        // sovereign cloud, test vault): do not insist the challenge names vault.azure.net.
        disableChallengeResourceVerification: !PUBLIC_VAULT_SUFFIXES.some((s) => host.endsWith(s)),
        retryOptions: {
          maxRetries: this.options.maxRetries ?? 6,
          retryDelayInMs: 500,
          maxRetryDelayInMs: 30_000,
        },
      });
    });
    return this.client;
  }

  /** Every (enabled or not) secret name in the vault with its tags, keyed by lowercased name. */
  async list(): Promise<Map<string, VaultEntry>> {
    const out = new Map<string, VaultEntry>();
    try {
      for await (const p of (await this.sdk()).listPropertiesOfSecrets())
        out.set(p.name.toLowerCase(), {
          name: p.name,
          tags: p.tags ?? {},
          ...(p.updatedOn ? { updatedOn: p.updatedOn.toISOString() } : {}),
        });
    } catch (e) {
      throw this.toError(e, 'list secrets');
    }
    return out;
  }

  async get(name: string): Promise<{ value: string; tags: Record<string, string> } | undefined> {
    try {
      const s = await (await this.sdk()).getSecret(name);
      return { value: s.value ?? '', tags: s.properties.tags ?? {} };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.toError(e, `read ${name}`);
    }
  }

  /**
   * Writes a new version. The caller has checked ownership from a listing; a name that was soft-deleted
   * (and so was not listed) is recovered first, and its recovered tags are checked again.
   */
  async set(name: string, value: string, tags: Record<string, string>): Promise<void> {
    const client = await this.sdk();
    for (let attempt = 0; ; attempt++) {
      try {
        await client.setSecret(name, value, { tags, contentType: 'application/json' });
        this.writes++;
        return;
      } catch (e) {
        const err = e as { statusCode?: number; message?: string };
        if (err.statusCode === 409 && attempt < 3 && /deleted but recoverable/i.test(err.message ?? '')) {
          await this.recover(name);
          continue;
        }
        // 409 Conflict right after a recovery: the name is still being restored; wait a little.
        if (err.statusCode === 409 && attempt < 20) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        throw this.toError(e, `write ${name}`);
      }
    }
  }

  private async recover(name: string): Promise<void> {
    const client = await this.sdk();
    try {
      const deleted = await client.getDeletedSecret(name);
      if (deleted.properties.tags?.[MANAGED_BY_TAG] !== MANAGED_BY) {
        throw new LifeboatError(
          'CONFLICT',
          `${this.url}: ${name} is a soft-deleted secret Lifeboat did not create; left alone`,
          { hint: 'recover or purge it yourself, or back up that Kubernetes Secret under another name' },
        );
      }
      const poller = await client.beginRecoverDeletedSecret(name, { intervalInMs: 250 });
      const timeout = this.options.recoverTimeoutMs ?? 120_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        poller.pollUntilDone(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new LifeboatError(
                  'TIMEOUT',
                  `${this.url}: ${name} was not recovered within ${timeout / 1000} s`,
                  {
                    hint: 'run the backup again in a minute',
                  },
                ),
              ),
            timeout,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      this.recovered.add(name.toLowerCase());
    } catch (e) {
      throw this.toError(e, `recover ${name}`);
    }
  }

  toError(e: unknown, what: string): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const err = e as { statusCode?: number; code?: string; message?: string; name?: string };
    const where = `${what} in ${this.url}`;
    const msg = String(err.message ?? '')
      .split('\n')[0]
      .slice(0, 300);
    const status = err.statusCode;
    if (/CredentialUnavailable|AuthenticationError/.test(err.name ?? ''))
      return new LifeboatError('AUTH', `${where}: no usable Azure credential (${msg})`, {
        hint: 'use a managed identity / AKS workload identity, `az login`, or LIFEBOAT_SECRETS_VAULT_TOKEN',
      });
    if (status === undefined)
      return new LifeboatError('UNREACHABLE', `${where}: cannot reach the vault (${err.code ?? msg})`, {
        hint: 'check the vault URL, DNS, firewall / private endpoint; a private CA goes in NODE_EXTRA_CA_CERTS',
      });
    if (status === 401)
      return new LifeboatError('AUTH', `${where}: the vault rejected the credential (${msg})`, {
        hint: 'check the identity and its tenant',
      });
    if (status === 403)
      return new LifeboatError('PERMISSION', `${where}: access denied (${msg})`, {
        hint: 'grant secrets get/list/set/recover (RBAC: "Key Vault Secrets Officer"); see docs/secrets.md',
      });
    if (status === 429)
      return new LifeboatError('UNREACHABLE', `${where}: still throttled after retries (429)`, {
        hint: 'Key Vault allows 300 secret writes per 10 s per vault; run again later',
        transient: true,
      });
    if (status === 400)
      return new LifeboatError('INTERNAL', `${where}: rejected by Key Vault (${msg})`, {
        hint: 'a name, tag or size limit was not respected: please report',
      });
    return new LifeboatError(
      status >= 500 ? 'UNREACHABLE' : 'INTERNAL',
      `${where}: HTTP ${status} (${msg})`,
      {
        hint: 'check the vault and try again',
      },
    );
  }
}
