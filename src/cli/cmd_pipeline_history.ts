import type { Command } from './command.ts';
import { int, str, usageError } from './command.ts';
import { formatDuration } from './output.ts';
import { openRepository } from './repo.ts';
import { stageCounts } from './pipeline-output.ts';

export interface PipelineHistoryRow {
  id: string;
  slot: string;
  reason?: string;
  status: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  host: string;
  resumes: number;
  stages: { name: string; status: string; snapshot?: string }[];
}

export const pipelineHistoryCommand: Command<PipelineHistoryRow[]> = {
  path: ['pipeline', 'history'],
  summary: 'list pipeline runs, newest first',
  options: {
    limit: { type: 'string', arg: 'N', default: '20', description: 'show the N newest runs' },
    slot: { type: 'string', arg: 'SLOT', description: 'only runs of this slot' },
  },
  async run(ctx, values) {
    const { effectiveStatus, liveHolder, runSlot } = await import('../operations/pipeline.ts');
    const { listOperations } = await import('../operations/runner.ts');
    const limit = int(values.limit, 'limit') ?? 20;
    if (limit < 1) throw usageError('--limit must be 1 or more');
    const slot = str(values.slot);
    const repo = await openRepository(ctx);
    const runs = (await listOperations(repo, 'run'))
      .filter((r) => !slot || runSlot(r) === slot)
      .slice(0, limit);
    const locks = runs.some((r) => r.status === 'running') ? await repo.listLocks() : [];
    return runs.map((r) => ({
      id: r.id,
      slot: runSlot(r),
      reason: r.reason,
      status: effectiveStatus(r, r.status === 'running' ? liveHolder(r, locks) : undefined),
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      durationMs: r.durationMs,
      host: r.host,
      resumes: r.resumes?.length ?? 0,
      stages: r.steps.map((s) => ({
        name: s.name,
        status: s.status,
        ...(s.snapshot ? { snapshot: s.snapshot } : {}),
      })),
    }));
  },
  human(rows, out) {
    if (!rows.length) {
      out.line('no pipeline runs');
      return;
    }
    out.table(
      rows.map((r) => [
        r.id,
        r.startedAt.replace(/\.\d+Z$/, 'Z'),
        r.reason ?? '',
        r.slot,
        r.status,
        r.durationMs !== undefined ? formatDuration(r.durationMs) : '',
        stageCounts({ steps: r.stages } as never),
      ]),
      ['RUN', 'STARTED', 'REASON', 'SLOT', 'STATUS', 'DURATION', 'STAGES'],
    );
  },
};
