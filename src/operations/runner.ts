/**
 * Runs an operation as a sequence of steps — pipeline stages, drill layers, recovery phases — writing its
 * record (operation-record.ts) before and after every step, so that a run killed at any moment (SIGKILL,
 * OOM, a lost node) can be resumed: `resume` skips the steps that finished and restarts the one that was
 * in progress. Each step has a time budget: with `budget: 'abort'` (pipeline stages) the step is stopped
 * when it runs out, with `budget: 'mark'` (drills, recoveries: the time is what is being measured) it is
 * allowed to finish and marked a failure (which does not stop the steps after it); over 80 % of the budget
 * is a warning either way.
 *
 * The repository passed for the records must not be cancelled by the run's signal: the record of an
 * interrupted run has to be written after the signal fired.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../core/errors.ts';
import type { SnapshotType } from '../core/repository/model.ts';
import type { Repository } from '../core/repository/repository.ts';
import {
  OPERATION_SCHEMA,
  budgetVerdict,
  stepIsDone,
  type OperationKind,
  type OperationRecord,
  type OperationStatus,
  type StepError,
  type StepRecord,
} from './operation-record.ts';

export interface StepResult {
  /**
   * Defaults to success; a step reports `warning`/`partial`/`failure` itself when it knows, or `skipped`
   * (with `reason`) when it found at run time that it has nothing to do.
   */
  status?: 'success' | 'warning' | 'partial' | 'failure' | 'skipped';
  reason?: string;
  snapshot?: string;
  snapshotTime?: string;
  error?: StepError;
  summary?: Record<string, string | number | boolean>;
}

export interface StepDefinition {
  name: string;
  layer?: SnapshotType;
  /** Disabled steps are recorded as `skipped` (with `skipReason`, when given). */
  enabled?: boolean;
  skipReason?: string;
  /**
   * Runs even after an earlier step stopped the operation (a notification of the failure); not after an
   * interruption.
   */
  always?: boolean;
  budgetMs?: number;
  /** `stop`: a failure ends the operation (the rest are skipped); `continue`: it only makes it partial. */
  onFailure: 'stop' | 'continue';
  /** `signal` fires on the operation's signal, or (budget `abort`) when the budget runs out. */
  run(signal: AbortSignal, record: StepRecord): Promise<StepResult>;
}

export interface OperationOptions {
  /** Where the record goes (see the note above on its signal). */
  records: Repository;
  kind: OperationKind;
  /** A new id by default: `<yyyymmdd-hhmmss>-<random>`, sortable and short. */
  id?: string;
  reason?: string;
  plan?: string;
  budgetMs?: number;
  budget: 'abort' | 'mark';
  settings?: Record<string, unknown>;
  signal: AbortSignal;
  actor: string;
  /** The record of an earlier, unfinished run of the same operation to continue. */
  resume?: OperationRecord;
  /** Called after each record write (progress on screen, events). */
  onUpdate?(record: OperationRecord, step?: StepRecord): void | Promise<void>;
  /** A record that could not be written: the run goes on, but could not be resumed from that point. */
  onRecordError?(error: unknown): void;
  now?: () => number;
}

export function newOperationId(now = Date.now()): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function toStepError(e: unknown): StepError {
  if (isLifeboatError(e)) return { code: e.code, message: e.message, hint: e.hint };
  return { code: 'INTERNAL', message: (e as Error)?.message ?? String(e) };
}

function finalStatus(steps: StepRecord[], stopped: boolean, interrupted: boolean): OperationStatus {
  if (interrupted) return 'interrupted';
  if (stopped) return 'failure';
  if (steps.some((s) => s.status === 'failure' || s.status === 'partial')) return 'partial';
  if (steps.some((s) => s.status === 'warning')) return 'warning';
  return 'success';
}

