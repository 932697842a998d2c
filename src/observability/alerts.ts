/**
 * The alerts, declared once: each with its PromQL (deploy/monitoring/prometheus-rules.yaml is generated
 * from this list by `node scripts/gen-monitoring.ts`, and a test fails when the file is out of date) and
 * the same condition evaluated in TypeScript over the exporter's own families, which the status page
 * shows as "alerts that would fire". Both read their thresholds from THRESHOLDS below, so the page and
 * Prometheus cannot disagree; `promtool test rules` checks the PromQL against the exporter's real output
 * and test/observability checks the TypeScript against the same cases.
 *
 * The TypeScript ignores `for:` (a page shows what holds now; Prometheus waits `for` before firing).
 */
import type { MetricFamily } from './prom-text.ts';

export const THRESHOLDS = {
  /** A layer without a successful backup for longer than this is stale: a daily schedule plus 2 h. */
  backupMaxAgeSeconds: 26 * 3600,
  /** Share of the storage quota above which storage is "above threshold". */
  storageUsedRatio: 0.85,
  /** Storage that reaches its quota sooner than this (at the fitted growth rate) is "full soon". */
  storageFullWithinSeconds: 7 * 86_400,
  /**
   * Point-in-time slices that reach less recently than this: the follower writes one at least every 60 s,
   * so five minutes is several missed slices — it is down, stuck or cannot write, and the RPO is slipping.
   */
  pitrMaxLagSeconds: 5 * 60,
} as const;

export type Severity = 'critical' | 'warning';

export interface AlertRule {
  alert: string;
  expr: string;
  /** Prometheus duration the condition must hold before firing. */
  for: string;
  severity: Severity;
  summary: string;
  description: string;
  /** Heading anchor in docs/runbooks.md. */
  runbook: string;
  /** Label sets the alert would fire with now. */
  evaluate(families: MetricFamily[], nowSeconds: number): Record<string, string>[];
}

/** Where runbook_url points: the project's docs/runbooks.md (set your own site with the generator's --runbook-base). */
export const RUNBOOK_BASE = 'docs/runbooks.md';

type Samples = { labels: Record<string, string>; value: number }[];

function series(families: MetricFamily[], name: string): Samples {
  return families.find((f) => f.name === name)?.samples ?? [];
}

function where(
  families: MetricFamily[],
  name: string,
  test: (v: number) => boolean,
): Record<string, string>[] {
  return series(families, name)
    .filter((s) => test(s.value))
    .map((s) => ({ ...s.labels }));
}

/** `a > b` on two families matched on identical labels (PromQL's one-to-one matching). */
function compare(
  families: MetricFamily[],
  left: string,
  right: string,
  test: (l: number, r: number) => boolean,
): Record<string, string>[] {
  const key = (l: Record<string, string>) => JSON.stringify(Object.entries(l).sort());
  const rights = new Map(series(families, right).map((s) => [key(s.labels), s.value]));
  return series(families, left)
    .filter((s) => rights.has(key(s.labels)) && test(s.value, rights.get(key(s.labels))!))
    .map((s) => ({ ...s.labels }));
}

const T = THRESHOLDS;

