/**
 * The audit log: an append-only, hash-chained log of every command that changed or verified something,
 * kept in the repository as sealed write-once records (`records/audit_<operation>_<stamp>_<random>`), so a
 * WORM container holds it as it holds the backups.
 *
 * Record body (other readers — the metrics, the status page — read records by this shape; fields are only
 * ever added):
 *
 *   { seq: number,            // 1 for the first record, the previous record's seq + 1 after that
 *     event: LifeboatEvent,   // the command's event (src/core/events.ts): never a secret value
 *     prev: string,           // `hash` of the record this one follows, or "genesis" for the first
 *     hash: string }          // sha256 (hex) of the canonical JSON of { seq, event, prev }
 *
 * The record's key is the operation with spaces as dashes (`mongodb-backup`), so one operation's records
 * are listed without decrypting the others; records are in time order by name.
 *
 * Appending: the new record follows the newest readable record (the last in name order) and is stamped
 * at least 1 ms after it, so every record sorts after the one it follows whatever the writers' clocks.
 *
 * Concurrency: two processes appending at once may both follow the same record (a fork: two records with
 * the same prev and seq). Records are write-once, so neither can be replaced; a fork is valid, counted by
 * `verify` and never an error. The next append follows the newest record in name order — a deterministic
 * rule — and the log goes on from there; the other branch ends.
 *
 * Verification (`verify`), in name order — the first problem names the first bad record:
 * - every record authenticates (sealed with the repository key: a record changed in storage fails here);
 * - its `hash` is the hash of its content (a record re-sealed with the key after a change fails here);
 * - its `prev` is "genesis" with seq 1, or the hash of an earlier record with seq one lower: a record
 *   whose predecessor is missing (removed, or changed and re-hashed) or comes after it (reordered) fails;
 * - no two records are the same record (copied).
 * The newest record(s) of a branch have no successor to vouch for them: removing the newest record is
 * only found against a head hash kept elsewhere (`verify` prints the head; `--head HASH` checks it).
 */
import { createHash } from 'node:crypto';
import type { EventSink, LifeboatEvent } from '../core/events.ts';
import { isLifeboatError } from '../core/errors.ts';
import type { RecordRef } from '../core/repository/records.ts';
import type { Repository } from '../core/repository/repository.ts';
import type { Backend } from '../core/storage/backend.ts';

export const AUDIT_KIND = 'audit';
export const GENESIS = 'genesis';

export interface AuditBody {
  seq: number;
  event: LifeboatEvent;
  prev: string;
  hash: string;
}

export interface AuditEntry {
  ref: RecordRef;
  body: AuditBody;
}

