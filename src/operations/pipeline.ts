/**
 * `lifeboat pipeline run`: the guide's daily pipeline as one resumable operation. Each stage runs its
 * command in this process, exactly as typed: options resolved by `resolveOptions` (the stage's
 * `options` in the place of flags, then LIFEBOAT_* variables, then lifeboat.yaml, then defaults) and run
 * by `invoke`, so its own event (carrying `runId` and `stage`) reaches the same sinks. A stage gets a
 * child context: its own cleanup list (locks released and storage closed when the stage ends), the
 * runner's signal (the stage budget or SIGTERM), and quiet output under --json.
 *
 * One run at a time per repository and slot: a named lock `pipeline-<slot>` (core/repository/lock.ts),
 * which conflicts only with another run of the same slot — never with the stages' own data locks.
 *
 * The run record (operations/runner.ts) is written through a repository handle that the run's signal
 * does not cancel, so an interrupted run still records where it stopped; `--resume` continues it.
 */
import { existsSync } from 'node:fs';
import { LifeboatError } from '../core/errors.ts';
import { eventActor, makeEvent, type EventResult } from '../core/events.ts';
import { isEmptyPolicy } from '../core/repository/forget.ts';
import { isStale, type LockInfo } from '../core/repository/lock.ts';
import { Repository } from '../core/repository/repository.ts';
import type { Command, CommandContext, OptionValues } from '../cli/command.ts';
import { EXIT_FAILED, EXIT_OK, exitCodeFor } from '../cli/exit.ts';
import { CommandFailed, invoke, type Invocation } from '../cli/invoke.ts';
import { Output } from '../cli/output.ts';
import { openRepository } from '../cli/repo.ts';
import { RETENTION_OPTIONS, policyFrom } from '../cli/retention.ts';
import { planStages, type StageSpec } from './pipeline-config.ts';
import type { OperationRecord, StepRecord } from './operation-record.ts';
import {
  listOperations,
  loadOperation,
  newOperationId,
  runOperation,
  type StepDefinition,
  type StepResult,
} from './runner.ts';

export interface PipelineOptions {
  slot: string;
  reason: string;
  /** --stages: only these. */
  only: string[];
  /** --resume: a run id, or `last`. */
  resume?: string;
}

export interface PipelineResult {
  run: OperationRecord;
  slot: string;
  resumed: boolean;
  exitCode: number;
  /** Stages that failed (or were partial), in order. */
  failedStages: string[];
}

export function slotLockName(slot: string): string {
  return `pipeline-${slot}`;
}

export function runLockPurpose(id: string): string {
  return `pipeline run ${id}`;
}

export function checkSlot(slot: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(slot))
    throw new LifeboatError('USAGE', `--slot "${slot}" is not a slot name`, {
      hint: 'use lower-case letters, digits and -, e.g. daily or hourly',
    });
  return slot;
}

/** The run's slot as recorded (older records without one ran in `daily`). */
export function runSlot(run: OperationRecord): string {
  return typeof run.settings?.slot === 'string' ? run.settings.slot : 'daily';
}

/**
 * The live holder of a run's slot lock, if that holder is this run (a `running` record without one was
 * killed). `locks` from `repo.listLocks()`.
 */
export function liveHolder(
  run: OperationRecord,
  locks: { info?: LockInfo }[],
  now = Date.now(),
): LockInfo | undefined {
  return locks.find(
    (l) =>
      l.info?.name === slotLockName(runSlot(run)) &&
      l.info.purpose === runLockPurpose(run.id) &&
      !isStale(l.info, now),
  )?.info;
}

/** `running` in the record but nobody holds its slot lock: the process was killed (SIGKILL, OOM, node). */
export function effectiveStatus(run: OperationRecord, holder: LockInfo | undefined): string {
  return run.status === 'running' && !holder ? 'interrupted (killed)' : run.status;
}

export function resumable(run: OperationRecord): boolean {
  return run.status !== 'success' && run.status !== 'warning';
}

const HEX64 = /^[0-9a-f]{64}$/;