export const ALERT_RULES: AlertRule[] = [
  {
    alert: 'LifeboatRepositoryUnreachable',
    expr: 'lifeboat_repository_up == 0',
    for: '15m',
    severity: 'critical',
    summary: 'The Lifeboat repository cannot be opened',
    description:
      'Lifeboat could not open or read its repository ({{ $labels.error }}) for 15 minutes: no backup can be written or restored from it.',
    runbook: 'lifeboatrepositoryunreachable',
    evaluate: (f) => where(f, 'lifeboat_repository_up', (v) => v === 0),
  },
  {
    alert: 'LifeboatBackupFailed',
    expr: 'lifeboat_backup_last_status == 0',
    for: '0m',
    severity: 'critical',
    summary: 'The last {{ $labels.layer }} backup failed',
    description:
      'The newest backup attempt of the {{ $labels.layer }} layer failed; the newest good snapshot is older than the schedule promises.',
    runbook: 'lifeboatbackupfailed',
    evaluate: (f) => where(f, 'lifeboat_backup_last_status', (v) => v === 0),
  },
  {
    alert: 'LifeboatBackupTooOld',
    expr: `time() - lifeboat_backup_last_success_timestamp_seconds > ${T.backupMaxAgeSeconds}`,
    for: '10m',
    severity: 'critical',
    summary: 'No successful {{ $labels.layer }} backup for more than 26 hours',
    description:
      'The newest {{ $labels.layer }} snapshot is more than 26 hours old: the daily backup did not run or did not succeed.',
    runbook: 'lifeboatbackuptooold',
    evaluate: (f, now) =>
      where(f, 'lifeboat_backup_last_success_timestamp_seconds', (v) => now - v > T.backupMaxAgeSeconds),
  },
  {
    alert: 'LifeboatIntegrityErrors',
    expr: 'lifeboat_integrity_errors > 0',
    for: '0m',
    severity: 'critical',
    summary: 'Lifeboat found integrity errors ({{ $labels.source }})',
    description: 'Integrity errors found by the newest {{ $labels.source }}: some snapshots may not restore.',
    runbook: 'lifeboatintegrityerrors',
    evaluate: (f) => where(f, 'lifeboat_integrity_errors', (v) => v > 0),
  },
  {
    alert: 'LifeboatDrillFailed',
    expr: 'lifeboat_drill_last_status == 0',
    for: '0m',
    severity: 'critical',
    summary: 'The last restore drill failed',
    description:
      'The newest restore drill did not restore and verify every layer: a real recovery may fail the same way.',
    runbook: 'lifeboatdrillfailed',
    evaluate: (f) => where(f, 'lifeboat_drill_last_status', (v) => v === 0),
  },
  {
    alert: 'LifeboatDrillOverBudget',
    expr:
      'lifeboat_drill_duration_seconds > lifeboat_drill_budget_seconds' +
      ' or lifeboat_drill_layer_duration_seconds > lifeboat_drill_layer_budget_seconds',
    for: '0m',
    severity: 'warning',
    summary: 'The last restore drill took longer than its RTO budget',
    description:
      'The newest restore drill (or one of its layers) took longer than its RTO budget: a real recovery would miss its RTO.',
    runbook: 'lifeboatdrilloverbudget',
    evaluate: (f) => [
      ...compare(f, 'lifeboat_drill_duration_seconds', 'lifeboat_drill_budget_seconds', (l, r) => l > r),
      ...compare(
        f,
        'lifeboat_drill_layer_duration_seconds',
        'lifeboat_drill_layer_budget_seconds',
        (l, r) => l > r,
      ),
    ],
  },
  {
    alert: 'LifeboatRecoveryFailed',
    expr: 'lifeboat_recovery_last_status == 0',
    for: '0m',
    severity: 'critical',
    summary: 'The last recovery failed',
    description:
      'The newest recovery did not finish every phase within its budget: the application may not be fully back.',
    runbook: 'lifeboatrecoveryfailed',
    evaluate: (f) => where(f, 'lifeboat_recovery_last_status', (v) => v === 0),
  },
  {
    alert: 'LifeboatPitrLagging',
    expr: `lifeboat_pitr_lag_seconds > ${T.pitrMaxLagSeconds}`,
    for: '5m',
    severity: 'critical',
    summary: 'Point-in-time slices of {{ $labels.replica_set }} are more than 5 minutes behind',
    description:
      'The newest oplog slice of `mongodb pitr run` reaches more than 5 minutes back: the follower is down, stuck or cannot write, and the point-in-time RPO grows with every minute.',
    runbook: 'lifeboatpitrlagging',
    evaluate: (f) => where(f, 'lifeboat_pitr_lag_seconds', (v) => v > T.pitrMaxLagSeconds),
  },
  {
    alert: 'LifeboatStorageAboveThreshold',
    expr: `lifeboat_repository_stored_bytes / lifeboat_storage_quota_bytes > ${T.storageUsedRatio}`,
    for: '30m',
    severity: 'warning',
    summary: 'Lifeboat storage is above 85 % of its quota',
    description:
      'The repository uses more than 85 % of its configured storage quota (metrics.storage-quota).',
    runbook: 'lifeboatstorageabovethreshold',
    evaluate: (f) => {
      const quota = series(f, 'lifeboat_storage_quota_bytes')[0]?.value;
      if (!quota) return [];
      return where(f, 'lifeboat_repository_stored_bytes', (v) => v / quota > T.storageUsedRatio);
    },
  },
  {
    alert: 'LifeboatStorageFullSoon',
    expr: `lifeboat_storage_time_to_quota_seconds < ${T.storageFullWithinSeconds}`,
    for: '30m',
    severity: 'warning',
    summary: 'Lifeboat storage will reach its quota within 7 days',
    description: 'At the growth of the last 30 days the repository reaches its storage quota within 7 days.',
    runbook: 'lifeboatstoragefullsoon',
    evaluate: (f) =>
      where(f, 'lifeboat_storage_time_to_quota_seconds', (v) => v < T.storageFullWithinSeconds),
  },
];

export interface FiringAlert {
  alert: string;
  severity: Severity;
  labels: Record<string, string>;
  summary: string;
  runbook: string;
}

/** `{{ $labels.x }}` filled in; other template parts (the value's formatting) are left out. */
export function renderSummary(template: string, labels: Record<string, string>): string {
  return template.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');
}

/** What would fire now, in rule order. */
export function firingAlerts(families: MetricFamily[], nowSeconds: number): FiringAlert[] {
  return ALERT_RULES.flatMap((r) =>
    r.evaluate(families, nowSeconds).map((labels) => ({
      alert: r.alert,
      severity: r.severity,
      labels,
      summary: renderSummary(r.summary, labels),
      runbook: r.runbook,
    })),
  );
}

/** The PrometheusRule (kube-prometheus conventions) as a plain object; the generator writes it as YAML. */
export function prometheusRule(runbookBase = RUNBOOK_BASE): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'lifeboat',
      labels: { 'app.kubernetes.io/name': 'lifeboat', 'app.kubernetes.io/component': 'monitoring' },
    },
    spec: {
      groups: [
        {
          name: 'lifeboat.rules',
          rules: ALERT_RULES.map((r) => ({
            alert: r.alert,
            expr: r.expr,
            ...(r.for !== '0m' ? { for: r.for } : {}),
            labels: { severity: r.severity },
            annotations: {
              summary: r.summary,
              description: r.description,
              runbook_url: `${runbookBase}#${r.runbook}`,
            },
          })),
        },
      ],
    },
  };
}
