/** The keep-* / --retention-days flags, shared by `forget` and by every backup command's post-backup cleanup. */
import type { OptionSpec, OptionValues } from './command.ts';
import type { Output } from './output.ts';
import { int, str, usageError } from './command.ts';
import {
  applyPolicy,
  isEmptyPolicy,
  parseDuration,
  type GroupDecision,
  type RetentionPolicy,
} from '../core/repository/forget.ts';
import type { Repository } from '../core/repository/repository.ts';
import { isLifeboatError } from '../core/errors.ts';
import type { Snapshot, SnapshotFilter, SnapshotType } from '../core/repository/model.ts';
import type { Base, Slice } from '../sources/mongodb/pitr-slices.ts';

/** The snapshot type of point-in-time slices (pitr-slices.ts), named here so forget need not load it. */
const SLICE_TYPE: SnapshotType = 'mongodb-oplog';

export const RETENTION_OPTIONS: Record<string, OptionSpec> = {
  'keep-last': { type: 'string', arg: 'N', description: 'keep the N newest snapshots' },
  'keep-hourly': {
    type: 'string',
    arg: 'N',
    description: 'keep the newest snapshot of each of the last N hours',
  },
  'keep-daily': {
    type: 'string',
    arg: 'N',
    description: 'keep the newest snapshot of each of the last N days',
  },
  'keep-weekly': {
    type: 'string',
    arg: 'N',
    description: 'keep the newest snapshot of each of the last N ISO weeks',
  },
  'keep-monthly': {
    type: 'string',
    arg: 'N',
    description: 'keep the newest snapshot of each of the last N months',
  },
  'keep-yearly': {
    type: 'string',
    arg: 'N',
    description: 'keep the newest snapshot of each of the last N years',
  },
  'keep-within': {
    type: 'string',
    arg: 'DURATION',
    description: 'keep all snapshots within DURATION (e.g. 7d, 2w, 1y) of the newest',
  },
  'retention-days': {
    type: 'string',
    arg: 'N',
    description: 'keep snapshots younger than N days (the newest is always kept)',
  },
};

/** Retention flags with their `backup` meaning: applied after a successful backup. */
export function retentionOptionsForBackup(defaultDays?: number): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = {};
  for (const [k, v] of Object.entries(RETENTION_OPTIONS))
    out[k] = { ...v, description: `${v.description}; applied after a successful backup` };
  if (defaultDays !== undefined)
    out['retention-days'] = { ...out['retention-days'], default: String(defaultDays) };
  out['no-retention'] = { type: 'boolean', description: 'do not apply retention after this backup' };
  return out;
}

/**
 * Pre-restore snapshots (what a restore replaced) have their own retention: a count, applied after each
 * backup of the same type, so a day of restores never pushes a real backup out and the rollback copies
 * do not pile up.
 */
export const PRE_RESTORE_RETENTION_OPTIONS: Record<string, OptionSpec> = {
  'keep-pre-restore': {
    type: 'string',
    arg: 'N',
    default: '3',
    description:
      'keep the N newest pre-restore snapshots (what restores replaced; at least 1); applied after a successful backup',
  },
};

export function policyFrom(values: OptionValues): RetentionPolicy {
  const within = str(values['keep-within']);
  if (within) {
    try {
      parseDuration(within);
    } catch (e) {
      throw usageError(`--keep-within: ${(e as Error).message}`);
    }
  }
  const count = (name: string) => {
    const v = values[name];
    if (v === 'unlimited') return -1;
    const n = int(v, name);
    if (n !== undefined && n < -1)
      throw usageError(`--${name} ${n}: give a count of 0 or more, or -1 / unlimited for no limit`);
    return n;
  };
  return {
    last: count('keep-last'),
    hourly: count('keep-hourly'),
    daily: count('keep-daily'),
    weekly: count('keep-weekly'),
    monthly: count('keep-monthly'),
    yearly: count('keep-yearly'),
    within,
    retentionDays: nonNegative(int(values['retention-days'], 'retention-days'), 'retention-days'),
  };
}

function nonNegative(n: number | undefined, name: string): number | undefined {
  if (n !== undefined && n < 0) throw usageError(`--${name} ${n}: give 0 or more days`);
  return n;
}

export interface ForgetResult {
  dryRun: boolean;
  groups: {
    group: string;
    keep: { id: string; timestamp: string; reasons: string[] }[];
    remove: { id: string; timestamp: string }[];
  }[];
  removed: number;
  /** Set when retention after a backup did not run (another process held the repository lock). */
  skipped?: string;
}

/** Applies a policy to the snapshots matching `filter`; removes what it does not keep unless dryRun. */
export async function forgetSnapshots(
  repo: Repository,
  filter: SnapshotFilter,
  policy: RetentionPolicy,
  dryRun: boolean,
): Promise<ForgetResult> {
  if (isEmptyPolicy(policy))
    throw usageError('no retention policy given', 'add --keep-* or --retention-days flags');
  // Exclusive, and taken before the snapshots are listed (the caller may already hold it).
  const lock = await repo.lock(dryRun ? 'shared' : 'exclusive', 'forget');
  let removed = 0;
  let decisions: GroupDecision[];
  try {
    // Point-in-time slices are never judged by keep-* rules (see slicesToForget); the newest verified
    // restore point of each layer is kept whatever the policy says (drillProtected).
    decisions = applyPolicy(
      (await repo.listSnapshots(filter)).filter((s) => s.type !== SLICE_TYPE),
      policy,
      new Date(),
      await drillProtected(repo),
    );
    const slices = await slicesToForget(repo, filter, decisions);
    if (slices) decisions.push(slices);
    for (const g of decisions) {
      for (const d of g.decisions) {
        if (!d.keep && !dryRun) {
          await repo.removeSnapshot(d.snapshot.id);
          removed++;
        }
      }
    }
  } finally {
    await lock.release();
  }
  const brief = (s: Snapshot) => ({ id: s.id, timestamp: s.timestamp });
  return {
    dryRun,
    removed,
    groups: decisions.map((g) => ({
      group: g.group,
      keep: g.decisions.filter((d) => d.keep).map((d) => ({ ...brief(d.snapshot), reasons: d.reasons })),
      remove: g.decisions.filter((d) => !d.keep).map((d) => brief(d.snapshot)),
    })),
  };
}

