/**
 * The one seam between the repository and wherever its objects live (local disk, Azure Blob, S3, …).
 * Every backend passes the same conformance suite (test/core/backend-conformance.ts).
 *
 * Contract, for every implementation:
 * - Objects are write-once. `save` of an existing name fails with ALREADY_EXISTS unless `overwrite` is set
 *   (only `locks` are ever overwritten, when refreshed). The repository relies on this for locks and to
 *   never clobber a pack another process just wrote.
 * - `save` is atomic: readers see either no object or the whole object, never a prefix. An interrupted
 *   save leaves no object (local: temp file + fsync + rename; cloud: commit of a block list / single PUT).
 * - Transient failures (connection reset, 429/503 throttling, timeouts) are retried *inside* the backend
 *   with exponential backoff and jitter, up to a bounded time. What reaches the caller is final and already
 *   a LifeboatError (UNREACHABLE, AUTH, PERMISSION, NO_SPACE, NOT_FOUND, ALREADY_EXISTS, …).
 * - `load` of a missing object throws NOT_FOUND; a range past the end returns what exists (callers check
 *   lengths, so truncation is detected as INTEGRITY upstream).
 * - `remove` of a missing object succeeds (idempotent) so that prune can be re-run after a crash.
 * - `list` yields every object of a type, in any order, paging internally.
 * - Every method takes an optional `signal`. When it fires, the call (and any retry or backoff in
 *   progress) stops as soon as it can and rejects with INTERRUPTED; a `save` stopped this way leaves no
 *   object, as any interrupted save. Backends pass it on to the SDK/file system call they make.
 * - `listLeftovers`/`removeLeftover` (optional) expose what interrupted writes leave behind outside the
 *   object namespace (local temp files, unfinished multipart uploads), so prune can reclaim them once
 *   they are older than any live lock. Backends without such debris leave them out.
 */
import { LifeboatError, isLifeboatError } from '../errors.ts';

export type ObjectType = 'config' | 'keys' | 'locks' | 'snapshots' | 'index' | 'data';

export const OBJECT_TYPES: readonly ObjectType[] = ['config', 'keys', 'locks', 'snapshots', 'index', 'data'];

export interface Handle {
  type: ObjectType;
  /** Object name: 64 hex characters for content-addressed objects, `config` for the config. */
  name: string;
}

export interface ObjectInfo {
  name: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface CallOptions {
  /** Cancels the call: the operation was interrupted (SIGINT/SIGTERM) or lost its lock. */
  signal?: AbortSignal;
}

export interface SaveOptions extends CallOptions {
  overwrite?: boolean;
}

/** Debris of an interrupted write: a temp file, an unfinished multipart upload. */
export interface Leftover {
  /** Backend-specific handle for `removeLeftover` (a relative path, an upload id). */
  id: string;
  size: number;
  /** When the write started (or the file was last modified). */
  modified: Date;
}

export interface Backend {
  /** Where the repository lives, without credentials (safe to print and log). */
  readonly location: string;
  /** Creates the container/directories if needed; idempotent. */
  create(options?: CallOptions): Promise<void>;
  save(h: Handle, data: Uint8Array, options?: SaveOptions): Promise<void>;
  load(h: Handle, range?: ByteRange, options?: CallOptions): Promise<Buffer>;
  stat(h: Handle, options?: CallOptions): Promise<ObjectInfo>;
  list(type: ObjectType, options?: CallOptions): AsyncIterable<ObjectInfo>;
  remove(h: Handle, options?: CallOptions): Promise<void>;
  listLeftovers?(options?: CallOptions): AsyncIterable<Leftover>;
  removeLeftover?(id: string, options?: CallOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * restic's layout: `config`, `keys/<id>`, `locks/<id>`, `snapshots/<id>`, `index/<id>`,
 * `data/<first two hex>/<id>`. The fan-out keeps directory listings short on local disks.
 */
export function objectPath(h: Handle): string {
  if (h.type === 'config') return 'config';
  if (!/^[0-9a-zA-Z_-]{1,128}$/.test(h.name))
    throw new Error(`invalid object name ${JSON.stringify(h.name)}`);
  if (h.type === 'data') return `data/${h.name.slice(0, 2)}/${h.name}`;
  return `${h.type}/${h.name}`;
}

/**
 * `list('config')` for object stores: the config is a single object, present or not (a location that was
 * never created holds none either).
 */
export async function* listConfig(
  stat: (h: Handle, options?: CallOptions) => Promise<ObjectInfo>,
  options?: CallOptions,
): AsyncIterable<ObjectInfo> {
  let info: ObjectInfo | undefined;
  try {
    info = await stat({ type: 'config', name: 'config' }, options);
  } catch (e) {
    if (!isLifeboatError(e, 'NOT_FOUND') && !isLifeboatError(e, 'NO_REPOSITORY')) throw e;
  }
  if (info) yield info;
}

/** The INTERRUPTED error every backend and wrapper throws once `signal` has fired. */
export function interrupted(signal: AbortSignal | undefined, what: string): LifeboatError {
  const reason = signal?.reason;
  if (isLifeboatError(reason)) return reason;
  return new LifeboatError('INTERRUPTED', `${what}: interrupted`, {
    hint: 'run the command again',
    cause: reason,
  });
}

/** Throws INTERRUPTED if the signal has fired; called before each step of a long operation. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'operation'): void {
  if (signal?.aborted) throw interrupted(signal, what);
}
