/**
 * Records: small, sealed JSON documents that are not backups but describe what happened to them —
 * pipeline runs, restore drills, recoveries, copies, audit entries. They live under `records/`, are
 * write-once like every other object (so a WORM container holds them too), and never reference data
 * blobs, so prune and check leave them alone.
 *
 * A record that changes as work goes on (a pipeline run) is a sequence of records under one key, each a
 * new object; readers fold them (`latestByKey`). Nothing is ever rewritten in place.
 *
 * Object names are `<kind>_<key>_<UTC stamp>_<random>` (object names allow only `[0-9a-zA-Z_-]`): listing a kind, a key or a time range needs no
 * decryption. The name reveals the kind, the key and the time, never the content.
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../errors.ts';
import type { Backend } from '../storage/backend.ts';
import type { Repository } from './repository.ts';

const KIND = /^[a-z][a-z0-9-]{0,31}$/;
const KEY = /^[A-Za-z0-9-]{1,64}$/;
const NAME = /^([a-z][a-z0-9-]{0,31})_([A-Za-z0-9-]{1,64})_(\d{8}T\d{9}Z)_([0-9a-f]{8})$/;

export interface RecordRef {
  /** The object name under `records/`. */
  name: string;
  kind: string;
  key: string;
  /** When it was written (from its name), ISO 8601. */
  time: string;
}

/** `20261202T035200123Z`: sorts as text in time order, millisecond resolution. */
export function recordStamp(d: Date): string {
  return d.toISOString().replace(/[-:.]/g, '');
}

function stampToIso(stamp: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(stamp)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`;
}

export function parseRecordName(name: string): RecordRef | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return { name, kind: m[1], key: m[2], time: stampToIso(m[3]) };
}

export class Records {
  private readonly repo: Repository;
  /** Last stamp written per kind+key: records of one key written in the same millisecond keep their order. */
  private readonly lastWritten = new Map<string, number>();

  constructor(repo: Repository) {
    this.repo = repo;
  }

  /**
   * Writes one new record; returns its reference. `time` defaults to the repository clock. `via`: the
   * repository's storage bound to another signal (`repo.detached`), for a write that must outlive the
   * operation's cancellation; `list` and `get` take it too.
   */
  async put(kind: string, key: string, body: unknown, time?: Date, via?: Backend): Promise<RecordRef> {
    if (!KIND.test(kind)) throw new LifeboatError('USAGE', `record kind "${kind}" is not a valid name`);
    if (!KEY.test(key)) throw new LifeboatError('USAGE', `record key "${key}" must be 1-64 of A-Z a-z 0-9 -`);
    let at = (time ?? new Date(this.repo.clock.now())).getTime();
    const last = this.lastWritten.get(`${kind}_${key}`);
    if (last !== undefined && at <= last) at = last + 1;
    this.lastWritten.set(`${kind}_${key}`, at);
    const name = `${kind}_${key}_${recordStamp(new Date(at))}_${randomBytes(4).toString('hex')}`;
    await this.repo.saveSealed('records', name, body, false, via);
    return parseRecordName(name)!;
  }

  /** Every record of a kind (optionally one key), oldest first. Objects with foreign names are ignored. */
  async list(kind: string, key?: string, via?: Backend): Promise<RecordRef[]> {
    const prefix = key === undefined ? `${kind}_` : `${kind}_${key}_`;
    const refs: RecordRef[] = [];
    const listing = via
      ? via.list('records')
      : this.repo.backend.list('records', { signal: this.repo.signal });
    for await (const info of listing) {
      if (!info.name.startsWith(prefix)) continue;
      const ref = parseRecordName(info.name);
      if (ref) refs.push(ref);
    }
    const order = (r: RecordRef) => `${r.time} ${r.name}`;
    return refs.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  }

  /** Reads and authenticates one record; a damaged one throws INTEGRITY naming it. */
  async get<T>(ref: RecordRef | string, via?: Backend): Promise<T> {
    return this.repo.loadSealed<T>('records', typeof ref === 'string' ? ref : ref.name, via);
  }

  /** The newest record of each key of a kind, newest key first. */
  async latestByKey<T>(kind: string): Promise<{ ref: RecordRef; body: T }[]> {
    const newest = new Map<string, RecordRef>();
    for (const ref of await this.list(kind)) newest.set(ref.key, ref);
    const refs = [...newest.values()].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
    return Promise.all(refs.map(async (ref) => ({ ref, body: await this.get<T>(ref) })));
  }

  /** Removes records (retention of records); idempotent. */
  async remove(refs: RecordRef[]): Promise<void> {
    for (const ref of refs) await this.repo.backend.remove({ type: 'records', name: ref.name });
  }
}
