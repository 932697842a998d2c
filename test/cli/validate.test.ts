// `lifeboat validate` and the guide's validation wrappers, on a local repository (no server needed).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { openBackend } from '../../src/core/storage/open.ts';
import { runCli } from '../env/cli.ts';
import { pseudoRandom } from '../env/data.ts';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';

let work: TempDir;
let env: NodeJS.ProcessEnv;
before(async () => {
  work = await tempDir();
  env = { LIFEBOAT_REPO: path.join(work.path, 'repo'), LIFEBOAT_PASSWORD: 'pw' };
  assert.equal((await runCli(['init'], { env })).code, 0);
  const b = await runCli(
    ['files', 'backup', '--stdin', '--stdin-filename', 'state.tfstate', '--type', 'terraform', '--json'],
    { env, input: pseudoRandom('tf', 3 * 1024 * 1024) },
  );
  assert.equal(b.code, 0, b.stderr);
});
after(() => work.cleanup());

const run = promisify(execFile);
async function wrapper(
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(path.join(PROJECT_ROOT, 'scripts/backup', script), args, {
      env: { ...process.env, ...env },
    });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test('validate reads the newest snapshot of each type back in full', async () => {
  const r = await runCli(['validate', '--read-back', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.results.length, 1);
  assert.equal(r.json.results[0].type, 'terraform');
  assert.equal(r.json.results[0].status, 'ok');
  assert.equal(r.json.results[0].bytes, 3 * 1024 * 1024);
  const missing = await runCli(['validate', '--type', 'mongodb', '--json'], { env });
  assert.equal(missing.code, 1);
  assert.equal(missing.json.results[0].status, 'missing');
  const stale = await runCli(['validate', '--max-age', '0h', '--json'], { env });
  assert.equal(stale.code, 1);
  assert.equal(stale.json.results[0].status, 'stale');
});

test('the guide wrappers: backup-validation.sh and backup-integrity-check.sh report damage with exit 3', async () => {
  const ok = await wrapper('backup-validation.sh', ['--type', 'terraform']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /terraform\s+ok/);
  const full = await wrapper('backup-integrity-check.sh', ['--component', 'terraform']);
  assert.equal(full.code, 0, full.stderr);

  const backend = await openBackend(env.LIFEBOAT_REPO!);
  let pack = '';
  for await (const o of backend.list('data')) pack = o.name;
  const bytes = await backend.load({ type: 'data', name: pack });
  const bad = Buffer.from(bytes);
  bad[100] ^= 1;
  await backend.save({ type: 'data', name: pack }, bad, { overwrite: true });
  const damaged = await wrapper('backup-validation.sh', ['--read-back']);
  assert.equal(damaged.code, 3);
  assert.match(damaged.stdout, /terraform\s+damaged/);
  const integrity = await wrapper('backup-integrity-check.sh', []);
  assert.equal(integrity.code, 3);
  assert.match(integrity.stdout, new RegExp(`pack ${pack}`));
  await backend.save({ type: 'data', name: pack }, bytes, { overwrite: true });
});
