/**
 * What the repository says about its own health, as Prometheus metric families (docs/monitoring.md,
 * "Metrics"). Everything is computed from the repository itself — snapshots, operation records (pipeline
 * runs, drills, recoveries) and audit records — never from a counter kept in this process: a restarted
 * exporter reports the same values as before, so it cannot reset a gauge and fire a false alert, and a
 * failed backup (which writes no snapshot) is still seen through its audit record or run record.
 *
 * `collectReport` gathers the facts once (the status page renders the same report); `metricFamilies`
 * turns a report into families; `unreachableReport` is what is reported when the repository cannot be
 * opened (`lifeboat_repository_up 0` with the error code), so "repository unreachable" can alert.
 */
import type { LifeboatEvent } from '../core/events.ts';
import { LifeboatError } from '../core/errors.ts';
import { redactString } from '../core/log.ts';
import type { Snapshot } from '../core/repository/model.ts';
import { isBackup, type Repository } from '../core/repository/repository.ts';
import type { RecordRef } from '../core/repository/records.ts';
import type { OperationKind, OperationRecord, StepRecord } from '../operations/operation-record.ts';
import type { MetricFamily, Sample } from './prom-text.ts';
import { sliceOf } from '../sources/mongodb/pitr-slices.ts';

/** How far back the linear fit of stored size looks (older growth says little about next week). */
export const GROWTH_WINDOW_MS = 30 * 86_400_000;

/** Operations shown on the status page (the metrics use only the newest of each kind). */
const RECENT_OPERATIONS = 10;

export interface BackupFailure {
  at: number;
  code?: string;
  message?: string;
  /** `audit` (an event of a backup command) or `run` (a pipeline stage's record). */
  from: 'audit' | 'run';
}

export interface LayerReport {
  layer: string;
  snapshots: number;
  logicalBytes: number;
  /** Sealed bytes of the blobs this layer's snapshots reference (a blob shared with another layer counts in both). */
  storedBytes: number;
  lastSuccess?: {
    at: number;
    snapshot: string;
    durationMs: number;
    bytesProcessed: number;
    bytesAdded: number;
  };
  lastFailure?: BackupFailure;
  /** Failed backup attempts in the audit log (append-only, so a counter that never resets). */
  failuresTotal: number;
  /** The newest restore point a drill or recovery restored and verified. */
  verified?: { snapshotTime: number; snapshot?: string; by: OperationKind; operation: string; at: number };
}

export interface OperationSummary {
  id: string;
  kind: OperationKind;
  status: string;
  startedAt: number;
  finishedAt?: number;
  durationMs?: number;
  budgetMs?: number;
  steps: Pick<
    StepRecord,
    'name' | 'layer' | 'status' | 'durationMs' | 'budgetMs' | 'snapshotTime' | 'error'
  >[];
}

export interface StoragePoint {
  at: number;
  storedBytes: number;
}

export interface IntegrityReport {
  /** The newest `check` (from the audit log): errors it found. */
  check?: { at: number; errors: number };
  /** The newest finished drill: layers whose verification failed on integrity. */
  drill?: { at: number; errors: number };
  /** Objects found damaged while reading the repository for this report. */
  open: number;
}

export interface UpReport {
  up: true;
  generatedAt: number;
  id: string;
  location: string;
  layers: LayerReport[];
  logicalBytes: number;
  storedBytes: number;
  quotaBytes?: number;
  /** Seconds until storedBytes reaches quotaBytes at the fitted growth rate; Infinity when not growing. */
  timeToQuotaSeconds?: number;
  growthBytesPerSecond?: number;
  /** Stored size after each snapshot, oldest first (reconstructed from each snapshot's bytesAdded). */
  history: StoragePoint[];
  runs: OperationSummary[];
  drills: OperationSummary[];
  recoveries: OperationSummary[];
  integrity: IntegrityReport;
  /** Point-in-time slices (`mongodb pitr run`) per replica set: how far they reach, and the gaps seen. */
  pitr: PitrReport[];
}

