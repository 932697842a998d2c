import { LifeboatError } from '../core/errors.ts';
import { str, usageError, type Command } from './command.ts';
import { openRepository } from './repo.ts';

export interface AuditRow {
  record: string;
  time: string;
  seq: number;
  hash: string;
  prev: string;
  operation: string;
  layer?: string;
  result: string;
  actor: string;
  host: string;
  snapshot?: string;
  runId?: string;
  error?: string;
  event: unknown;
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** `24h`, `7d`, `90m`, `2w`, or a time (`2026-12-01`, `2026-12-01T08:00:00Z`). */
export function parseSince(s: string, now: number): Date {
  const m = /^(\d+)([smhdw])$/.exec(s.trim());
  if (m) return new Date(now - Number(m[1]) * UNITS[m[2]]);
  const t = /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(t))
    throw usageError(
      `--since "${s}" is neither a duration nor a time`,
      'e.g. --since 24h, --since 7d or --since 2026-12-01T08:00:00Z',
    );
  return new Date(t);
}

export const auditListCommand: Command<AuditRow[]> = {
  path: ['audit', 'list'],
  summary: 'list the audit log: who did what to the repository and its targets, and how it ended',
  options: {
    since: { type: 'string', arg: 'DURATION|TIME', description: 'only records since (24h, 7d, 2026-12-01)' },
    operation: { type: 'string', arg: 'OP', description: 'only this operation (e.g. "mongodb backup")' },
  },
  help: `Every command that changes or verifies something appends one record (docs/monitoring.md, "Audit log").
Examples:
  lifeboat audit list --since 24h
  lifeboat audit list --operation "mongodb restore" --json`,
  async run(ctx, values) {
    const { AuditLog } = await import('../observability/audit.ts');
    const since = str(values.since);
    const sinceDate = since ? parseSince(since, Date.now()) : undefined;
    const repo = await openRepository(ctx);
    let entries;
    try {
      entries = await new AuditLog(repo).list({ since: sinceDate, operation: str(values.operation) });
    } catch (e) {
      if (e instanceof LifeboatError && e.code === 'INTEGRITY')
        throw new LifeboatError('INTEGRITY', `audit log: ${e.message}`, {
          hint: 'run `lifeboat audit verify` to find every bad record',
        });
      throw e;
    }
    return entries.map(({ ref, body }) => ({
      record: `records/${ref.name}`,
      time: ref.time,
      seq: body.seq,
      hash: body.hash,
      prev: body.prev,
      operation: body.event.operation,
      ...(body.event.layer ? { layer: body.event.layer } : {}),
      result: body.event.result,
      actor: body.event.actor,
      host: body.event.host,
      ...(body.event.snapshot ? { snapshot: body.event.snapshot } : {}),
      ...(body.event.runId ? { runId: body.event.runId } : {}),
      ...(body.event.error ? { error: `${body.event.error.code}: ${body.event.error.message}` } : {}),
      event: body.event,
    }));
  },
  human(rows, out) {
    if (rows.length === 0) {
      out.line('no audit records');
      return;
    }
    out.table(
      rows.map((r) => [
        r.time,
        String(r.seq),
        r.operation,
        r.layer ?? '',
        r.result,
        `${r.actor}@${r.host}`,
        r.snapshot?.slice(0, 8) ?? '',
        r.error ?? '',
      ]),
      ['TIME', 'SEQ', 'OPERATION', 'LAYER', 'RESULT', 'WHO', 'SNAPSHOT', 'ERROR'],
    );
  },
};
