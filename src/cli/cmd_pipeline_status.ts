import type { Command } from './command.ts';
import { str } from './command.ts';
import { LifeboatError } from '../core/errors.ts';
import type { LockInfo } from '../core/repository/lock.ts';
import type { OperationRecord } from '../operations/operation-record.ts';
import { openRepository } from './repo.ts';
import { printStages, resumeCommand, runHeadline } from './pipeline-output.ts';

export interface PipelineStatusResult {
  run: OperationRecord;
  /** The record's status, or `interrupted (killed)` for a `running` record whose slot lock nobody holds. */
  status: string;
  /** Who runs it now (a `running` run whose process is alive). */
  holder?: LockInfo;
  /** The command that continues it, for a run that did not finish well. */
  resume?: string;
}

export const pipelineStatusCommand: Command<PipelineStatusResult> = {
  path: ['pipeline', 'status'],
  summary: 'show the newest pipeline run (or RUN): each stage with status, duration, budget, snapshot, error',
  usage: '[RUN]',
  options: {
    slot: { type: 'string', arg: 'SLOT', description: 'the newest run of this slot' },
  },
  help: `A run whose record says running but whose slot lock nobody holds was killed (SIGKILL, OOM, a lost
node): it is shown as "interrupted (killed)" with the --resume command that continues it.`,
  async run(ctx, values, positionals) {
    const { effectiveStatus, liveHolder, resumable, runSlot } = await import('../operations/pipeline.ts');
    const { listOperations, loadOperation } = await import('../operations/runner.ts');
    const repo = await openRepository(ctx);
    const slot = str(values.slot);
    const id = positionals[0];
    const run = id
      ? await loadOperation(repo, 'run', id)
      : (await listOperations(repo, 'run')).find((r) => !slot || runSlot(r) === slot);
    if (!run)
      throw new LifeboatError('NOT_FOUND', id ? `no pipeline run ${id}` : 'no pipeline run yet', {
        hint: id ? 'see `lifeboat pipeline history`' : 'start one with `lifeboat pipeline run`',
      });
    const holder = run.status === 'running' ? liveHolder(run, await repo.listLocks()) : undefined;
    const status = effectiveStatus(run, holder);
    return {
      run,
      status,
      ...(holder ? { holder } : {}),
      ...(resumable(run) && !holder ? { resume: resumeCommand(run.id) } : {}),
    };
  },
  human(r, out) {
    out.line(runHeadline(r.run, r.status));
    if (r.holder)
      out.line(`running: pid ${r.holder.pid} on ${r.holder.host}, lock refreshed ${r.holder.time}`);
    printStages(r.run, out, r.status === 'interrupted (killed)');
    if (r.resume) out.line(`to continue it: ${r.resume}`);
  },
};