export interface PitrReport {
  replicaSet: string;
  /** ms: the newest slice's `coveredUntil` (the oplog was read up to then). */
  coveredUntil?: number;
  gaps: number;
}

export interface DownReport {
  up: false;
  generatedAt: number;
  location: string;
  error: { code: string; message: string };
}

export type MetricsReport = UpReport | DownReport;

export interface CollectOptions {
  now?: number;
  quotaBytes?: number;
  /** Repository location as given (redacted before use). */
  location: string;
  /** Decrypted records by object name: records are write-once, so a long-running `serve` reads each once. */
  recordCache?: Map<string, unknown>;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kKMGTP]?i?B?)?$/;
const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1e3,
  KB: 1e3,
  M: 1e6,
  MB: 1e6,
  G: 1e9,
  GB: 1e9,
  T: 1e12,
  TB: 1e12,
  P: 1e15,
  PB: 1e15,
  KI: 1024,
  KIB: 1024,
  MI: 1024 ** 2,
  MIB: 1024 ** 2,
  GI: 1024 ** 3,
  GIB: 1024 ** 3,
  TI: 1024 ** 4,
  TIB: 1024 ** 4,
  PI: 1024 ** 5,
  PIB: 1024 ** 5,
};

/** `500GiB`, `1.5TB`, `1048576` → bytes; a CONFIG error naming the setting otherwise. */
export function parseSize(text: string, setting: string): number {
  const m = SIZE.exec(text.trim());
  const unit = m ? (m[2] ?? '').toUpperCase() : undefined;
  const factor = unit !== undefined ? UNITS[unit] : undefined;
  if (!m || factor === undefined || !(Number(m[1]) > 0))
    throw new LifeboatError('CONFIG', `${setting} must be a size such as 500GiB or 2TB, got "${text}"`, {
      hint: `set ${setting} to a positive number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`,
    });
  return Math.round(Number(m[1]) * factor);
}

function ms(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

const BACKUP_OPERATION = /(^| )(backup|snapshot)$/;
const FAILED = new Set(['failure', 'partial', 'interrupted']);
const OK_STEP = new Set(['success', 'warning']);

async function cachedRecord<T>(repo: Repository, ref: RecordRef, cache?: Map<string, unknown>): Promise<T> {
  if (cache?.has(ref.name)) return cache.get(ref.name) as T;
  const body = await repo.records.get<T>(ref);
  cache?.set(ref.name, body);
  return body;
}

async function operations(
  repo: Repository,
  kind: OperationKind,
  cache?: Map<string, unknown>,
): Promise<OperationRecord[]> {
  const newest = new Map<string, RecordRef>();
  for (const ref of await repo.records.list(kind)) newest.set(ref.key, ref);
  const refs = [...newest.values()].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  const out: OperationRecord[] = [];
  for (const ref of refs) out.push(await cachedRecord<OperationRecord>(repo, ref, cache));
  return out;
}

async function auditEvents(repo: Repository, cache?: Map<string, unknown>): Promise<LifeboatEvent[]> {
  const out: LifeboatEvent[] = [];
  for (const ref of await repo.records.list('audit')) {
    const body = await cachedRecord<{ event?: LifeboatEvent }>(repo, ref, cache);
    if (body?.event && typeof body.event.operation === 'string') out.push(body.event);
  }
  return out;
}

function summarise(r: OperationRecord): OperationSummary {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    startedAt: ms(r.startedAt) ?? 0,
    finishedAt: ms(r.finishedAt),
    durationMs: r.durationMs,
    budgetMs: r.budgetMs,
    steps: r.steps.map((s) => ({
      name: s.name,
      layer: s.layer,
      status: s.status,
      durationMs: s.durationMs,
      budgetMs: s.budgetMs,
      snapshotTime: s.snapshotTime,
      error: s.error,
    })),
  };
}

