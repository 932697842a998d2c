/**
 * MongoDB restore drill: the snapshot is restored with the restore's own library functions
 * (planRestore → inspectTargets → applyRestore, which verifies count and content hash of every collection)
 * into a scratch database `lifeboat_drill_<id>` — on the same server, or on a scratch server — renamed
 * with the restore's namespace renaming, then dropped. A snapshot of several databases gets one scratch
 * database per source database (`lifeboat_drill_<id>_<n>`). The scratch database is new, so the restore
 * needs no rollback and never writes a pre-restore snapshot.
 */
import type { MongoClient } from 'mongodb';
import { LifeboatError } from '../../core/errors.ts';
import type { Snapshot } from '../../core/repository/model.ts';
import { itemMeta } from '../../sources/mongodb/backup.ts';
import { NamespaceFilter, NamespaceRenamer } from '../../sources/mongodb/nsfilter.ts';
import { applyRestore, inspectTargets, planRestore } from '../../sources/mongodb/restore.ts';
import { type LayerDrill, type LayerDrillContext, type LayerDrillResult } from './types.ts';

export const SCRATCH_DB_PREFIX = 'lifeboat_drill_';
const SCRATCH_DB_RE = /^lifeboat_drill_(\d{8})_(\d{6})_([0-9a-f]{6})(?:_\d+)?$/;

export function scratchDatabase(drillId: string, index?: number): string {
  return `${SCRATCH_DB_PREFIX}${drillId.replace(/-/g, '_')}${index === undefined ? '' : `_${index}`}`;
}

/** The drill id in a scratch database's name, or undefined for any other database. */
export function drillOfDatabase(name: string): string | undefined {
  const m = SCRATCH_DB_RE.exec(name);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

async function listScratchDatabases(client: MongoClient): Promise<string[]> {
  const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
  return databases.map((d) => d.name).filter((n) => drillOfDatabase(n) !== undefined);
}

/**
 * `connect` opens a new client each time it is called: the restore gets its own, which is closed at
 * once if the restore fails or is interrupted (so that no insert still queued in the driver reaches the
 * server), and the scratch databases are dropped through a fresh one.
 */
export function mongodbDrill(connect: () => Promise<MongoClient>, target: string): LayerDrill {
  let client: MongoClient | undefined;
  const main = async () => (client ??= await connect());
  return {
    layer: 'mongodb',
    async cleanupLeftovers(ctx: LayerDrillContext) {
      const removed: string[] = [];
      const client = await main();
      for (const db of await listScratchDatabases(client)) {
        const id = drillOfDatabase(db)!;
        if (id === ctx.drillId || !(await ctx.isAbandoned(id))) continue;
        await client.db(db).dropDatabase();
        removed.push(`database ${db} (drill ${id})`);
      }
      return removed;
    },
    async run(ctx: LayerDrillContext, snapshot: Snapshot): Promise<LayerDrillResult> {
      const databases = [
        ...new Set(snapshot.items.filter((i) => i.kind !== 'oplog').map((i) => itemMeta(i).db)),
      ]
        .filter((db) => !['admin', 'local', 'config'].includes(db))
        .sort();
      if (databases.length === 0)
        throw new LifeboatError(
          'NOT_FOUND',
          `mongodb snapshot ${snapshot.id.slice(0, 8)} holds no database to restore`,
          {
            hint: 'check the backup (`lifeboat show ' + snapshot.id.slice(0, 8) + '`)',
          },
        );
      const scratch = new Map(
        databases.map((db, i) => [db, scratchDatabase(ctx.drillId, databases.length > 1 ? i : undefined)]),
      );
      const renamer = new NamespaceRenamer(
        databases.map((db) => `${db}.*`),
        databases.map((db) => `${scratch.get(db)}.*`),
      );
      // Dropped in the finally below, and once more when the command ends. After a failure the restore's
      // client is closed first, and the drop repeated until the databases stay gone: an insert the
      // server was still running when the restore gave up could otherwise recreate one.
      const names = [...scratch.values()];
      let restoreClient: MongoClient | undefined;
      let failed = false;
      const drop = async (rounds = 12) => {
        if (failed && restoreClient) await restoreClient.close(true).catch(() => {});
        const c = await main();
        for (let round = 0; round < rounds; round++) {
          for (const db of names) await c.db(db).dropDatabase();
          if (!failed) return;
          await new Promise((r) => setTimeout(r, 250));
          const left = (await listScratchDatabases(c)).filter((d) => names.includes(d));
          if (left.length === 0) return;
        }
      };
      ctx.defer(() => drop(1));
      try {
        const client = await main();
        for (const db of await listScratchDatabases(client))
          if ([...scratch.values()].includes(db))
            throw new LifeboatError('CONFLICT', `scratch database ${db} already exists`, {
              hint: 'another drill with the same id is running; run the drill again',
            });
        const plan = planRestore(snapshot, new NamespaceFilter(), renamer);
        restoreClient = await connect();
        await inspectTargets(restoreClient, plan);
        ctx.note(
          `lifeboat: restoring mongodb ${snapshot.id.slice(0, 8)} into ${[...scratch.values()].join(', ')} on ${target}`,
        );
        const result = await applyRestore({
          client: restoreClient,
          repo: ctx.repo,
          plan,
          drop: false,
          // A fresh scratch database: nothing to roll back to, and no pre-restore snapshot to write.
          rollback: false,
          verify: true,
          signal: ctx.signal,
          note: ctx.note,
        });
        const unverified = result.collections.filter((c) => !c.verified && c.type !== 'view');
        if (unverified.length)
          throw new LifeboatError(
            'VERIFY_FAILED',
            `${unverified.length} collection(s) restored without verification: ${unverified.map((c) => c.source).join(', ')}`,
            { hint: 'report it: a drill always verifies' },
          );
        const warnings = result.notRestored.map((n) => `${n.ns}: ${n.what} not restored (${n.reason})`);
        return {
          summary: {
            target,
            scratchDatabases: [...scratch.values()].join(','),
            collections: result.collections.length,
            collectionsVerified: result.collections.filter((c) => c.verified).length,
            documents: result.collections.reduce((n, c) => n + c.count, 0),
            bytes: plan.entries.reduce((n, e) => n + e.item.size, 0),
            hashesVerified: result.collections.filter((c) => c.verified).length,
            notRestored: result.notRestored.length,
          },
          warnings,
        };
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        await drop();
        await restoreClient?.close().catch(() => {});
        ctx.note(`lifeboat: dropped scratch database(s) ${[...scratch.values()].join(', ')}`);
      }
    },
    close: async () => {
      await client?.close();
    },
  };
}
