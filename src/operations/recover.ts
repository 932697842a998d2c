/**
 * `lifeboat recover`: the guide's two emergency runbooks ("Complete Cluster Recovery", "Data-Only
 * Recovery") as one resumable operation.
 *
 * Plan first, with no I/O: `planRecovery` turns what was looked up (the snapshots of each layer, the last
 * drill records, the settings) into the ordered phases, the snapshot each restores and the time each is
 * expected to take. `--dry-run` prints that and stops. `runRecovery` then runs the phases through the
 * operation runner (kind `recovery`, budgets marked against the guide's RTOs), so the record in the
 * repository says at every moment which phase the recovery is in, and a killed recovery resumes from it
 * with the same snapshots (the plan is kept in the record's settings).
 *
 * The phases themselves (recover-phases.ts) call the layers' own restore functions.
 */
import { LifeboatError } from '../core/errors.ts';
import type { Snapshot, SnapshotType } from '../core/repository/model.ts';
import { isBackup, type Repository } from '../core/repository/repository.ts';
import { stepIsDone, type OperationRecord, type StepRecord } from './operation-record.ts';
import { newOperationId, runOperation, type OperationOptions, type StepDefinition } from './runner.ts';
import type { PhaseContext } from './recover-phases.ts';

export const RECOVERY_PLANS = ['full', 'data-only'] as const;
export type RecoveryPlanName = (typeof RECOVERY_PLANS)[number];

export const PHASES = [
  'preflight',
  'terraform-state',
  'secrets',
  'cluster-state',
  'pvc',
  'scale-down',
  'mongodb',
  'scale-up',
  'restart',
  'smoke-test',
  'validate',
] as const;
export type PhaseName = (typeof PHASES)[number];

/** The phases a plan runs, in order. */
export const PLAN_PHASES: Record<RecoveryPlanName, PhaseName[]> = {
  full: [
    'preflight',
    'terraform-state',
    'secrets',
    'cluster-state',
    'pvc',
    'mongodb',
    'restart',
    'smoke-test',
    'validate',
  ],
  'data-only': ['preflight', 'scale-down', 'mongodb', 'scale-up', 'smoke-test', 'validate'],
};

/** Phases that restore a layer from the repository (Key Vault for secrets), with the layer. */
export const PHASE_LAYER: Partial<Record<PhaseName, SnapshotType>> = {
  'terraform-state': 'terraform',
  secrets: 'secrets',
  'cluster-state': 'cluster-state',
  pvc: 'pvc-snapshots',
  mongodb: 'mongodb',
};

/** Phases that can be left out with `--skip` (the others are the recovery itself). */
export const SKIPPABLE: PhaseName[] = [
  'secrets',
  'cluster-state',
  'pvc',
  'restart',
  'smoke-test',
  'validate',
];

/** Budgets in ms: the guide's Recovery Time Objectives, per phase and in total. */
export interface RecoveryBudgets {
  mongodb: number;
  pvc: number;
  'cluster-state': number;
  secrets?: number;
  total: number;
}

const MIN = 60_000;
export const DEFAULT_BUDGETS: RecoveryBudgets = {
  mongodb: 30 * MIN,
  pvc: 15 * MIN,
  'cluster-state': 45 * MIN,
  total: 90 * MIN,
};

/** `30m`, `90s`, `1h`, or a number of minutes. */
export function parseBudget(value: unknown, what: string): number {
  if (typeof value === 'number' && value > 0) return value * MIN;
  const m = typeof value === 'string' ? /^(\d+)(ms|s|m|h)$/.exec(value) : null;
  if (!m || Number(m[1]) <= 0)
    throw new LifeboatError('CONFIG', `${what}: "${String(value)}" is not a duration`, {
      hint: 'use e.g. 30m, 90s, 1h, or a number of minutes',
    });
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * MIN : n * 60 * MIN;
}

/** `recover.budgets` from lifeboat.yaml over the defaults. */
export function budgetsFrom(config: Record<string, unknown> | undefined): RecoveryBudgets {
  const out: RecoveryBudgets = { ...DEFAULT_BUDGETS };
  for (const [k, v] of Object.entries(config ?? {}))
    (out as unknown as Record<string, number>)[k] = parseBudget(v, `recover.budgets.${k}`);
  return out;
}