/** Least-squares slope (bytes per second) of stored size over time; undefined without two points an hour apart. */
export function growthRate(points: StoragePoint[]): number | undefined {
  if (points.length < 2 || points.at(-1)!.at - points[0].at < 3_600_000) return undefined;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.at, 0) / n;
  const my = points.reduce((a, p) => a + p.storedBytes, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.at - mx) * (p.storedBytes - my);
    den += (p.at - mx) ** 2;
  }
  return den ? (num / den) * 1000 : undefined;
}

export async function collectReport(repo: Repository, options: CollectOptions): Promise<UpReport> {
  const now = options.now ?? Date.now();
  const cache = options.recordCache;
  // Every snapshot takes space (sizes per layer); only backups count as a layer's last success.
  const all = await repo.listSnapshots({ purpose: 'any' });
  const snapshots = all.filter(isBackup);
  const [runs, drills, recoveries, audit] = [
    await operations(repo, 'run', cache),
    await operations(repo, 'drill', cache),
    await operations(repo, 'recovery', cache),
    await auditEvents(repo, cache),
  ];

  const index = await repo.loadIndex();
  const layers = new Map<string, LayerReport>();
  const layer = (name: string): LayerReport => {
    let l = layers.get(name);
    if (!l) {
      l = { layer: name, snapshots: 0, logicalBytes: 0, storedBytes: 0, failuresTotal: 0 };
      layers.set(name, l);
    }
    return l;
  };
  const blobsByLayer = new Map<string, Set<string>>();
  let logicalBytes = 0;
  for (const s of all) {
    const l = layer(s.type);
    const size = s.items.reduce((n, i) => n + i.size, 0);
    l.logicalBytes += size;
    logicalBytes += size;
    l.snapshots++;
    let used = blobsByLayer.get(s.type);
    if (!used) blobsByLayer.set(s.type, (used = new Set()));
    for (const item of s.items) {
      for (const id of item.chunkLists ?? []) used.add(id);
      for await (const id of repo.chunkIds(item)) used.add(id);
    }
  }
  for (const [name, used] of blobsByLayer) {
    let sealed = 0;
    for (const id of used) sealed += index.get(id)?.length ?? 0;
    layer(name).storedBytes = sealed;
  }
  for (const s of snapshots) {
    // Oldest first: the last one seen is the newest.
    layer(s.type).lastSuccess = {
      at: ms(s.time) ?? 0,
      snapshot: s.id,
      durationMs: s.summary.durationMs,
      bytesProcessed: s.summary.bytesProcessed,
      bytesAdded: s.summary.bytesAdded,
    };
  }

  const noteFailure = (name: string, f: BackupFailure) => {
    const l = layer(name);
    if (!l.lastFailure || f.at > l.lastFailure.at) l.lastFailure = f;
  };
  for (const e of audit) {
    if (!e.layer || e.effect !== 'change' || !BACKUP_OPERATION.test(e.operation) || !FAILED.has(e.result))
      continue;
    const at = ms(e.finishedAt) ?? 0;
    layer(e.layer).failuresTotal++;
    noteFailure(e.layer, { at, code: e.error?.code, message: e.error?.message, from: 'audit' });
  }
  for (const r of runs)
    for (const s of r.steps) {
      if (!s.layer || !FAILED.has(s.status)) continue;
      const at = ms(s.finishedAt) ?? ms(s.startedAt) ?? ms(r.startedAt) ?? 0;
      noteFailure(s.layer, { at, code: s.error?.code, message: s.error?.message, from: 'run' });
    }

  for (const r of [...drills, ...recoveries]) {
    const at = ms(r.finishedAt) ?? ms(r.startedAt) ?? 0;
    for (const s of r.steps) {
      const t = ms(s.snapshotTime);
      if (!s.layer || t === undefined || !OK_STEP.has(s.status)) continue;
      const l = layer(s.layer);
      if (!l.verified || t > l.verified.snapshotTime)
        l.verified = { snapshotTime: t, snapshot: s.snapshot, by: r.kind, operation: r.id, at };
    }
  }

  const finished = (list: OperationRecord[]) => list.filter((r) => r.status !== 'running');
  const newestDrill = finished(drills)[0];
  const integrity: IntegrityReport = {
    open: repo.damagedSnapshots.length + repo.damagedIndexFiles.length,
  };
  const check = audit.filter((e) => e.operation === 'check').at(-1);
  if (check) {
    const counted = check.details?.errors;
    integrity.check = {
      at: ms(check.finishedAt) ?? 0,
      errors: typeof counted === 'number' ? counted : check.exitCode === 3 ? 1 : 0,
    };
  }
  if (newestDrill)
    integrity.drill = {
      at: ms(newestDrill.finishedAt) ?? 0,
      errors: newestDrill.steps.filter(
        (s) => s.error?.code === 'INTEGRITY' || s.error?.code === 'VERIFY_FAILED',
      ).length,
    };

  // Stored size over time: the size now, less what each later snapshot added. Prune shrinks the
  // repository without a snapshot, so the reconstruction overstates older sizes a little: the fit then
  // underestimates growth, never invents it.
  let storedBytes = 0;
  for await (const o of repo.backend.list('data')) storedBytes += o.size;
  const history: StoragePoint[] = [];
  let after = storedBytes;
  for (const s of [...all].reverse()) {
    history.push({ at: ms(s.time) ?? 0, storedBytes: Math.max(0, after) });
    after -= s.summary.bytesAdded;
  }
  history.reverse();
  const growth = growthRate(history.filter((p) => p.at >= now - GROWTH_WINDOW_MS));
  let timeToQuotaSeconds: number | undefined;
  if (options.quotaBytes !== undefined) {
    if (storedBytes >= options.quotaBytes) timeToQuotaSeconds = 0;
    else if (growth !== undefined && growth > 0)
      timeToQuotaSeconds = (options.quotaBytes - storedBytes) / growth;
    else timeToQuotaSeconds = Infinity;
  }

  return {
    up: true,
    generatedAt: now,
    id: repo.id,
    location: redactString(options.location),
    layers: [...layers.values()].sort((a, b) => a.layer.localeCompare(b.layer)),
    logicalBytes,
    storedBytes,
    quotaBytes: options.quotaBytes,
    timeToQuotaSeconds,
    growthBytesPerSecond: growth,
    history,
    runs: runs.slice(0, RECENT_OPERATIONS).map(summarise),
    drills: drills.slice(0, RECENT_OPERATIONS).map(summarise),
    recoveries: recoveries.slice(0, RECENT_OPERATIONS).map(summarise),
    integrity,
    pitr: pitrReports(all),
  };
}

