/**
 * `lifeboat copy` through the CLI over real storage: local → Azurite → versitygw → local, each repository
 * with its own passphrase; records in both; a wrong target key refused before anything is written; the
 * target's own retention.
 */
import assert from 'node:assert/strict';
import { readdir, writeFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { azureBackend, localBackend, s3Backend } from '../env/backends.ts';
import { pseudoRandom } from '../env/data.ts';

const MiB = 1024 * 1024;

let work: TempDir;
before(async () => {
  work = await tempDir('lifeboat-copy-');
});
after(() => work.cleanup());

async function tree(dir: string, files: Record<string, Buffer>) {
  await mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(dir, name), data);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

describe('copy between locations', () => {
  test('local → Azurite → versitygw → local, own keys, resumable by content, verified, recorded', async () => {
    const src = await localBackend.create();
    const az = await azureBackend.create();
    const s3 = await s3Backend.create();
    const back = await localBackend.create();
    try {
      const env = { ...az.env, ...s3.env, XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
      const as = (repo: string, pw: string) => ({
        env: { ...env, LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: pw },
      });
      for (const [url, pw] of [
        [src.url, 'pw-source'],
        [az.url, 'pw-azure'],
        [s3.url, 'pw-s3'],
        [back.url, 'pw-back'],
      ])
        assert.equal((await runCli(['init', '--pack-size', '1'], as(url, pw))).code, 0);

      const data = path.join(work.path, 'data');
      const files = { a: pseudoRandom('a', 3 * MiB), b: pseudoRandom('b', 2 * MiB), c: Buffer.from('small') };
      await tree(data, files);
      let r = await runCli(['files', 'backup', data, '--json'], as(src.url, 'pw-source'));
      assert.equal(r.code, 0, r.stderr);

      const copy = (from: string, fromPw: string, to: string, toPw: string, ...extra: string[]) =>
        runCli(['copy', '--to', to, '--json', ...extra], {
          env: { ...as(from, fromPw).env, LIFEBOAT_TO_PASSWORD: toPw },
        });

      const dry = await copy(src.url, 'pw-source', az.url, 'pw-azure', '--dry-run');
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal(dry.json.toCopy.length, 1);
      assert.equal(
        (await runCli(['snapshots', '--json'], as(az.url, 'pw-azure'))).json.length,
        0,
        'dry run copied nothing',
      );

      const first = await copy(src.url, 'pw-source', az.url, 'pw-azure', '--verify');
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.json.copied.length, 1);
      assert.equal(first.json.copied[0].verified, true);
      assert.doesNotMatch(
        first.stdout + first.stderr,
        /Eby2vVCDXSR|AccountKey=[^*]/,
        'no storage key in output',
      );

      // A day of changes: one file edited a little, a new small one.
      const edited = Buffer.from(files.a);
      edited.fill(1, MiB, MiB + 4096);
      await tree(data, { a: edited, d: Buffer.from('new file') });
      r = await runCli(['files', 'backup', data, '--json'], as(src.url, 'pw-source'));
      assert.equal(r.code, 0, r.stderr);
      const second = await copy(src.url, 'pw-source', az.url, 'pw-azure');
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.json.copied.length, 1);
      assert.equal(second.json.present, 1, 'the first snapshot is recognised by content');
      assert.ok(
        second.json.bytesAdded < first.json.bytesAdded / 3,
        `second copy stored ${second.json.bytesAdded} bytes, the first ${first.json.bytesAdded}`,
      );

      // Onwards to S3 and back to a local repository: the times and hosts survive every hop.
      assert.equal((await copy(az.url, 'pw-azure', s3.url, 'pw-s3')).code, 0);
      const home = await copy(s3.url, 'pw-s3', back.url, 'pw-back', '--verify');
      assert.equal(home.code, 0, home.stderr);
      assert.equal(home.json.copied.length, 2);
      const original = (await runCli(['snapshots', '--json'], as(src.url, 'pw-source'))).json;
      const returned = (await runCli(['snapshots', '--json'], as(back.url, 'pw-back'))).json;
      const strip = (rows: { time: string; host: string; type: string; size: number }[]) =>
        rows.map((s) => [s.type, s.time, s.host, s.size]).sort();
      assert.deepEqual(strip(returned), strip(original));
      // Copying back into the source finds everything already there.
      const loop = await copy(back.url, 'pw-back', src.url, 'pw-source');
      assert.equal(loop.json.copied.length, 0);
      assert.equal(loop.json.present, 2);

      for (const [url, pw] of [
        [az.url, 'pw-azure'],
        [s3.url, 'pw-s3'],
        [back.url, 'pw-back'],
      ]) {
        const check = await runCli(['check', '--read-data', '--json'], as(url, pw));
        assert.equal(check.code, 0, `${url}: ${check.stderr}`);
      }
      const restored = path.join(work.path, 'restored');
      const rr = await runCli(['files', 'restore', 'latest', '--target', restored], as(back.url, 'pw-back'));
      assert.equal(rr.code, 0, rr.stderr);
      const restoredRoot = path.join(restored, path.basename(data));
      assert.ok((await readFile(path.join(restoredRoot, 'a'))).equals(edited));
      assert.equal((await readFile(path.join(restoredRoot, 'd'))).toString(), 'new file');
    } finally {
      await Promise.all([src.cleanup(), az.cleanup(), s3.cleanup(), back.cleanup()]);
    }
  });

  test('a wrong target key is refused before anything is written; the target keeps its own retention', async () => {
    const src = await localBackend.create();
    const dst = await localBackend.create();
    try {
      const env = { XDG_CONFIG_HOME: path.join(work.path, 'cfg2') };
      const as = (repo: string, pw: string) => ({
        env: { ...env, LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: pw },
      });
      assert.equal((await runCli(['init'], as(src.url, 'one'))).code, 0);
      assert.equal((await runCli(['init'], as(dst.url, 'two'))).code, 0);
      const data = path.join(work.path, 'd2');
      for (let i = 0; i < 3; i++) {
        await tree(data, { f: pseudoRandom(`f${i}`, 64 * 1024) });
        assert.equal((await runCli(['files', 'backup', data], as(src.url, 'one'))).code, 0);
      }
      const before = await countFiles(dst.url);
      const wrong = await runCli(['copy', '--to', dst.url, '--json'], {
        env: { ...as(src.url, 'one').env, LIFEBOAT_TO_PASSWORD: 'not-two' },
      });
      assert.equal(wrong.code, 1);
      assert.equal(wrong.json.error.code, 'WRONG_KEY');
      assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
      assert.equal(await countFiles(dst.url), before, 'nothing was written to the target');

      const same = await runCli(['copy', '--to', src.url], {
        env: { ...as(src.url, 'one').env, LIFEBOAT_TO_PASSWORD: 'one' },
      });
      assert.equal(same.code, 2);
      assert.match(same.stderr, /is the source repository itself/);

      const ok = await runCli(['copy', '--to', dst.url, '--keep-last', '1', '--json'], {
        env: { ...as(src.url, 'one').env, LIFEBOAT_TO_PASSWORD: 'two' },
      });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.json.copied.length, 3);
      assert.equal(ok.json.retention.removed, 2, 'the target kept only what its own policy keeps');
      assert.equal((await runCli(['snapshots', '--json'], as(dst.url, 'two'))).json.length, 1);
      assert.equal(
        (await runCli(['snapshots', '--json'], as(src.url, 'one'))).json.length,
        3,
        'the source kept all',
      );
      // The copy is recorded in both repositories (records/ holds one `copy` record in each).
      for (const dir of [src.url, dst.url]) {
        const names = await readdir(path.join(dir, 'records'));
        assert.equal(names.filter((n) => n.startsWith('copy_')).length, 1, dir);
      }
    } finally {
      await Promise.all([src.cleanup(), dst.cleanup()]);
    }
  });
});
