/**
 * `lifeboat copy --to REPO`: the guide's "Multiple Locations" — snapshots copied into a second
 * repository with its own keys (src/core/repository/copy.ts), verified, recorded in both repositories
 * (`copy` records, read by `validate`), and the target's own retention applied afterwards, so the cheaper
 * location can keep a longer history.
 */
import { openKeystore } from '../core/keystore/open.ts';
import { redactString } from '../core/log.ts';
import {
  copySnapshot,
  planCopy,
  reusableItems,
  type CopiedSnapshot,
  type CopyProgress,
} from '../core/repository/copy.ts';
import { isEmptyPolicy } from '../core/repository/forget.ts';
import type { Snapshot } from '../core/repository/model.ts';
import { snapshotPurpose, type Repository } from '../core/repository/repository.ts';
import { LifeboatError, isLifeboatError } from '../core/errors.ts';
import { int, str, usageError, type Command } from './command.ts';
import { FILTER_OPTIONS, filterFrom } from './cmd_snapshots.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';
import { RETENTION_OPTIONS, forgetSnapshots, policyFrom, type ForgetResult } from './retention.ts';

export const COPY_RECORD_SCHEMA = 'lifeboat.copy/v1';

/** What both repositories record about a copy run (records kind `copy`, key = the other repository's id). */
export interface CopyRecord {
  schema: typeof COPY_RECORD_SCHEMA;
  status: 'success' | 'failure';
  startedAt: string;
  finishedAt: string;
  source: { repository: string; location: string };
  target: { repository: string; location: string };
  copied: CopiedSnapshot[];
  /** Selected snapshots the target already held. */
  present: number;
  error?: { code: string; message: string };
}

interface CopyResult {
  dryRun: boolean;
  source: { repository: string; location: string };
  target: { repository: string; location: string };
  toCopy: { id: string; type: string; time: string }[];
  present: number;
  copied: CopiedSnapshot[];
  bytesRead: number;
  bytesAdded: number;
  retention?: ForgetResult;
}

const retentionForTarget = Object.fromEntries(
  Object.entries(RETENTION_OPTIONS).map(([k, v]) => [
    k,
    { ...v, description: `${v.description}; applied to the target after the copy` },
  ]),
);

/** The short form of a repository id used as a record key. */
const recordKey = (repo: Repository) => repo.id.slice(0, 16);

