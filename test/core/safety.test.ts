// The repository under unattended, concurrent and interrupted runs, and after damage — issue 9's findings,
// each reproduced through the real CLI (child processes) on a local repository, and the restore-vs-prune
// race on every backend in test/env/backends.ts (Azurite and versitygw when installed).
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openBackend } from '../../src/core/storage/open.ts';
import type { Backend } from '../../src/core/storage/backend.ts';
import { BACKENDS } from '../env/backends.ts';
import { runCli, spawnCli, type CliResult } from '../env/cli.ts';
import { pseudoRandom } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';

const PASSWORD = 'safety first';

function flipByte(file: string, at: number): Promise<void> {
  return readFile(file).then((b) => {
    b[at % b.length] ^= 0x01;
    return writeFile(file, b);
  });
}

async function listNames(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).filter((n) => !n.startsWith('.'));
}

/** A local repository with three files snapshots (s1, s2, s3), each of a different directory. */
async function threeSnapshots(work: TempDir, packSize?: string) {
  const repo = path.join(work.path, 'repo');
  const env = { LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    runCli(['--repo', repo, ...args], { env: { ...env, ...extra }, cwd: work.path });
  const init = await cli(['init', ...(packSize ? ['--pack-size', packSize] : [])]);
  assert.equal(init.code, 0, init.stderr);
  const ids: string[] = [];
  const data: Buffer[] = [];
  for (const n of [1, 2, 3]) {
    const dir = path.join(work.path, `s${n}`);
    await mkdir(dir, { recursive: true });
    data.push(pseudoRandom(`safety-${n}-${work.path}`, 1_500_000));
    await writeFile(path.join(dir, 'f.bin'), data[n - 1]);
    const b = await cli(['files', 'backup', dir, '--json']);
    assert.equal(b.code, 0, b.stderr);
    ids.push(b.json.id);
  }
  return { repo, env, cli, ids, data };
}

function lastLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  return lines[lines.length - 1];
}