/** From the slices' own metadata (src/sources/mongodb/pitr-slices.ts), so a restart loses nothing. */
function pitrReports(all: Snapshot[]): PitrReport[] {
  const byRs = new Map<string, PitrReport>();
  for (const s of all) {
    const slice = sliceOf(s);
    if (!slice) continue;
    const r = byRs.get(slice.meta.replicaSet) ?? { replicaSet: slice.meta.replicaSet, gaps: 0 };
    byRs.set(r.replicaSet, r);
    if (slice.meta.kind === 'gap') r.gaps++;
    else {
      const until = Date.parse(slice.meta.coveredUntil);
      if (Number.isFinite(until) && until > (r.coveredUntil ?? 0)) r.coveredUntil = until;
    }
  }
  return [...byRs.values()].sort((a, b) => a.replicaSet.localeCompare(b.replicaSet));
}

export function unreachableReport(error: unknown, location: string, now = Date.now()): DownReport {
  const e = error as { code?: unknown; message?: unknown };
  return {
    up: false,
    generatedAt: now,
    location: redactString(location),
    error: {
      code: typeof e?.code === 'string' && /^[A-Z_]+$/.test(e.code) ? e.code : 'INTERNAL',
      message: redactString(String(e?.message ?? error)),
    },
  };
}