/**
 * Point-in-time recovery slices (`mongodb-oplog`, from `mongodb pitr run`) go with the MongoDB backups:
 * kept while a retained base backup needs them, whatever the keep-* rules (pitr-slices.ts). Judged
 * whenever MongoDB backups or slices are in the filter; a host filter does not apply (the follower's pod
 * name changes with every restart).
 */
async function slicesToForget(
  repo: Repository,
  filter: SnapshotFilter,
  decisions: GroupDecision[],
): Promise<GroupDecision | undefined> {
  // The MongoDB sources load only for a forget that may touch MongoDB snapshots (lazy-imports.test.ts).
  if (filter.type && filter.type !== 'mongodb' && filter.type !== SLICE_TYPE) return undefined;
  const { baseOf, sliceOf, sliceRetention } = await import('../sources/mongodb/pitr-slices.ts');
  const removed = new Set(
    decisions.flatMap((g) => g.decisions.filter((d) => !d.keep).map((d) => d.snapshot.id)),
  );
  const all = await repo.listSnapshots({ type: 'mongodb' });
  const retained = all
    .filter((s) => !removed.has(s.id))
    .map(baseOf)
    .filter((b): b is Base => Boolean(b));
  const sliceSnaps = await repo.listSnapshots({ type: SLICE_TYPE });
  if (!sliceSnaps.length) return undefined;
  const byId = new Map(sliceSnaps.map((s) => [s.id, s]));
  const r = sliceRetention(
    sliceSnaps.map(sliceOf).filter((s): s is Slice => Boolean(s)),
    retained,
  );
  return {
    group: `${SLICE_TYPE} (point-in-time slices, kept as the retained mongodb backups need them)`,
    decisions: [
      ...r.keep.map((k) => ({ snapshot: byId.get(k.slice.id)!, keep: true, reasons: [k.reason] })),
      ...r.remove.map((s) => ({ snapshot: byId.get(s.id)!, keep: false, reasons: [] })),
    ],
  };
}

/**
 * The newest verified restore point of each layer (the snapshot the newest successful restore drill of
 * that layer restored and verified), kept whatever the policy says: reason "verified by drill <id>".
 */
async function drillProtected(repo: Repository): Promise<Map<string, string>> {
  const { listDrills, verifiedRestorePoints } = await import('../operations/drill-records.ts');
  const points = verifiedRestorePoints(await listDrills(repo));
  return new Map([...points].map(([snapshot, drill]) => [snapshot, `verified by drill ${drill}`]));
}

/** After a backup: apply the backup command's retention flags to snapshots of the same type and host. */
export async function retentionAfterBackup(
  repo: Repository,
  snapshot: Snapshot,
  values: OptionValues,
): Promise<ForgetResult | undefined> {
  if (values['no-retention']) return undefined;
  const policy = policyFrom(values);
  const keepPreRestore = int(values['keep-pre-restore'], 'keep-pre-restore');
  if (keepPreRestore !== undefined && keepPreRestore < 1)
    throw usageError(`--keep-pre-restore ${keepPreRestore}: give 1 or more`);
  if (isEmptyPolicy(policy) && keepPreRestore === undefined) return undefined;
  // Counting an incomplete snapshot as one of the N to keep could push a complete one out.
  if (snapshot.meta.incomplete)
    return { dryRun: false, removed: 0, groups: [], skipped: 'the snapshot is incomplete' };
  try {
    const scope = { type: snapshot.type, host: snapshot.host };
    const r: ForgetResult = isEmptyPolicy(policy)
      ? { dryRun: false, removed: 0, groups: [] }
      : await forgetSnapshots(repo, scope, policy, false);
    if (keepPreRestore !== undefined) {
      const pre = await forgetSnapshots(
        repo,
        { ...scope, purpose: 'pre-restore' },
        { last: keepPreRestore },
        false,
      );
      r.removed += pre.removed;
      r.groups.push(...pre.groups.map((g) => ({ ...g, group: `pre-restore ${g.group}` })));
    }
    return r;
  } catch (e) {
    // Forgetting needs the exclusive lock; with other backups running side by side it is not to be had.
    // The backup itself succeeded: say so, and leave retention to the next run or `lifeboat forget`.
    if (!isLifeboatError(e, 'LOCKED')) throw e;
    return { dryRun: false, removed: 0, groups: [], skipped: e.message };
  }
}

/** The line a backup command prints about the retention it applied (or could not). */
export function printRetention(out: Output, r: ForgetResult | undefined): void {
  if (r?.skipped)
    out.line(`retention skipped: ${r.skipped}; it runs after the next backup or with \`lifeboat forget\``);
  else if (r?.removed)
    out.line(`retention removed ${r.removed} old snapshot(s); run \`lifeboat prune\` to reclaim space`);
}
