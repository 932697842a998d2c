/**
 * `lifeboat recover --plan full|data-only`: the guide's emergency runbooks as one resumable command
 * (src/operations/recover.ts plans and runs it; this file wires the options, the connections and the
 * output).
 */
import { LifeboatError } from '../core/errors.ts';
import { eventActor } from '../core/events.ts';
import type { OperationRecord, StepRecord } from '../operations/operation-record.ts';
import { listOperations, loadOperation, type StepResult } from '../operations/runner.ts';
import {
  PHASES,
  RECOVERY_PLANS,
  SKIPPABLE,
  budgetsFrom,
  overBudgetOnly,
  parseWorkload,
  planOf,
  planRecovery,
  recoveryError,
  runRecovery,
  type PhaseName,
  type RecoveryPlan,
  type RecoveryPlanName,
  type ScaleBack,
} from '../operations/recover.ts';
import type { SmokeTest } from '../operations/smoke.ts';
import type { KubeClient } from '../sources/kubernetes/client.ts';
import { VAULT_OPTION } from './cmd_secrets_backup.ts';
import { validateCommand } from './cmd_validate.ts';
import { int, list, str, usageError, type Command, type CommandContext, type OptionSpec } from './command.ts';
import { CommandFailed, invoke } from './invoke.ts';
import { KUBE_OPTIONS, kubeClient } from './kube-options.ts';
import { CONNECTION_OPTIONS, connectFromOptions } from './mongodb-options.ts';
import { normalise } from './recover-settings.ts';
import { formatDuration, type Output } from './output.ts';
import { openRepository } from './repo.ts';

export interface RecoverResult {
  dryRun: boolean;
  plan: RecoveryPlan;
  recovery?: OperationRecord;
  scaleBack?: ScaleBack;
}

const PLAN_HELP = `Plans (the guide's "Emergency Recovery" runbooks, docs/runbooks.md):
  full       preflight -> [terraform state] -> secrets from Key Vault -> cluster state -> PVCs from
             snapshots -> MongoDB -> rollout restart of the apps -> smoke test -> validate
  data-only  preflight -> scale the apps to 0 -> MongoDB -> scale back to the recorded counts -> smoke
             test -> validate
Each layer's newest snapshot at or before --timestamp is used (never a pre-restore copy). Phases are
timed against recover.budgets (RTOs: MongoDB 30 min, PVC 15, cluster state 45, total 90). A stopped
or killed recovery resumes where it was with --resume (same snapshots, finished phases not repeated).
Examples:
  lifeboat recover --plan data-only --app deployment/rocketchat -n rocketchat --dry-run
  lifeboat recover --plan data-only --timestamp 20241201_120000 --smoke-test-url https://chat.example.com/api/info
  lifeboat recover --plan full --vault https://rc-prod.vault.azure.net --app deployment/rocketchat
  lifeboat recover --resume last`;

function progressLine(out: Output, tty: boolean) {
  return (_r: OperationRecord, step?: StepRecord) => {
    if (!tty || !step || out.json || out.quiet) return;
    if (step.status === 'running') process.stderr.write(`  ... ${step.name}\n`);
    else if (step.status !== 'skipped')
      process.stderr.write(
        `  ${step.status === 'success' ? 'ok ' : step.status === 'warning' ? 'warn' : step.status} ${step.name}` +
          (step.durationMs !== undefined ? ` ${formatDuration(step.durationMs)}` : '') +
          (step.budgetMs ? ` (budget ${formatDuration(step.budgetMs)})` : '') +
          (step.error ? `: ${step.error.message}` : '') +
          '\n',
      );
  };
}

async function findResume(records: import('../core/repository/repository.ts').Repository, ref: string) {
  const rec =
    ref === 'last'
      ? (await listOperations(records, 'recovery'))[0]
      : await loadOperation(records, 'recovery', ref);
  if (!rec)
    throw new LifeboatError('NOT_FOUND', ref === 'last' ? 'no recovery to resume' : `no recovery ${ref}`, {
      hint: 'start one with `lifeboat recover --plan full|data-only`',
    });
  if (rec.status === 'success' || rec.status === 'warning' || rec.status === 'partial')
    throw new LifeboatError(
      'USAGE',
      `recovery ${rec.id} already finished (${rec.status}); nothing to resume`,
      {
        hint: 'start a new one with --plan',
      },
    );
  return rec;
}

