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
 * - A backend makes exactly one attempt per call and only *classifies* what went wrong: it throws a
 *   LifeboatError whose code names the cause (UNREACHABLE, AUTH, PERMISSION, NO_SPACE, NOT_FOUND,
 *   ALREADY_EXISTS, …), with `transient` set when the same call may succeed if made again (connection
 *   reset or refused, 408/429/5xx, a timeout). Retries, deadlines and concurrency limits are wrappers
 *   around a Backend (storage/wrappers/), composed once by `openBackend`, as restic's RetryBackend and
 *   kopia's retrying storage are. The one exception: each request of a multi-part upload (start, each
 *   block or part, commit) runs through `runStep`, which the wrappers make retry that request alone.
 * - Retry rules (RetryingBackend): only transient errors are retried, with exponential backoff and full
 *   jitter, bounded by attempts and elapsed time; giving up rethrows the last error with the attempt
 *   count appended, no longer transient. Every call is safe to repeat: `remove` is idempotent, and a
 *   write-once `save` that answers ALREADY_EXISTS after an earlier attempt (or step) failed transiently
 *   is checked by loading the object — if the stored bytes are ours, the earlier attempt landed and its
 *   answer was lost (the lost-write check). A failed `list` is restarted from the beginning, skipping
 *   names already yielded, so the caller still sees every object exactly once; backends do not retry
 *   pages themselves.
 * - Deadlines (TimeoutBackend): each attempt, and each step of a multi-part upload, has a deadline that
 *   grows with the bytes it sends; a listing must produce each next entry within the deadline. Running
 *   out of time is transient (UNREACHABLE); a call cancelled by its caller's signal is not (INTERRUPTED).
 *   The deadline reaches the backend through the signal it is handed, so backends must honour it.
 * - Concurrency (LimitingBackend): at most N calls in flight per backend (LIFEBOAT_STORAGE_CONCURRENCY);
 *   a listing holds a slot only while it fetches, never while its caller works on what it yielded.
 * - `load` of a missing object throws NOT_FOUND; a range past the end returns what exists (callers check
 *   lengths, so truncation is detected as INTEGRITY upstream).
 * - `remove` of a missing object succeeds (idempotent) so that prune can be re-run after a crash.
 * - `list` yields every object of a type, in any order, paging internally; it fetches the next page only
 *   when the caller asks for more.
 * - Every method takes an optional `signal`. Backends pass it on to the SDK/file system call they make;
 *   a call made with a signal that already fired rejects with INTERRUPTED without touching the storage,
 *   and when it fires during a call, the call (and any retry or backoff in progress) stops as soon as it
 *   can and rejects with INTERRUPTED. A `save` stopped this way leaves no object, as any interrupted save
 *   — unless its last request had already reached the storage, in which case the object may be there,
 *   whole. Cloud backends let the small requests that start and commit a multi-part upload finish, so a
 *   server is never left half-way through one.
 * - `listLeftovers`/`removeLeftover` (optional) expose what interrupted writes leave behind outside the
 *   object namespace (local temp files, unfinished multipart uploads), so prune can reclaim them once
 *   they are older than any live lock. Backends without such debris leave them out.
 */
import { LifeboatError, isLifeboatError } from '../errors.ts';

export type ObjectType = 'config' | 'keys' | 'locks' | 'snapshots' | 'index' | 'data' | 'records';

export const OBJECT_TYPES: readonly ObjectType[] = [
  'config',
  'keys',
  'locks',
  'snapshots',
  'index',
  'data',
  'records',
];

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
  /** Set by the wrappers: how to run each request of a multi-part upload (see `runStep`). */
  eachStep?: StepRunner;
}

/** One request of a multi-part upload, as the wrappers see it. */
export interface StepCall {
  /** For messages: `save data/1f2e… part 3/4`. */
  what: string;
  signal?: AbortSignal;
  /** Bytes the request sends. */
  bytes: number;
}

export type StepRunner = <T>(
  step: StepCall,
  request: (signal: AbortSignal | undefined) => Promise<T>,
) => Promise<T>;

/**
 * Runs one request of a multi-part upload (starting it, an Azure block or S3 part, the commit): through
 * `options.eachStep` when the wrappers set it, which retries that request alone, with its own deadline.
 * Retrying whole uploads instead would compound failures: with the 66 requests of a 512 MiB pack, an
 * upload under throttling would rarely get all of them through in one attempt. Each step must be safe to
 * repeat (a block or part sent again replaces itself; a repeated commit of a landed upload answers
 * ALREADY_EXISTS, which the retry wrapper's lost-write check resolves). Backends throw classified
 * LifeboatErrors from `request`.
 */
export function runStep<T>(
  options: SaveOptions,
  what: string,
  bytes: number,
  request: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  if (!options.eachStep) return request(options.signal);
  return options.eachStep({ what, bytes, signal: options.signal }, request);
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
  /**
   * Writes `data` as the object. Once the promise resolves nothing reads `data` any more (no attempt,
   * no part of an upload is still running): a backup assembles its next pack in the same buffer.
   */
  save(h: Handle, data: Uint8Array, options?: SaveOptions): Promise<void>;
  /**
   * The object's bytes, or the part of `range` that exists. The buffer is the caller's own: nothing else
   * holds its memory (no cache hands it out twice), so a caller done with it may free it at once
   * (memory.ts, discard), as a restore and a check do.
   */
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
