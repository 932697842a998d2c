/**
 * Repositories in the states the alerts are about, built with the real core: real backups (a session
 * writing real blobs), snapshots of earlier days (saved with their time, as a week of schedules would
 * have left them), operation records written by the real step runner, and audit records in the notify
 * engineer's documented shape (`{ seq, event, prev, hash }`).
 */
import { randomBytes } from 'node:crypto';
import { startBackup } from '../../src/core/repository/backup.ts';
import { makeEvent } from '../../src/core/events.ts';
import { PassphraseKeystore } from '../../src/core/keystore/passphrase.ts';
import { timestampLabel } from '../../src/core/repository/repository.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import type { SnapshotPurpose, SnapshotType } from '../../src/core/repository/model.ts';
import { LocalBackend } from '../../src/core/storage/local.ts';
import { LifeboatError } from '../../src/core/errors.ts';
import { runOperation, type StepDefinition } from '../../src/operations/runner.ts';
import { SLICE_TAG, SLICE_TYPE, type SliceMeta } from '../../src/sources/mongodb/pitr-slices.ts';

export const PASSWORD = 'metrics-test-pw';
export const keystore = () => new PassphraseKeystore(PASSWORD, 'test', { N: 1024, r: 8, p: 1 });
/** Environment for the CLI against a fixture repository. */
export const cliEnv = (dir: string) => ({
  LIFEBOAT_REPO: dir,
  LIFEBOAT_KEYSTORE: 'passphrase',
  LIFEBOAT_PASSWORD: PASSWORD,
});

export const HOUR = 3_600_000;

export async function createRepo(dir: string): Promise<Repository> {
  return Repository.init(new LocalBackend(dir), keystore());
}

/** A real backup of `size` random bytes (new blobs), committed now. */
export async function realBackup(
  repo: Repository,
  type: SnapshotType,
  size: number,
  tags: string[] = [],
  purpose?: SnapshotPurpose,
) {
  const session = await startBackup(repo, 'test backup');
  const item = await session.addItem(
    { name: `data-${type}`, kind: 'file', meta: {} },
    randomBytes(size),
    'file',
  );
  return session.commit({ type, items: [item], tags, paths: [`/${type}`], purpose });
}

/** A snapshot as an earlier day's schedule left it (no new data: its bytesAdded stands for that day's). */
export async function pastSnapshot(repo: Repository, type: SnapshotType, at: number, bytesAdded: number) {
  const d = new Date(at);
  return repo.saveSnapshot({
    type,
    time: d.toISOString(),
    timestamp: timestampLabel(d),
    host: 'test-host',
    tags: [],
    paths: [`/${type}`],
    meta: {},
    summary: { bytesProcessed: bytesAdded * 2, bytesAdded, items: 0, durationMs: 42_000 },
    items: [],
  });
}

/** A point-in-time slice as `mongodb pitr run` writes it, reaching up to `coveredUntil` (ms). */
export async function pitrSlice(repo: Repository, replicaSet: string, coveredUntil: number) {
  const t = Math.floor(coveredUntil / 1000);
  const meta: SliceMeta = {
    pitr: 1,
    kind: 'slice',
    replicaSet,
    from: { t: t - 60, i: 1 },
    to: { t, i: 1 },
    entries: 1,
    coveredFrom: new Date(coveredUntil - 60_000).toISOString(),
    coveredUntil: new Date(coveredUntil).toISOString(),
  };
  const session = await startBackup(repo, 'test slice');
  const item = await session.addItem({ name: 'oplog', kind: 'oplog' }, randomBytes(64), 'file');
  return session.commit({ type: SLICE_TYPE, tags: [SLICE_TAG], meta: { ...meta }, items: [item] });
}

let seq = 0;
/** One audit record of a command's event (the notify engineer's shape; the hash chain is not checked here). */
export async function auditEvent(
  repo: Repository,
  operation: string,
  result: 'success' | 'failure',
  at: number,
  extra: {
    layer?: string;
    exitCode?: number;
    error?: { code: string; message: string };
    details?: Record<string, number>;
  } = {},
) {
  const event = makeEvent({
    operation,
    effect: operation === 'check' ? 'verify' : 'change',
    layer: extra.layer,
    result,
    exitCode: extra.exitCode ?? (result === 'success' ? 0 : 1),
    startedAt: new Date(at - 60_000),
    finishedAt: new Date(at),
    repository: 'file:///repo',
    actor: 'test',
    error: extra.error,
    details: extra.details,
  });
  seq++;
  await repo.records.put('audit', 'log', { seq, event, prev: 'x', hash: 'y' }, new Date(at));
}

/** A drill or recovery run by the real step runner; `steps` say how each layer went and how long it took. */
export async function operation(
  repo: Repository,
  kind: 'drill' | 'recovery' | 'run',
  steps: {
    layer: SnapshotType;
    ms: number;
    budgetMs?: number;
    fail?: LifeboatError;
    snapshotTime?: string;
  }[],
  budgetMs?: number,
) {
  let clock = Date.now() - 3 * HOUR;
  const defs: StepDefinition[] = steps.map((s) => ({
    name: `${kind}-${s.layer}`,
    layer: s.layer,
    budgetMs: s.budgetMs,
    onFailure: 'continue',
    run: async () => {
      clock += s.ms;
      if (s.fail) throw s.fail;
      return { snapshot: 'a'.repeat(64), snapshotTime: s.snapshotTime };
    },
  }));
  return runOperation(defs, {
    records: repo,
    kind,
    budget: 'mark',
    budgetMs,
    signal: new AbortController().signal,
    actor: 'test',
    now: () => clock,
  });
}

