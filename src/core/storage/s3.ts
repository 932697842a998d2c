/**
 * S3-compatible backend: `s3://BUCKET/PREFIX`, optionally `?endpoint=URL&region=R&path-style=true`
 * (or the same as options; AWS_ENDPOINT_URL_S3 / AWS_REGION are read by the SDK too).
 * Credentials come from the AWS SDK default chain (environment, shared config/SSO, web identity
 * (EKS IRSA), container and instance metadata).
 *
 * Write-once and atomicity: small objects are one PutObject with `If-None-Match: *`; large ones are a
 * multipart upload whose parts are invisible until CompleteMultipartUpload, which carries the same
 * condition. An interrupted upload is aborted (and in any case never becomes an object); the parts of a
 * crashed process's upload are `listLeftovers`, for prune to reclaim (a bucket lifecycle rule "abort
 * incomplete multipart uploads after N days" does it too). Servers that ignore If-None-Match cannot give
 * write-once; docs/storage.md says so.
 *
 * One attempt per call: retries, deadlines and concurrency limits are wrappers (storage/wrappers/,
 * composed by open.ts); this file only classifies what the server answered (`mapError`).
 */
import { addAbortSignal, type Readable } from 'node:stream';
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
  ListMultipartUploadsCommand,
  ListPartsCommand,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { LifeboatError } from '../errors.ts';
