import type { Command } from './command.ts';
import { list, str, usageError } from './command.ts';
import type { PipelineResult } from '../operations/pipeline.ts';
import { printStages, resumeCommand, runHeadline } from './pipeline-output.ts';
import { PIPELINE_REASONS } from '../operations/pipeline-config.ts';

/**
 * `lifeboat pipeline run`: the daily pipeline (src/operations/pipeline.ts). It emits no event of its own
 * through invoke: the pipeline's `notify` stage emits the one `pipeline run` event (and each stage's
 * command its own), so a run is reported once.
 */
export const pipelineRunCommand: Command<PipelineResult> = {
  path: ['pipeline', 'run'],
  summary: 'run the backup pipeline: every configured stage in order, recorded, resumable, one run per slot',
  options: {
    stages: {
      type: 'string',
      multiple: true,
      flagOnly: true,
      arg: 'A,B',
      description: 'run only these stages (names from pipeline.stages or the default list)',
    },
    reason: {
      type: 'string',
      arg: 'WHY',
      default: 'manual',
      description: `why it runs: ${PIPELINE_REASONS.join(' | ')} (recorded, and in the run's event)`,
    },
    resume: {
      type: 'string',
      flagOnly: true,
      arg: 'RUN',
      description:
        'continue an interrupted or failed run (its id, or `last`) without repeating finished stages',
    },
    slot: {
      type: 'string',
      arg: 'SLOT',
      default: 'daily',
      description: 'schedule slot: one run at a time per repository and slot',
    },
  },
  help: `Stages (default): mongodb, pvc, cluster-state, secrets, terraform, retention, validate, notify; a
default stage whose layer is not configured is skipped with the reason. Define them under pipeline.stages
in lifeboat.yaml (docs/operations.md, "Daily pipeline").
Exit codes: 0 success or warning, 1 failure or partial (the stage is named), 2 config error, 4 another run
holds the slot (its host, pid and start are named), 130/143 stopped by SIGINT/SIGTERM (resume it).
Examples:
  lifeboat pipeline run --reason schedule
  lifeboat pipeline run --stages mongodb,validate
  lifeboat pipeline run --resume last`,
  async run(ctx, values) {
    const { checkSlot, runPipeline } = await import('../operations/pipeline.ts');
    const reason = str(values.reason) ?? 'manual';
    if (!(PIPELINE_REASONS as readonly string[]).includes(reason))
      throw usageError(`--reason must be one of ${PIPELINE_REASONS.join(', ')}, got "${reason}"`);
    const only = list(values.stages);
    const resume = str(values.resume);
    if (resume && only.length)
      throw usageError('--resume continues a run with its own stages; --stages cannot change them');
    const result = await runPipeline(ctx, {
      slot: checkSlot(str(values.slot) ?? 'daily'),
      reason,
      only,
      resume,
    });
    if (ctx.globals.json && result.exitCode !== 0) {
      const failed = result.run.steps.find((s) => s.status === 'failure' || s.status === 'interrupted');
      ctx.out.note(
        `lifeboat: pipeline run ${result.run.id} ${result.run.status}${failed ? `: stage ${failed.name}: ${failed.error?.message ?? failed.status}` : ''}`,
      );
    }
    return result;
  },
  exitCode: (r) => r.exitCode,
  human(r, out) {
    out.line();
    printStages(r.run, out);
    out.line(runHeadline(r.run, r.run.status));
    for (const s of r.run.steps.filter((x) => x.status === 'failure' || x.status === 'interrupted'))
      out.line(
        `stage ${s.name} ${s.status}: ${s.error?.message ?? ''}${s.error?.hint ? ` — ${s.error.hint}` : ''}`,
      );
    if (r.run.status === 'interrupted' || r.run.status === 'failure' || r.run.status === 'partial')
      out.line(`to continue it: ${resumeCommand(r.run.id)}`);
  },
};