/** The newest backup attempt of a layer succeeded (1) or failed (0); undefined before any attempt. */
export function lastStatus(l: LayerReport): 0 | 1 | undefined {
  if (!l.lastSuccess && !l.lastFailure) return undefined;
  if (!l.lastFailure) return 1;
  if (!l.lastSuccess) return 0;
  return l.lastSuccess.at >= l.lastFailure.at ? 1 : 0;
}

const OK_OPERATION = new Set(['success', 'warning']);

/** Every family the exporter can emit, in this order; docs/monitoring.md describes each. */
export const METRIC_HELP = {
  lifeboat_pitr_covered_until_timestamp_seconds: [
    'gauge',
    'How far the point-in-time slices of the replica set reach (the newest slice read the oplog up to then)',
  ],
  lifeboat_pitr_lag_seconds: [
    'gauge',
    'Now minus how far the slices reach: the point-in-time RPO of the replica set right now',
  ],
  lifeboat_pitr_gaps_total: [
    'counter',
    'Gaps the follower found (the oplog rolled over while it was down): each needs a new base backup',
  ],
  lifeboat_repository_up: [
    'gauge',
    '1 when the repository could be opened and read; 0 (with the error code) when not',
  ],
  lifeboat_repository_info: ['gauge', 'Always 1; labels: repository id and location (credentials redacted)'],
  lifeboat_metrics_generated_timestamp_seconds: ['gauge', 'When these metrics were computed'],
  lifeboat_backup_last_success_timestamp_seconds: [
    'gauge',
    'Time of the newest snapshot of the layer (pre-restore snapshots excluded)',
  ],
  lifeboat_backup_last_attempt_timestamp_seconds: [
    'gauge',
    'Time of the newest backup attempt of the layer, successful or not',
  ],
  lifeboat_backup_last_failure_timestamp_seconds: [
    'gauge',
    'Time of the newest failed backup attempt of the layer',
  ],
  lifeboat_backup_last_status: [
    'gauge',
    '1 when the newest backup attempt of the layer succeeded, 0 when it failed',
  ],
  lifeboat_backup_last_duration_seconds: ['gauge', 'How long the newest successful backup of the layer took'],
  lifeboat_backup_last_processed_bytes: ['gauge', 'Bytes the newest successful backup of the layer read'],
  lifeboat_backup_last_added_bytes: [
    'gauge',
    'Bytes the newest successful backup of the layer added to storage (after deduplication, compressed and sealed)',
  ],
  lifeboat_backup_failures_total: [
    'counter',
    'Failed backup attempts of the layer recorded in the audit log',
  ],
  lifeboat_snapshots: ['gauge', 'Snapshots of the layer in the repository'],
  lifeboat_repository_logical_bytes: [
    'gauge',
    'Sum of the sizes of every snapshot as a restore would write them',
  ],
  lifeboat_repository_stored_bytes: ['gauge', 'Bytes the repository data packs take in storage'],
  lifeboat_layer_logical_bytes: ['gauge', 'Sum of the sizes of every snapshot of the layer'],
  lifeboat_layer_stored_bytes: [
    'gauge',
    'Stored bytes of the blobs the layer references (blobs shared with another layer count in both)',
  ],
  lifeboat_storage_quota_bytes: ['gauge', 'The configured storage quota (metrics.storage-quota)'],
  lifeboat_storage_growth_bytes_per_second: [
    'gauge',
    'Growth of stored bytes, least-squares fit over the last 30 days of snapshots',
  ],
  lifeboat_storage_time_to_quota_seconds: [
    'gauge',
    'Seconds until stored bytes reach the quota at the fitted growth rate (+Inf when not growing)',
  ],
  lifeboat_restore_point_verified_timestamp_seconds: [
    'gauge',
    'Time of the newest restore point of the layer that a drill or recovery restored and verified (its age is the real RPO)',
  ],
  lifeboat_drill_last_timestamp_seconds: ['gauge', 'When the newest finished restore drill ended'],
  lifeboat_drill_last_status: ['gauge', '1 when the newest restore drill succeeded, 0 when it failed'],
  lifeboat_drill_duration_seconds: ['gauge', 'How long the newest restore drill took'],
  lifeboat_drill_budget_seconds: ['gauge', 'The newest restore drill time budget (RTO)'],
  lifeboat_drill_layer_duration_seconds: ['gauge', 'How long restoring the layer took in the newest drill'],
  lifeboat_drill_layer_budget_seconds: ['gauge', 'The layer time budget (RTO) in the newest drill'],
  lifeboat_drill_layer_status: ['gauge', '1 when the layer passed the newest drill, 0 when it failed'],
  lifeboat_recovery_last_timestamp_seconds: ['gauge', 'When the newest finished recovery ended'],
  lifeboat_recovery_last_status: ['gauge', '1 when the newest recovery succeeded, 0 when it failed'],
  lifeboat_recovery_duration_seconds: ['gauge', 'How long the newest recovery took'],
  lifeboat_recovery_budget_seconds: ['gauge', 'The newest recovery time budget (RTO)'],
  lifeboat_pipeline_last_timestamp_seconds: ['gauge', 'When the newest finished pipeline run ended'],
  lifeboat_pipeline_last_status: ['gauge', '1 when the newest pipeline run succeeded, 0 when it failed'],
  lifeboat_pipeline_duration_seconds: ['gauge', 'How long the newest pipeline run took'],
  lifeboat_integrity_errors: [
    'gauge',
    'Integrity errors found by the newest check (source=check), the newest drill (source=drill) or while reading the repository (source=read)',
  ],
  lifeboat_integrity_last_check_timestamp_seconds: ['gauge', 'When the newest repository check ended'],
} as const satisfies Record<string, readonly ['gauge' | 'counter', string]>;

