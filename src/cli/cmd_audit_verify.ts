import type { AuditVerifyReport } from '../observability/audit.ts';
import { str, usageError, type Command } from './command.ts';
import { EXIT_INTEGRITY, EXIT_OK } from './exit.ts';
import { openRepository } from './repo.ts';

export const auditVerifyCommand: Command<AuditVerifyReport & { headFound?: boolean }> = {
  path: ['audit', 'verify'],
  summary: 'verify the audit log hash chain (a changed, removed, copied or reordered record is found)',
  options: {
    head: {
      type: 'string',
      arg: 'HASH',
      description: 'a head hash kept elsewhere: also check that this record is still there',
    },
  },
  help: `Exit code 3 on a broken chain, naming the first bad record. Forks (records written at the same time
by two processes) are valid. Removing the newest record is only detectable against a head hash kept
elsewhere: keep the \`head\` printed here (e.g. in your monitoring) and pass it with --head later.`,
  async run(ctx, values) {
    const { AuditLog } = await import('../observability/audit.ts');
    const head = str(values.head);
    if (head !== undefined && !/^[0-9a-f]{64}$/.test(head))
      throw usageError(
        '--head must be a 64-character hex hash',
        'copy it from `lifeboat audit verify --json`',
      );
    const repo = await openRepository(ctx);
    const log = new AuditLog(repo);
    const report = await log.verify();
    if (head === undefined) return report;
    const headFound = await log.hasHash(head);
    if (headFound) return { ...report, headFound };
    const problem = {
      record: `(hash ${head.slice(0, 12)}…)`,
      time: '',
      problem: 'the record with the given head hash is gone (the log was cut back)',
    };
    return {
      ...report,
      ok: false,
      headFound,
      firstBad: report.firstBad ?? problem,
      problems: [...report.problems, problem],
    };
  },
  exitCode: (r) => (r.ok ? EXIT_OK : EXIT_INTEGRITY),
  effect: 'verify',
  layer: 'repository',
  event: (r) => ({ items: r.records, details: { problems: r.problems.length, forks: r.forks } }),
  human(r, out) {
    for (const p of r.problems) out.line(`bad: ${p.record}${p.time ? ` (${p.time})` : ''}: ${p.problem}`);
    if (r.ok) {
      out.line(
        `audit log intact: ${r.records} record(s)${r.forks ? `, ${r.forks} fork(s) from concurrent writes` : ''}`,
      );
    } else out.line(`audit log broken: first bad record ${r.firstBad!.record}: ${r.firstBad!.problem}`);
    if (r.head) out.line(`head: seq ${r.head.seq} ${r.head.hash}`);
  },
};
