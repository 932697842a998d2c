/**
 * Core benchmark: Lifeboat and restic side by side on the same generated data set (half pseudo-random,
 * half text-like, like a mix of uploads and logs; 1 GiB by default, LIFEBOAT_BENCH_FILES_BYTES to change),
 * each operation run by both back to back, LIFEBOAT_BENCH_ROUNDS times (default 2), best time kept.
 * Prints one table with both speeds, the ratio (Lifeboat's speed / restic's: above 1 is faster than
 * restic) and both peak RSS; then a backup after a 1% change, and the raw speed of each pipeline stage.
 *
 * restic v0.18.1 is built from the Go module proxy the first time (scripts/tools/restic.ts). When it
 * cannot be built the table says so and shows Lifeboat's figures alone.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ByteChunker, FILE_CHUNKING, gearTable } from '../src/core/chunker.ts';
import { compress } from '../src/core/compression.ts';
import { chunkId, seal } from '../src/core/crypto.ts';
import { ensureTool } from '../scripts/tools/toolbox.ts';
import { restic as resticTool } from '../scripts/tools/restic.ts';
import { GiB, MiB, mbps, measureCli, measureCommand, mib, row, sizeFromEnv, type Measured } from './lib.ts';

const WORDS =
  'the quick brown fox jumps over lazy dog rocket chat message room user channel reaction thread upload'.split(
    ' ',
  );
const FILE_BYTES = 64 * MiB;

/** 64 MiB file: 4 KiB blocks alternating pseudo-random bytes and word salad. Deterministic per seed. */
function makeFile(seed: number): Buffer {
  const size = FILE_BYTES;
  const random = createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(
    Buffer.alloc(size / 2),
  );
  const text = Buffer.alloc(size / 2);
  let o = 0;
  let x = seed * 2654435761;
  while (o < text.length) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = WORDS[x % WORDS.length];
    o += text.write(`${w} ${x % 1000} `, o);
  }
  const out = Buffer.alloc(size);
  for (let b = 0; b < size / 4096; b++)
    (b % 2 ? text : random).copy(out, b * 4096, (b >> 1) * 4096, (b >> 1) * 4096 + 4096);
  return out;
}

async function stages(): Promise<void> {
  const size = 256 * MiB;
  const data = Buffer.concat([makeFile(101), makeFile(102), makeFile(103), makeFile(104)]);
  const key = createHash('sha256').update('bench').digest();
  const time = async (label: string, fn: () => unknown | Promise<unknown>, note = '') => {
    const s = performance.now();
    await fn();
    row(label, mbps(size, performance.now() - s), note);
  };
  let chunks: Buffer[] = [];
  await time(
    'stage: FastCDC chunking (512 KiB avg)',
    () => (chunks = new ByteChunker(gearTable(key), FILE_CHUNKING).push(data)),
  );
  await time('stage: HMAC-SHA-256 chunk ids', () => chunks.forEach((c) => chunkId(key, c)));
  await time('stage: SHA-256 item hash', () => createHash('sha256').update(data).digest());
  await time('stage: zstd level 3, one thread', async () => {
    for (const c of chunks) await compress(c, { codec: 'zstd', level: 3 });
  });
  await time('stage: zstd level 3, thread pool', () =>
    Promise.all(chunks.map((c) => compress(c, { codec: 'zstd', level: 3 }))),
  );
  await time('stage: AES-256-GCM seal per chunk', () => chunks.forEach((c) => seal(key, c)));
  await time('node:crypto SHA-256', () => createHash('sha256').update(data).digest());
}

/** One tool's way of doing each operation; `undefined` results mean "not measured". */
interface Contender {
  name: string;
  init(): Promise<void>;
  backup(force: boolean): Promise<Measured>;
  restore(target: string): Promise<Measured>;
  check(): Promise<Measured>;
}

