/**
 * S3-compatible backend: `s3://BUCKET/PREFIX`, optionally `?endpoint=URL&region=R&path-style=true`
 * (or the same as options; AWS_ENDPOINT_URL_S3 / AWS_REGION are read by the SDK too).
 * Credentials come from the AWS SDK default chain (environment, shared config/SSO, web identity
 * (EKS IRSA), container and instance metadata).
 *
 * Write-once and atomicity: small objects are one PutObject with `If-None-Match: *`; large ones are a
 * multipart upload whose parts are invisible until CompleteMultipartUpload, which carries the same
 * condition. An interrupted upload is aborted (and in any case never becomes an object); configure a
 * bucket lifecycle rule "abort incomplete multipart uploads after N days" to reclaim orphaned parts of
 * a crashed process. Servers that ignore If-None-Match cannot give write-once; docs/storage.md says so.
 */
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  HeadBucketCommand,
  CreateBucketCommand,
  ListObjectsV2Command,
  DeleteObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  type StorageClass,
} from '@aws-sdk/client-s3';
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

export interface S3BackendOptions {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  /** Explicit credentials (tests); otherwise the SDK default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Storage class for pack files (`data/`) only, e.g. STANDARD_IA. */
  storageClass?: string;
  /** Objects larger than this are uploaded in parts of this size (default 8 MiB; S3 minimum 5 MiB). */
  partSize?: number;
  concurrency?: number;
  listPageSize?: number;
  retry?: RetryOptions;
  tryTimeoutMs?: number;
}

export interface S3Location {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/.exec(url);
  if (!m) {
    throw new LifeboatError('USAGE', `invalid S3 repository URL ${JSON.stringify(url)}`, {
      hint: 's3://BUCKET or s3://BUCKET/PREFIX, optionally ?endpoint=https://host:port&region=R&path-style=true',
    });
  }
  const [, bucket, rawPrefix = '', query = ''] = m;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new LifeboatError('USAGE', `invalid bucket name ${JSON.stringify(bucket)} in ${url}`, {
      hint: 'bucket names are 3-63 lowercase letters, digits, dots and hyphens',
    });
  }
  const loc: S3Location = { bucket, prefix: '' };
  const prefix = rawPrefix.replace(/^\/+|\/+$/g, '');
  loc.prefix = prefix ? `${prefix}/` : '';
  const params = new URLSearchParams(query);
  for (const [k, v] of params) {
    if (k === 'endpoint') loc.endpoint = v;
    else if (k === 'region') loc.region = v;
    else if (k === 'path-style') loc.forcePathStyle = v === '' || v === 'true' || v === '1';
    else {
      throw new LifeboatError('USAGE', `unknown S3 URL option ${JSON.stringify(k)} in ${url}`, {
        hint: 'known options: endpoint, region, path-style',
      });
    }
  }
  return loc;
}

const DEFAULT_PART = 8 * 1024 * 1024;
const MIN_PART = 5 * 1024 * 1024;

export class S3Backend implements Backend {
  readonly location: string;
  readonly loc: S3Location;
  readonly client: S3Client;
  private readonly options: S3BackendOptions;
  private readonly partSize: number;

