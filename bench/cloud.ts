/**
 * Backup/restore throughput of the real CLI against the cloud emulators (Azurite, versitygw), beside
 * the local disk, at several upload concurrencies, with the peak RSS of the lifeboat process.
 * `benchCloud()` is what `npm run bench` (bench/run.ts) calls; `node bench/cloud.ts [MiB]` runs it alone.
 *
 * Numbers are for comparing backends and settings on one machine: the emulators store on the local
 * disk, so they measure Lifeboat's client side (chunking, packing, request overhead), not Azure or S3.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKENDS, type BackendUnderTest } from '../test/env/backends.ts';
import { pseudoRandom } from '../test/env/data.ts';
import { tempDir } from '../test/env/index.ts';
import { measureCli } from './lib.ts';

export interface CloudBenchResult {
  backend: string;
  concurrency: number;
  bytes: number;
  backupMiBps: number;
  restoreMiBps: number;
  backupPeakRssMiB: number;
  restorePeakRssMiB: number;
}

export async function benchCloud(
  options: {
    sizeMiB?: number;
    concurrencies?: number[];
    backends?: BackendUnderTest[];
    log?: (line: string) => void;
  } = {},
): Promise<CloudBenchResult[]> {
  const sizeMiB = options.sizeMiB ?? 256;
  const concurrencies = options.concurrencies ?? [1, 4, 8];
  const log = options.log ?? ((l: string) => console.error(l));
  const work = await tempDir('lifeboat-bench-cloud-');
  const results: CloudBenchResult[] = [];
  try {
    const src = path.join(work.path, 'src');
    await mkdir(src);
    // Incompressible data, in a few files: measures transfer, not zstd.
    const files = 4;
    for (let i = 0; i < files; i++)
      await writeFile(
        path.join(src, `f${i}.bin`),
        pseudoRandom(`bench-${i}`, Math.floor((sizeMiB * 1024 * 1024) / files)),
      );
    const bytes = Math.floor((sizeMiB * 1024 * 1024) / files) * files;
    for (const b of options.backends ?? BACKENDS) {
      for (const concurrency of b.name === 'local' ? [1] : concurrencies) {
        const loc = await b.create();
        try {
          const env = {
            ...loc.env,
            LIFEBOAT_PASSWORD: 'bench',
            LIFEBOAT_UPLOAD_CONCURRENCY: String(concurrency),
            XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
            LIFEBOAT_CONFIG: '',
          };
          const init = await measureCli(['--repo', loc.url, 'init'], env);
          if (init.code !== 0) throw new Error(`init on ${b.name} failed: ${init.stderr}`);
          const backup = await measureCli(['--repo', loc.url, 'files', 'backup', src], env);
          if (backup.code !== 0) throw new Error(`backup on ${b.name} failed: ${backup.stderr}`);
          const target = path.join(work.path, `restore-${results.length}`);
          const restore = await measureCli(
            ['--repo', loc.url, 'files', 'restore', 'latest', '--target', target],
            env,
          );
          if (restore.code !== 0) throw new Error(`restore on ${b.name} failed: ${restore.stderr}`);
          const r: CloudBenchResult = {
            backend: b.name,
            concurrency,
            bytes,
            backupMiBps: bytes / 1048576 / (backup.ms / 1000),
            restoreMiBps: bytes / 1048576 / (restore.ms / 1000),
            backupPeakRssMiB: backup.peakRss / 1048576,
            restorePeakRssMiB: restore.peakRss / 1048576,
          };
          results.push(r);
          log(
            `${r.backend.padEnd(16)} concurrency ${String(concurrency).padStart(2)}: backup ${r.backupMiBps.toFixed(1)} MiB/s (peak RSS ${r.backupPeakRssMiB.toFixed(0)} MiB), restore ${r.restoreMiBps.toFixed(1)} MiB/s (peak RSS ${r.restorePeakRssMiB.toFixed(0)} MiB)`,
          );
        } finally {
          await loc.cleanup();
        }
      }
    }
  } finally {
    await work.cleanup();
  }
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sizeMiB = Number(process.argv[2] ?? 256);
  const results = await benchCloud({ sizeMiB });
  console.log(JSON.stringify(results, null, 2));
  // The emulators are children of this process; exit explicitly so they stop with it.
  process.exit(0);
}