function ok(m: Measured, what: string): Measured {
  if (m.code !== 0)
    throw new Error(`${what} exited ${m.code}: ${m.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return m;
}

function lifeboat(work: string, dataDir: string): Contender {
  const env = {
    LIFEBOAT_REPO: path.join(work, 'repo-lifeboat'),
    LIFEBOAT_PASSWORD: 'bench',
    LIFEBOAT_CONFIG: '',
  };
  return {
    name: 'Lifeboat',
    init: async () => {
      await rm(env.LIFEBOAT_REPO, { recursive: true, force: true });
      ok(await measureCli(['init'], env), 'lifeboat init');
    },
    backup: async (force) =>
      ok(
        await measureCli(['files', 'backup', dataDir, '--json', ...(force ? ['--force'] : [])], env),
        'lifeboat backup',
      ),
    restore: async (target) =>
      ok(await measureCli(['files', 'restore', 'latest', '--target', target], env), 'lifeboat restore'),
    check: async () => ok(await measureCli(['check', '--read-data'], env), 'lifeboat check'),
  };
}

function restic(bin: string, work: string, dataDir: string): Contender {
  const env = {
    RESTIC_REPOSITORY: path.join(work, 'repo-restic'),
    RESTIC_PASSWORD: 'bench',
    RESTIC_CACHE_DIR: path.join(work, 'restic-cache'),
  };
  const run = async (args: string[], what: string) => ok(await measureCommand(bin, args, env), what);
  return {
    name: 'restic',
    init: async () => {
      await rm(env.RESTIC_REPOSITORY, { recursive: true, force: true });
      await rm(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
      await run(['init', '-q'], 'restic init');
    },
    backup: (force) => run(['backup', '-q', dataDir, ...(force ? ['--force'] : [])], 'restic backup'),
    restore: (target) => run(['restore', '-q', 'latest', '--target', target], 'restic restore'),
    check: () => run(['check', '-q', '--read-data'], 'restic check'),
  };
}

interface Best {
  ms: number;
  peakRss: number;
}

const OPERATIONS = [
  'backup, new data',
  'backup, unchanged data (parent snapshot skip)',
  'backup, unchanged data (--force: re-read every file)',
  'restore',
  'check --read-data',
] as const;
type Operation = (typeof OPERATIONS)[number];

async function roundOf(c: Contender, work: string): Promise<Map<Operation, Measured>> {
  const out = new Map<Operation, Measured>();
  await c.init();
  out.set('backup, new data', await c.backup(false));
  out.set('backup, unchanged data (parent snapshot skip)', await c.backup(false));
  out.set('backup, unchanged data (--force: re-read every file)', await c.backup(true));
  const target = path.join(work, `restored-${c.name}`);
  await rm(target, { recursive: true, force: true });
  out.set('restore', await c.restore(target));
  await rm(target, { recursive: true, force: true });
  out.set('check --read-data', await c.check());
  return out;
}

function keepBest(best: Map<string, Best>, key: string, m: Measured): void {
  const b = best.get(key);
  best.set(key, { ms: Math.min(b?.ms ?? Infinity, m.ms), peakRss: Math.max(b?.peakRss ?? 0, m.peakRss) });
}

export async function benchCore(): Promise<void> {
  const total = Math.max(
    FILE_BYTES,
    Math.round(sizeFromEnv('LIFEBOAT_BENCH_FILES_BYTES', GiB) / FILE_BYTES) * FILE_BYTES,
  );
  const rounds = Math.max(1, Number(process.env.LIFEBOAT_BENCH_ROUNDS ?? 2));
  console.log(
    `\n== files: Lifeboat vs restic, ${mib(total)} generated data (50% random, 50% text), local disk, best of ${rounds} ==`,
  );
  const work = await mkdtemp(path.join(tmpdir(), 'lifeboat-bench-'));
  try {
    const dataDir = path.join(work, 'data');
    await mkdir(dataDir);
    const files = total / FILE_BYTES;
    for (let i = 0; i < files; i++) await writeFile(path.join(dataDir, `part-${i}.bin`), makeFile(i + 1));

    const contenders = [lifeboat(work, dataDir)];
    let resticNote = '';
    try {
      const dir = await ensureTool(resticTool, (m) => console.log(`[bench] ${m}`));
      contenders.push(restic(path.join(dir, 'bin', 'restic'), work, dataDir));
    } catch (e) {
      resticNote = `restic not measured: it could not be built here (${String((e as Error).message).split('\n')[0]})`;
    }
    const best = new Map<string, Best>();
    // Interleaved: each round runs every contender, so a slow spell of the machine hits both.
    for (let r = 0; r < rounds; r++)
      for (const c of contenders)
        for (const [op, m] of await roundOf(c, work)) keepBest(best, `${c.name}|${op}`, m);

    const speed = (op: Operation, b: Best) =>
      op === 'backup, unchanged data (parent snapshot skip)'
        ? `${(b.ms / 1000).toFixed(2)} s`
        : mbps(total, b.ms);
    console.log(
      `${'operation'.padEnd(54)} ${'Lifeboat'.padStart(10)} ${'restic'.padStart(10)} ${'ratio'.padStart(7)}   peak RSS Lifeboat / restic`,
    );
    for (const op of OPERATIONS) {
      const l = best.get(`Lifeboat|${op}`)!;
      const r = best.get(`restic|${op}`);
      // Ratio of speeds (= restic's time / Lifeboat's): above 1.00 Lifeboat is faster.
      const ratio = r ? `${(r.ms / l.ms).toFixed(2)}×` : '—';
      console.log(
        `${op.padEnd(54)} ${speed(op, l).padStart(10)} ${(r ? speed(op, r) : '—').padStart(10)} ${ratio.padStart(7)}   ${mib(l.peakRss)} / ${r ? mib(r.peakRss) : '—'}${r ? ` (${l.peakRss - r.peakRss >= 0 ? '+' : ''}${mib(l.peakRss - r.peakRss)})` : ''}`,
      );
    }
    if (resticNote) console.log(resticNote);

    // 1% change: overwrite 1% of each file in one contiguous region, then back up again.
    for (let i = 0; i < files; i++) {
      const fh = await open(path.join(dataDir, `part-${i}.bin`), 'r+');
      await fh.write(
        createCipheriv('aes-256-ctr', Buffer.alloc(32, 200 + i), Buffer.alloc(16)).update(
          Buffer.alloc(FILE_BYTES / 100),
        ),
        0,
        undefined,
        20 * MiB,
      );
      await fh.close();
    }
    // Into the last round's Lifeboat repository, which holds the unchanged data.
    const changed = await contenders[0].backup(false);
    const added = JSON.parse(changed.stdout).bytesAdded as number;
    row(
      'Lifeboat backup after a 1% change',
      mbps(total, changed.ms),
      `added ${mib(added)} = ${((100 * added) / total).toFixed(2)}% of the data`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log('\n-- pipeline stages on this machine (256 MiB, same data mix, main thread unless said) --');
  await stages();
}
