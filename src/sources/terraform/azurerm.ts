/**
 * Terraform's azurerm backend as stored in Blob Storage: the default workspace's state is the blob named
 * `key`, every other workspace's is `key` + `env:` + name; while Terraform works on a workspace it holds a
 * blob lease and writes the lock's JSON, base64-encoded, to the metadata key `terraformlockid`.
 *
 * Reads are plain GETs without a lease id: a leased blob can be read, and taking or breaking a lease here
 * would break Terraform's lock. The client (and the credentials it uses: connection string, account key,
 * SAS, DefaultAzureCredential) is the repository backend's own, so both authenticate the same way.
 */
import type { BlockBlobClient } from '@azure/storage-blob';
import { AzureBackend } from '../../core/storage/azure.ts';
import { LifeboatError, isLifeboatError } from '../../core/errors.ts';
import { decodeLockInfo, type LockInfo } from './state.ts';
import { workspaceOfBlob } from './azurerm-layout.ts';

export { blobOfWorkspace, workspaceOfBlob } from './azurerm-layout.ts';

export interface AzurermLocation {
  account: string;
  container: string;
  key: string;
}

/** The metadata key the azurerm backend writes its lock info to. */
export const LOCK_METADATA_KEY = 'terraformlockid';

export interface CapturedBlob {
  blob: string;
  workspace: string;
  bytes: Buffer;
  etag: string;
  /** As the service reported it with the content: `leased` means Terraform held the lock. */
  leaseState: string;
  leaseStatus: string;
  lock?: LockInfo | { raw: string };
}

export interface CurrentBlob {
  exists: boolean;
  etag?: string;
  leased: boolean;
  bytes?: Buffer;
}

function metadataValue(metadata: Record<string, string> | undefined, name: string): string | undefined {
  const found = Object.entries(metadata ?? {}).find(([k]) => k.toLowerCase() === name);
  return found?.[1];
}

async function collect(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  const parts: Buffer[] = [];
  if (stream) for await (const part of stream) parts.push(Buffer.from(part as Uint8Array));
  return Buffer.concat(parts);
}

export class AzurermStates {
  readonly location: AzurermLocation;
  private readonly backend: AzureBackend;

  constructor(location: AzurermLocation, env: NodeJS.ProcessEnv = process.env) {
    if (!location.key) throw new LifeboatError('USAGE', 'the azurerm state key is empty');
    this.location = location;
    this.backend = new AzureBackend(`azure://${location.account}/${location.container}`, { env });
  }

  /** `azurerm://ACCOUNT/CONTAINER/KEY`: what a snapshot's paths and messages name. */
  get url(): string {
    const { account, container, key } = this.location;
    return `azurerm://${account}/${container}/${key}`;
  }

  private blob(name: string): BlockBlobClient {
    return this.backend.container.getBlockBlobClient(name);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.backend.mapError(e, what);
    }
  }

  /** The state blobs of this key: the default workspace and every `key` + `env:` + name. */
  async listStateBlobs(): Promise<string[]> {
    const key = this.location.key;
    return this.call(`list ${key}*`, async () => {
      const names: string[] = [];
      for await (const b of this.backend.container.listBlobsFlat({ prefix: key }))
        if (workspaceOfBlob(key, b.name) !== undefined) names.push(b.name);
      return names.sort();
    });
  }

  /** One GET: content, ETag, lease state and lock metadata from the same response, so they agree. */
  async capture(name: string): Promise<CapturedBlob> {
    return this.call(`read ${name}`, async () => {
      const res = await this.blob(name).download(0);
      const lockValue = metadataValue(res.metadata, LOCK_METADATA_KEY);
      return {
        blob: name,
        workspace: workspaceOfBlob(this.location.key, name)!,
        bytes: await collect(res.readableStreamBody),
        etag: res.etag ?? '',
        leaseState: res.leaseState ?? 'unknown',
        leaseStatus: res.leaseStatus ?? 'unknown',
        ...(lockValue ? { lock: decodeLockInfo(lockValue) } : {}),
      };
    });
  }

  /** The blob as it is now, for a restore to compare against. */
  async current(name: string): Promise<CurrentBlob> {
    try {
      const c = await this.capture(name);
      return { exists: true, etag: c.etag, leased: c.leaseState === 'leased', bytes: c.bytes };
    } catch (e) {
      if (isLifeboatError(e, 'NOT_FOUND')) return { exists: false, leased: false };
      throw e;
    }
  }

  /**
   * Writes a state blob, conditionally: `If-Match` on the ETag the restore compared against (a Terraform
   * write in between makes it fail rather than be overwritten), or `If-None-Match: *` for a new blob.
   * `breakLease` first breaks a lease (what `terraform force-unlock` does); the write then also drops the
   * `terraformlockid` metadata, as an unlock would.
   */
  async write(name: string, bytes: Uint8Array, expected: CurrentBlob, breakLease: boolean): Promise<void> {
    const blob = this.blob(name);
    if (expected.leased && breakLease)
      await this.call(`break the lease on ${name}`, () => blob.getBlobLeaseClient().breakLease(0));
    const conditions = expected.exists ? { ifMatch: expected.etag } : { ifNoneMatch: '*' };
    try {
      await blob.upload(bytes, bytes.byteLength, {
        conditions,
        blobHTTPHeaders: { blobContentType: 'application/json' },
      });
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 412 || status === 409)
        throw new LifeboatError(
          'CONFLICT',
          `${this.url}: ${name} changed (or was locked) while it was being restored; nothing was written`,
          { hint: 'another Terraform run wrote it: look at what it holds now, then run the restore again' },
        );
      throw this.backend.mapError(e, `write ${name}`);
    }
  }
}
