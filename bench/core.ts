/**
 * Core benchmark: a generated 1 GiB data set (half random, half text-like, like a mix of uploads and
 * logs) backed up and restored through the real CLI on local disk; a re-backup of unchanged data; a
 * backup after a 1% change; and the raw speed of each pipeline stage beside node:crypto's own.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ByteChunker, FILE_CHUNKING, gearTable } from '../src/core/chunker.ts';
import { compress } from '../src/core/compression.ts';
import { chunkId, seal } from '../src/core/crypto.ts';
import { GiB, MiB, mbps, measureCli, mib, row } from './lib.ts';

const WORDS =
  'the quick brown fox jumps over lazy dog rocket chat message room user channel reaction thread upload'.split(
    ' ',
  );

/** 64 MiB file: 4 KiB blocks alternating pseudo-random bytes and word salad. Deterministic per seed. */
function makeFile(seed: number): Buffer {
  const size = 64 * MiB;
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
  await time('node:crypto AES-256-GCM, 1 MiB buffers', () => {
    for (let o = 0; o < size; o += MiB) {
      const c = createCipheriv('aes-256-gcm', key, Buffer.alloc(12));
      c.update(data.subarray(o, o + MiB));
      c.final();
    }
  });
  await time('node:crypto SHA-256', () => createHash('sha256').update(data).digest());
}

export async function benchCore(): Promise<void> {
  console.log('\n== core: local repository, 1 GiB generated data set (50% random, 50% text) ==');
  const work = await mkdtemp(path.join(tmpdir(), 'lifeboat-bench-'));
  try {
    const dataDir = path.join(work, 'data');
    await mkdir(dataDir);
    const files = GiB / (64 * MiB);
    for (let i = 0; i < files; i++) await writeFile(path.join(dataDir, `part-${i}.bin`), makeFile(i + 1));
    const env = { LIFEBOAT_REPO: path.join(work, 'repo'), LIFEBOAT_PASSWORD: 'bench', LIFEBOAT_CONFIG: '' };
    await measureCli(['init'], env);

    const first = await measureCli(['files', 'backup', dataDir, '--json'], env);
    if (first.code !== 0) throw new Error(first.stderr);
    const b1 = JSON.parse(first.stdout);
    row(
      'backup, new data',
      mbps(GiB, first.ms),
      `peak RSS ${mib(first.peakRss)}, stored ${mib(b1.bytesAdded)}`,
    );

    const second = await measureCli(['files', 'backup', dataDir, '--json'], env);
    row('backup, unchanged data (re-backup)', mbps(GiB, second.ms), `peak RSS ${mib(second.peakRss)}`);

    // 1% change: overwrite 1% of each file in one contiguous region.
    for (let i = 0; i < files; i++) {
      const fh = await open(path.join(dataDir, `part-${i}.bin`), 'r+');
      await fh.write(
        createCipheriv('aes-256-ctr', Buffer.alloc(32, 200 + i), Buffer.alloc(16)).update(
          Buffer.alloc((64 * MiB) / 100),
        ),
        0,
        undefined,
        20 * MiB,
      );
      await fh.close();
    }
    const third = await measureCli(['files', 'backup', dataDir, '--json'], env);
    const b3 = JSON.parse(third.stdout);
    row(
      'backup after a 1% change',
      mbps(GiB, third.ms),
      `added ${mib(b3.bytesAdded)} = ${((100 * b3.bytesAdded) / GiB).toFixed(2)}% of the data`,
    );

    const restore = await measureCli(
      ['files', 'restore', 'latest', '--target', path.join(work, 'restored'), '--json'],
      env,
    );
    if (restore.code !== 0) throw new Error(restore.stderr);
    row('restore', mbps(GiB, restore.ms), `peak RSS ${mib(restore.peakRss)}`);

    const check = await measureCli(['check', '--read-data', '--json'], env);
    row('check --read-data', mbps(b1.bytesAdded + b3.bytesAdded, check.ms), `peak RSS ${mib(check.peakRss)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log('\n-- pipeline stages on this machine (256 MiB, same data mix) --');
  await stages();
}