/** The fast validate command, run as the recovery's last phase (its event carries the recovery id). */
function validatePhase(ctx: CommandContext, id: () => string) {
  return async (signal: AbortSignal): Promise<StepResult> => {
    const sub: CommandContext = { ...ctx, signal, runId: id(), stage: 'validate' };
    // Loaded here: options.ts reads the command table, which lists this command.
    const { resolveOptions } = await import('./options.ts');
    const values = resolveOptions(validateCommand, {}, ctx.env, ctx.config, ctx.configFile);
    try {
      const { result, exitCode } = await invoke(validateCommand, sub, values, []);
      const r = result as { ok?: boolean; results?: { type: string; status: string; problem?: string }[] };
      const problems = (r.results ?? []).filter((x) => x.status !== 'ok');
      const summary = Object.fromEntries(
        (r.results ?? []).map((x) => [x.type, x.problem ? `${x.status}: ${x.problem}` : x.status]),
      );
      // After a restore, a stale or missing backup elsewhere is worth saying, not a failed recovery.
      return exitCode === 0 && !problems.length ? { summary } : { status: 'warning', summary };
    } catch (e) {
      if (e instanceof CommandFailed && !signal.aborted)
        return { status: 'warning', summary: { validate: e.error.message } };
      throw e;
    }
  };
}

/**
 * Variables of its own (LIFEBOAT_RECOVER_PLAN, …): as a one-word command it would otherwise read
 * LIFEBOAT_PLAN or LIFEBOAT_TIMEOUT, names too generic to be set for this alone. Shared option tables are
 * copied, not changed.
 */
function ownEnv(options: Record<string, OptionSpec>): Record<string, OptionSpec> {
  return Object.fromEntries(
    Object.entries(options).map(([name, spec]) => [
      name,
      spec.env ? spec : { ...spec, env: `LIFEBOAT_RECOVER_${name.toUpperCase().replace(/-/g, '_')}` },
    ]),
  );
}