export const copyCommand: Command<CopyResult> = {
  path: ['copy'],
  summary: 'copy snapshots the target repository lacks into it (own keys, deduplicated, verified)',
  usage: '--to REPO [SNAPSHOT...]',
  options: {
    to: {
      type: 'string',
      arg: 'REPO',
      env: 'LIFEBOAT_COPY_TO',
      description: 'target repository (path, file://, azure://, s3://); create it first with `init`',
    },
    'to-keystore': {
      type: 'string',
      arg: 'SPEC',
      env: 'LIFEBOAT_TO_KEYSTORE',
      description: "the target's keystore (as --keystore; passphrase from LIFEBOAT_TO_PASSWORD)",
    },
    'to-password-file': {
      type: 'string',
      arg: 'FILE',
      env: 'LIFEBOAT_TO_PASSWORD_FILE',
      description: "read the target's passphrase from FILE",
    },
    'to-key-file': {
      type: 'string',
      arg: 'FILE',
      env: 'LIFEBOAT_TO_KEY_FILE',
      description: "the target's local key file",
    },
    ...FILTER_OPTIONS,
    latest: { type: 'string', arg: 'N', description: 'only the N newest snapshots of each type' },
    'include-pre-restore': {
      type: 'boolean',
      description: 'also copy the safety snapshots restores take (left out by default)',
    },
    verify: { type: 'boolean', description: 'read each copied snapshot back from the target in full' },
    'dry-run': { type: 'boolean', short: 'n', description: 'only list what would be copied' },
    ...retentionForTarget,
  },
  help: [
    'Snapshots are matched by content (type, time, host, paths, tags and every item), so running copy',
    'again copies only what the target lacks, and a copy that was killed resumes. The target keeps the',
    "original times and hosts. Keep-* flags (or `copy:` in lifeboat.yaml) set the target's own retention.",
  ].join('\n'),
  effect: 'change',
  layer: 'repository',
  event: (r) => ({
    result: 'success',
    bytesProcessed: r.bytesRead,
    bytesAdded: r.bytesAdded,
    items: r.copied.length,
    details: { copied: r.copied.length, present: r.present, target: r.target.location },
  }),
  async run(ctx, values, refs) {
    const to = str(values.to);
    if (!to)
      throw usageError(
        'copy needs --to REPO',
        'name the target repository (create it with `lifeboat init --repo REPO`)',
      );
    const latest = int(values.latest, 'latest');
    if (latest !== undefined && latest < 1) throw usageError('--latest must be 1 or more');
    const dryRun = Boolean(values['dry-run']);
    const policy = policyFrom(values);
    const filter = filterFrom(values);

    const source = await openRepository(ctx, { lock: 'shared', purpose: 'copy (source)' });
    const keystore = await openKeystore(
      {
        keystore: str(values['to-keystore']),
        passwordFile: str(values['to-password-file']),
        keyFile: str(values['to-key-file']),
      },
      ctx.env,
      'LIFEBOAT_TO',
    );
    // A wrong target key fails here, before anything is written anywhere.
    const target = await openRepository(ctx, { location: to, keystore });
    if (target.id === source.id)
      throw usageError(
        `--to ${redactString(to)} is the source repository itself`,
        'name a different repository',
      );

    let selected: Snapshot[];
    if (refs.length) {
      selected = [];
      for (const ref of refs) selected.push(await source.resolveSnapshot(ref, filter));
    } else {
      // Backups and imports (and drills' snapshots); the safety copies restores take only when asked.
      selected = (await source.listSnapshots({ ...filter, purpose: 'any' })).filter(
        (s) => values['include-pre-restore'] || snapshotPurpose(s) !== 'pre-restore',
      );
      if (latest !== undefined) {
        const byType = new Map<string, Snapshot[]>();
        for (const s of selected) byType.set(s.type, [...(byType.get(s.type) ?? []), s]);
        selected = [...byType.values()].flatMap((list) =>
          list.sort((a, b) => (a.time < b.time ? 1 : -1)).slice(0, latest),
        );
      }
    }
    // Every snapshot of the target, whatever its purpose: matching is by content.
    const targetSnapshots = await target.listSnapshots({ purpose: 'any' });
    const plan = planCopy(selected, targetSnapshots);
    const where = (r: Repository) => ({ repository: r.id, location: redactString(r.backend.location) });
    const result: CopyResult = {
      dryRun,
      source: where(source),
      target: where(target),
      toCopy: plan.toCopy.map((s) => ({ id: s.id, type: s.type, time: s.time })),
      present: plan.present.length,
      copied: [],
      bytesRead: 0,
      bytesAdded: 0,
    };
    if (dryRun) return result;

    const startedAt = new Date().toISOString();
    const progress: CopyProgress = { bytesRead: 0, bytesAdded: 0, itemsReused: 0, itemsCopied: 0 };
    const total = plan.toCopy.reduce((n, s) => n + s.items.reduce((m, i) => m + i.size, 0), 0);
    const bar = ctx.out.progress('copy', total);
    const timer = setInterval(
      () => bar.update(progress.bytesRead, `new ${formatBytes(progress.bytesAdded)}`),
      200,
    );
    timer.unref();
    const reuse = reusableItems(targetSnapshots);
    let failure: LifeboatError | undefined;
    try {
      for (const s of plan.toCopy) {
        result.copied.push(
          await copySnapshot(source, target, s, { reuse, verify: Boolean(values.verify), progress }),
        );
      }
    } catch (e) {
      failure = isLifeboatError(e) ? e : undefined;
      throw e;
    } finally {
      clearInterval(timer);
      bar.finish();
      result.bytesRead = progress.bytesRead;
      result.bytesAdded = result.copied.reduce((n, c) => n + c.bytesAdded, 0);
      // Recorded in both repositories, also when the copy failed part-way (what did land is listed);
      // an interrupted copy's signal has fired, so these writes are best effort.
      if (!ctx.signal.aborted) {
        const record: CopyRecord = {
          schema: COPY_RECORD_SCHEMA,
          status: failure ? 'failure' : 'success',
          startedAt,
          finishedAt: new Date().toISOString(),
          source: result.source,
          target: result.target,
          copied: result.copied,
          present: result.present,
          ...(failure ? { error: { code: failure.code, message: failure.message } } : {}),
        };
        for (const [repo, other] of [
          [source, target],
          [target, source],
        ] as const) {
          await repo.records
            .put('copy', recordKey(other), record)
            .catch((e) =>
              ctx.warn(
                `could not record the copy in ${redactString(repo.backend.location)}: ${(e as Error).message}`,
              ),
            );
        }
      }
    }
    if (!isEmptyPolicy(policy)) {
      try {
        result.retention = await forgetSnapshots(target, {}, policy, false);
      } catch (e) {
        if (!isLifeboatError(e, 'LOCKED')) throw e;
        result.retention = { dryRun: false, removed: 0, groups: [], skipped: e.message };
      }
    }
    return result;
  },
  human(r, out) {
    if (r.dryRun) {
      out.line(
        `would copy ${r.toCopy.length} snapshot(s) to ${r.target.location}; ${r.present} already there`,
      );
      for (const s of r.toCopy) out.line(`  ${s.id.slice(0, 8)} ${s.type} ${s.time}`);
      return;
    }
    for (const c of r.copied)
      out.line(
        `copied ${c.source.slice(0, 8)} → ${c.target.slice(0, 8)} (${c.type}, ${c.itemsCopied} item(s) copied, ${c.itemsReused} reused, new ${formatBytes(c.bytesAdded)})${c.verified ? ', verified' : ''}`,
      );
    out.line(
      `${r.copied.length} snapshot(s) copied to ${r.target.location}, ${r.present} already there; read ${formatBytes(r.bytesRead)}, stored ${formatBytes(r.bytesAdded)}`,
    );
    if (r.retention?.skipped) out.line(`target retention skipped: ${r.retention.skipped}`);
    else if (r.retention?.removed)
      out.line(
        `target retention removed ${r.retention.removed} snapshot(s); run \`lifeboat prune --repo ${r.target.location}\``,
      );
  },
};
