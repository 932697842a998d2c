/**
 * Azure Blob Storage backend: `azure://ACCOUNT/CONTAINER/PREFIX`.
 *
 * Authentication, first match wins (the same environment variables the Azure CLI reads):
 * 1. a connection string (`connectionString` option or AZURE_STORAGE_CONNECTION_STRING) — its endpoint
 *    and account win over the URL's account, which is how Azurite and sovereign clouds are reached;
 * 2. an account key (`accountKey` or AZURE_STORAGE_KEY);
 * 3. a SAS token (`sasToken` or AZURE_STORAGE_SAS_TOKEN), e.g. one scoped to the container;
 * 4. DefaultAzureCredential (managed identity, AKS workload identity, Azure CLI login) — the production
 *    choice; it needs the "Storage Blob Data Contributor" role on the container (docs/storage.md).
 *
 * Write-once and atomicity: small objects are one PUT with `If-None-Match: *`; large ones are staged as
 * uncommitted blocks (invisible to readers) and made visible by one Put Block List carrying the same
 * condition, so an interrupted upload leaves no object and a concurrent writer of the same name loses
 * cleanly with ALREADY_EXISTS.
 */
import { randomBytes } from 'node:crypto';
import {
  BlobServiceClient,
  StorageSharedKeyCredential,
  AnonymousCredential,
  type ContainerClient,
  type BlockBlobClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import type { TokenCredential } from '@azure/core-auth';
import { defaultAzureCredential } from '../azure-credential.ts';
import { LifeboatError } from '../errors.ts';
import {
  listConfig,
  objectPath,
  type Backend,
  type ByteRange,
  type Handle,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from './backend.ts';
import { mapLimit } from '../concurrency.ts';
import { attemptsOf, networkCodeOf, withRetry, type RetryOptions } from './retry.ts';

export type AzureAccessTier = 'Hot' | 'Cool' | 'Cold';

export interface AzureBackendOptions {
  connectionString?: string;
  accountKey?: string;
  sasToken?: string;
  /** Blob service endpoint override (e.g. a private endpoint); the account name still comes from the URL. */
  endpoint?: string;
  /** Used when no connection string, key or SAS is given; defaults to DefaultAzureCredential. */
  credential?: TokenCredential;
  /** Access tier for pack files (`data/`) only; metadata stays Hot because every command reads it. */
  accessTier?: AzureAccessTier;
  /** Objects larger than this are uploaded as blocks of this size (default 8 MiB). */
  blockSize?: number;
  /** Blocks in flight per upload (default 4): memory stays bounded by the caller's buffer. */
  concurrency?: number;
  listPageSize?: number;
  retry?: RetryOptions;
  /** Per-request timeout in ms (default 120 s); a stalled connection counts as transient. */
  tryTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface AzureLocation {
  account: string;
  container: string;
  prefix: string;
}

export function parseAzureUrl(url: string): AzureLocation {
  const m = /^azure:\/\/([^/]+)\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) {
    throw new LifeboatError('USAGE', `invalid Azure repository URL ${JSON.stringify(url)}`, {
      hint: 'use azure://ACCOUNT/CONTAINER or azure://ACCOUNT/CONTAINER/PREFIX',
    });
  }
  const [, account, container, rawPrefix = ''] = m;
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new LifeboatError('USAGE', `invalid storage account name ${JSON.stringify(account)} in ${url}`, {
      hint: 'storage account names are 3-24 lowercase letters and digits',
    });
  }
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(container)) {
    throw new LifeboatError('USAGE', `invalid container name ${JSON.stringify(container)} in ${url}`, {
      hint: 'container names are 3-63 lowercase letters, digits and single hyphens, starting with a letter or digit',
    });
  }
  const prefix = rawPrefix.replace(/^\/+|\/+$/g, '');
  return { account, container, prefix: prefix ? `${prefix}/` : '' };
}

const DEFAULT_BLOCK = 8 * 1024 * 1024;

export class AzureBackend implements Backend {
  readonly location: string;
  readonly loc: AzureLocation;
  readonly container: ContainerClient;
  private readonly options: AzureBackendOptions;
  private readonly blockSize: number;
  /** How we authenticated, for error hints (never the secret itself). */
  readonly authMethod: 'connection-string' | 'account-key' | 'sas' | 'token';
  /** The SAS token's own expiry (`se`), to name an expired token instead of a generic auth failure. */
  private sasExpiry: Date | undefined;