export const recoverCommand: Command<RecoverResult> = {
  path: ['recover'],
  summary: 'emergency recovery: the full-cluster or data-only runbook as one resumable, timed operation',
  usage: '--plan full|data-only [--timestamp T] [--dry-run] | --resume last|ID',
  options: ownEnv({
    plan: { type: 'string', arg: 'full|data-only', description: 'which runbook to run' },
    timestamp: {
      type: 'string',
      arg: 'YYYYMMDD_HHMMSS',
      description: "restore point: each layer's newest snapshot at or before this time (default: newest)",
    },
    'dry-run': {
      type: 'boolean',
      description: 'print the plan (snapshots, budgets, drill times), change nothing',
    },
    resume: {
      type: 'string',
      flagOnly: true,
      arg: 'last|ID',
      description: 'continue a stopped or killed recovery',
    },
    app: {
      type: 'string',
      multiple: true,
      arg: '[NS/]KIND/NAME',
      description:
        'application workload to scale or restart, e.g. deployment/rocketchat (default recover.apps)',
    },
    namespace: {
      type: 'string',
      multiple: true,
      short: 'n',
      arg: 'NS',
      description:
        "application namespace(s): --app's default and the secrets/cluster-state scope (default: the context's)",
    },
    skip: { type: 'string', multiple: true, arg: 'PHASE', description: `leave out: ${SKIPPABLE.join(', ')}` },
    vault: VAULT_OPTION,
    'smoke-test-url': {
      type: 'string',
      arg: 'URL',
      description: 'smoke-test URL (default recover.smoke-test.url)',
    },
    'include-terraform': {
      type: 'boolean',
      description: 'restore the Terraform state files first (terraform apply stays yours)',
    },
    'terraform-target': {
      type: 'string',
      arg: 'DIR',
      description: 'with --include-terraform: write the states here (default: back to their azurerm blobs)',
    },
    ...KUBE_OPTIONS,
    ...CONNECTION_OPTIONS,
    uri: { ...CONNECTION_OPTIONS.uri, env: 'LIFEBOAT_MONGODB_URI' },
    timeout: {
      type: 'string',
      arg: 'SECONDS',
      default: '600',
      description: 'wait limit for pods to go, workloads to be ready, PVCs to bind',
    },
    'poll-ms': { type: 'string', arg: 'MS', default: '1000', description: 'how often to check progress' },
  }),
  help: PLAN_HELP,
  effect: 'change',
  event: (r) => ({
    layer: 'recovery',
    snapshot: r.recovery?.id,
    result: r.dryRun ? 'success' : undefined,
  }),
  async run(ctx, values) {
    const { SecretsVault, parseVaultUrl } = await import('../sources/secrets/vault.ts');
    const resumeRef = str(values.resume);
    const planName = str(values.plan);
    if (!resumeRef && !planName) throw usageError('give --plan full|data-only (or --resume last|ID)');
    if (planName && !RECOVERY_PLANS.includes(planName as RecoveryPlanName))
      throw usageError(`--plan must be full or data-only, got "${planName}"`);
    if (resumeRef && values['dry-run']) throw usageError('--dry-run and --resume do not go together');
    const ts = str(values.timestamp);
    if (ts && !/^\d{8}_\d{6}$/.test(ts))
      throw usageError(`--timestamp "${ts}" is not YYYYMMDD_HHMMSS`, 'e.g. --timestamp 20241201_120000');
    const skip = list(values.skip);
    for (const s of skip)
      if (!SKIPPABLE.includes(s as PhaseName))
        throw usageError(
          `--skip ${s}: can leave out ${SKIPPABLE.join(', ')}`,
          PHASES.includes(s as PhaseName) ? `${s} is part of every recovery` : undefined,
        );
    const section = normalise(ctx.config.recover);
    const budgets = budgetsFrom(normalise(section.budgets));
    const smokeConfig = normalise(section['smoke-test']);
    const smokeUrl = str(values['smoke-test-url']) ?? (smokeConfig.url as string | undefined);
    if (Object.keys(smokeConfig).length && !smokeConfig.url && !str(values['smoke-test-url']))
      throw new LifeboatError('CONFIG', 'recover.smoke-test has no url', {
        hint: 'add url: https://HOST/api/info, or remove the section',
      });
    if (smokeUrl && !/^https?:\/\/[^/]/.test(smokeUrl))
      throw usageError(
        `smoke-test URL "${smokeUrl}" is not an http(s) URL`,
        'e.g. https://chat.example.com/api/info',
      );
    for (const k of ['timeout', 'wait'] as const)
      if (smokeConfig[k] !== undefined && !(typeof smokeConfig[k] === 'number' && smokeConfig[k] > 0))
        throw new LifeboatError('CONFIG', `recover.smoke-test.${k} must be a number of seconds above 0`, {
          hint: 'e.g. wait: 120',
        });
    const waitMs = (int(values.timeout, 'timeout') ?? 600) * 1000;
    const pollMs = int(values['poll-ms'], 'poll-ms') ?? 1000;
    const vaultUrl = str(values.vault) ? parseVaultUrl(str(values.vault)) : undefined;

    let kube: Promise<KubeClient> | undefined;
    const kubeOnce = () => (kube ??= kubeClient(ctx, values));
    const preflight = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof LifeboatError)
          throw new LifeboatError(e.code, `recovery preflight: ${what}: ${e.message}`, {
            hint: e.hint,
            details: e.details,
          });
        throw e;
      }
    };
    // Repository reachable, keys open: before anything, and before any record is written.
    const repo = await preflight('repository', () =>
      openRepository(ctx, { lock: 'shared', purpose: 'recover' }),
    );
    // The record must be written after SIGINT too: a second handle, not bound to the signal.
    const records = await preflight('repository', () =>
      openRepository({ ...ctx, signal: new AbortController().signal }, {}),
    );

    const resume = resumeRef ? await findResume(records, resumeRef) : undefined;
    let plan: RecoveryPlan;
    if (resume) {
      plan = planOf(resume);
      const ignored = [
        ts && '--timestamp',
        list(values.app).length && '--app',
        skip.length && '--skip',
        str(values['smoke-test-url']) && '--smoke-test-url',
      ].filter(Boolean);
      if (ignored.length)
        ctx.warn(`resuming ${resume.id} with the plan it started with: ${ignored.join(', ')} left unused`);
      if (planName && planName !== plan.plan)
        throw usageError(
          `recovery ${resume.id} is a ${plan.plan} recovery, not ${planName}`,
          'leave --plan out when resuming',
        );
    } else {
      const namespaces = list(values.namespace);
      const defaultNs =
        namespaces[0] ??
        (list(values.app).length || Array.isArray(section.apps)
          ? (await kubeOnce()).defaultNamespace()
          : 'default');
      const appSpecs = list(values.app).length
        ? list(values.app)
        : ((section.apps as string[] | undefined) ?? []);
      plan = planRecovery({
        plan: planName as RecoveryPlanName,
        timestamp: ts,
        snapshots: await repo.listSnapshots(),
        drills: await listOperations(repo, 'drill'),
        budgets,
        apps: appSpecs.map((a) => parseWorkload(a, defaultNs)),
        namespaces,
        vault: vaultUrl,
        includeTerraform: values['include-terraform'] === true,
        smokeTestUrl: smokeUrl,
        skip: skip as PhaseName[],
      });
    }
    if (values['dry-run']) return { dryRun: true, plan };
    if (plan.problems.length)
      throw new LifeboatError('NOT_FOUND', `recovery preflight: ${plan.problems[0]}`, {
        hint: plan.problems.length > 1 ? `and: ${plan.problems.slice(1).join('; ')}` : 'nothing was changed',
        details: { problems: plan.problems },
      });
    const smoke: Omit<SmokeTest, 'url'> = {
      expectField: smokeConfig['expect-field'] as string | undefined,
      timeoutMs: typeof smokeConfig.timeout === 'number' ? smokeConfig.timeout * 1000 : undefined,
      waitMs: typeof smokeConfig.wait === 'number' ? smokeConfig.wait * 1000 : undefined,
    };
    const tty = Boolean(process.stderr.isTTY);
    let id = resume?.id ?? '';
    const mongoValues = {
      ...values,
      uri: str(values.uri) ?? (normalise(ctx.config.mongodb).uri as string | undefined),
    };
    const outcome = await runRecovery({
      plan,
      repo,
      records,
      signal: ctx.signal,
      actor: eventActor(ctx.env),
      resume,
      kube: kubeOnce,
      mongo: async () => (await connectFromOptions(ctx, mongoValues)).client,
      vault: plan.vault ? new SecretsVault(plan.vault, {}, ctx.env) : undefined,
      validate: validatePhase(ctx, () => id),
      smoke,
      terraform: { target: str(values['terraform-target']), env: ctx.env },
      // The order `cluster-state restore` reads from the same setting, so both restore alike.
      clusterStatePriorities: configuredPriorities(ctx.config),
      waitMs,
      pollMs,
      note: (m) => ctx.out.note(`lifeboat: ${m}`),
      warn: (m) => ctx.warn(m),
      onUpdate: (r, s) => {
        id = r.id;
        progressLine(ctx.out, tty)(r, s);
      },
      onRecordError: (e) =>
        ctx.warn(`recovery record not written (a resume may repeat a phase): ${(e as Error).message}`),
    });
    const error = recoveryError(outcome);
    if (error) throw error;
    return { dryRun: false, plan, recovery: outcome.record, scaleBack: outcome.scaleBack };
  },
  exitCode: (r) => (r.dryRun && r.plan.problems.length ? 1 : 0),
  human(r, out) {
    const p = r.plan;
    if (r.dryRun) {
      out.line(
        `${p.plan} recovery plan${p.timestamp ? ` to ${p.timestamp}` : ' (newest snapshots)'} — nothing changed:`,
      );
      out.table(
        p.phases.map((x) => [
          x.name,
          x.enabled
            ? x.snapshot
              ? `${x.snapshot.id.slice(0, 8)} ${x.snapshot.timestamp}`
              : x.layer === 'secrets'
                ? 'Key Vault'
                : ''
            : 'skipped',
          x.budgetMs ? formatDuration(x.budgetMs) : '',
          x.layer && x.enabled
            ? x.expected
              ? `${formatDuration(x.expected.ms)} (drill ${x.expected.drill})`
              : 'no drill yet'
            : '',
          x.note,
        ]),
        ['PHASE', 'SNAPSHOT', 'BUDGET', 'EXPECTED', 'WHAT'],
      );
      out.line(
        `total budget ${formatDuration(p.budgetMs)}; expected ${p.expectedMs !== undefined ? formatDuration(p.expectedMs) : 'unknown (no drill yet for every layer)'}`,
      );
      for (const o of p.operator) out.line(`yours: ${o}`);
      for (const x of p.problems) out.line(`CANNOT RUN: ${x}`);
      return;
    }
    const rec = r.recovery!;
    out.table(
      rec.steps.map((s) => [
        s.name,
        overBudgetOnly(s) ? 'over budget' : s.status,
        s.durationMs !== undefined ? formatDuration(s.durationMs) : '',
        s.budgetMs ? formatDuration(s.budgetMs) : '',
        s.snapshot ? s.snapshot.slice(0, 8) : '',
        s.error?.message ??
          Object.entries(s.summary ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
      ]),
      ['PHASE', 'STATUS', 'TIME', 'BUDGET', 'SNAPSHOT', 'DETAIL'],
    );
    out.line(
      `recovery ${rec.id} ${rec.status} in ${formatDuration(rec.durationMs ?? 0)} (budget ${formatDuration(p.budgetMs)})`,
    );
    for (const o of p.operator) out.line(`yours: ${o}`);
  },
};

/** `cluster-state.restore.priorities` from lifeboat.yaml, when set. */
function configuredPriorities(config: Record<string, unknown>): string[] | undefined {
  const restore = normalise(normalise(config['cluster-state']).restore);
  const p = restore.priorities;
  if (p === undefined) return undefined;
  const items = (Array.isArray(p) ? p : [p]).flatMap((v) => String(v).split(',')).filter(Boolean);
  return items.length ? items : undefined;
}