export interface WorkloadRef {
  namespace: string;
  kind: 'Deployment' | 'StatefulSet';
  name: string;
}

/** `deployment/rocketchat`, `statefulset/mongodb`, `NS/deployment/NAME` (kubectl's spelling, short forms too). */
export function parseWorkload(spec: string, defaultNamespace: string): WorkloadRef {
  const parts = spec.split('/');
  const [ns, kind, name] = parts.length === 3 ? parts : [defaultNamespace, ...parts];
  const k = kind?.toLowerCase();
  const kindName =
    k === 'deployment' || k === 'deployments' || k === 'deploy'
      ? 'Deployment'
      : k === 'statefulset' || k === 'statefulsets' || k === 'sts'
        ? 'StatefulSet'
        : undefined;
  if (parts.length < 2 || parts.length > 3 || !kindName || !name || !ns)
    throw new LifeboatError('USAGE', `--app "${spec}" is not KIND/NAME or NAMESPACE/KIND/NAME`, {
      hint: 'e.g. --app deployment/rocketchat (Deployments and StatefulSets)',
    });
  return { namespace: ns, kind: kindName, name };
}

export const workloadKey = (w: WorkloadRef) => `${w.namespace}/${w.kind}/${w.name}`;

/** The kubectl spelling of a workload, for messages an operator can paste. */
export const kubectlRef = (w: WorkloadRef) => `${w.kind.toLowerCase()}/${w.name} -n ${w.namespace}`;

export interface ChosenSnapshot {
  id: string;
  timestamp: string;
  time: string;
}

export interface PlannedPhase {
  name: PhaseName;
  layer?: SnapshotType;
  enabled: boolean;
  /** What the phase does, or why it is left out. */
  note: string;
  snapshot?: ChosenSnapshot;
  budgetMs?: number;
  /** From the newest drill that restored this layer; absent: no drill yet. */
  expected?: { ms: number; drill: string; at: string };
}

export interface RecoveryPlan {
  plan: RecoveryPlanName;
  /** Restore point asked for (`YYYYMMDD_HHMMSS`); absent: the newest of each layer. */
  timestamp?: string;
  phases: PlannedPhase[];
  budgetMs: number;
  /** Sum of the drills' times when every enabled restore phase has one. */
  expectedMs?: number;
  apps: WorkloadRef[];
  /** Namespaces the secrets and cluster-state phases are limited to (empty: all in the snapshot). */
  namespaces: string[];
  vault?: string;
  smokeTestUrl?: string;
  /** Why the plan cannot run (a layer without a snapshot, no app to scale); empty when it can. */
  problems: string[];
  /** What stays the operator's to do (Terraform apply). */
  operator: string[];
}

export interface PlanInputs {
  plan: RecoveryPlanName;
  timestamp?: string;
  /** Every snapshot in the repository (any type); pre-restore ones are left out here. */
  snapshots: Snapshot[];
  /** Drill records (kind `drill`), any order. */
  drills: OperationRecord[];
  budgets: RecoveryBudgets;
  apps: WorkloadRef[];
  namespaces: string[];
  vault?: string;
  includeTerraform: boolean;
  smokeTestUrl?: string;
  skip: PhaseName[];
}

/**
 * The snapshots of a layer a recovery may restore, oldest first, at or before `timestamp`: backups only,
 * never the `pre-restore` copies a restore keeps for its own rollback.
 */