export type MetricName = keyof typeof METRIC_HELP;
export const METRIC_NAMES = Object.keys(METRIC_HELP) as MetricName[];

const sec = (msValue: number) => msValue / 1000;

function operationFamilies(
  add: (name: MetricName, value: number | undefined, labels?: Record<string, string>) => void,
  prefix: 'drill' | 'recovery' | 'pipeline',
  list: OperationSummary[],
): void {
  const newest = list.find((r) => r.status !== 'running');
  if (!newest) return;
  add(`lifeboat_${prefix}_last_timestamp_seconds`, newest.finishedAt && sec(newest.finishedAt));
  add(`lifeboat_${prefix}_last_status`, OK_OPERATION.has(newest.status) ? 1 : 0);
  add(`lifeboat_${prefix}_duration_seconds`, newest.durationMs && sec(newest.durationMs));
  if (prefix === 'drill') {
    add('lifeboat_drill_budget_seconds', newest.budgetMs && sec(newest.budgetMs));
    for (const s of newest.steps) {
      if (!s.layer || s.status === 'skipped' || s.status === 'not-run' || s.status === 'pending') continue;
      add(
        'lifeboat_drill_layer_duration_seconds',
        s.durationMs !== undefined ? sec(s.durationMs) : undefined,
        {
          layer: s.layer,
        },
      );
      add('lifeboat_drill_layer_budget_seconds', s.budgetMs && sec(s.budgetMs), { layer: s.layer });
      add('lifeboat_drill_layer_status', OK_STEP.has(s.status) ? 1 : 0, { layer: s.layer });
    }
  }
  if (prefix === 'recovery') add('lifeboat_recovery_budget_seconds', newest.budgetMs && sec(newest.budgetMs));
}

