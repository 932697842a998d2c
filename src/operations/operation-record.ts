/**
 * The record of an operation made of steps: a pipeline run (its stages), a restore drill (its layers), a
 * recovery (its phases). One shape for all three, so `pipeline status`, the metrics and the status page
 * read them the same way. Stored through `repo.records` (kind = `run` | `drill` | `recovery`), one new
 * record per transition; the newest record of a key is the operation's state.
 */
import type { SnapshotType } from '../core/repository/model.ts';

export const OPERATION_SCHEMA = 'lifeboat.operation/v1';

export type OperationKind = 'run' | 'drill' | 'recovery';

/**
 * `warning`: done, but over 80 % of its budget or with findings. `skipped`: disabled or not needed (a
 * resume leaves it). `not-run`: not reached because an earlier step stopped the run (a resume runs it).
 */
export type StepStatus =
  | 'pending'
  | 'running'
  | 'success'
  | 'warning'
  | 'partial'
  | 'failure'
  | 'skipped'
  | 'not-run'
  | 'interrupted';

export type OperationStatus = 'running' | 'success' | 'warning' | 'partial' | 'failure' | 'interrupted';

export interface StepError {
  code: string;
  message: string;
  hint?: string;
}

export interface StepRecord {
  name: string;
  /** The layer it works on, when it is about one (metrics per layer read this). */
  layer?: SnapshotType;
  status: StepStatus;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** The step's time budget (an RTO for drills and recoveries); absent = none. */
  budgetMs?: number;
  /** Snapshot the step wrote (backup stages) or restored/verified (drills, recovery). */
  snapshot?: string;
  /** The snapshot's own time (what a restore point is as of), ISO 8601. */
  snapshotTime?: string;
  error?: StepError;
  /** Small step-specific facts: counts, bytes, verified digests, a URL's status. Never secrets. */
  summary?: Record<string, string | number | boolean>;
  /** How often the step was started (a resumed run restarts the step it was in). */
  attempts?: number;
  /** Why a `skipped` step did not run (disabled, its layer not configured). */
  reason?: string;
}

export interface OperationRecord {
  schema: typeof OPERATION_SCHEMA;
  kind: OperationKind;
  id: string;
  /** Why it ran: `manual` | `schedule` | `event` (runs), the plan name (recoveries), … */
  reason?: string;
  plan?: string;
  status: OperationStatus;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  /** Total budget (e.g. the 90-minute full-recovery RTO). */
  budgetMs?: number;
  host: string;
  actor: string;
  /** Set on each resume: when, and by whom. */
  resumes?: { at: string; host: string }[];
  steps: StepRecord[];
  /** Free-form settings the operation was started with (stage list, scratch targets, …). Never secrets. */
  settings?: Record<string, unknown>;
}

const DONE: readonly StepStatus[] = ['success', 'warning', 'partial', 'skipped'];

/** Whether a resumed operation may leave this step as it is. */
export function stepIsDone(step: StepRecord): boolean {
  return DONE.includes(step.status);
}

/** Share of a budget used above which a step that finished in time is still a warning. */
export const BUDGET_WARNING_SHARE = 0.8;

export function budgetVerdict(durationMs: number, budgetMs: number | undefined): 'ok' | 'warning' | 'over' {
  if (!budgetMs) return 'ok';
  if (durationMs > budgetMs) return 'over';
  return durationMs > budgetMs * BUDGET_WARNING_SHARE ? 'warning' : 'ok';
}
