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
 *
 * One attempt per call: retries, deadlines and concurrency limits are wrappers (storage/wrappers/,
 * composed by open.ts); this file only classifies what the service answered (`mapError`). No
 * `listLeftovers`: uncommitted blocks of an interrupted upload are invisible, and the service discards
 * them after 7 days, so there is nothing for prune to reclaim.
 */
import { randomBytes } from 'node:crypto';
import { addAbortSignal, type Readable } from 'node:stream';
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
  runStep,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from './backend.ts';
import { mapLimit } from '../concurrency.ts';
import { attemptOnce, isTransientStatus, networkCodeOf, ownDeadline } from './classify.ts';

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
    // The retry wrapper is the only retry loop (wrappers/retrying.ts); the SDK's would multiply attempts
    // and hide faults.
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

  private attempt<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return attemptOnce(what, signal, fn, (e, w) => this.mapError(e, w));
  }

  create(options: CallOptions = {}): Promise<void> {
    const abortSignal = options.signal;
    return this.attempt(`create container ${this.loc.container}`, abortSignal, async () => {
      // exists() first: a container-scoped SAS or a data-plane role may read but not create containers.
      let exists: boolean;
      try {
        exists = await this.container.exists({ abortSignal });
      } catch (e) {
        // A service SAS for the container may not read container properties; listing (the `l` it must
        // have anyway) proves the container is there.
        if ((e as { statusCode?: number }).statusCode !== 403) throw e;
        await this.container.listBlobsFlat({ abortSignal }).byPage({ maxPageSize: 1 }).next();
        exists = true;
      }
      if (!exists) await this.container.createIfNotExists({ abortSignal });
    });
  }

  save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const blob = this.blob(h);
    const conditions = options.overwrite ? undefined : { ifNoneMatch: '*' };
    const tier = h.type === 'data' ? this.options.accessTier : undefined;
    const abortSignal = options.signal;
    const what = `save ${this.key(h)}`;
    return this.attempt(what, abortSignal, async () => {
      if (data.byteLength <= this.blockSize) {
        await blob.upload(data, data.byteLength, { conditions, tier, abortSignal });
        return;
      }
      // Blocks stay uncommitted (invisible) until the block list is committed; the random upload id
      // keeps two writers of the same name from committing each other's blocks.
      const uploadId = randomBytes(6).toString('hex');
      const count = Math.ceil(data.byteLength / this.blockSize);
      const ids = Array.from({ length: count }, (_, i) =>
        Buffer.from(`${uploadId}-${String(i).padStart(6, '0')}`).toString('base64'),
      );
      // Each request is a step (runStep: retried alone). A block that fails for good stops the staging
      // of further ones (mapLimit), and the abort signal cancels those in flight.
      await mapLimit(ids, this.options.concurrency ?? 4, (id, i) => {
        const block = data.subarray(i * this.blockSize, Math.min(data.byteLength, (i + 1) * this.blockSize));
        const step = `${what} block ${i + 1}/${count}`;
        return runStep(options, step, block.byteLength, (signal) =>
          this.attempt(step, signal, () =>
            blob.stageBlock(id, block, block.byteLength, { abortSignal: signal }),
          ),
        );
      });
      // Not cut short by the caller: once sent, a commit lands or fails on its own (the service may act
      // on one aborted on the wire), and a save that landed reports success.
      const step = `${what} commit`;
      await runStep(options, step, 0, (signal) =>
        this.attempt(step, signal, () =>
          blob.commitBlockList(ids, { conditions, tier, abortSignal: ownDeadline() }),
        ),
      );
    });
  }

  load(h: Handle, range?: ByteRange, options: CallOptions = {}): Promise<Buffer> {
    const blob = this.blob(h);
    const abortSignal = options.signal;
    return this.attempt(`load ${this.key(h)}`, abortSignal, async () => {
      if (range && range.length === 0) return Buffer.alloc(0);
      try {
        const res = await blob.download(range?.offset ?? 0, range?.length, {
          abortSignal,
          maxRetryRequests: 0,
        });
        return await readAll(res.readableStreamBody, abortSignal);
      } catch (e) {
        // A range starting at or past the end: the contract says "what exists", i.e. nothing.
        if (range && (e as { statusCode?: number }).statusCode === 416) return Buffer.alloc(0);
        throw e;
      }
    });
  }

  stat(h: Handle, options: CallOptions = {}): Promise<ObjectInfo> {
    return this.attempt(`stat ${this.key(h)}`, options.signal, async () => {
      const p = await this.blob(h).getProperties({ abortSignal: options.signal });
      return { name: h.name, size: p.contentLength ?? 0 };
    });
  }

  async *list(type: ObjectType, options: CallOptions = {}): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      yield* listConfig((h, o) => this.stat(h, o), options);
      return;
    }
    const prefix = `${this.loc.prefix}${type}/`;
    const abortSignal = options.signal;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.attempt(`list ${prefix}`, abortSignal, async () => {
          const it = this.container
            .listBlobsFlat({ prefix, abortSignal })
            .byPage({ continuationToken: token, maxPageSize: this.options.listPageSize ?? 1000 });
          return (await it.next()).value;
        });
      } catch (e) {
        // Like an absent directory on disk: a location that was never created holds nothing (this is how
        // `init` sees that it may proceed and `open` reports "no repository").
        if ((e as LifeboatError).code === 'NO_REPOSITORY') return;
        throw e;
      }
      if (!page) return;
      for (const item of page.segment.blobItems) {
        const name = item.name.slice(item.name.lastIndexOf('/') + 1);
        yield { name, size: item.properties.contentLength ?? 0 };
      }
      token = page.continuationToken || undefined;
    } while (token);
  }

  remove(h: Handle, options: CallOptions = {}): Promise<void> {
    return this.attempt(`remove ${this.key(h)}`, options.signal, async () => {
      await this.blob(h).deleteIfExists({ deleteSnapshots: 'include', abortSignal: options.signal });
    });
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
    const where = `${what} in ${this.location}`;
    const net = networkCodeOf(e);
    if (status === undefined && net) {
      return new LifeboatError('UNREACHABLE', `${where}: cannot reach the blob endpoint (${net})`, {
        hint: 'check the endpoint in the connection string, DNS, firewall/private endpoint rules, and that the service is up',
        cause: e,
        transient: true,
      });
    }
    if (status !== undefined && isTransientStatus(status)) {
      return new LifeboatError('UNREACHABLE', `${where}: storage is busy or failing (${status} ${code})`, {
        hint: 'the account is overloaded or throttled; retry later, lower --concurrency, or check the Azure status page',
        cause: e,
        transient: true,
      });
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

/** Reads a download's body; an abort destroys the stream, so a stalled or cancelled read ends at once. */
async function readAll(body: NodeJS.ReadableStream | undefined, signal?: AbortSignal): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const stream = body as Readable;
  if (signal) addAbortSignal(signal, stream);
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}
