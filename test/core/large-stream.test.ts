// A multi-GiB stream, generated on the fly, backs up with flat memory (local repository; no server).
// Memory is measured (peak RSS of the CLI process from /proc), not time.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, spawnCli } from '../env/cli.ts';
import { pseudoRandomStream } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const GiB = 1024 * 1024 * 1024;
let work: TempDir;
let env: NodeJS.ProcessEnv;

before(async () => {
  work = await tempDir();
  env = { LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_REPO: path.join(work.path, 'repo') };
  assert.equal((await runCli(['init'], { env })).code, 0);
});
after(() => work.cleanup());

async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

async function backupStream(
  size: number,
  seed: string,
): Promise<{ peak: number; json: { bytesProcessed: number } }> {
  const child = spawnCli(['files', 'backup', '--stdin', '--stdin-filename', `${seed}.bin`, '--json'], {
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const closed = new Promise<number | null>((r) => child.on('close', r));
  let peak = 0;
  const poll = setInterval(async () => (peak = Math.max(peak, await peakRssOf(child.pid!))), 100);
  for await (const part of pseudoRandomStream(seed, size)) {
    if (!child.stdin!.write(part)) await new Promise((r) => child.stdin!.once('drain', r));
  }
  child.stdin!.end();
  const code = await closed;
  clearInterval(poll);
  assert.equal(code, 0, stderr);
  return { peak, json: JSON.parse(stdout) };
}

test('memory stays flat as the stream grows from 256 MiB to 3 GiB', async (t) => {
  const small = await backupStream(256 * 1024 * 1024, 'small');
  const large = await backupStream(3 * GiB, 'large');
  assert.equal(large.json.bytesProcessed, 3 * GiB);
  t.diagnostic(
    `peak RSS: ${(small.peak / 2 ** 20).toFixed(0)} MiB for 256 MiB, ${(large.peak / 2 ** 20).toFixed(0)} MiB for 3 GiB`,
  );
  assert.ok(small.peak > 0 && large.peak > 0, 'RSS was sampled');
  // Flat: 12x the data may not cost more than 64 MiB more memory. The 300 MiB budget itself is a
  // benchmark target (npm run bench, docs/performance.md): on a loaded machine garbage collection lags
  // and the same backup peaks 20-40 MiB higher, so the ceiling here only catches gross regressions.
  assert.ok(large.peak - small.peak < 64 * 2 ** 20, `RSS grew from ${small.peak} to ${large.peak}`);
  assert.ok(large.peak < 384 * 2 ** 20, `peak RSS ${large.peak} bytes exceeds 384 MiB`);
});