export function metricFamilies(report: MetricsReport): MetricFamily[] {
  const samples = new Map<MetricName, Sample[]>(METRIC_NAMES.map((n) => [n, []]));
  const add = (name: MetricName, value: number | undefined, labels: Record<string, string> = {}) => {
    if (value === undefined || value === null) return;
    samples.get(name)!.push({ labels, value });
  };
  add('lifeboat_metrics_generated_timestamp_seconds', sec(report.generatedAt));
  if (!report.up) {
    add('lifeboat_repository_up', 0, { error: report.error.code });
  } else {
    add('lifeboat_repository_up', 1);
    add('lifeboat_repository_info', 1, { repository_id: report.id, location: report.location });
    for (const l of report.layers) {
      const layer = { layer: l.layer };
      const status = lastStatus(l);
      if (l.lastSuccess) {
        add('lifeboat_backup_last_success_timestamp_seconds', sec(l.lastSuccess.at), layer);
        add('lifeboat_backup_last_duration_seconds', sec(l.lastSuccess.durationMs), layer);
        add('lifeboat_backup_last_processed_bytes', l.lastSuccess.bytesProcessed, layer);
        add('lifeboat_backup_last_added_bytes', l.lastSuccess.bytesAdded, layer);
      }
      if (l.lastFailure) add('lifeboat_backup_last_failure_timestamp_seconds', sec(l.lastFailure.at), layer);
      const attempt = Math.max(l.lastSuccess?.at ?? 0, l.lastFailure?.at ?? 0);
      if (attempt) add('lifeboat_backup_last_attempt_timestamp_seconds', sec(attempt), layer);
      add('lifeboat_backup_last_status', status, layer);
      add('lifeboat_backup_failures_total', l.failuresTotal, layer);
      add('lifeboat_snapshots', l.snapshots, layer);
      add('lifeboat_layer_logical_bytes', l.logicalBytes, layer);
      add('lifeboat_layer_stored_bytes', l.storedBytes, layer);
      if (l.verified)
        add('lifeboat_restore_point_verified_timestamp_seconds', sec(l.verified.snapshotTime), layer);
    }
    add('lifeboat_repository_logical_bytes', report.logicalBytes);
    add('lifeboat_repository_stored_bytes', report.storedBytes);
    add('lifeboat_storage_quota_bytes', report.quotaBytes);
    add('lifeboat_storage_growth_bytes_per_second', report.growthBytesPerSecond);
    add('lifeboat_storage_time_to_quota_seconds', report.timeToQuotaSeconds);
    operationFamilies(add, 'drill', report.drills);
    operationFamilies(add, 'recovery', report.recoveries);
    operationFamilies(add, 'pipeline', report.runs);
    const i = report.integrity;
    add('lifeboat_integrity_errors', i.open, { source: 'read' });
    if (i.check) {
      add('lifeboat_integrity_errors', i.check.errors, { source: 'check' });
      add('lifeboat_integrity_last_check_timestamp_seconds', sec(i.check.at));
    }
    if (i.drill) add('lifeboat_integrity_errors', i.drill.errors, { source: 'drill' });
    for (const p of report.pitr) {
      const rs = { replica_set: p.replicaSet };
      if (p.coveredUntil !== undefined) {
        add('lifeboat_pitr_covered_until_timestamp_seconds', sec(p.coveredUntil), rs);
        add('lifeboat_pitr_lag_seconds', Math.max(0, sec(report.generatedAt - p.coveredUntil)), rs);
      }
      add('lifeboat_pitr_gaps_total', p.gaps, rs);
    }
  }
  return METRIC_NAMES.map((name) => ({
    name,
    type: METRIC_HELP[name][0],
    help: METRIC_HELP[name][1],
    samples: samples.get(name)!,
  }));
}