export interface Scenario {
  name: string;
  repo: string;
  /** --storage-quota for the exporter run. */
  quota?: string;
  /** Alerts (name + labels) the exporter's output must make fire. */
  expected: { alert: string; labels: Record<string, string> }[];
}

/** Everything fine: fresh backups, a drill and a recovery within budget, a clean check, room to grow. */
export async function healthyRepo(dir: string): Promise<Scenario> {
  const repo = await createRepo(dir);
  const now = Date.now();
  for (const days of [3, 2, 1]) await pastSnapshot(repo, 'mongodb', now - days * 24 * HOUR, 1000);
  const mongo = await realBackup(repo, 'mongodb', 4000);
  await realBackup(repo, 'files', 1500);
  await pitrSlice(repo, 'rs0', Date.now());
  await auditEvent(repo, 'files backup', 'success', Date.now(), { layer: 'files' });
  await auditEvent(repo, 'check', 'success', Date.now(), { details: { errors: 0 } });
  await operation(
    repo,
    'drill',
    [
      { layer: 'mongodb', ms: 10 * 60_000, budgetMs: 60 * 60_000, snapshotTime: mongo.time },
      { layer: 'files', ms: 60_000, budgetMs: 30 * 60_000, snapshotTime: mongo.time },
    ],
    2 * HOUR,
  );
  await operation(
    repo,
    'recovery',
    [{ layer: 'mongodb', ms: 20 * 60_000, snapshotTime: mongo.time }],
    90 * 60_000,
  );
  await repo.close();
  return { name: 'healthy', repo: dir, quota: '1TiB', expected: [] };
}

/**
 * Everything wrong at once: mongodb's newest real backup is 30 h old (a newer pre-restore snapshot must
 * not hide that), the newest files backup failed, a check found 2 errors, the drill failed on integrity
 * and ran over budget, the recovery failed, point-in-time slices stopped an hour ago, and storage is at 90 % of its quota and growing.
 */
export async function failingRepo(dir: string): Promise<Scenario> {
  const repo = await createRepo(dir);
  const now = Date.now();
  await pastSnapshot(repo, 'mongodb', now - 54 * HOUR, 3000);
  await pastSnapshot(repo, 'mongodb', now - 30 * HOUR, 3000);
  await realBackup(repo, 'mongodb', 3000, ['pre-restore'], 'pre-restore');
  await realBackup(repo, 'files', 5000);
  await pitrSlice(repo, 'rs0', now - HOUR);
  await auditEvent(repo, 'files backup', 'failure', Date.now() + 1000, {
    layer: 'files',
    error: { code: 'UNREACHABLE', message: 'storage unreachable' },
  });
  await auditEvent(repo, 'check', 'failure', Date.now() + 1000, { exitCode: 3, details: { errors: 2 } });
  await operation(
    repo,
    'drill',
    [
      { layer: 'mongodb', ms: 60_000, fail: new LifeboatError('INTEGRITY', 'pack 1234 is damaged') },
      { layer: 'files', ms: 90 * 60_000, budgetMs: 60 * 60_000 },
    ],
    HOUR,
  );
  await operation(repo, 'recovery', [
    { layer: 'mongodb', ms: 60_000, fail: new LifeboatError('UNREACHABLE', 'no cluster') },
  ]);
  let stored = 0;
  for await (const o of repo.backend.list('data')) stored += o.size;
  await repo.close();
  return {
    name: 'failing',
    repo: dir,
    quota: String(Math.ceil(stored / 0.9)),
    expected: [
      { alert: 'LifeboatBackupFailed', labels: { layer: 'files' } },
      { alert: 'LifeboatBackupTooOld', labels: { layer: 'mongodb' } },
      { alert: 'LifeboatIntegrityErrors', labels: { source: 'check' } },
      { alert: 'LifeboatIntegrityErrors', labels: { source: 'drill' } },
      { alert: 'LifeboatDrillFailed', labels: {} },
      { alert: 'LifeboatDrillOverBudget', labels: {} },
      { alert: 'LifeboatDrillOverBudget', labels: { layer: 'files' } },
      { alert: 'LifeboatRecoveryFailed', labels: {} },
      { alert: 'LifeboatPitrLagging', labels: { replica_set: 'rs0' } },
      { alert: 'LifeboatStorageAboveThreshold', labels: {} },
      { alert: 'LifeboatStorageFullSoon', labels: {} },
    ],
  };
}

/** No repository at the location: the exporter reports it down. */
export function downRepo(dir: string): Scenario {
  return {
    name: 'down',
    repo: `${dir}/nothing-here`,
    expected: [{ alert: 'LifeboatRepositoryUnreachable', labels: { error: 'NO_REPOSITORY' } }],
  };
}
