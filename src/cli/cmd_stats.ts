import { usedBlobs } from '../core/repository/prune.ts';
import type { Command } from './command.ts';
import { formatBytes } from './output.ts';
import { openRepository } from './repo.ts';

interface Stats {
  snapshots: number;
  byType: Record<string, number>;
  logicalBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  packs: number;
  blobs: number;
  dedupRatio: number;
  compressionRatio: number;
}

export const statsCommand: Command<Stats> = {
  path: ['stats'],
  summary: 'logical vs stored bytes, deduplication and compression ratios',
  options: {},
  async run(ctx) {
    const repo = await openRepository(ctx);
    const snapshots = await repo.listSnapshots({ purpose: 'any' });
    const byType: Record<string, number> = {};
    let logicalBytes = 0;
    for (const s of snapshots) {
      byType[s.type] = (byType[s.type] ?? 0) + 1;
      for (const i of s.items) logicalBytes += i.size;
    }
    const index = await repo.loadIndex(true);
    let uniqueBytes = 0;
    let sealedBytes = 0;
    for (const id of await usedBlobs(repo)) {
      const e = index.get(id);
      if (!e || e.type !== 'data') continue;
      uniqueBytes += e.rawLength;
      sealedBytes += e.length;
    }
    let storedBytes = 0;
    let packs = 0;
    for await (const o of repo.backend.list('data')) {
      storedBytes += o.size;
      packs++;
    }
    return {
      snapshots: snapshots.length,
      byType,
      logicalBytes,
      uniqueBytes,
      storedBytes,
      packs,
      blobs: index.size,
      dedupRatio: storedBytes ? logicalBytes / storedBytes : 0,
      compressionRatio: sealedBytes ? uniqueBytes / sealedBytes : 0,
    };
  },
  human(s, out) {
    out.line(
      `${s.snapshots} snapshots (${
        Object.entries(s.byType)
          .map(([t, n]) => `${n} ${t}`)
          .join(', ') || 'none'
      })`,
    );
    out.line(
      `logical ${formatBytes(s.logicalBytes)}, unique ${formatBytes(s.uniqueBytes)}, stored ${formatBytes(s.storedBytes)} in ${s.packs} packs`,
    );
    out.line(
      `dedup+compression ratio ${s.dedupRatio.toFixed(2)}x, compression alone ${s.compressionRatio.toFixed(2)}x`,
    );
  },
};
