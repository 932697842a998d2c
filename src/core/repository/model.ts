/**
 * What sources (files, mongodb, cluster-state, secrets, pvc-snapshots, terraform) see of the repository.
 * The core knows nothing of MongoDB or Kubernetes: a source streams bytes or records into items and
 * commits a snapshot manifest naming them; the repository chunks, deduplicates, compresses, encrypts and
 * packs. Readers get the bytes back, verified against the item's own SHA-256.
 */

export const SNAPSHOT_TYPES = [
  'files',
  'mongodb',
  // Point-in-time recovery slices of a MongoDB oplog (src/sources/mongodb/pitr-slices.ts).
  'mongodb-oplog',
  'cluster-state',
  'secrets',
  'pvc-snapshots',
  'terraform',
] as const;
export type SnapshotType = (typeof SNAPSHOT_TYPES)[number];

/**
 * Why a snapshot was taken. `latest`, `--timestamp` and retention choose among `backup` snapshots only
 * (listSnapshots/resolveSnapshot filter on it by default): a snapshot taken for a restore's rollback, an
 * imported dump or a drill's scratch copy must never become "the newest backup".
 * - `backup`: a scheduled or manual backup (and every older snapshot without the tags below)
 * - `pre-restore`: what a restore replaced, kept so it can be undone (older ones: tagged `pre-restore`)
 * - `import`: brought in from outside (e.g. a mongodump archive; older ones: tagged `imported`)
 * - `drill`: written by a restore drill
 */
export const SNAPSHOT_PURPOSES = ['backup', 'pre-restore', 'import', 'drill'] as const;
export type SnapshotPurpose = (typeof SNAPSHOT_PURPOSES)[number];

/**
 * How an item's stream is cut into chunks.
 * - `file`: content-defined chunking over bytes, ~1 MiB average (files, tarballs, Terraform state).
 * - `records`: each `write` is one whole record (a BSON document, a JSON object); cuts fall only between
 *   records, ~16 KiB average, so that scattered updates in a database dump cost little.
 */
export type Chunking = 'file' | 'records';

export interface ItemInput {
  /** Unique within the snapshot: a relative path, `db.collection`, `namespace/Kind/name`, … */
  name: string;
  /** Source-defined: `file`, `dir`, `symlink`, `collection`, `resource`, … */
  kind: string;
  /** Source-defined metadata stored with the item (mode, mtime, indexes, options, …). Never secrets. */
  meta?: Record<string, unknown>;
}

export interface Item extends Required<ItemInput> {
  /** Plain content length in bytes. */
  size: number;
  /** SHA-256 of the plain content, hex. */
  sha256: string;
  /** Number of records written (records chunking), else 0. */
  records: number;
  /** Chunk ids in order (short items), … */
  chunks?: string[];
  /** … or ids of list blobs, each holding up to 8192 chunk ids (long items). */
  chunkLists?: string[];
}

export interface SnapshotInput {
  type: SnapshotType;
  /** Defaults to `backup`. */
  purpose?: SnapshotPurpose;
  tags?: string[];
  /** What was backed up (paths, URIs without credentials, namespaces): groups snapshots for retention. */
  paths?: string[];
  /** Source-specific summary (server version, oplog window, cluster name, …). Never secrets. */
  meta?: Record<string, unknown>;
  items: Item[];
  /**
   * A backup that found nothing (0 items) fails unless this is set: a wrong filter or database name must
   * not produce a week of empty snapshots that retention then keeps instead of the real ones.
   */
  allowEmpty?: boolean;
  /** Whether the source found nothing; defaults to "no items" (a source with bookkeeping items says). */
  empty?: boolean;
  /** What to check when the backup is empty, in the source's terms (e.g. the namespace filter). */
  emptyHint?: string;
  /**
   * Set only by `copy`: the copied snapshot keeps the time and host of the original, so retention,
   * `--timestamp` and restore points mean the same in every location.
   */
  origin?: { time: string; host: string };
}

export interface SnapshotSummary {
  bytesProcessed: number;
  bytesAdded: number;
  items: number;
  durationMs: number;
}

export interface Snapshot extends Required<
  Omit<SnapshotInput, 'items' | 'allowEmpty' | 'emptyHint' | 'empty' | 'origin' | 'purpose'>