  constructor(url: string, options: AzureBackendOptions = {}) {
    this.loc = parseAzureUrl(url);
    this.location = `azure://${this.loc.account}/${this.loc.container}${this.loc.prefix ? '/' + this.loc.prefix.slice(0, -1) : ''}`;
    this.options = options;
    this.blockSize = options.blockSize ?? DEFAULT_BLOCK;
    if (options.accessTier && !['Hot', 'Cool', 'Cold'].includes(options.accessTier)) {
      throw new LifeboatError('USAGE', `invalid access tier ${JSON.stringify(options.accessTier)}`, {
        hint: 'use Hot, Cool or Cold (Archive blobs cannot be read without rehydration, so restores would fail)',
      });
    }
    const env = options.env ?? process.env;
    // Our retry loop is the only one (see retry.ts); the SDK's would multiply attempts and hide faults.
    const pipeline: StoragePipelineOptions = { retryOptions: { maxTries: 1 } };
    const connectionString = options.connectionString ?? env.AZURE_STORAGE_CONNECTION_STRING;
    const accountKey = options.accountKey ?? env.AZURE_STORAGE_KEY;
    const sas = options.sasToken ?? env.AZURE_STORAGE_SAS_TOKEN;
    const endpoint = (options.endpoint ?? `https://${this.loc.account}.blob.core.windows.net`).replace(
      /\/+$/,
      '',
    );
    let service: BlobServiceClient;
    if (connectionString) {
      this.authMethod = 'connection-string';
      try {
        service = BlobServiceClient.fromConnectionString(connectionString, pipeline);
      } catch (e) {
        throw new LifeboatError(
          'CONFIG',
          'AZURE_STORAGE_CONNECTION_STRING is not a valid connection string',
          {
            hint: 'copy it again from the portal (Access keys) or `az storage account show-connection-string`',
            cause: e,
          },
        );
      }
    } else if (accountKey) {
      this.authMethod = 'account-key';
      let cred: StorageSharedKeyCredential;
      try {
        cred = new StorageSharedKeyCredential(this.loc.account, accountKey);
      } catch (e) {
        throw new LifeboatError('CONFIG', 'AZURE_STORAGE_KEY is not a valid account key (base64 expected)', {
          hint: 'copy key1 or key2 from the storage account Access keys page',
          cause: e,
        });
      }
      service = new BlobServiceClient(endpoint, cred, pipeline);
    } else if (sas) {
      this.authMethod = 'sas';
      const se = new URLSearchParams(sas.replace(/^\?/, '')).get('se');
      this.sasExpiry = se ? new Date(se) : undefined;
      service = new BlobServiceClient(
        `${endpoint}?${sas.replace(/^\?/, '')}`,
        new AnonymousCredential(),
        pipeline,
      );
    } else {
      this.authMethod = 'token';
      service = new BlobServiceClient(endpoint, options.credential ?? defaultAzureCredential(), pipeline);
    }
    this.container = service.getContainerClient(this.loc.container);
  }

  private key(h: Handle): string {
    return this.loc.prefix + objectPath(h);
  }