/** `20241201_120000` (UTC) → ISO 8601. */
function labelToIso(label: unknown): string | undefined {
  const m = typeof label === 'string' ? /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(label) : null;
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z` : undefined;
}

/** Small facts from a command's result for the stage record: its numbers, flags and list lengths. */
function summarize(result: unknown): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  if (!result || typeof result !== 'object') return out;
  for (const [k, v] of Object.entries(result)) {
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (Array.isArray(v)) out[k] = v.length;
    else if (v && typeof v === 'object' && k === 'totals')
      for (const [tk, tv] of Object.entries(v)) if (typeof tv === 'number') out[`${k}.${tk}`] = tv;
  }
  return out;
}

/** What a finished command adds to its stage record. */
function stepResultOf(stage: string, cmd: Command, inv: Invocation<unknown>): StepResult {
  const r = (inv.result ?? {}) as Record<string, unknown>;
  const base: StepResult = {
    snapshot: typeof r.id === 'string' && HEX64.test(r.id) ? r.id : undefined,
    snapshotTime: labelToIso(r.timestamp),
    summary: summarize(r),
  };
  if (inv.exitCode === EXIT_OK)
    return { ...base, status: inv.event?.result === 'warning' ? 'warning' : 'success' };
  const problems = Array.isArray(r.results)
    ? (r.results as { problem?: string }[]).map((x) => x.problem).filter(Boolean)
    : [];
  return {
    ...base,
    status: 'failure',
    error: {
      code: inv.exitCode === 3 ? 'INTEGRITY' : 'FAILED',
      message: `${stage}: \`lifeboat ${cmd.path.join(' ')}\` ended with exit code ${inv.exitCode}${problems.length ? `: ${problems.slice(0, 3).join('; ')}` : ''}`,
      hint: `run \`lifeboat ${cmd.path.join(' ')}\` by hand to see the whole report`,
    },
  };
}

function kubeConfigured(values: OptionValues, env: NodeJS.ProcessEnv): boolean {
  if (values.kubeconfig || values['in-cluster'] === true || env.KUBECONFIG) return true;
  if (env.KUBERNETES_SERVICE_HOST) return true;
  const home = env.HOME;
  return Boolean(home && existsSyncSafe(`${home}/.kube/config`));
}

function existsSyncSafe(p: string): boolean {
  try {
    return existsSync(p);
  } catch {
    return false;
  }
}

/**
 * Why a stage's layer is not configured (undefined when it is): the settings that say *where* the layer
 * is are absent altogether. Settings that are present but wrong are a failure of the stage, not this.
 */
function notConfigured(stage: StageSpec, values: OptionValues, env: NodeJS.ProcessEnv): string | undefined {
  switch (stage.command.join(' ')) {
    case 'mongodb backup':
      return values.uri
        ? undefined
        : 'no MongoDB configured (mongodb.uri in lifeboat.yaml or LIFEBOAT_MONGODB_URI)';
    case 'pvc snapshot':
    case 'cluster-state backup':
      return kubeConfigured(values, env)
        ? undefined
        : 'no Kubernetes configured (no kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster ServiceAccount)';
    case 'secrets backup':
      if (!values.vault)
        return 'no Key Vault configured (secrets.vault in lifeboat.yaml or LIFEBOAT_SECRETS_VAULT)';
      return kubeConfigured(values, env) ? undefined : 'no Kubernetes configured for the Secrets to back up';
    case 'terraform backup':
      return values.dir || values['azurerm-account']
        ? undefined
        : 'no Terraform state configured (terraform.backup.dir or terraform.backup.azurerm-* in lifeboat.yaml)';
    case 'copy':
      return values.to
        ? undefined
        : 'no second location configured (copy.to in lifeboat.yaml or LIFEBOAT_COPY_TO)';
    default:
      return undefined;
  }
}