/** JSON with object keys sorted at every level: the same content always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function auditHash(body: { seq: number; event: LifeboatEvent; prev: string }): string {
  return createHash('sha256')
    .update(canonicalJson({ seq: body.seq, event: body.event, prev: body.prev }))
    .digest('hex');
}

/** `mongodb backup` → `mongodb-backup` (record keys allow 1-64 of A-Z a-z 0-9 -). */
export function auditKey(operation: string): string {
  const key = operation
    .replace(/[^A-Za-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return key || 'unknown';
}

export interface AuditProblem {
  record: string;
  time: string;
  problem: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  records: number;
  /** Records followed by more than one record (concurrent appends): valid, for information. */
  forks: number;
  /** The newest record in name order: keep its hash elsewhere to detect a removed newest record. */
  head?: { record: string; seq: number; hash: string };
  /** The first bad record, in name order. */
  firstBad?: AuditProblem;
  problems: AuditProblem[];
}

export interface AuditFilter {
  since?: Date;
  operation?: string;
}

export class AuditLog {
  private readonly repo: Repository;
  private readonly via: Backend | undefined;

  /** `via`: the repository's storage bound to another signal (`repo.detached`), see records.ts. */
  constructor(repo: Repository, via?: Backend) {
    this.repo = repo;
    this.via = via;
  }

  private refs(key?: string): Promise<RecordRef[]> {
    return this.repo.records.list(AUDIT_KIND, key, this.via);
  }

  private read(ref: RecordRef): Promise<AuditBody> {
    return this.repo.records.get<AuditBody>(ref, this.via);
  }

  /** The record a new one follows: the newest readable record in name order. */
  async head(): Promise<AuditEntry | undefined> {
    const refs = await this.refs();
    for (let i = refs.length - 1; i >= 0; i--) {
      try {
        const body = await this.read(refs[i]);
        if (typeof body?.hash === 'string' && typeof body.seq === 'number') return { ref: refs[i], body };
      } catch (e) {
        // A damaged newest record: follow the one before it (verify reports the damaged one).
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      }
    }
    return undefined;
  }

  /** Appends `event` after `head` (from `head()`); split from `append` so a test can race two writers. */
  async appendAfter(head: AuditEntry | undefined, event: LifeboatEvent): Promise<AuditEntry> {
    const seq = head ? head.body.seq + 1 : 1;
    const prev = head ? head.body.hash : GENESIS;
    const body: AuditBody = { seq, event, prev, hash: auditHash({ seq, event, prev }) };
    const now = this.repo.clock.now();
    const after = head ? Date.parse(head.ref.time) + 1 : 0;
    const ref = await this.repo.records.put(
      AUDIT_KIND,
      auditKey(event.operation),
      body,
      new Date(Math.max(now, after)),
      this.via,
    );
    return { ref, body };
  }

  async append(event: LifeboatEvent): Promise<AuditEntry> {
    return this.appendAfter(await this.head(), event);
  }

  /** Records in time order; `since` and `operation` filter by name, before anything is decrypted. */
  async list(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const key = filter.operation === undefined ? undefined : auditKey(filter.operation);
    const since = filter.since?.toISOString();
    const refs = (await this.refs(key)).filter((r) => !since || r.time >= since);
    const out: AuditEntry[] = [];
    for (const ref of refs) out.push({ ref, body: await this.read(ref) });
    return out;
  }

  async verify(): Promise<AuditVerifyReport> {
    const refs = await this.refs();
    const problems: AuditProblem[] = [];
    const bad = (ref: RecordRef, problem: string) =>
      problems.push({ record: `records/${ref.name}`, time: ref.time, problem });
    const bodies: (AuditBody | undefined)[] = [];
    for (const ref of refs) {
      try {
        bodies.push(await this.read(ref));
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
        bodies.push(undefined);
      }
    }
    // Every record whose content matches its hash, by hash: where it is and what seq it has.
    const byHash = new Map<string, { index: number; seq: number }>();
    bodies.forEach((b, i) => {
      if (b && wellFormed(b) && auditHash(b) === b.hash && !byHash.has(b.hash))
        byHash.set(b.hash, { index: i, seq: b.seq });
    });
    const children = new Map<string, number>();
    for (let i = 0; i < refs.length; i++) {
      const ref = refs[i];
      const b = bodies[i];
      if (!b) {
        bad(ref, 'cannot be read or does not authenticate (changed or damaged in storage)');
        continue;
      }
      if (!wellFormed(b)) {
        bad(ref, 'is not an audit record (seq, event, prev, hash)');
        continue;
      }
      if (auditHash(b) !== b.hash) {
        bad(ref, 'its content does not match its hash (changed)');
        continue;
      }
      const same = byHash.get(b.hash)!;
      if (same.index !== i) {
        bad(ref, `is a copy of records/${refs[same.index].name}`);
        continue;
      }
      if (b.prev === GENESIS) {
        if (b.seq !== 1) bad(ref, `starts a chain ("genesis") but has seq ${b.seq}`);
      } else {
        const p = byHash.get(b.prev);
        if (!p) bad(ref, `the record before it (hash ${b.prev.slice(0, 12)}…) is missing or was changed`);
        else if (p.index > i)
          bad(ref, `comes before records/${refs[p.index].name}, the record it follows (reordered)`);
        else if (p.seq + 1 !== b.seq)
          bad(ref, `has seq ${b.seq}, but the record it follows has seq ${p.seq} (reordered or renumbered)`);
      }
      children.set(b.prev, (children.get(b.prev) ?? 0) + 1);
    }
    const last = refs.length ? bodies.at(-1) : undefined;
    return {
      ok: problems.length === 0,
      records: refs.length,
      forks: [...children.values()].filter((n) => n > 1).length,
      ...(last && wellFormed(last)
        ? { head: { record: `records/${refs.at(-1)!.name}`, seq: last.seq, hash: last.hash } }
        : {}),
      ...(problems.length ? { firstBad: problems[0] } : {}),
      problems,
    };
  }

  /** Whether a record with this hash exists and is intact (an anchor kept elsewhere, `verify --head`). */
  async hasHash(hash: string): Promise<boolean> {
    for (const ref of await this.refs()) {
      try {
        const b = await this.read(ref);
        if (wellFormed(b) && b.hash === hash && auditHash(b) === hash) return true;
      } catch (e) {
        if (!isLifeboatError(e, 'INTEGRITY')) throw e;
      }
    }
    return false;
  }
}

function wellFormed(b: AuditBody): boolean {
  return (
    b !== null &&
    typeof b === 'object' &&
    Number.isInteger(b.seq) &&
    b.seq >= 1 &&
    typeof b.prev === 'string' &&
    typeof b.hash === 'string' &&
    b.event !== null &&
    typeof b.event === 'object'
  );
}

/**
 * How a sink reaches the repository for one event: the repository with storage bound to a fresh deadline
 * (not to the command's cancellation), or why there is none.
 */
export type RepositoryAccess = (
  event: LifeboatEvent,
) => Promise<{ repo: Repository; via: Backend } | { missing: string; quiet: boolean }>;

/** The audit log as an event sink: one record per event. */
export function auditSink(
  access: RepositoryAccess,
  onMissing: (reason: string, event: LifeboatEvent, quiet: boolean) => void,
): EventSink {
  return {
    name: 'audit log',
    async deliver(event) {
      const to = await access(event);
      if ('missing' in to) {
        onMissing(to.missing, event, to.quiet);
        return;
      }
      await new AuditLog(to.repo, to.via).append(event);
    },
  };
}