import {
  OBJECT_TYPES,
  listConfig,
  objectPath,
  runStep,
  throwIfAborted,
  type Backend,
  type ByteRange,
  type CallOptions,
  type Handle,
  type Leftover,
  type ObjectInfo,
  type ObjectType,
  type SaveOptions,
} from './backend.ts';
import { mapLimit } from '../concurrency.ts';
import { attemptOnce, isTransientStatus, networkCodeOf, ownDeadline } from './classify.ts';

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
  /** Parts in flight per upload (default 4). */
  concurrency?: number;
  listPageSize?: number;
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
      // The retry wrapper is the only retry loop (wrappers/retrying.ts).
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

  private attempt<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    return attemptOnce(what, signal, fn, (e, w) => this.mapError(e, w));
  }

  async create(options: CallOptions = {}): Promise<void> {
    const Bucket = this.loc.bucket;
    const abortSignal = options.signal;
    await this.attempt(`create bucket ${Bucket}`, abortSignal, async () => {
      try {
        await this.client.send(new HeadBucketCommand({ Bucket }), { abortSignal });
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
        try {
          await this.client.send(new CreateBucketCommand({ Bucket }), { abortSignal });
        } catch (e2) {
          const n = nameOf(e2);
          if (n !== 'BucketAlreadyOwnedByYou' && n !== 'BucketAlreadyExists') throw e2;
        }
      }
    });
    await this.attempt('probe conditional writes', abortSignal, () =>
      this.probeConditionalWrites(abortSignal),
    );
  }

  /**
   * Write-once rests on the server honouring `If-None-Match: *`. Some S3-compatible servers (and some
   * proxies) silently drop it, which would let two writers clobber each other's packs; find out at
   * `init`, with a throw-away object outside the repository's object types.
   */
  private async probeConditionalWrites(abortSignal: AbortSignal | undefined): Promise<void> {
    const Bucket = this.loc.bucket;
    const Key = `${this.loc.prefix}.lifeboat-probe-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    const put = () =>
      this.client.send(
        new PutObjectCommand({ Bucket, Key, Body: new Uint8Array(1), ContentLength: 1, IfNoneMatch: '*' }),
        { abortSignal },
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
    } finally {
      await this.client
        .send(new DeleteObjectCommand({ Bucket, Key }), { abortSignal: ownDeadline() })
        .catch(() => {});
    }
  }

  save(h: Handle, data: Uint8Array, options: SaveOptions = {}): Promise<void> {
    const Bucket = this.loc.bucket;
    const Key = this.key(h);
    const IfNoneMatch = options.overwrite ? undefined : '*';
    const StorageClass = (h.type === 'data' ? this.options.storageClass : undefined) as
      StorageClass | undefined;
    const abortSignal = options.signal;
    const what = `save ${Key}`;
    return this.attempt(what, abortSignal, async () => {
      if (data.byteLength > this.partSize) {
        await this.multipart(what, Key, data, IfNoneMatch, StorageClass, options);
        return;
      }
      await this.client.send(
        new PutObjectCommand({
          Bucket,
          Key,
          Body: data,
          ContentLength: data.byteLength,
          IfNoneMatch,
          StorageClass,
        }),
        { abortSignal },
      );
    });
  }

  private async multipart(
    what: string,
    Key: string,
    data: Uint8Array,
    IfNoneMatch: string | undefined,
    StorageClass: StorageClass | undefined,
    options: SaveOptions,
  ): Promise<void> {
    const Bucket = this.loc.bucket;
    // Each request is a step (runStep: retried alone, with its own deadline).
    const step = <T>(
      label: string,
      bytes: number,
      request: (signal: AbortSignal | undefined) => Promise<T>,
    ) => {
      const stepWhat = `${what} ${label}`;
      return runStep(options, stepWhat, bytes, (signal) =>
        this.attempt(stepWhat, signal, () => request(signal)),
      );
    };
    // Starting and completing the upload are not cut short by the caller: an upload the server started
    // but whose id we never heard of would linger, and a commit aborted on the wire may still be acted
    // on. Both are small; a save whose commit landed reports success.
    const created = await step('start', 0, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, StorageClass }), {
        abortSignal: ownDeadline(),
      }),
    );
    const UploadId = created.UploadId!;
    try {
      const count = Math.ceil(data.byteLength / this.partSize);
      // A part that fails for good stops the upload of further ones (mapLimit), and the abort signal
      // cancels those in flight.
      const parts = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.options.concurrency ?? 4,
        async (i) => {
          const Body = data.subarray(i * this.partSize, Math.min(data.byteLength, (i + 1) * this.partSize));
          const PartNumber = i + 1;
          const res = await step(`part ${PartNumber}/${count}`, Body.byteLength, (signal) =>
            this.client.send(
              new UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber,
                Body,
                ContentLength: Body.byteLength,
              }),
              { abortSignal: signal },
            ),
          );
          return { PartNumber, ETag: res.ETag };
        },
      );
      await step('commit', 0, async () => {
        try {
          await this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket,
              Key,
              UploadId,
              IfNoneMatch,
              MultipartUpload: { Parts: parts },
            }),
            { abortSignal: ownDeadline() },
          );
        } catch (e) {
          // A commit repeated after one that landed (its answer lost) may find the upload gone rather
          // than the object present; either way the name is taken, and the lost-write check decides.
          if (nameOf(e) !== 'NoSuchUpload') throw e;
          throw new LifeboatError(
            'ALREADY_EXISTS',
            `${what} in ${this.location}: object already exists (its upload was completed before)`,
            {
              cause: e,
            },
          );
        }
      });
    } catch (e) {
      // Best effort, and not cancelled with the call: parts of an aborted upload are never visible,
      // this frees their space now rather than at prune or a lifecycle rule.
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }), { abortSignal: ownDeadline() })
        .catch(() => {});
      throw e;
    }
  }

  load(h: Handle, range?: ByteRange, options: CallOptions = {}): Promise<Buffer> {
    const Key = this.key(h);
    const abortSignal = options.signal;
    return this.attempt(`load ${Key}`, abortSignal, async () => {
      if (range && range.length === 0) return Buffer.alloc(0);
      try {
        const res = await this.client.send(
          new GetObjectCommand({
            Bucket: this.loc.bucket,
            Key,
            Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
          }),
          { abortSignal },
        );
        if (!res.Body) return Buffer.alloc(0);
        // An abort destroys the body stream, so a stalled or cancelled read ends at once.
        if (abortSignal) addAbortSignal(abortSignal, res.Body as Readable);
        return Buffer.from(await res.Body.transformToByteArray());
      } catch (e) {
        // A range starting at or past the end: the contract says "what exists", i.e. nothing.
        if (range && (statusOf(e) === 416 || nameOf(e) === 'InvalidRange')) return Buffer.alloc(0);
        throw e;
      }
    });
  }

  stat(h: Handle, options: CallOptions = {}): Promise<ObjectInfo> {
    const Key = this.key(h);
    return this.attempt(`stat ${Key}`, options.signal, async () => {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key }), {
        abortSignal: options.signal,
      });
      return { name: h.name, size: res.ContentLength ?? 0 };
    });
  }

  async *list(type: ObjectType, options: CallOptions = {}): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      yield* listConfig((h, o) => this.stat(h, o), options);
      return;
    }
    const Prefix = `${this.loc.prefix}${type}/`;
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.attempt(`list ${Prefix}`, options.signal, () =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.loc.bucket,
              Prefix,
              ContinuationToken,
              MaxKeys: this.options.listPageSize ?? 1000,
            }),
            { abortSignal: options.signal },
          ),
        );
      } catch (e) {
        // Like an absent directory on disk: a location that was never created holds nothing (this is how
        // `init` sees that it may proceed and `open` reports "no repository").
        if ((e as LifeboatError).code === 'NO_REPOSITORY') return;
        throw e;
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key || o.Key.endsWith('/')) continue;
        yield { name: o.Key.slice(o.Key.lastIndexOf('/') + 1), size: o.Size ?? 0 };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  remove(h: Handle, options: CallOptions = {}): Promise<void> {
    const Key = this.key(h);
    return this.attempt(`remove ${Key}`, options.signal, async () => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key }), {
          abortSignal: options.signal,
        });
      } catch (e) {
        // S3 answers 204 for a missing key; some compatible servers answer 404. Both mean "gone".
        if (statusOf(e) === 404 && nameOf(e) !== 'NoSuchBucket') return;
        throw e;
      }
    });
  }

  /**
   * Multipart uploads under the repository's object types that were never completed nor aborted: what
   * a process killed mid-upload leaves. `modified` is when the upload was initiated.
   */
  async *listLeftovers(options: CallOptions = {}): AsyncIterable<Leftover> {
    const Bucket = this.loc.bucket;
    const abortSignal = options.signal;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.attempt(`list unfinished uploads in ${this.loc.prefix || '/'}`, abortSignal, () =>
          this.client.send(
            new ListMultipartUploadsCommand({ Bucket, Prefix: this.loc.prefix, KeyMarker, UploadIdMarker }),
            { abortSignal },
          ),
        );
      } catch (e) {
        if ((e as LifeboatError).code === 'NO_REPOSITORY') return;
        throw e;
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !this.isObjectKey(u.Key)) continue;
        const size = await this.attempt(`list parts of ${u.Key}`, abortSignal, () =>
          this.uploadedBytes(u.Key!, u.UploadId!, abortSignal),
        );
        yield { id: leftoverId(u.Key, u.UploadId), size, modified: u.Initiated ?? new Date(0) };
      }
      KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      UploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker);
  }

  /** Bytes stored so far by an unfinished upload (0 if it finished or was aborted meanwhile). */
  private async uploadedBytes(Key: string, UploadId: string, abortSignal?: AbortSignal): Promise<number> {
    let bytes = 0;
    let PartNumberMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListPartsCommand({ Bucket: this.loc.bucket, Key, UploadId, PartNumberMarker }),
          { abortSignal },
        );
      } catch (e) {
        if (nameOf(e) === 'NoSuchUpload') return bytes;
        throw e;
      }
      for (const p of page.Parts ?? []) bytes += p.Size ?? 0;
      PartNumberMarker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
    } while (PartNumberMarker);
    return bytes;
  }

  async removeLeftover(id: string, options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal, `remove leftover ${id}`);
    const { Key, UploadId } = parseLeftoverId(id);
    // Only uploads of this repository: the id came from listLeftovers, but never trust it.
    if (!this.isObjectKey(Key)) {
      throw new LifeboatError('INTERNAL', `refusing to remove ${id}: not an upload of this repository`);
    }
    await this.attempt(`abort upload ${Key}`, options.signal, async () => {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.loc.bucket, Key, UploadId }), {
          abortSignal: options.signal,
        });
      } catch (e) {
        if (nameOf(e) === 'NoSuchUpload') return; // already gone: idempotent, as remove
        throw e;
      }
    });
  }

  /** A key under the prefix whose first segment is an object type (not the probe, not a neighbour's). */
  private isObjectKey(key: string): boolean {
    if (!key.startsWith(this.loc.prefix)) return false;
    const first = key.slice(this.loc.prefix.length).split('/')[0];
    return (OBJECT_TYPES as readonly string[]).includes(first);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  mapError(e: unknown, what: string): LifeboatError {
    if (e instanceof LifeboatError) return e;
    const status = statusOf(e);
    const name = nameOf(e);
    const where = `${what} in ${this.location}`;
    const net = networkCodeOf(e);
    if (status === undefined && net) {
      return new LifeboatError('UNREACHABLE', `${where}: cannot reach the S3 endpoint (${net})`, {
        hint: 'check the endpoint URL, DNS, firewall/VPC endpoint rules, and that the server is up',
        cause: e,
        transient: true,
      });
    }
    if (isTransient(status, name)) {
      return new LifeboatError('UNREACHABLE', `${where}: storage is busy or failing (${status} ${name})`, {
        hint: 'the server is overloaded or throttling; retry later or lower --concurrency',
        cause: e,
        transient: true,
      });
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
        return new LifeboatError('CONFLICT', `${where}: conflict (${name})`, { cause: e });
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

/** An answer that says "not now" rather than "no". */
function isTransient(status: number | undefined, name: string): boolean {
  // 409 ConditionalRequestConflict: a concurrent conditional write to the same key was in flight; AWS
  // says retry, and the retry then gets a definite 412 or succeeds.
  if (status === 409 && name === 'ConditionalRequestConflict') return true;
  if (status !== undefined && isTransientStatus(status)) return true;
  return (
    name === 'SlowDown' ||
    name === 'RequestTimeout' ||
    name === 'InternalError' ||
    name === 'ServiceUnavailable'
  );
}

/** A leftover's id names both halves AbortMultipartUpload needs; upload ids carry no spaces. */
function leftoverId(key: string, uploadId: string): string {
  return `${key} ${uploadId}`;
}

function parseLeftoverId(id: string): { Key: string; UploadId: string } {
  const at = id.lastIndexOf(' ');
  if (at <= 0 || at === id.length - 1) throw new LifeboatError('INTERNAL', `malformed leftover id ${id}`);
  return { Key: id.slice(0, at), UploadId: id.slice(at + 1) };
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
