/** How `pipeline run`, `pipeline status` and `pipeline history` print a run for people. */
import type { OperationRecord } from '../operations/operation-record.ts';
import { formatDuration, type Output } from './output.ts';

export function resumeCommand(id: string): string {
  return `lifeboat pipeline run --resume ${id}`;
}

function budget(ms: number | undefined): string {
  if (!ms) return '';
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : formatDuration(ms);
}

/** One row per stage: status, duration, budget, snapshot, and the error or skip reason. */
export function printStages(run: OperationRecord, out: Output, killed = false): void {
  out.table(
    run.steps.map((s) => [
      s.name,
      killed && s.status === 'running' ? 'interrupted' : s.status,
      s.durationMs !== undefined ? formatDuration(s.durationMs) : '',
      budget(s.budgetMs),
      s.snapshot ? s.snapshot.slice(0, 8) : '',
      s.error ? `${s.error.code}: ${s.error.message}` : (s.reason ?? ''),
    ]),
    ['STAGE', 'STATUS', 'DURATION', 'BUDGET', 'SNAPSHOT', 'NOTE'],
  );
}

export function runHeadline(run: OperationRecord, status: string): string {
  const slot = typeof run.settings?.slot === 'string' ? run.settings.slot : 'daily';
  const took = run.durationMs !== undefined ? ` in ${formatDuration(run.durationMs)}` : '';
  const resumed = run.resumes?.length ? `, resumed ${run.resumes.length}×` : '';
  return `run ${run.id} (${run.reason ?? 'manual'}, slot ${slot}, started ${run.startedAt} on ${run.host}${resumed}): ${status}${took}`;
}

/** `3 ok, 1 failure, 2 skipped`. */
export function stageCounts(run: OperationRecord): string {
  const counts = new Map<string, number>();
  for (const s of run.steps) {
    const k = s.status === 'success' ? 'ok' : s.status;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
}