export async function runOperation(
  steps: StepDefinition[],
  options: OperationOptions,
): Promise<OperationRecord> {
  const now = options.now ?? Date.now;
  const iso = () => new Date(now()).toISOString();
  const previous = new Map((options.resume?.steps ?? []).map((s) => [s.name, s]));
  const record: OperationRecord = options.resume
    ? {
        ...options.resume,
        status: 'running',
        finishedAt: undefined,
        durationMs: undefined,
        resumes: [...(options.resume.resumes ?? []), { at: iso(), host: hostname() }],
        steps: steps.map((d) => {
          const p = previous.get(d.name);
          return p && stepIsDone(p)
            ? p
            : {
                name: d.name,
                layer: d.layer,
                status: 'pending',
                budgetMs: d.budgetMs,
                attempts: p?.attempts,
              };
        }),
      }
    : {
        schema: OPERATION_SCHEMA,
        kind: options.kind,
        id: options.id ?? newOperationId(now()),
        reason: options.reason,
        plan: options.plan,
        status: 'running',
        startedAt: iso(),
        budgetMs: options.budgetMs,
        host: hostname(),
        actor: options.actor,
        settings: options.settings,
        steps: steps.map((d) => ({ name: d.name, layer: d.layer, status: 'pending', budgetMs: d.budgetMs })),
      };

  const save = async (step?: StepRecord) => {
    try {
      await options.records.records.put(record.kind, record.id, record, new Date(now()));
    } catch (e) {
      options.onRecordError?.(e);
    }
    await options.onUpdate?.(record, step);
  };

  await save();
  let stopped = false;
  let interrupted = false;
  for (const [i, def] of steps.entries()) {
    const step = record.steps[i];
    if (stepIsDone(step)) continue;
    if (interrupted || (stopped && !def.always)) {
      step.status = 'not-run';
      continue;
    }
    if (def.enabled === false) {
      step.status = 'skipped';
      if (def.skipReason) step.reason = def.skipReason;
      await save(step);
      continue;
    }
    step.status = 'running';
    step.startedAt = iso();
    step.attempts = (step.attempts ?? 0) + 1;
    delete step.error;
    delete step.reason;
    await save(step);

    const started = now();
    const budget = new AbortController();
    const timer =
      def.budgetMs && options.budget === 'abort'
        ? setTimeout(
            () =>
              budget.abort(
                new LifeboatError(
                  'TIMEOUT',
                  `${def.name} ran out of its budget of ${Math.round(def.budgetMs! / 1000)} s`,
                  {
                    hint: `raise its budget in lifeboat.yaml or find what made it slow`,
                  },
                ),
              ),
            def.budgetMs,
          )
        : undefined;
    timer?.unref();
    try {
      const result = await def.run(AbortSignal.any([options.signal, budget.signal]), step);
      step.status = result.status ?? 'success';
      if (result.snapshot) step.snapshot = result.snapshot;
      if (result.snapshotTime) step.snapshotTime = result.snapshotTime;
      if (result.summary) step.summary = result.summary;
      if (result.error) step.error = result.error;
      if (result.reason) step.reason = result.reason;
    } catch (e) {
      if (options.signal.aborted) {
        step.status = 'interrupted';
        step.error = toStepError(options.signal.reason ?? e);
        interrupted = true;
      } else {
        step.status = 'failure';
        step.error = toStepError(budget.signal.aborted ? budget.signal.reason : e);
      }
    } finally {
      clearTimeout(timer);
    }
    step.finishedAt = iso();
    step.durationMs = now() - started;
    const verdict = budgetVerdict(step.durationMs, def.budgetMs);
    const overBudget = verdict === 'over' && (step.status === 'success' || step.status === 'warning');
    if (overBudget) {
      step.status = 'failure';
      step.error = {
        code: 'TIMEOUT',
        message: `${def.name} took ${Math.round(step.durationMs / 1000)} s, over its budget of ${Math.round(def.budgetMs! / 1000)} s`,
      };
    } else if (verdict === 'warning' && step.status === 'success') step.status = 'warning';
    // With `mark`, a step that did its work but took too long is a failure on the record, and the work
    // after it still runs (a recovery over its RTO must still restart the application).
    if (step.status === 'failure' && def.onFailure === 'stop' && !(overBudget && options.budget === 'mark'))
      stopped = true;
    await save(step);
  }
  record.status = finalStatus(record.steps, stopped, interrupted);
  record.finishedAt = iso();
  record.durationMs = now() - Date.parse(record.startedAt);
  if (
    record.budgetMs &&
    budgetVerdict(record.durationMs, record.budgetMs) === 'over' &&
    record.status !== 'interrupted'
  )
    record.status = 'failure';
  await save();
  return record;
}

/** The newest state of one operation, or undefined. */
export async function loadOperation(
  repo: Repository,
  kind: OperationKind,
  id: string,
): Promise<OperationRecord | undefined> {
  const refs = await repo.records.list(kind, id);
  const newest = refs.at(-1);
  return newest ? repo.records.get<OperationRecord>(newest) : undefined;
}

/** The newest state of every operation of a kind, newest first. */
export async function listOperations(repo: Repository, kind: OperationKind): Promise<OperationRecord[]> {
  return (await repo.records.latestByKey<OperationRecord>(kind)).map((r) => r.body);
}