  private blob(h: Handle): BlockBlobClient {
    return this.container.getBlockBlobClient(this.key(h));
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.options.tryTimeoutMs ?? 120_000);
  }

  private retry<T>(fn: (attempt: number) => Promise<T>): Promise<T> {
    return withRetry((s) => fn(s.attempt), isTransient, this.options.retry);
  }

  async create(): Promise<void> {
    try {
      await this.retry(async () => {
        // exists() first: a container-scoped SAS or a data-plane role may read but not create containers.
        let exists: boolean;
        try {
          exists = await this.container.exists({ abortSignal: this.signal() });
        } catch (e) {
          // A service SAS for the container may not read container properties; listing (the `l` it must
          // have anyway) proves the container is there.
          if ((e as { statusCode?: number }).statusCode !== 403) throw e;
          await this.container
            .listBlobsFlat({ abortSignal: this.signal() })
            .byPage({ maxPageSize: 1 })
            .next();
          exists = true;
        }
        if (exists) return;
        await this.container.createIfNotExists({ abortSignal: this.signal() });
      });
    } catch (e) {
      throw this.mapError(e, `create container ${this.loc.container}`);
    }
  }

  async save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const blob = this.blob(h);
    const conditions = options.overwrite ? undefined : { ifNoneMatch: '*' };
    const tier = h.type === 'data' ? this.options.accessTier : undefined;
    const what = `save ${this.key(h)}`;
    let retried = false;
    try {
      if (data.byteLength <= this.blockSize) {
        await this.retry(async (attempt) => {
          retried = attempt > 1;
          await blob.upload(data, data.byteLength, { conditions, tier, abortSignal: this.signal() });
        });
      } else {
        // Blocks stay uncommitted (invisible) until the block list is committed; the random upload id
        // keeps two writers of the same name from committing each other's blocks.
        const uploadId = randomBytes(6).toString('hex');
        const count = Math.ceil(data.byteLength / this.blockSize);
        const ids = Array.from({ length: count }, (_, i) =>
          Buffer.from(`${uploadId}-${String(i).padStart(6, '0')}`).toString('base64'),
        );
        await mapLimit(ids, this.options.concurrency ?? 4, (id, i) => {
          const part = data.subarray(i * this.blockSize, Math.min(data.byteLength, (i + 1) * this.blockSize));
          return this.retry(() => blob.stageBlock(id, part, part.byteLength, { abortSignal: this.signal() }));
        });
        await this.retry(async (attempt) => {
          retried = attempt > 1;
          await blob.commitBlockList(ids, { conditions, tier, abortSignal: this.signal() });
        });
      }
    } catch (e) {
      const err = this.mapError(e, what);
      // A retried write-once PUT may have succeeded the first time with its answer lost on the way back;
      // if what is there now is byte-for-byte ours, the save did happen.
      if (err.code === 'ALREADY_EXISTS' && retried && (await this.holds(h, data))) return;
      throw err;
    }
  }

  private async holds(h: Handle, data: Uint8Array): Promise<boolean> {
    try {
      const existing = await this.load(h);
      return Buffer.compare(existing, data) === 0;
    } catch {
      return false;
    }
  }

  async load(h: Handle, range?: ByteRange): Promise<Buffer> {
    const blob = this.blob(h);
    if (range && range.length === 0) return Buffer.alloc(0);
    try {
      return await this.retry(async () => {
        try {
          const res = await blob.download(range?.offset ?? 0, range?.length, {
            abortSignal: this.signal(),
            maxRetryRequests: 0,
          });
          return await readAll(res.readableStreamBody);
        } catch (e) {
          // A range starting at or past the end: the contract says "what exists", i.e. nothing.
          if (range && (e as { statusCode?: number }).statusCode === 416) return Buffer.alloc(0);
          throw e;
        }
      });
    } catch (e) {
      throw this.mapError(e, `load ${this.key(h)}`);
    }
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    try {
      const p = await this.retry(() => this.blob(h).getProperties({ abortSignal: this.signal() }));
      return { name: h.name, size: p.contentLength ?? 0 };
    } catch (e) {
      throw this.mapError(e, `stat ${this.key(h)}`);
    }
  }

  async *list(type: ObjectType): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      yield* listConfig((h) => this.stat(h));
      return;
    }
    const prefix = `${this.loc.prefix}${type}/`;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.retry(async () => {
          const it = this.container
            .listBlobsFlat({ prefix, abortSignal: this.signal() })
            .byPage({ continuationToken: token, maxPageSize: this.options.listPageSize ?? 1000 });
          return (await it.next()).value;
        });
      } catch (e) {
        const err = this.mapError(e, `list ${prefix}`);
        // Like an absent directory on disk: a location that was never created holds nothing (this is how
        // `init` sees that it may proceed and `open` reports "no repository").
        if (err.code === 'NO_REPOSITORY') return;
        throw err;
      }
      if (!page) return;
      for (const item of page.segment.blobItems) {
        const name = item.name.slice(item.name.lastIndexOf('/') + 1);
        yield { name, size: item.properties.contentLength ?? 0 };
      }
      token = page.continuationToken || undefined;
    } while (token);
  }

  async remove(h: Handle): Promise<void> {
    try {
      await this.retry(() =>
        this.blob(h).deleteIfExists({ deleteSnapshots: 'include', abortSignal: this.signal() }),
      );
    } catch (e) {
      throw this.mapError(e, `remove ${this.key(h)}`);
    }
  }

  async close(): Promise<void> {}

  /** Turns whatever the SDK threw into the one LifeboatError an operator reads. */
  mapError(e: unknown, what: string): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const err = e as {
      statusCode?: number;
      code?: string;
      message?: string;
      details?: { errorCode?: string };
    };
    const status = err?.statusCode;
    const code = err?.details?.errorCode ?? err?.code ?? '';
    const attempts = attemptsOf(e);
    const where = `${what} in ${this.location}`;
    const net = networkCodeOf(e);
    if (status === undefined && net) {
      return new LifeboatError(
        'UNREACHABLE',
        `${where}: cannot reach the blob endpoint (${net}, ${attempts} attempts)`,
        {
          hint: 'check the endpoint in the connection string, DNS, firewall/private endpoint rules, and that the service is up',
          cause: e,
        },
      );
    }
    switch (status) {
      case 404:
        if (code === 'ContainerNotFound') {
          return new LifeboatError(
            'NO_REPOSITORY',
            `${where}: container ${this.loc.container} does not exist`,
            {
              hint: 'check the container name in the URL, or run `lifeboat init` to create the repository',
              cause: e,
            },
          );
        }
        return new LifeboatError('NOT_FOUND', `${where}: object does not exist`, { cause: e });
      case 409:
      case 412:
        if (/Immutab|Legal ?Hold/i.test(code)) {
          return new LifeboatError(
            'PERMISSION',
            `${where}: blob is protected by an immutability policy or legal hold (${code})`,
            {
              hint: 'objects under a WORM policy cannot be changed or removed until their retention period ends',
              cause: e,
            },
          );
        }
        if (code === 'BlobAlreadyExists' || code === 'ConditionNotMet' || status === 412) {
          return new LifeboatError('ALREADY_EXISTS', `${where}: object already exists`, { cause: e });
        }
        return new LifeboatError('CONFLICT', `${where}: conflict (${code || status})`, { cause: e });
      case 401:
      case 403: {
        const message = err.message ?? '';
        // RBAC and SAS-permission refusals name themselves; AuthorizationFailure is also what a network
        // rule (firewall, private endpoint) answers ("not authorized"). Anything else is a rejected
        // signature or token — and HEAD answers carry no message at all, only the code.
        const denied =
          code === 'AuthorizationPermissionMismatch' ||
          code === 'AuthorizationResourceTypeMismatch' ||
          code === 'AuthorizationServiceMismatch' ||
          (code === 'AuthorizationFailure' &&
            (this.authMethod === 'token' || /not authorized/i.test(message)));
        if (denied) {
          return new LifeboatError('PERMISSION', `${where}: access denied (${code})`, {
            hint:
              this.authMethod === 'sas'
                ? 'the SAS token lacks a permission: it needs read, add, create, write, delete and list (racwdl)'
                : this.authMethod === 'token'
                  ? 'grant the identity the "Storage Blob Data Contributor" role on the container, and check the storage firewall (see docs/storage.md)'
                  : 'check the storage account firewall / private endpoint rules for this client',
            cause: e,
          });
        }
        const expired =
          (this.sasExpiry !== undefined && this.sasExpiry.getTime() < Date.now()) || /expir/i.test(message);
        return new LifeboatError(
          'AUTH',
          `${where}: credentials rejected (${code || status})${expired ? `: the SAS token expired${this.sasExpiry ? ' at ' + this.sasExpiry.toISOString() : ''}` : ''}`,
          {
            hint: expired
              ? 'issue a new SAS token (AZURE_STORAGE_SAS_TOKEN) with a later expiry'
              : this.authMethod === 'connection-string' || this.authMethod === 'account-key'
                ? 'check the account key in AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY (it may have been rotated)'
                : this.authMethod === 'sas'
                  ? 'check AZURE_STORAGE_SAS_TOKEN (signature, start/expiry time, allowed IPs)'
                  : 'check the managed identity / workload identity federation, or log in with `az login`',
            cause: e,
          },
        );
      }
      case 413:
        return new LifeboatError('NO_SPACE', `${where}: request too large or quota exceeded (${code})`, {
          cause: e,
        });
      case 429:
      case 500:
      case 502:
      case 503:
      case 504:
        return new LifeboatError(
          'UNREACHABLE',
          `${where}: storage kept failing or throttling (${status} ${code}) after ${attempts} attempts`,
          {
            hint: 'the account is overloaded or throttled; retry later, lower --concurrency, or check the Azure status page',
            cause: e,
          },
        );
      default:
        if (
          code === 'CredentialUnavailableError' ||
          (e as Error)?.name === 'CredentialUnavailableError' ||
          (e as Error)?.name === 'AuthenticationError'
        ) {
          return new LifeboatError(
            'AUTH',
            `${where}: no Azure credential available (${(e as Error).message.split('\n')[0]})`,
            {
              hint: 'set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or use a managed identity / `az login`',
              cause: e,
            },
          );
        }
        return new LifeboatError(
          'INTERNAL',
          `${where}: ${code || status || ''} ${err?.message ?? String(e)}`.trim(),
          { cause: e },
        );
    }
  }
}

function isTransient(e: unknown): boolean {
  const status = (e as { statusCode?: number })?.statusCode;
  if (
    status === 408 ||
    status === 429 ||
    status === 500 ||
    status === 502 ||
    status === 503 ||
    status === 504
  )
    return true;
  if (status === undefined && networkCodeOf(e)) return true;
  return false;
}

async function readAll(body: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}
