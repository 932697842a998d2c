import { LifeboatError } from '../core/errors.ts';
import type { RestoreResult } from '../sources/mongodb/restore.ts';
import { pitrTimeOption, resolveTimeOption, type PointInTimeReport } from './pitr-restore.ts';
import type { Recovery } from '../sources/mongodb/journal.ts';
import { int, list, str, usageError, type Command } from './command.ts';
import { openRepository } from './repo.ts';
import { CONNECTION_OPTIONS, NS_OPTIONS, connectFromOptions, nsFilter } from './mongodb-options.ts';
import { formatPosition } from '../sources/mongodb/position.ts';

export const mongodbRestoreCommand: Command<RestoreResult> = {
  path: ['mongodb', 'restore'],
  summary: 'restore a MongoDB snapshot (verified, rolled back on failure)',
  usage: '[SNAPSHOT | latest]',
  options: {
    ...CONNECTION_OPTIONS,
    ...NS_OPTIONS,
    timestamp: {
      type: 'string',
      arg: 'YYYYMMDD_HHMMSS',
      description: 'restore the snapshot taken at this time',
    },
    'ns-from': {
      type: 'string',
      multiple: true,
      arg: 'PATTERN',
      description: 'rename: source pattern (pairs with --ns-to)',
    },
    'ns-to': { type: 'string', multiple: true, arg: 'PATTERN', description: 'rename: target pattern' },
    drop: { type: 'boolean', description: 'drop each target collection before restoring it' },
    'dry-run': { type: 'boolean', description: 'print the plan, change nothing' },
    parallel: { type: 'string', arg: 'N', default: '4', description: 'collections restored at once' },
    'insertion-workers': {
      type: 'string',
      arg: 'N',
      default: '2',
      description: 'concurrent insert batches per collection',
    },
    'no-rollback': {
      type: 'boolean',
      description: 'on failure, leave the target as the failed restore left it',
    },
    'rollback-wait': {
      type: 'string',
      arg: 'SECONDS',
      default: '120',
      description: 'how long a rollback waits for an unreachable server',
    },
    'no-verify': { type: 'boolean', description: 'skip the count/hash verification after restore' },
    resume: {
      type: 'boolean',
      // Recovery actions are typed, never inherited from lifeboat.yaml or the environment.
      flagOnly: true,
      description:
        'only recover an interrupted restore: finish its swap, or undo it if it had not loaded everything',
    },
    rollback: {
      type: 'boolean',
      flagOnly: true,
      description: 'only recover an interrupted restore: undo it (the target ends as it was before it)',
    },
    'in-place': {
      type: 'boolean',
      description:
        'restore straight into the targets: no shadow copies (no extra disk) but not atomic — a kill can leave it half-done',
    },
    'include-users': {
      type: 'boolean',
      description:
        'also restore the users and roles in the snapshot (merged; with --drop, others are removed)',
    },
    'oplog-replay': {
      type: 'boolean',
      description:
        'replay the oplog captured by `backup --oplog` after the data: consistent to the end of the backup',
    },
    ...pitrTimeOption,
    'oplog-limit': {
      type: 'string',
      arg: 'SECONDS[:ORDINAL] | ISO-TIME',
      description: 'with --oplog-replay: replay only entries before this point in time',
    },
  },
  help: `SNAPSHOT is an id, a unique id prefix, "latest" (default) or a YYYYMMDD_HHMMSS timestamp.
Examples:
  lifeboat mongodb restore --uri mongodb://mongo:27017 --timestamp 20241201_120000 --drop
  lifeboat mongodb restore latest --ns-from 'rocketchat.*' --ns-to 'rocketchat_restored.*'
  lifeboat mongodb restore latest --drop --oplog-replay --oplog-limit 2024-12-01T12:03:00Z
  lifeboat mongodb restore --time 2024-12-01T12:03:00Z --drop`,
  async run(ctx, values, args) {
    const { applyRestore, inspectTargets, planRestore } = await import('../sources/mongodb/restore.ts');
    const { NamespaceRenamer } = await import('../sources/mongodb/nsfilter.ts');
    const { parseOplogLimit } = await import('../sources/mongodb/oplog.ts');
    const { findJournals, isRunning, recoverInterrupted, describeInterrupted } =
      await import('../sources/mongodb/journal.ts');
    const recoverMode = values.resume ? 'resume' : values.rollback ? 'rollback' : undefined;
    if (recoverMode) {
      if (values.resume && values.rollback) throw usageError('give either --resume or --rollback, not both');
      if (args.length || values.timestamp)
        throw usageError(
          `--${recoverMode} recovers the interrupted restore recorded on the server; it takes no SNAPSHOT`,
          'run it alone, then start a new restore if you want one',
        );
      const { client } = await connectFromOptions(ctx, values);
      try {
        const recovered = await recoverInterrupted(client, recoverMode, (m) => ctx.out.note(m));
        if (!recovered.length)
          throw new LifeboatError('NOT_FOUND', 'no interrupted restore on this server: nothing to recover', {
            hint: 'a restore that ends (or fails) cleans up after itself; start a new one with `lifeboat mongodb restore`',
          });
        return {
          snapshot: recovered[0].snapshot,
          dryRun: false,
          collections: [],
          skipped: [],
          notRestored: [],
          recovered,
        };
      } finally {
        await client.close().catch(() => {});
      }
    }
    if (args.length > 1) throw usageError('give one SNAPSHOT');
    const ts = str(values.timestamp);
    if (ts && args.length) throw usageError('give either SNAPSHOT or --timestamp, not both');
    if (ts && !/^\d{8}_\d{6}$/.test(ts))
      throw usageError(`--timestamp "${ts}" is not YYYYMMDD_HHMMSS`, 'e.g. --timestamp 20241201_120000');
    const ref = ts ?? args[0] ?? 'latest';
    const time = str(values.time);
    if (time && (ts || args.length || values['oplog-replay'] || values['oplog-limit']))
      throw usageError(
        '--time picks the base backup and replays the oplog itself: give it without SNAPSHOT, --timestamp, --oplog-replay or --oplog-limit',
      );
    const renamer = new NamespaceRenamer(list(values['ns-from']), list(values['ns-to']));
    const filter = await nsFilter(values);
    const oplogReplay = Boolean(values['oplog-replay']);
    const limitText = str(values['oplog-limit']);
    if (limitText && !oplogReplay) throw usageError('--oplog-limit needs --oplog-replay');
    const oplogLimit = limitText ? parseOplogLimit(limitText) : undefined;
    if (
      oplogReplay &&
      !time &&
      ['ns-include', 'ns-exclude', 'ns-from', 'ns-to'].some((k) => list(values[k]).length > 0)
    ) {
      throw usageError(
        '--oplog-replay applies changes to every namespace as they happened, so it cannot be combined with --ns-include/--ns-exclude/--ns-from/--ns-to',
        'restore the whole snapshot with --oplog-replay, or select and rename without it',
      );
    }
    const includeUsers = Boolean(values['include-users']);
    if (includeUsers && (list(values['ns-from']).length || list(values['ns-to']).length)) {
      throw usageError(
        '--include-users cannot be combined with --ns-from/--ns-to: users and roles name their databases',
        'restore the users in a separate run without renaming',
      );
    }
    const repo = await openRepository(ctx, { lock: 'shared' });
    const pit = time ? await resolveTimeOption(repo, time, values, filter, renamer) : undefined;
    const snapshot = pit?.base ?? (await repo.resolveSnapshot(ref, { type: 'mongodb' }));
    const plan = planRestore(snapshot, filter, renamer, {
      oplogReplay: oplogReplay || Boolean(pit),
      includeUsers,
    });
    if (plan.entries.length === 0 && plan.usersAndRoles.length === 0) {
      throw new LifeboatError(
        'NOT_FOUND',
        `snapshot ${snapshot.id.slice(0, 8)} has no collection matching the namespace filters`,
        {
          hint: 'check --ns-include/--ns-exclude against `lifeboat show ' + snapshot.id.slice(0, 8) + '`',
        },
      );
    }
    const { client } = await connectFromOptions(ctx, values);
    try {
      let recovered: Recovery[] | undefined;
      if (values['dry-run']) {
        for (const j of await findJournals(client))
          if (!isRunning(j))
            ctx.out.note(`lifeboat: ${describeInterrupted(j)}; the restore would recover it first`);
      } else {
        // An interrupted restore is finished or undone first: never restore over a half-swapped target.
        recovered = await recoverInterrupted(client, 'auto', (m) => ctx.out.note(m));
      }
      await inspectTargets(client, plan);
      const drop = Boolean(values.drop);
      if (values['dry-run']) {
        return {
          snapshot: snapshot.id,
          dryRun: true,
          collections: [],
          skipped: plan.skipped,
          notRestored: [],
          ...(plan.usersAndRoles.length
            ? {
                usersAndRoles: {
                  users: plan.usersAndRoles
                    .filter((i) => i.name.endsWith('.system.users'))
                    .reduce((n, i) => n + i.records, 0),
                  roles: plan.usersAndRoles
                    .filter((i) => i.name.endsWith('.system.roles'))
                    .reduce((n, i) => n + i.records, 0),
                },
              }
            : {}),
          ...(plan.oplog
            ? {
                oplog: {
                  entries: plan.oplog.records,
                  start: plan.oplog.meta.start ?? null,
                  end: plan.oplog.meta.end ?? null,
                },
              }
            : {}),
          plan: plan.entries.map((e) => ({
            source: e.source,
            target: e.target,
            type: e.type,
            count: e.meta.count,
            action: !e.exists
              ? 'create'
              : drop
                ? `drop (${e.existingCount} documents) and recreate`
                : `insert into existing (${e.existingCount} documents)`,
          })),
        };
      }
      const result = await applyRestore({
        inPlace: Boolean(values['in-place']),
        client,
        repo,
        plan,
        drop,
        parallel: int(values.parallel, 'parallel'),
        insertionWorkers: int(values['insertion-workers'], 'insertion-workers'),
        rollback: !values['no-rollback'],
        rollbackWaitMs: (int(values['rollback-wait'], 'rollback-wait') ?? 120) * 1000,
        verify: !values['no-verify'],
        oplogLimit,
        oplogEntries: pit?.entries,
        signal: ctx.signal,
        note: (m) => ctx.out.note(m),
      });
      const withPit = pit ? Object.assign(result, { pointInTime: pit.report() }) : result;
      return recovered?.length ? { ...withPit, recovered } : withPit;
    } finally {
      await client.close().catch(() => {});
    }
  },
  human(r, out) {
    for (const x of r.recovered ?? [])
      out.line(
        `interrupted restore ${x.restore} of ${x.snapshot.slice(0, 8)} ${x.outcome === 'completed' ? 'completed' : 'rolled back'}: ${x.collections.join(', ')}`,
      );
    if (r.recovered && !r.collections.length && !r.dryRun && !r.plan) return;
    if (r.dryRun) {
      out.line(`restore plan for snapshot ${r.snapshot.slice(0, 8)} (nothing changed):`);
      for (const p of r.plan ?? [])
        out.line(`  ${p.source} -> ${p.target}: ${p.count} documents, ${p.action}`);
      if (r.oplog && 'entries' in r.oplog)
        out.line(`  then replay up to ${r.oplog.entries} oplog entries, then build indexes`);
    } else {
      const docs = r.collections.reduce((n, c) => n + c.count, 0);
      out.line(
        `restored ${r.collections.length} collection(s), ${docs} documents from ${r.snapshot.slice(0, 8)}; verified ${r.collections.filter((c) => c.verified).length}` +
          (r.atomic ? ' (atomic swap)' : r.inPlaceReason ? ` (in place: ${r.inPlaceReason})` : ''),
      );
    }
    if (r.usersAndRoles)
      out.line(
        `  users and roles: ${r.usersAndRoles.users} users, ${r.usersAndRoles.roles} roles ${r.dryRun ? 'to merge' : 'merged'}`,
      );
    if (r.oplog && 'applied' in r.oplog)
      out.line(
        `  oplog: ${r.oplog.applied} entries replayed through ${r.oplog.method}` +
          (r.oplog.last ? `, up to ${formatPosition(r.oplog.last)}` : '') +
          (r.oplog.beyondLimit ? `; ${r.oplog.beyondLimit} at or after --oplog-limit left out` : ''),
      );
    const pit = (r as { pointInTime?: PointInTimeReport }).pointInTime;
    if (pit)
      out.line(
        `  point in time ${pit.time}: base ${pit.base.slice(0, 8)} + ${pit.entries} entries from ${pit.slices} oplog slice(s)`,
      );
    for (const s of r.skipped) out.line(`  skipped ${s.ns}: ${s.reason}`);
    for (const n of r.notRestored) out.line(`  NOT restored on ${n.ns}: ${n.what} — ${n.reason}`);
  },
  effect: 'change',
  layer: 'mongodb',
  event: (r) => ({
    snapshot: r.snapshot,
    items: r.collections.length,
    ...(r.notRestored.length ? { result: 'partial' as const } : {}),
    details: {
      collections: r.collections.length,
      documents: r.collections.reduce((n, c) => n + c.count, 0),
      verified: r.collections.filter((c) => c.verified).length,
      skipped: r.skipped.length,
      notRestored: r.notRestored.length,
    },
  }),
};