export async function runPipeline(ctx: CommandContext, opts: PipelineOptions): Promise<PipelineResult> {
  // Loaded here, not at the top: the command table imports this module.
  const { findCommand, resolveOptions, coerce, normalise } = await import('../cli/options.ts');
  const { GLOBAL_OPTIONS } = await import('../cli/commands.ts');
  const { kebabCase } = await import('../cli/config-schema.ts');

  // The records outlive the run's signal: an interrupted run must still write where it stopped.
  const records = await openRepository({ ...ctx, signal: new AbortController().signal });
  ctx.repository = records;

  let previous: OperationRecord | undefined;
  if (opts.resume) {
    previous =
      opts.resume === 'last'
        ? (await listOperations(records, 'run')).find((r) => runSlot(r) === opts.slot)
        : await loadOperation(records, 'run', opts.resume);
    if (!previous)
      throw new LifeboatError(
        'NOT_FOUND',
        opts.resume === 'last'
          ? `no pipeline run in slot ${opts.slot} to resume`
          : `no pipeline run ${opts.resume}`,
        { hint: 'see `lifeboat pipeline history`' },
      );
    if (!resumable(previous))
      throw new LifeboatError(
        'USAGE',
        `run ${previous.id} finished (${previous.status}): nothing to resume`,
        {
          hint: 'start a new run with `lifeboat pipeline run`',
        },
      );
  }
  const slot = previous ? runSlot(previous) : opts.slot;
  const id = previous?.id ?? newOperationId();

  // Lost slot lock (refresh failing, `unlock --remove-all`): another run may start, so this one stops.
  const lost = new AbortController();
  const lock = await records.lockNamed(slotLockName(slot), runLockPurpose(id), (e) => lost.abort(e));
  ctx.defer(() => lock.release());
  if (previous) {
    // Read again under the lock: the state before the lock may have been a run still going.
    previous = await loadOperation(records, 'run', previous.id);
    if (!previous || !resumable(previous))
      throw new LifeboatError('USAGE', `run ${id} finished meanwhile: nothing to resume`, {
        hint: 'see `lifeboat pipeline status`',
      });
  }

  const pipelineSection = normalise(ctx.config.pipeline);
  const all = planStages(pipelineSection, []);
  let stages: StageSpec[];
  if (previous) {
    const names = previous.steps.map((s) => s.name);
    for (const n of names)
      if (!all.some((s) => s.name === n))
        throw new LifeboatError('CONFIG', `stage "${n}" of run ${id} is no longer in pipeline.stages`, {
          hint: 'put it back to resume the run, or start a new run',
        });
    stages = all.filter((s) => names.includes(s.name));
  } else stages = planStages(pipelineSection, opts.only);

  const g = ctx.globals;
  const globalFlags: Record<string, unknown> = Object.fromEntries(
    Object.entries({
      repo: g.repo,
      keystore: g.keystore,
      'password-file': g.passwordFile,
      'key-file': g.keyFile,
      json: g.json,
      quiet: g.quiet,
      verbose: g.verbose,
    }).filter(([, v]) => v !== undefined),
  );

  const commandOf = (stage: StageSpec): Command => {
    const { cmd } = findCommand(stage.command);
    if (!cmd || cmd.path.length !== stage.command.length || cmd.path[0] === 'pipeline')
      throw new LifeboatError(
        'CONFIG',
        `${stage.source}: stage ${stage.name}: "${stage.command.join(' ')}" is not a command a stage can run`,
        {
          hint: 'name a lifeboat command, e.g. "mongodb backup" (see `lifeboat help`)',
        },
      );
    return cmd;
  };

  /** The stage's options as flags, checked against the command (a typo is a config error naming it). */
  const stageFlags = (stage: StageSpec, cmd: Command): Record<string, unknown> => {
    const flags: Record<string, unknown> = {};
    for (const [key, raw] of Object.entries(stage.options)) {
      const name = kebabCase(key);
      const where = `${stage.source === 'default' || stage.source === '--stages' ? `stage ${stage.name}` : `config ${ctx.configFile}: ${stage.source}`}.options.${key}`;
      if (GLOBAL_OPTIONS[name])
        throw new LifeboatError('CONFIG', `${where}: ${name} is a global option`, {
          hint: 'set it at the top level of lifeboat.yaml: every stage uses the same repository and keys',
        });
      const spec = cmd.options[name];
      if (!spec)
        throw new LifeboatError(
          'CONFIG',
          `${where}: \`lifeboat ${cmd.path.join(' ')}\` has no option --${name}`,
          {
            hint: `see \`lifeboat ${cmd.path.join(' ')} --help\``,
          },
        );
      flags[name] = coerce(name, spec, raw, where);
    }
    // Backups in a pipeline leave retention to the retention stage (a backup's own retention is skipped
    // whenever another process holds a lock; the stage runs once every backup is done).
    if (cmd.options['no-retention'] && flags['no-retention'] === undefined) flags['no-retention'] = true;
    return flags;
  };
  const valuesFor = (stage: StageSpec, cmd: Command, extra: Record<string, unknown> = {}): OptionValues =>
    resolveOptions(
      cmd,
      { ...globalFlags, ...stageFlags(stage, cmd), ...extra },
      ctx.env,
      ctx.config,
      ctx.configFile,
    );

  /** Runs one command as (part of) a stage, with its own context; its cleanup runs when it returns. */
  const runCommand = async (
    stage: StageSpec,
    cmd: Command,
    values: OptionValues,
    signal: AbortSignal,
  ): Promise<Invocation<unknown>> => {
    const deferred: (() => Promise<void> | void)[] = [];
    const out = new Output(g.json, g.quiet || g.json);
    const child: CommandContext = {
      ...ctx,
      out,
      log: ctx.log.child({ stage: stage.name }),
      signal,
      command: cmd.path.join(' '),
      defer: (fn) => void deferred.push(fn),
      warn: (m) => ctx.warn(`${stage.name}: ${m}`),
      runId: id,
      stage: stage.name,
      repository: undefined,
    };
    try {
      const inv = await invoke(cmd, child, values, stage.args);
      if (!g.json && !g.quiet) cmd.human?.(inv.result as never, out);
      return inv;
    } catch (e) {
      throw e instanceof CommandFailed ? e.error : e;
    } finally {
      while (deferred.length) {
        const fn = deferred.pop()!;
        try {
          await fn();
        } catch (e) {
          ctx.warn(`${stage.name}: cleanup failed: ${(e as Error).message}`);
        }
      }
    }
  };

  let latest: OperationRecord | undefined = previous;
  const startedAt = () => new Date(latest?.startedAt ?? Date.now());

  const runEvent = async (result: EventResult, exitCode: number) => {
    const steps = (latest?.steps ?? []).filter((s) => stages.find((x) => x.name === s.name)?.command.length);
    const counts: Record<string, number> = {};
    for (const s of steps) counts[s.status] = (counts[s.status] ?? 0) + 1;
    const failed = steps.filter((s) => s.status === 'failure' || s.status === 'partial').map((s) => s.name);
    const event = makeEvent({
      operation: 'pipeline run',
      effect: 'change',
      result,
      exitCode,
      startedAt: startedAt(),
      finishedAt: new Date(),
      repository: g.repo,
      runId: id,
      actor: eventActor(ctx.env),
      details: {
        slot,
        reason: latest?.reason ?? opts.reason,
        stages: steps.length,
        ...counts,
        ...(failed.length ? { 'failed-stages': failed.join(',') } : {}),
        resumed: Boolean(previous),
      },
    });
    ctx.log.info('event', { event });
    await ctx.events.emit(event);
  };

  /** The run's result so far, from the stages before notify. */
  const resultSoFar = (self: string): EventResult => {
    const steps = (latest?.steps ?? []).filter((s) => s.name !== self);
    const byName = new Map(stages.map((s) => [s.name, s]));
    if (steps.some((s) => s.status === 'failure' && byName.get(s.name)?.onFailure === 'stop'))
      return 'failure';
    if (steps.some((s) => s.status === 'failure' || s.status === 'partial')) return 'partial';
    if (steps.some((s) => s.status === 'warning')) return 'warning';
    return 'success';
  };

  const retention = async (stage: StageSpec, cmd: Command, signal: AbortSignal): Promise<StepResult> => {
    let removed = 0;
    const applied: string[] = [];
    const untouched: string[] = [];
    // Every repository layer of the pipeline (not only this run's stages: `--stages retention` alone works).
    for (const backup of all) {
      if (!backup.enabled || !backup.layer || backup.layer === 'secrets' || !backup.command.length) continue;
      const backupCmd = commandOf(backup);
      // A layer the pipeline does not back up here (not configured) is not this stage's business.
      if (notConfigured(backup, valuesFor(backup, backupCmd), ctx.env)) continue;
      const filter = { type: backup.layer, host: Repository.hostname() };
      let values = valuesFor(stage, cmd, filter);
      if (isEmptyPolicy(policyFrom(values))) {
        // No policy for `forget`: the one the backup command would have applied itself.
        if (backupCmd.options['no-retention']) {
          const own = resolveOptions(
            backupCmd,
            { ...globalFlags, ...stageFlags(backup, backupCmd), 'no-retention': undefined },
            ctx.env,
            ctx.config,
            ctx.configFile,
          );
          if (!own['no-retention']) {
            const policy = Object.fromEntries(
              Object.keys(RETENTION_OPTIONS)
                .filter((k) => own[k] !== undefined)
                .map((k) => [k, own[k]]),
            );
            values = valuesFor(stage, cmd, { ...filter, ...policy });
          }
        }
      }
      if (isEmptyPolicy(policyFrom(values))) {
        untouched.push(backup.layer);
        continue;
      }
      const inv = await runCommand(stage, cmd, values, signal);
      removed += Number((inv.result as { removed?: number }).removed ?? 0);
      applied.push(backup.layer);
    }
    if (!applied.length)
      return {
        status: 'skipped',
        reason: `no retention policy configured (forget.keep-* / retention-days in lifeboat.yaml) for ${untouched.join(', ') || 'any layer'}`,
      };
    return {
      summary: {
        removed,
        layers: applied.join(','),
        ...(untouched.length ? { untouched: untouched.join(',') } : {}),
      },
    };
  };

  const steps: StepDefinition[] = stages.map((stage) => {
    const base = {
      name: stage.name,
      layer: stage.layer,
      budgetMs: stage.budgetMs,
      onFailure: stage.onFailure,
    };
    if (!stage.command.length) {
      return {
        ...base,
        enabled: stage.enabled,
        skipReason: stage.enabled ? undefined : 'disabled in lifeboat.yaml',
        always: true,
        run: async () => {
          const result = resultSoFar(stage.name);
          await runEvent(result, result === 'success' || result === 'warning' ? EXIT_OK : EXIT_FAILED);
          return { summary: { result, events: 1 } };
        },
      };
    }
    const cmd = commandOf(stage);
    // Checked before anything runs: a typo in a stage's options is a config error, not a failed night.
    const planned = stage.enabled ? valuesFor(stage, cmd) : undefined;
    const missing = planned && notConfigured(stage, planned, ctx.env);
    const skip = !stage.enabled
      ? 'disabled in lifeboat.yaml'
      : missing && stage.source === 'default'
        ? missing
        : undefined;
    return {
      ...base,
      enabled: !skip,
      skipReason: skip,
      run: async (signal: AbortSignal) => {
        if (!g.json && !g.quiet) ctx.out.line(`== ${stage.name}: lifeboat ${cmd.path.join(' ')}`);
        if (missing)
          // Asked for by name (pipeline.stages or --stages): not configured is a failure, not a skip.
          throw new LifeboatError('CONFIG', `${stage.name}: ${missing}`, {
            hint: `configure it, or set \`enabled: false\` for stage ${stage.name} in pipeline.stages`,
          });
        if (cmd.path.join(' ') === 'forget' && stage.name === 'retention')
          return retention(stage, cmd, signal);
        const inv = await runCommand(stage, cmd, valuesFor(stage, cmd), signal);
        return stepResultOf(stage.name, cmd, inv);
      },
    };
  });

  const runSignal = AbortSignal.any([ctx.signal, lost.signal]);
  const run = await runOperation(steps, {
    records,
    kind: 'run',
    id,
    reason: opts.reason,
    budget: 'abort',
    settings: { slot, stages: stages.map((s) => s.name), ...(opts.only.length ? { only: opts.only } : {}) },
    signal: runSignal,
    actor: eventActor(ctx.env),
    resume: previous,
    onUpdate: (record, step?: StepRecord) => {
      latest = record;
      if (step && step.finishedAt && !g.json && !g.quiet && step.status !== 'skipped')
        ctx.out.note(`pipeline: ${step.name} ${step.status}${step.error ? `: ${step.error.message}` : ''}`);
    },
    onRecordError: (e) =>
      ctx.warn(
        `the run record could not be written (${(e as Error).message}); a resume would repeat this stage`,
      ),
  });
  latest = run;

  let exitCode: number;
  if (run.status === 'interrupted') {
    exitCode = exitCodeFor(runSignal.reason);
    const notify = stages.find((s) => !s.command.length && s.enabled);
    const notified = run.steps.some((s) => s.name === notify?.name && s.status === 'success');
    if (notify && !notified) await runEvent('interrupted', exitCode).catch(() => {});
  } else exitCode = run.status === 'success' || run.status === 'warning' ? EXIT_OK : EXIT_FAILED;
  return {
    run,
    slot,
    resumed: Boolean(previous),
    exitCode,
    failedStages: run.steps
      .filter((s) => s.status === 'failure' || s.status === 'partial')
      .map((s) => s.name),
  };
}