describe('a damaged object affects only what depends on it (finding 1)', () => {
  let work: TempDir;
  before(async () => {
    work = await tempDir();
  });
  after(async () => work?.cleanup());

  test('one flipped byte in an old snapshot: list, restore and forget everything else; say it once', async () => {
    const { repo, cli, ids, data } = await threeSnapshots(work);
    await flipByte(path.join(repo, 'snapshots', ids[0]), 40);

    const list = await cli(['snapshots', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      list.json.map((s: { id: string }) => s.id),
      ids.slice(1),
    );
    const warnings = list.stderr.split('\n').filter((l) => l.includes(ids[0]));
    assert.equal(warnings.length, 1, `said once: ${list.stderr}`);

    const latest = await cli(['files', 'restore', 'latest', '--target', path.join(work.path, 'r-latest')]);
    assert.equal(latest.code, 0, latest.stderr);
    assert.ok((await readFile(path.join(work.path, 'r-latest', 's3', 'f.bin'))).equals(data[2]));
    const byId = await cli(['files', 'restore', ids[1].slice(0, 8), '--target', path.join(work.path, 'r-2')]);
    assert.equal(byId.code, 0, byId.stderr);
    assert.ok((await readFile(path.join(work.path, 'r-2', 's2', 'f.bin'))).equals(data[1]));

    const damaged = await cli([
      'files',
      'restore',
      ids[0].slice(0, 8),
      '--target',
      path.join(work.path, 'r-1'),
    ]);
    assert.equal(damaged.code, 3);
    assert.match(lastLine(damaged), /cannot restore from snapshot .*forget/);

    const check = await cli(['check']);
    assert.equal(check.code, 3);
    assert.match(check.stdout, /damage found: 1 snapshot\(s\) affected/);
    assert.doesNotMatch(check.stdout, /0 snapshot\(s\) affected/);
    assert.match(check.stdout, /next: lifeboat repair snapshots/);

    const report = await cli(['repair', 'snapshots', '--json']);
    assert.equal(report.code, 3, report.stderr);
    assert.deepEqual(
      report.json.broken.map((b: { id: string }) => b.id),
      [ids[0]],
    );
    assert.ok(
      (await listNames(path.join(repo, 'snapshots'))).includes(ids[0]),
      'report only changes nothing',
    );

    const forget = await cli(['forget', ids[0].slice(0, 8)]);
    assert.equal(forget.code, 0, forget.stderr);
    assert.deepEqual((await listNames(path.join(repo, 'snapshots'))).sort(), ids.slice(1).sort());
    const clean = await cli(['check', '--read-data']);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  });

  test('one flipped byte in an index file: restores that need nothing from it work; check says it once; repair index heals', async () => {
    const sub = await tempDir();
    try {
      const { repo, cli, ids, data } = await threeSnapshots(sub, '1');
      const indexFiles = await listNames(path.join(repo, 'index'));
      assert.equal(indexFiles.length, 3, 'one index file per backup');
      // Find which snapshot depends on which index file by damaging one and seeing which restores fail.
      await flipByte(path.join(repo, 'index', indexFiles[0]), 30);
      const outcomes: number[] = [];
      for (const [i, id] of ids.entries()) {
        const r = await cli(['files', 'restore', id, '--target', path.join(sub.path, `r${i}`)]);
        outcomes.push(r.code!);
        if (r.code === 0)
          assert.ok((await readFile(path.join(sub.path, `r${i}`, `s${i + 1}`, 'f.bin'))).equals(data[i]));
        else assert.match(lastLine(r), /repair index/);
      }
      assert.equal(
        outcomes.filter((c) => c === 0).length,
        2,
        `exactly one snapshot needs the damaged index: ${outcomes}`,
      );

      const check = await cli(['check']);
      assert.equal(check.code, 3);
      const lines = check.stdout.trim().split('\n');
      assert.ok(lines.length < 10, `a few lines, not one per pack:\n${check.stdout}`);
      assert.equal(lines.filter((l) => l.includes(indexFiles[0].slice(0, 12))).length, 1, check.stdout);
      assert.match(check.stdout, /next: lifeboat repair index/);

      const prune = await cli(['prune']);
      assert.equal(prune.code, 3, 'prune refuses: it would delete packs only the damaged index lists');
      assert.match(lastLine(prune), /repair index/);

      const repair = await cli(['repair', 'index', '--json']);
      assert.equal(repair.code, 0, repair.stderr);
      assert.ok(repair.json.headersRead >= 1);
      assert.ok(
        !(await listNames(path.join(repo, 'index'))).includes(indexFiles[0]),
        'the damaged file is gone',
      );
      const after = await cli(['check', '--read-data']);
      assert.equal(after.code, 0, after.stdout + after.stderr);
      for (const [i, id] of ids.entries()) {
        const r = await cli(['files', 'restore', id, '--target', path.join(sub.path, `again${i}`)]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok((await readFile(path.join(sub.path, `again${i}`, `s${i + 1}`, 'f.bin'))).equals(data[i]));
      }
    } finally {
      await sub.cleanup();
    }
  });

  test('a deleted pack: repair snapshots --forget removes only the snapshots that needed it, then prune runs', async () => {
    const sub = await tempDir();
    try {
      const { repo, cli, ids } = await threeSnapshots(sub, '1');
      const show = await cli(['check', '--json']);
      assert.equal(show.code, 0);
      // The pack holding s1's data: restore each snapshot after removing candidates one at a time would be
      // slow; instead remove one pack and let check say which snapshots it affects.
      const fanout = await listNames(path.join(repo, 'data'));
      const victim = (await listNames(path.join(repo, 'data', fanout[0])))[0];
      await rm(path.join(repo, 'data', fanout[0], victim));
      const check = await cli(['check', '--json']);
      assert.equal(check.code, 3);
      const affected: string[] = check.json.damagedSnapshots;
      assert.ok(affected.length >= 1 && affected.length < 3, `some, not all: ${affected}`);
      const repair = await cli(['repair', 'snapshots', '--forget', '--json']);
      assert.equal(repair.code, 0, repair.stderr);
      assert.deepEqual(repair.json.broken.map((b: { id: string }) => b.id).sort(), [...affected].sort());
      const left = await cli(['snapshots', '--json']);
      assert.deepEqual(
        left.json.map((s: { id: string }) => s.id).sort(),
        ids.filter((id) => !affected.includes(id)).sort(),
      );
      const prune = await cli(['prune']);
      assert.equal(prune.code, 0, prune.stderr);
      const clean = await cli(['check', '--read-data']);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    } finally {
      await sub.cleanup();
    }
  });
});

for (const backendUnderTest of BACKENDS) {
  describe(`restores hold a shared lock: a prune cannot pull packs from under them (finding 2), ${backendUnderTest.name}`, () => {
    let work: TempDir;
    let loc: Awaited<ReturnType<typeof backendUnderTest.create>>;
    let backend: Backend;
    before(async () => {
      work = await tempDir();
      loc = await backendUnderTest.create();
      backend = await openBackend(loc.url, { ...process.env, ...loc.env });
    });
    after(async () => {
      await backend?.close();
      await loc?.cleanup();
      await work?.cleanup();
    });

    test('forget --prune during files restore is refused; the restore completes byte for byte', async () => {
      const env = { ...loc.env, LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
      const cli = (args: string[]) => runCli(['--repo', loc.url, ...args], { env, cwd: work.path });
      assert.equal((await cli(['init'])).code, 0);
      const src = path.join(work.path, 'big');
      await mkdir(src, { recursive: true });
      const files: Buffer[] = [];
      for (let i = 0; i < 6; i++) {
        files.push(pseudoRandom(`restore-lock-${i}`, 12 * 1024 * 1024));
        await writeFile(path.join(src, `f${i}.bin`), files[i]);
      }
      const b = await cli(['files', 'backup', src, '--json']);
      assert.equal(b.code, 0, b.stderr);
      const target = path.join(work.path, 'restored');
      const restore = spawnCli(['--repo', loc.url, 'files', 'restore', b.json.id, '--target', target], {
        env,
        cwd: work.path,
      });
      let restoreErr = '';
      restore.stderr!.on('data', (d) => (restoreErr += d));
      const restored = new Promise<number | null>((r) => restore.on('close', (c) => r(c)));
      // Wait until the restore holds its lock (it takes it before reading anything).
      for (let i = 0; i < 400; i++) {
        let n = 0;
        for await (const _ of backend.list('locks')) n++;
        if (n > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      // Paused, the restore is as slow as a restore from a far-away region: it still holds its lock.
      restore.kill('SIGSTOP');
      const prune = await cli(['forget', b.json.id, '--prune']);
      restore.kill('SIGCONT');
      const code = await restored;
      assert.equal(code, 0, restoreErr);
      assert.notEqual(prune.code, 0, 'the exclusive lock must be refused while the restore runs');
      assert.match(lastLine(prune), /locked by files restore/, prune.stderr);
      for (let i = 0; i < 6; i++)
        assert.ok((await readFile(path.join(target, 'big', `f${i}.bin`))).equals(files[i]), `f${i}.bin`);
      const snaps = await cli(['snapshots', '--json']);
      assert.equal(snaps.json.length, 1, 'nothing was forgotten');
    });
  });
}

describe('SIGINT and SIGTERM stop long operations cleanly (finding 3)', () => {
  let work: TempDir;
  let repo: string;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]) => runCli(['--repo', repo, ...args], { env, cwd: work.path });
  before(async () => {
    work = await tempDir();
    repo = path.join(work.path, 'repo');
    env = { LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
    assert.equal((await cli(['init'])).code, 0);
    const src = path.join(work.path, 'src');
    await mkdir(src, { recursive: true });
    // Big enough that no run finishes before the signal arrives (a few seconds of work).
    for (let i = 0; i < 8; i++)
      await writeFile(path.join(src, `f${i}.bin`), pseudoRandom(`sig-${i}`, 40 * 1024 * 1024));
  });
  after(async () => work?.cleanup());

  /** Starts the command, waits until it holds a repository lock, sends the signal; returns code and time. */
  async function interrupt(args: string[], signal: NodeJS.Signals) {
    const child = spawnCli(['--repo', repo, ...args], { env, cwd: work.path });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    for (let i = 0; i < 600 && (await listNames(path.join(repo, 'locks'))).length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal((await listNames(path.join(repo, 'locks'))).length, 1, `${args[0]} took its lock`);
    await new Promise((r) => setTimeout(r, 300));
    const sent = Date.now();
    child.kill(signal);
    const code = await closed;
    return { code, ms: Date.now() - sent, stderr };
  }

  test('files backup: SIGINT → exit 130 within 10 s, no snapshot, lock released', async () => {
    const r = await interrupt(['files', 'backup', path.join(work.path, 'src')], 'SIGINT');
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 10_000, `stopped in ${r.ms} ms`);
    assert.match(r.stderr, /interrupted by SIGINT/);
    assert.deepEqual(await listNames(path.join(repo, 'snapshots')), [], 'nothing committed');
    assert.deepEqual(await listNames(path.join(repo, 'locks')), [], 'lock released');
    const check = await cli(['check']);
    assert.equal(check.code, 0, check.stdout);
  });

  test('files backup: SIGTERM → exit 143; restore and check --read-data stop the same way', async () => {
    const r = await interrupt(['files', 'backup', path.join(work.path, 'src')], 'SIGTERM');
    assert.equal(r.code, 143, r.stderr);
    assert.deepEqual(await listNames(path.join(repo, 'snapshots')), []);
    assert.deepEqual(await listNames(path.join(repo, 'locks')), []);

    const b = await cli(['files', 'backup', path.join(work.path, 'src'), '--json']);
    assert.equal(b.code, 0, b.stderr);
    const target = path.join(work.path, 'restore-target');
    const restore = await interrupt(['files', 'restore', b.json.id, '--target', target], 'SIGINT');
    assert.equal(restore.code, 130, restore.stderr);
    assert.ok(restore.ms < 10_000);
    assert.deepEqual(await listNames(path.join(repo, 'locks')), []);
    const partial = (await readdir(path.join(target, 'src')).catch(() => [])).filter((n) =>
      n.endsWith('.lifeboat-partial'),
    );
    assert.deepEqual(partial, [], 'no half-written file left behind');

    const check = await interrupt(['check', '--read-data'], 'SIGTERM');
    assert.equal(check.code, 143, check.stderr);
    assert.deepEqual(await listNames(path.join(repo, 'locks')), []);
  });
});

describe('keys: ids need 4 unambiguous characters; the key in use and the last key stay (finding 4)', () => {
  let work: TempDir;
  before(async () => {
    work = await tempDir();
  });
  after(async () => work?.cleanup());

  test('key remove "" / the current key / the last key are refused; a 4-character prefix of another key works', async () => {
    const repo = path.join(work.path, 'repo');
    const env = { LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
    const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
      runCli(['--repo', repo, ...args], { env: { ...env, ...extra }, cwd: work.path });
    assert.equal((await cli(['init'])).code, 0);
    const keys = async () =>
      (await cli(['key', 'list', '--json'])).json as { id: string; current: boolean }[];
    const [only] = await keys();

    const empty = await cli(['key', 'remove', '']);
    assert.equal(empty.code, 2, empty.stderr);
    const current = await cli(['key', 'remove', only.id.slice(0, 6)]);
    assert.equal(current.code, 2, current.stderr);
    assert.match(lastLine(current), /key in use/);
    assert.equal((await keys()).length, 1);

    const add = await cli(['key', 'add', '--json'], { LIFEBOAT_NEW_PASSWORD: 'second passphrase' });
    assert.equal(add.code, 0, add.stderr);
    const other = add.json.id as string;
    const short = await cli(['key', 'remove', other.slice(0, 3)]);
    assert.equal(short.code, 2, 'three characters are not enough');
    // Opened with the second key, the first (now not in use) may go — but then the second is the last.
    const viaSecond = { LIFEBOAT_PASSWORD: 'second passphrase' };
    const removeFirst = await cli(['key', 'remove', only.id.slice(0, 4)], viaSecond);
    assert.equal(removeFirst.code, 0, removeFirst.stderr);
    const removeLast = await cli(['key', 'remove', other.slice(0, 4)], viaSecond);
    assert.equal(removeLast.code, 2);
    assert.deepEqual(
      (await cli(['key', 'list', '--json'], viaSecond)).json.map((k: { id: string }) => k.id),
      [other],
    );
  });
});

describe('messages that name the cause and the safe next step (finding 7)', () => {
  let work: TempDir;
  before(async () => {
    work = await tempDir();
  });
  after(async () => work?.cleanup());

  test('deleted config, deleted keys, damaged key record, repository path that is a file, file://relative', async () => {
    const { repo, cli } = await threeSnapshots(work);
    const config = await readFile(path.join(repo, 'config'));
    await rm(path.join(repo, 'config'));
    const noConfig = await cli(['snapshots']);
    assert.equal(noConfig.code, 1);
    assert.match(lastLine(noConfig), /config object is missing.*restore `config` from a copy/);
    assert.doesNotMatch(noConfig.stderr, /remove the directory/);
    const initOver = await cli(['init']);
    assert.notEqual(initOver.code, 0, 'init must not run over a repository with data');
    assert.match(lastLine(initOver), /do not init over it/);
    await writeFile(path.join(repo, 'config'), config);

    const [keyName] = await listNames(path.join(repo, 'keys'));
    const keyBytes = await readFile(path.join(repo, 'keys', keyName));
    // A flipped character inside the wrapped key: the checksum tells damage from a wrong passphrase.
    const record = JSON.parse(keyBytes.toString());
    const w: string = record.wrapped;
    record.wrapped = w.slice(0, 5) + (w[5] === 'A' ? 'B' : 'A') + w.slice(6);
    await writeFile(path.join(repo, 'keys', keyName), JSON.stringify(record));
    const damagedKey = await cli(['snapshots']);
    assert.equal(damagedKey.code, 3, damagedKey.stderr);
    assert.match(lastLine(damagedKey), /key record keys\/\w+ is damaged/);
    assert.doesNotMatch(damagedKey.stderr, /wrong passphrase/);
    const wrong = await cli(['snapshots'], { LIFEBOAT_PASSWORD: 'not it' });
    assert.match(lastLine(wrong), /damaged|wrong passphrase/);

    await rm(path.join(repo, 'keys', keyName));
    const noKeys = await cli(['snapshots']);
    assert.equal(noKeys.code, 1);
    assert.match(lastLine(noKeys), /no key records.*restore keys\//);
    assert.doesNotMatch(noKeys.stderr, /create one with `lifeboat init`/);
    await writeFile(path.join(repo, 'keys', keyName), keyBytes);

    const file = path.join(work.path, 'not-a-dir');
    await writeFile(file, 'x');
    for (const args of [
      ['--repo', file, 'snapshots'],
      ['--repo', path.join(file, 'sub'), 'init'],
    ]) {
      const r = await runCli(args, {
        env: { LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(work.path, 'cfg') },
      });
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /is a file, not a repository directory/);
      assert.doesNotMatch(r.stderr, /ENOTDIR|unexpected/);
    }
    const rel = await runCli(['--repo', 'file://relative/path', 'snapshots'], {
      env: { LIFEBOAT_PASSWORD: PASSWORD },
    });
    assert.equal(rel.code, 2, rel.stderr);
    assert.match(rel.stderr, /file URLs take an absolute path/);
    assert.doesNotMatch(rel.stderr, /unexpected/);
  });

  test('a restore onto a full disk says how far it got, not "nothing was committed"', async () => {
    const sub = await tempDir();
    try {
      const repo = path.join(sub.path, 'repo');
      const env = { LIFEBOAT_PASSWORD: PASSWORD, XDG_CONFIG_HOME: path.join(sub.path, 'cfg') };
      const cli = (args: string[]) => runCli(['--repo', repo, ...args], { env, cwd: sub.path });
      assert.equal((await cli(['init'])).code, 0);
      const src = path.join(sub.path, 'd');
      await mkdir(src);
      for (const n of ['a', 'b', 'c', 'd']) await writeFile(path.join(src, n), pseudoRandom(n, 64 * 1024));
      const b = await cli(['files', 'backup', src, '--json']);
      assert.equal(b.code, 0, b.stderr);
      // /dev/full is the kernel's always-full device: every write to it fails with ENOSPC. The restore
      // writes c through c.lifeboat-partial, which here leads there.
      const target = path.join(sub.path, 'target');
      await mkdir(path.join(target, 'd'), { recursive: true });
      await symlink('/dev/full', path.join(target, 'd', 'c.lifeboat-partial'));
      const r = await cli(['files', 'restore', b.json.id, '--target', target]);
      assert.equal(r.code, 1, r.stderr);
      // Files are restored a few at once, so d may be done too: the count must be the files really there,
      // each of them whole.
      const done = (await readdir(path.join(target, 'd'))).filter((n) => !n.endsWith('.lifeboat-partial'));
      assert.ok(done.includes('a') && done.includes('b') && !done.includes('c'), done.join(','));
      assert.match(lastLine(r), new RegExp(`no space left on device after ${done.length} file\\(s\\)`));
      assert.doesNotMatch(r.stderr, /nothing was committed/);
      for (const n of done)
        assert.ok((await readFile(path.join(target, 'd', n))).equals(pseudoRandom(n, 64 * 1024)), n);
    } finally {
      await sub.cleanup();
    }
  });

  test('--keep-last -1 means unlimited; other negative counts say what is allowed', async () => {
    const sub = await tempDir();
    try {
      const { cli } = await threeSnapshots(sub);
      const unlimited = await cli(['forget', '--keep-last', '-1', '--json']);
      assert.equal(unlimited.code, 0, unlimited.stderr);
      assert.equal(unlimited.json.removed, 0);
      const bad = await cli(['forget', '--keep-last', '-3']);
      assert.equal(bad.code, 2);
      assert.match(lastLine(bad), /0 or more, or -1/);
      assert.doesNotMatch(bad.stderr, /ambiguous/);
    } finally {
      await sub.cleanup();
    }
  });
});

describe('leftovers of killed writes are reported and reclaimed (finding 8)', () => {
  test('check and unlock mention .tmp files; prune removes those older than every lock and keeps newer ones', async () => {
    const work = await tempDir();
    try {
      const { repo, cli, ids, data } = await threeSnapshots(work);
      // Exactly what a SIGKILL between write and rename leaves (src/core/storage/local.ts names them so).
      const fanout = (await listNames(path.join(repo, 'data')))[0];
      const old = path.join(repo, 'data', fanout, '.tmp-00112233aabbccdd');
      const fresh = path.join(repo, 'snapshots', '.tmp-99887766aabbccdd');
      await writeFile(old, pseudoRandom('leftover', 300_000));
      await writeFile(fresh, 'being written');
      const hourAgo = new Date(Date.now() - 3600_000);
      await utimes(old, hourAgo, hourAgo);
      const inAnHour = new Date(Date.now() + 3600_000);
      await utimes(fresh, inAnHour, inAnHour);

      const check = await cli(['check']);
      assert.equal(check.code, 0, 'leftovers are not damage');
      assert.match(check.stdout, /2 leftover\(s\) of interrupted writes/);
      const unlock = await cli(['unlock']);
      assert.match(unlock.stdout, /2 leftover\(s\)/);
      const prune = await cli(['prune', '--json']);
      assert.equal(prune.code, 0, prune.stderr);
      assert.equal(prune.json.leftovers, 1);
      await assert.rejects(readFile(old), 'the old one is gone');
      assert.equal(
        (await readFile(fresh)).toString(),
        'being written',
        'a temp file newer than a lock stays',
      );
      await rm(fresh);
      const r = await cli(['files', 'restore', ids[0], '--target', path.join(work.path, 'r')]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await readFile(path.join(work.path, 'r', 's1', 'f.bin'))).equals(data[0]));
      await chmod(path.join(work.path, 'r'), 0o755);
    } finally {
      await work.cleanup();
    }
  });
});
