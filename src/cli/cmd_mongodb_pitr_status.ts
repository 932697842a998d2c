import type { MongoClient } from 'mongodb';
import type { PitrStatus } from '../sources/mongodb/pitr.ts';
import { str, type Command } from './command.ts';
import { CONNECTION_OPTIONS, connectFromOptions } from './mongodb-options.ts';
import { openRepository } from './repo.ts';
import { formatPosition } from '../sources/mongodb/position.ts';

const ago = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return 'unknown';
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
};

export const mongodbPitrStatusCommand: Command<PitrStatus> = {
  path: ['mongodb', 'pitr', 'status'],
  summary: 'point-in-time recovery: covered ranges, lag, gaps and oplog headroom per replica set',
  options: { ...CONNECTION_OPTIONS },
  help: `Reads the repository; with --uri (or LIFEBOAT_MONGODB_URI) also the server's oplog, for its headroom
(how far back its oldest entry is: how long the follower may be down before a gap).
Examples:
  lifeboat mongodb pitr status
  lifeboat --json mongodb pitr status --uri mongodb://mongo:27017/?replicaSet=rs0`,
  async run(ctx, values) {
    const { pitrStatus } = await import('../sources/mongodb/pitr.ts');
    const repo = await openRepository(ctx);
    let client: MongoClient | undefined;
    if (str(values.uri)) {
      try {
        client = (await connectFromOptions(ctx, values)).client;
        ctx.defer(() => client!.close().catch(() => {}));
      } catch (e) {
        ctx.warn(`oplog headroom unknown: ${(e as Error).message}`);
      }
    }
    return pitrStatus(repo, client);
  },
  human(r, out) {
    if (!r.replicaSets.length)
      out.line('no point-in-time recovery data (no `mongodb backup --oplog` of a replica set)');
    for (const rs of r.replicaSets) {
      out.line(`replica set ${rs.replicaSet}: ${rs.bases} base backup(s), ${rs.slices} slice(s)`);
      if (!rs.ranges.length)
        out.line('  covered: nothing (a base backup and the follower after it are needed)');
      for (const c of rs.ranges)
        out.line(`  covered: ${c.from} – ${c.until} (${c.bases.length} base(s), ${c.slices} slice(s))`);
      if (rs.newestSlice)
        out.line(
          `  newest slice ${rs.newestSlice.id.slice(0, 8)} up to ${rs.newestSlice.coveredUntil} (${formatPosition(rs.newestSlice.to)}): lag ${ago(rs.lagMs)}`,
        );
      for (const g of rs.gaps) out.line(`  GAP at ${formatPosition(g.from)} (${g.time}): ${g.message}`);
      if (rs.oplog && 'error' in rs.oplog) out.line(`  oplog: ${rs.oplog.error}`);
      else if (rs.oplog)
        out.line(`  oplog: oldest entry ${rs.oplog.oldest ?? 'none'}, headroom ${ago(rs.oplog.headroomMs)}`);
    }
  },
};