export function restorableSnapshots(
  snapshots: Snapshot[],
  type: SnapshotType,
  timestamp?: string,
): Snapshot[] {
  return snapshots
    .filter((s) => s.type === type && isBackup(s))
    .filter((s) => !timestamp || s.timestamp <= timestamp)
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/** The newest drill step that restored `layer` and finished, newest drill first. */
function lastDrill(
  drills: OperationRecord[],
  layer: SnapshotType,
): { ms: number; drill: string; at: string } | undefined {
  let best: { ms: number; drill: string; at: string } | undefined;
  for (const d of drills) {
    for (const s of d.steps as StepRecord[]) {
      if (s.layer !== layer || s.durationMs === undefined || !s.finishedAt) continue;
      if (s.status !== 'success' && s.status !== 'warning') continue;
      if (!best || s.finishedAt > best.at) best = { ms: s.durationMs, drill: d.id, at: s.finishedAt };
    }
  }
  return best;
}

const PHASE_NOTES: Record<PhaseName, string> = {
  preflight:
    'check the repository, keys, Key Vault, kubeconfig, MongoDB and every chosen snapshot; stop before changing anything',
  'terraform-state': 'put the Terraform state files back (`terraform apply` stays the operator’s)',
  secrets: 'recreate Kubernetes Secrets from Key Vault (verified read-back)',
  'cluster-state':
    'recreate the Kubernetes objects (Helm releases, config, workloads); existing ones are kept',
  pvc: 'recreate PVCs from their VolumeSnapshots',
  'scale-down': 'scale the application to 0 and wait until its pods are gone (replica counts recorded)',
  mongodb: 'restore MongoDB (collections replaced, verified, rolled back on failure)',
  'scale-up': 'scale the application back to the recorded replica counts and wait until ready',
  restart: 'rollout restart of the application, wait until ready',
  'smoke-test': 'HTTP GET of the application (smoke test)',
  validate: 'lifeboat validate',
};

/** Pure: the recovery a set of inputs calls for. */
export function planRecovery(i: PlanInputs): RecoveryPlan {
  const problems: string[] = [];
  const operator: string[] = [];
  const phases: PlannedPhase[] = [];
  const at = i.timestamp ? ` at or before ${i.timestamp}` : '';
  for (const name of PLAN_PHASES[i.plan]) {
    const layer = PHASE_LAYER[name];
    const phase: PlannedPhase = { name, layer, enabled: true, note: PHASE_NOTES[name] };
    phases.push(phase);
    if (i.skip.includes(name)) {
      phase.enabled = false;
      phase.note = 'left out (--skip)';
      continue;
    }
    if (name === 'terraform-state') {
      operator.push(
        'recreate the infrastructure: `cd infrastructure/terraform && terraform apply` (before this recovery)',
      );
      if (!i.includeTerraform) {
        phase.enabled = false;
        phase.note = 'not asked for (--include-terraform restores the state files first)';
        continue;
      }
    }
    if (name === 'secrets' && !i.vault) {
      phase.enabled = false;
      phase.note = 'no Key Vault given (--vault); Secrets come only from the cluster-state snapshot';
      continue;
    }
    if (name === 'smoke-test') {
      if (!i.smokeTestUrl) {
        phase.enabled = false;
        phase.note = 'no smoke-test URL (recover.smoke-test.url or --smoke-test-url)';
      } else phase.note = `GET ${i.smokeTestUrl}`;
      continue;
    }
    if ((name === 'scale-down' || name === 'scale-up' || name === 'restart') && !i.apps.length) {
      if (name === 'restart') {
        phase.enabled = false;
        phase.note = 'no application given (--app or recover.apps)';
      } else if (name === 'scale-down')
        problems.push(
          'data-only recovery needs the application to scale: --app deployment/NAME (or recover.apps)',
        );
      continue;
    }
    if (name === 'scale-down' || name === 'scale-up' || name === 'restart')
      phase.note += `: ${i.apps.map(kubectlRef).join(', ')}`;
    if (name === 'mongodb') phase.budgetMs = i.budgets.mongodb;
    if (name === 'pvc') phase.budgetMs = i.budgets.pvc;
    if (name === 'cluster-state') phase.budgetMs = i.budgets['cluster-state'];
    if (name === 'secrets' && i.budgets.secrets) phase.budgetMs = i.budgets.secrets;
    if (!layer) continue;
    phase.expected = lastDrill(i.drills, layer);
    if (name === 'secrets') {
      phase.note += ` ${i.vault} (its current versions: Key Vault keeps no restore points)`;
      continue;
    }
    const chosen = restorableSnapshots(i.snapshots, layer, i.timestamp).at(-1);
    if (!chosen) {
      const newest = restorableSnapshots(i.snapshots, layer).at(0);
      problems.push(
        `no ${layer} snapshot${at}` +
          (newest ? ` (the oldest is ${newest.timestamp})` : '') +
          (SKIPPABLE.includes(name) ? `; back it up, or leave it out with --skip ${name}` : ''),
      );
      continue;
    }
    phase.snapshot = { id: chosen.id, timestamp: chosen.timestamp, time: chosen.time };
  }
  const restoring = phases.filter((p) => p.enabled && p.layer);
  const expectedMs = restoring.every((p) => p.expected)
    ? restoring.reduce((n, p) => n + p.expected!.ms, 0)
    : undefined;
  return {
    plan: i.plan,
    timestamp: i.timestamp,
    phases,
    budgetMs: i.budgets.total,
    expectedMs,
    apps: i.apps,
    namespaces: i.namespaces,
    vault: i.vault,
    smokeTestUrl: i.smokeTestUrl,
    problems,
    operator,
  };
}

// ---- running a plan ----------------------------------------------------------------------------------

export interface RunRecoveryOptions extends Omit<PhaseContext, 'id' | 'plan' | 'steps'> {
  plan: RecoveryPlan;
  /** Where the record goes: not bound to `signal` (see runner.ts). */
  records: Repository;
  signal: AbortSignal;
  actor: string;
  /** The unfinished recovery to continue (its plan is used, not `plan`). */
  resume?: OperationRecord;
  onUpdate?: OperationOptions['onUpdate'];
  onRecordError?: OperationOptions['onRecordError'];
  /** A loud line on stderr (the application could not be scaled back). */
  warn: (message: string) => void;
}

export interface ScaleBack {
  /** Whether the application is back at its recorded replica counts. */
  ok: boolean;
  /** The command to run by hand when it is not. */
  commands: string[];
  error?: string;
}

export interface RecoveryOutcome {
  record: OperationRecord;
  /** A data-only recovery that stopped after scaling down: what the finally path did. */
  scaleBack?: ScaleBack;
}

/** The plan a recovery record was started with. */
export function planOf(record: OperationRecord): RecoveryPlan {
  const plan = (record.settings as { plan?: RecoveryPlan } | undefined)?.plan;
  if (!plan)
    throw new LifeboatError('INTEGRITY', `recovery record ${record.id} holds no plan`, {
      hint: 'start a new recovery instead of resuming this one',
    });
  return plan;
}

export async function runRecovery(o: RunRecoveryOptions): Promise<RecoveryOutcome> {
  // The phases load every layer's sources: only a recovery that runs needs them, not its --dry-run or the
  // CLI's start-up (lazy-imports.test.ts).
  const { runPhase } = await import('./recover-phases.ts');
  const plan = o.resume ? planOf(o.resume) : o.plan;
  const id = o.resume?.id ?? newOperationId();
  let current: OperationRecord | undefined = o.resume;
  const c: PhaseContext = { ...o, id, plan, steps: () => current?.steps ?? [] };
  const steps: StepDefinition[] = plan.phases.map((p) => ({
    name: p.name,
    layer: p.layer,
    enabled: p.enabled,
    budgetMs: p.budgetMs,
    onFailure: 'stop',
    run: (signal) => runPhase(c, p, signal),
  }));
  const record = await runOperation(steps, {
    records: o.records,
    kind: 'recovery',
    id,
    reason: plan.plan,
    plan: plan.plan,
    budgetMs: plan.budgetMs,
    budget: 'mark',
    settings: { plan },
    signal: o.signal,
    actor: o.actor,
    resume: o.resume,
    onUpdate: async (r, s) => {
      current = r;
      await o.onUpdate?.(r, s);
    },
    onRecordError: o.onRecordError,
  });
  current = record;
  const scaleBack = plan.plan === 'data-only' ? await finallyScaleBack(c, o, record) : undefined;
  return { record, scaleBack };
}

/**
 * The data-only recovery's finally path: once scale-down started, the application must not be left at 0
 * because a later phase failed or the run was stopped. Scales back to the recorded counts (not bound to
 * the run's signal: it runs after SIGINT too), and records that, so a resume scales down again.
 */
async function finallyScaleBack(
  c: PhaseContext,
  o: RunRecoveryOptions,
  record: OperationRecord,
): Promise<ScaleBack | undefined> {
  const down = record.steps.find((s) => s.name === 'scale-down');
  const up = record.steps.find((s) => s.name === 'scale-up');
  if (!down || !up || stepIsDone(up) || ['pending', 'not-run', 'skipped'].includes(down.status))
    return undefined;
  const commands: string[] = [];
  try {
    const { finishScaleUp, recordedReplicas, scaleUp } = await import('./recover-phases.ts');
    const client = await c.kube();
    for (const w of c.plan.apps) {
      const n = await recordedReplicas(c, client, w).catch(() => undefined);
      commands.push(`kubectl scale ${kubectlRef(w)} --replicas=${n ?? 'N'}`);
    }
    // Counts first, then the record, then the wait: a SIGINT's forced exit may come any time now.
    const result = await scaleUp(c, o.signal, { wait: false });
    up.summary = { ...result.summary, afterFailure: true };
    // Undone: a resume has to scale down again before the MongoDB restore.
    down.status = 'not-run';
    down.summary = { ...down.summary, scaledBackAfterFailure: true };
    await o.records.records.put('recovery', record.id, record).catch((e: unknown) => o.onRecordError?.(e));
    o.note(`scaled the application back: ${c.plan.apps.map(kubectlRef).join(', ')}`);
    if (!o.signal.aborted) await finishScaleUp(c, AbortSignal.timeout(c.waitMs + 60_000));
    return { ok: true, commands };
  } catch (e) {
    const message = (e as Error)?.message ?? String(e);
    o.warn(
      `THE APPLICATION IS LEFT SCALED DOWN: scaling it back failed (${message}); run: ${commands.join(' && ') || 'kubectl scale … --replicas=N'}`,
    );
    return { ok: false, commands, error: message };
  }
}

const STATE_OF_FAILED: Partial<Record<PhaseName, string>> = {
  preflight: 'nothing was changed',
  mongodb: 'the MongoDB restore rolled back what it had changed (its pre-restore snapshot is kept)',
  pvc: 'the PVC restore put the previous PVCs and replica counts back (old volumes kept, reclaim policy Retain)',
  'cluster-state': 'objects restored before the failure stay; existing objects were not changed',
  secrets: 'Secrets synced before the failure stay',
  'scale-down': 'some workloads may be at 0',
};

/** A failure that is only the budget mark (the phase finished, late). */
export function overBudgetOnly(s: StepRecord): boolean {
  return s.status === 'failure' && s.error?.code === 'TIMEOUT' && /over its budget/.test(s.error.message);
}

/** The error for a recovery that did not finish: which phase, what state things are in, how to go on. */
export function recoveryError(outcome: RecoveryOutcome): LifeboatError | undefined {
  const { record, scaleBack } = outcome;
  if (record.status !== 'failure' && record.status !== 'interrupted') return undefined;
  // A phase that only ran over its budget did its work: a warning in the output, not a stop.
  const failed = record.steps.find(
    (s) => s.status === 'interrupted' || (s.status === 'failure' && !overBudgetOnly(s)),
  );
  if (!failed) return undefined;
  const done = record.steps.filter((s) => stepIsDone(s) && s.status !== 'skipped').map((s) => s.name);
  const notRun = record.steps
    .filter((s) => s.status === 'not-run' || s.status === 'pending')
    .map((s) => s.name);
  const state = [
    done.length ? `done: ${done.join(', ')}` : '',
    STATE_OF_FAILED[failed.name as PhaseName] ?? '',
    scaleBack
      ? scaleBack.ok
        ? 'the application was scaled back to its recorded replicas'
        : `THE APPLICATION IS LEFT SCALED DOWN — run: ${scaleBack.commands.join(' && ')}`
      : '',
    notRun.length ? `not run: ${notRun.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
  const resume = `lifeboat recover --resume ${record.id}`;
  const details = { recovery: record.id, phase: failed.name, state, ...(scaleBack ? { scaleBack } : {}) };
  if (record.status === 'interrupted') {
    const reason = failed?.error?.message ?? 'interrupted';
    return new LifeboatError(
      'INTERRUPTED',
      `recovery ${record.id} stopped in phase ${failed.name}: ${reason}; ${state}`,
      {
        hint: `resume it with \`${resume}\``,
        details: { ...details, signal: /SIGTERM/.test(reason) ? 'SIGTERM' : 'SIGINT' },
      },
    );
  }
  const err = failed.error;
  return new LifeboatError(
    (err?.code as LifeboatError['code'] | undefined) ?? 'INTERNAL',
    `recovery ${record.id} failed in phase ${failed.name}: ${err?.message ?? 'failed'}; ${state}`,
    { hint: `${err?.hint ? `${err.hint}, then ` : 'fix the cause, then '}\`${resume}\``, details },
  );
}
