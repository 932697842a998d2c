import { LifeboatError } from '../core/errors.ts';
import type { FollowerResult } from '../sources/mongodb/pitr.ts';
import { int, type Command } from './command.ts';
import { CONNECTION_OPTIONS, connectFromOptions } from './mongodb-options.ts';
import { openRepository } from './repo.ts';
import { formatPosition } from '../sources/mongodb/position.ts';

/** How long the last slice may take after SIGTERM (main.ts exits hard at 9 s). */
const FLUSH_MS = 7_000;

export const mongodbPitrRunCommand: Command<FollowerResult> = {
  path: ['mongodb', 'pitr', 'run'],
  summary: 'follow the oplog and write point-in-time recovery slices until stopped (a service)',
  options: {
    ...CONNECTION_OPTIONS,
    'slice-interval': {
      type: 'string',
      arg: 'SECONDS',
      default: '60',
      description: 'write a slice at least this often: the recovery point objective',
    },
  },
  help: `Continues from the newest slice in the repository, or from the window end of the newest
\`mongodb backup --oplog\` of the same replica set. Takes the repository's shared lock only while it
writes a slice. If the oplog rolled over while it was not reading (a gap), it logs an error, writes a gap
marker and waits for a new base backup. SIGTERM writes one last slice, then exits 143.
Examples:
  lifeboat mongodb pitr run --uri mongodb://backup:…@mongo-0.mongo:27017/?replicaSet=rs0
  LIFEBOAT_LOG_FORMAT=json lifeboat mongodb pitr run --slice-interval 30`,
  effect: 'change',
  layer: 'mongodb',
  async run(ctx, values) {
    const { runFollower } = await import('../sources/mongodb/pitr.ts');
    const seconds = int(values['slice-interval'], 'slice-interval') ?? 60;
    if (seconds < 1 || seconds > 3600)
      throw new LifeboatError('USAGE', `--slice-interval ${seconds}: give 1 to 3600 seconds`, {
        hint: 'the default, 60, keeps the recovery point objective at one minute',
      });
    // The repository is not bound to the signal directly: after SIGTERM the last slice is still written,
    // within FLUSH_MS.
    const flush = new AbortController();
    ctx.signal.addEventListener(
      'abort',
      () => setTimeout(() => flush.abort(ctx.signal.reason), FLUSH_MS).unref(),
      { once: true },
    );
    const repoCtx = { ...ctx, signal: flush.signal };
    const { client, uri } = await connectFromOptions(ctx, values);
    ctx.defer(() => client.close().catch(() => {}));
    const log = ctx.log.child({});
    if (log.level === 'warn') log.level = 'info';
    const result = await runFollower({
      openRepo: () => openRepository(repoCtx),
      client,
      uri,
      sliceIntervalMs: seconds * 1000,
      signal: ctx.signal,
      flushSignal: flush.signal,
      log,
    });
    // A follower only ever ends by a signal: report it as one (exit 130/143).
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return result;
  },
  human(r, out) {
    out.line(
      `pitr follower for ${r.replicaSet} stopped: ${r.slices} slice(s), ${r.entries} entries` +
        (r.position ? `, at ${formatPosition(r.position)}` : ''),
    );
  },
};