  constructor(url: string, options: S3BackendOptions = {}) {
    this.loc = parseS3Url(url);
    this.options = options;
    this.partSize = options.partSize ?? DEFAULT_PART;
    if (this.partSize < MIN_PART) {
      throw new LifeboatError('USAGE', `S3 part size ${this.partSize} is below the 5 MiB minimum`, {
        hint: 'use a part size of at least 5 MiB',
      });
    }
    // What the URL says is more specific than options filled from the environment.
    const endpoint = this.loc.endpoint ?? options.endpoint;
    const forcePathStyle = this.loc.forcePathStyle ?? options.forcePathStyle ?? (endpoint ? true : undefined);
    // No credentials, query string or user info in the location: it is printed and logged.
    const q = new URLSearchParams();
    if (endpoint) q.set('endpoint', safeEndpoint(endpoint));
    const region = this.loc.region ?? options.region;
    if (region) q.set('region', region);
    this.location = `s3://${this.loc.bucket}${this.loc.prefix ? '/' + this.loc.prefix.slice(0, -1) : ''}${q.size ? '?' + q.toString() : ''}`;
    this.client = new S3Client({
      endpoint,
      region: region ?? (endpoint ? 'us-east-1' : undefined),
      forcePathStyle,
      credentials: options.credentials,
      // Our retry loop is the only one (see retry.ts).
      maxAttempts: 1,
      // Third-party S3 servers vary in their support for the new default CRC checksums; send them only
      // where the API requires them. Our own layer authenticates every blob anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private key(h: Handle): string {
    return this.loc.prefix + objectPath(h);
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.options.tryTimeoutMs ?? 120_000);
  }

  private retry<T>(fn: (attempt: number) => Promise<T>): Promise<T> {
    return withRetry((s) => fn(s.attempt), isTransient, this.options.retry);
  }

  async create(): Promise<void> {
    const Bucket = this.loc.bucket;
    try {
      await this.retry(async () => {
        try {
          await this.client.send(new HeadBucketCommand({ Bucket }), { abortSignal: this.signal() });
        } catch (e) {
          if (statusOf(e) !== 404) throw e;
          try {
            await this.client.send(new CreateBucketCommand({ Bucket }), { abortSignal: this.signal() });
          } catch (e2) {
            const n = nameOf(e2);
            if (n !== 'BucketAlreadyOwnedByYou' && n !== 'BucketAlreadyExists') throw e2;
          }
        }
      });
    } catch (e) {
      throw this.mapError(e, `create bucket ${Bucket}`);
    }
    await this.probeConditionalWrites();
  }

  /**
   * Write-once rests on the server honouring `If-None-Match: *`. Some S3-compatible servers (and some
   * proxies) silently drop it, which would let two writers clobber each other's packs; find out at
   * `init`, with a throw-away object outside the repository's object types.
   */
  private async probeConditionalWrites(): Promise<void> {
    const Bucket = this.loc.bucket;
    const Key = `${this.loc.prefix}.lifeboat-probe-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    const put = () =>
      this.retry(() =>
        this.client.send(
          new PutObjectCommand({ Bucket, Key, Body: new Uint8Array(1), ContentLength: 1, IfNoneMatch: '*' }),
          {
            abortSignal: this.signal(),
          },
        ),
      );
    try {
      await put();
      let honoured = false;
      try {
        await put();
      } catch (e) {
        if (statusOf(e) !== 412) throw e;
        honoured = true;
      }
      if (!honoured) {
        throw new LifeboatError(
          'UNSUPPORTED',
          `${this.location}: the S3 server ignores conditional writes (If-None-Match)`,
          {
            hint: 'use a server that supports them (AWS S3, current MinIO, versitygw, …); without them concurrent backups could overwrite each other',
          },
        );
      }
    } catch (e) {
      throw this.mapError(e, 'probe conditional writes');
    } finally {
      await this.client
        .send(new DeleteObjectCommand({ Bucket, Key }), { abortSignal: this.signal() })
        .catch(() => {});
    }
  }

  async save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const Bucket = this.loc.bucket;
    const Key = this.key(h);
    const IfNoneMatch = options.overwrite ? undefined : '*';
    const StorageClass = (h.type === 'data' ? this.options.storageClass : undefined) as
      StorageClass | undefined;
    let retried = false;
    try {
      if (data.byteLength <= this.partSize) {
        await this.retry(async (attempt) => {
          retried = attempt > 1;
          await this.client.send(
            new PutObjectCommand({
              Bucket,
              Key,
              Body: data,
              ContentLength: data.byteLength,
              IfNoneMatch,
              StorageClass,
            }),
            { abortSignal: this.signal() },
          );
        });
      } else {
        await this.multipart(Key, data, IfNoneMatch, StorageClass, () => (retried = true));
      }
    } catch (e) {
      const err = this.mapError(e, `save ${Key}`);
      // A retried write-once PUT may have landed the first time with its answer lost on the way back.
      if (err.code === 'ALREADY_EXISTS' && retried && (await this.holds(h, data))) return;
      throw err;
    }
  }

  private async multipart(
    Key: string,
    data: Uint8Array,
    IfNoneMatch: string | undefined,
    StorageClass: StorageClass | undefined,
    onRetry: () => void,
  ): Promise<void> {
    const Bucket = this.loc.bucket;
    const created = await this.retry(() =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, StorageClass }), {
        abortSignal: this.signal(),
      }),
    );
    const UploadId = created.UploadId!;
    try {
      const count = Math.ceil(data.byteLength / this.partSize);
      const parts = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.options.concurrency ?? 4,
        async (i) => {
          const Body = data.subarray(i * this.partSize, Math.min(data.byteLength, (i + 1) * this.partSize));
          const res = await this.retry(() =>
            this.client.send(
              new UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber: i + 1,
                Body,
                ContentLength: Body.byteLength,
              }),
              { abortSignal: this.signal() },
            ),
          );
          return { PartNumber: i + 1, ETag: res.ETag };
        },
      );
      await this.retry(async (attempt) => {
        if (attempt > 1) onRetry();
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key,
            UploadId,
            IfNoneMatch,
            MultipartUpload: { Parts: parts },
          }),
          { abortSignal: this.signal() },
        );
      });
    } catch (e) {
      // Best effort: parts of an aborted upload are never visible, this only frees their space.
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }), { abortSignal: this.signal() })
        .catch(() => {});
      throw e;
    }
  }

  private async holds(h: Handle, data: Uint8Array): Promise<boolean> {
    try {
      return Buffer.compare(await this.load(h), data) === 0;
    } catch {
      return false;
    }
  }

  async load(h: Handle, range?: ByteRange): Promise<Buffer> {
    const Key = this.key(h);
    if (range && range.length === 0) return Buffer.alloc(0);
    try {
      return await this.retry(async () => {
        try {
          const res = await this.client.send(
            new GetObjectCommand({
              Bucket: this.loc.bucket,
              Key,
              Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
            }),
            { abortSignal: this.signal() },
          );
          if (!res.Body) return Buffer.alloc(0);
          return Buffer.from(await res.Body.transformToByteArray());
        } catch (e) {
          // A range starting at or past the end: the contract says "what exists", i.e. nothing.
          if (range && (statusOf(e) === 416 || nameOf(e) === 'InvalidRange')) return Buffer.alloc(0);
          throw e;
        }
      });
    } catch (e) {
      throw this.mapError(e, `load ${Key}`);
    }
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    const Key = this.key(h);
    try {
      const res = await this.retry(() =>
        this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key }), {
          abortSignal: this.signal(),
        }),
      );
      return { name: h.name, size: res.ContentLength ?? 0 };
    } catch (e) {
      throw this.mapError(e, `stat ${Key}`);
    }
  }

  async *list(type: ObjectType): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      yield* listConfig((h) => this.stat(h));
      return;
    }
    const Prefix = `${this.loc.prefix}${type}/`;
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.retry(() =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.loc.bucket,
              Prefix,
              ContinuationToken,
              MaxKeys: this.options.listPageSize ?? 1000,
            }),
            { abortSignal: this.signal() },
          ),
        );
      } catch (e) {
        const err = this.mapError(e, `list ${Prefix}`);
        // Like an absent directory on disk: a location that was never created holds nothing (this is how
        // `init` sees that it may proceed and `open` reports "no repository").
        if (err.code === 'NO_REPOSITORY') return;
        throw err;
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key || o.Key.endsWith('/')) continue;
        yield { name: o.Key.slice(o.Key.lastIndexOf('/') + 1), size: o.Size ?? 0 };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async remove(h: Handle): Promise<void> {
    const Key = this.key(h);
    try {
      await this.retry(async () => {
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key }), {
            abortSignal: this.signal(),
          });
        } catch (e) {
          // S3 answers 204 for a missing key; some compatible servers answer 404. Both mean "gone".
          if (statusOf(e) === 404 && nameOf(e) !== 'NoSuchBucket') return;
          throw e;
        }
      });
    } catch (e) {
      throw this.mapError(e, `remove ${Key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  mapError(e: unknown, what: string): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const status = statusOf(e);
    const name = nameOf(e);
    const attempts = attemptsOf(e);
    const where = `${what} in ${this.location}`;
    const net = networkCodeOf(e);
    if (status === undefined && net) {
      return new LifeboatError(
        'UNREACHABLE',
        `${where}: cannot reach the S3 endpoint (${net}, ${attempts} attempts)`,
        {
          hint: 'check the endpoint URL, DNS, firewall/VPC endpoint rules, and that the server is up',
          cause: e,
        },
      );
    }
    if (name === 'NoSuchBucket') {
      return new LifeboatError('NO_REPOSITORY', `${where}: bucket ${this.loc.bucket} does not exist`, {
        hint: 'check the bucket name and region in the URL, or run `lifeboat init` to create the repository',
        cause: e,
      });
    }
    if (
      name === 'InvalidAccessKeyId' ||
      name === 'SignatureDoesNotMatch' ||
      name === 'ExpiredToken' ||
      name === 'TokenRefreshRequired' ||
      name === 'CredentialsProviderError'
    ) {
      return new LifeboatError('AUTH', `${where}: credentials rejected (${name})`, {
        hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile/role in use (a session token may have expired)',
        cause: e,
      });
    }
    switch (status) {
      case 404:
        return new LifeboatError('NOT_FOUND', `${where}: object does not exist`, { cause: e });
      case 412:
        return new LifeboatError('ALREADY_EXISTS', `${where}: object already exists`, { cause: e });
      case 501:
        return new LifeboatError(
          'UNSUPPORTED',
          `${where}: the S3 server does not implement this request (${name})`,
          {
            hint: 'Lifeboat needs PutObject/CompleteMultipartUpload with If-None-Match; use a server that supports conditional writes',
            cause: e,
          },
        );
      case 401:
      case 403:
        if (name === 'AccessDenied' || name === 'AllAccessDisabled') {
          return new LifeboatError('PERMISSION', `${where}: access denied (${name})`, {
            hint: 'allow s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket (and s3:AbortMultipartUpload) on the bucket/prefix',
            cause: e,
          });
        }
        return new LifeboatError('AUTH', `${where}: credentials rejected (${name || status})`, {
          hint: 'check the access key, secret and session token in use',
          cause: e,
        });
      case 409:
      case 429:
      case 500:
      case 502:
      case 503:
      case 504:
        return new LifeboatError(
          'UNREACHABLE',
          `${where}: storage kept failing or throttling (${status} ${name}) after ${attempts} attempts`,
          {
            hint: 'the server is overloaded or throttling; retry later or lower --concurrency',
            cause: e,
          },
        );
      default:
        return new LifeboatError(
          'INTERNAL',
          `${where}: ${name || status || ''} ${(e as Error)?.message ?? String(e)}`.trim(),
          { cause: e },
        );
    }
  }
}

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function nameOf(e: unknown): string {
  return String((e as { name?: string; Code?: string })?.Code ?? (e as Error)?.name ?? '');
}

function isTransient(e: unknown): boolean {
  const status = statusOf(e);
  const name = nameOf(e);
  // 409 ConditionalRequestConflict: a concurrent conditional write to the same key was in flight; AWS
  // says retry, and the retry then gets a definite 412 or succeeds.
  if (status === 409 && name === 'ConditionalRequestConflict') return true;
  if (
    status === 408 ||
    status === 429 ||
    status === 500 ||
    status === 502 ||
    status === 503 ||
    status === 504
  )
    return true;
  if (
    name === 'SlowDown' ||
    name === 'RequestTimeout' ||
    name === 'InternalError' ||
    name === 'ServiceUnavailable'
  )
    return true;
  if (status === undefined && networkCodeOf(e)) return true;
  return false;
}

function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return endpoint;
  }
}