> {
  /**
   * Always set on snapshots read from a repository (derived from the tags for older ones); optional so
   * that snapshots built in memory need not say. Read it through `snapshotPurpose()`.
   */
  purpose?: SnapshotPurpose;
  /** 64 hex characters; the name of the `snapshots/` object. */
  id: string;
  /** ISO 8601 creation time. */
  time: string;
  /** `YYYYMMDD_HHMMSS` in UTC, the label the guide restores by (`--timestamp 20241201_120000`). */
  timestamp: string;
  host: string;
  summary: SnapshotSummary;
  items: Item[];
}

export interface SnapshotFilter {
  type?: SnapshotType;
  /**
   * Which purposes to list: default `backup` only, so "the newest backup" is `listSnapshots({type}).at(-1)`.
   * `'any'` lists every snapshot (prune, stats, `snapshots`: anything that must see all of them).
   * Ids and id prefixes name a snapshot of any purpose.
   */
  purpose?: SnapshotPurpose | SnapshotPurpose[] | 'any';
  tags?: string[];
  host?: string;
}

export interface ItemWriter {
  /**
   * Appends to the item. In `records` mode each call is exactly one whole record. The data is handed over:
   * the caller must not modify it afterwards (no copy is made). Applies backpressure so memory stays
   * bounded.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * Appends up to `length` bytes that `fill` puts into the buffer it is given, and returns how many it
   * put there (0: the source is done; nothing is appended). Same as reading into a buffer of one's own
   * and calling `write`, but the writer chooses where the bytes land: a large file's go straight into
   * the memory the backup's worker threads read, without a copy or a buffer to collect afterwards.
   */
  writeFrom(length: number, fill: (into: Uint8Array) => Promise<number>): Promise<number>;
  /**
   * Gives the item up (its source failed part-way): waits for what was written to settle, and returns
   * nothing to commit. Chunks already stored stay unreferenced, for prune.
   */
  discard(): Promise<void>;
  /**
   * For a writer made with an expected item (BackupSession.newItem): true as soon as a chunk or the size
   * differs from it. The source may stop writing then; either way, see `matches`.
   */
  readonly diverged: boolean;
  /**
   * Flushes the last chunk, waits for every chunk to be named, and tells whether the item equals the
   * expected one (always true without one). When it does not, the item has no hash: the source discards
   * this writer and writes the item again with a writer of its own.
   */
  matches(): Promise<boolean>;
  /** Flushes the last chunk and returns the finished item (to pass to `commit`). */
  finish(): Promise<Item>;
}

/**
 * What a source expects an item to hold, from an earlier snapshot: a file read again though its
 * metadata says it is unchanged (`files backup --force`). See BackupSession.newItem.
 */
export interface ExpectedItem {
  size: number;
  sha256: string;
  chunkIds: readonly string[];
}

export interface BackupProgress {
  bytesProcessed: number;
  bytesAdded: number;
}

/** One backup in progress: holds a shared lock until `commit` or `abort`. */
export interface BackupSession {
  /**
   * A writer for one item. With `expected`, it skips the item's SHA-256 while the chunks match the
   * expected item's: equal chunk ids mean equal content (the ids are keyed SHA-256 hashes, which dedup
   * relies on already), so the item takes the expected item's hash. Reading an unchanged file again then
   * costs one pass of SHA-256 instead of two.
   */
  newItem(input: ItemInput, chunking: Chunking, expected?: ExpectedItem): ItemWriter;
  /** What `previous` holds, for newItem; undefined if its chunk lists cannot be read (read it plainly). */
  expectItem(previous: Item): Promise<ExpectedItem | undefined>;
  /** Convenience: writes a whole stream (or buffer) as one item. */
  addItem(input: ItemInput, data: AsyncIterable<Uint8Array> | Uint8Array, chunking: Chunking): Promise<Item>;
  /**
   * An item with the content of `previous` (an item of an earlier snapshot) under new name/kind/meta,
   * without reading anything, if every blob it references is in the index; otherwise undefined and the
   * source reads the data again. Its bytes count as processed.
   */
  reuseItem(input: ItemInput, previous: Item): Promise<Item | undefined>;
  readonly progress: BackupProgress;
  /** Writes remaining packs, then the index, then the snapshot (last, so partial backups never appear). */
  commit(input: SnapshotInput): Promise<Snapshot>;
  /** Releases the lock; data already written stays unreferenced until prune removes it. */
  abort(): Promise<void>;
}
