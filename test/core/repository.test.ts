// Repository behaviour through the real CLI, as child processes, against every backend in test/env/backends.ts
// (local disk always; the cloud emulators when their entries are registered there).
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openBackend } from '../../src/core/storage/open.ts';
import type { Backend, ObjectType } from '../../src/core/storage/backend.ts';
import { BACKENDS } from '../env/backends.ts';
import { runCli, spawnCli } from '../env/cli.ts';
import { pseudoRandom, pseudoRandomStream } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';

async function listAll(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  for (const t of ['config', 'keys', 'locks', 'snapshots', 'index', 'data'] as ObjectType[]) {
    for await (const o of backend.list(t)) out.push(`${t}/${o.name}:${o.size}`);
  }
  return out.sort();
}

async function firstPack(backend: Backend): Promise<string> {
  for await (const o of backend.list('data')) return o.name;
  throw new Error('no pack');
}

async function treeOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(p: string, rel: string) {
    const st = await lstat(p);
    if (st.isSymbolicLink()) out[rel] = `link:${await readlink(p)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir:${(st.mode & 0o777).toString(8)}`;
      for (const n of (await readdir(p)).sort()) await walk(path.join(p, n), `${rel}/${n}`);
    } else
      out[rel] =
        `file:${(st.mode & 0o777).toString(8)}:${(await readFile(p)).toString('base64').slice(0, 64)}:${st.size}`;
  }
  await walk(dir, '.');
  return out;
}

for (const backendUnderTest of BACKENDS) {
  describe(`repository on ${backendUnderTest.name}`, () => {
    let work: TempDir;
    let repoUrl: string;
    let env: NodeJS.ProcessEnv;
    let backend: Backend;
    let cleanupRepo: () => Promise<void>;

    const cli = (
      args: string[],
      extra: NodeJS.ProcessEnv = {},
      input?: Uint8Array | AsyncIterable<Uint8Array>,
    ) => runCli(['--repo', repoUrl, ...args], { env: { ...env, ...extra }, cwd: work.path, input });

    before(async () => {
      work = await tempDir();
      const created = await backendUnderTest.create();
      repoUrl = created.url;
      cleanupRepo = created.cleanup;
      env = {
        ...created.env,
        LIFEBOAT_PASSWORD: 'correct horse battery staple',
        XDG_CONFIG_HOME: path.join(work.path, 'cfg'),
      };
      backend = await openBackend(repoUrl, { ...process.env, ...env });
      const init = await cli(['init', '--json']);
      assert.equal(init.code, 0, init.stderr);
      assert.match(init.json.repositoryId, /^[0-9a-f]{64}$/);
    });

    after(async () => {
      await backend?.close();
      await cleanupRepo?.();
      await work?.cleanup();
    });

    test('a directory tree round-trips byte for byte (empty and large files, symlinks, modes)', async () => {
      const src = path.join(work.path, 'tree');
      await mkdir(path.join(src, 'nested/deeper'), { recursive: true });
      await writeFile(path.join(src, 'empty'), '');
      await writeFile(path.join(src, 'large.bin'), pseudoRandom('large', 9 * 1024 * 1024 + 123));
      await writeFile(
        path.join(src, 'nested/deeper/terraform.tfstate'),
        JSON.stringify({ version: 4, resources: [] }),
      );
      await writeFile(path.join(src, 'script.sh'), '#!/bin/sh\necho hi\n');
      await chmod(path.join(src, 'script.sh'), 0o755);
      await writeFile(path.join(src, 'secret'), 'x');
      await chmod(path.join(src, 'secret'), 0o600);
      await symlink('large.bin', path.join(src, 'link'));
      await symlink('../missing-target', path.join(src, 'nested/dangling'));
      await chmod(path.join(src, 'nested'), 0o750);

      const b = await cli(['files', 'backup', src, '--tag', 'roundtrip', '--json']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.json.id, /^[0-9a-f]{64}$/);
      assert.match(b.json.timestamp, /^\d{8}_\d{6}$/);
      assert.ok(b.json.bytesProcessed >= 9 * 1024 * 1024);
      assert.ok(b.json.bytesAdded > 0 && typeof b.json.durationMs === 'number');

      const out = path.join(work.path, 'restored');
      const r = await cli(['files', 'restore', b.json.id.slice(0, 10), '--target', out, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await treeOf(path.join(out, 'tree')), await treeOf(src));
      assert.ok(
        (await readFile(path.join(out, 'tree/large.bin'))).equals(
          await readFile(path.join(src, 'large.bin')),
        ),
      );

      const list = await cli(['snapshots', '--tag', 'roundtrip', '--json']);
      assert.equal(list.json.length, 1);
      const byTimestamp = await cli(['show', b.json.timestamp, '--json']);
      assert.equal(byTimestamp.code, 0, byTimestamp.stderr);
      assert.ok(
        byTimestamp.json.items.some(
          (i: { name: string }) => i.name === 'tree/nested/deeper/terraform.tfstate',
        ),
      );
    });

    test('dedup: a second backup after a 1% overwrite and a 1 KiB insertion adds well under 10%', async (t) => {
      const size = 64 * 1024 * 1024;
      const file = path.join(work.path, 'dedup', 'data.bin');
      await mkdir(path.dirname(file), { recursive: true });
      const data = pseudoRandom('dedup', size);
      await writeFile(file, data);
      const first = await cli(['files', 'backup', path.dirname(file), '--json']);
      assert.equal(first.code, 0, first.stderr);
      const region = Math.floor(size / 100);
      pseudoRandom('overwrite', region).copy(data, Math.floor(size * 0.3));
      const edited = Buffer.concat([
        data.subarray(0, size / 2),
        pseudoRandom('insert', 1024),
        data.subarray(size / 2),
      ]);
      await writeFile(file, edited);
      const second = await cli(['files', 'backup', path.dirname(file), '--json']);
      assert.equal(second.code, 0, second.stderr);
      const ratio = second.json.bytesAdded / size;
      t.diagnostic(
        `second backup added ${(ratio * 100).toFixed(2)}% of ${size} bytes (${second.json.bytesAdded} bytes)`,
      );
      assert.ok(ratio < 0.1, `added ${(ratio * 100).toFixed(2)}%`);
      const restored = path.join(work.path, 'dedup-restored');
      assert.equal((await cli(['files', 'restore', second.json.id, '--target', restored])).code, 0);
      assert.ok((await readFile(path.join(restored, 'dedup/data.bin'))).equals(edited));
    });

    test('identical chunks named at once on the thread pool are stored once', async () => {
      // Four copies of one file: their chunks are hashed concurrently, and the dedup decision must still
      // see each id once.
      const dir = path.join(work.path, 'copies');
      await mkdir(dir, { recursive: true });
      const data = pseudoRandom('copies', 4 * 1024 * 1024);
      for (const n of ['a', 'b', 'c', 'd']) await writeFile(path.join(dir, n), data);
      const r = await cli(['files', 'backup', dir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.json.bytesAdded < data.length * 1.05,
        `stored ${r.json.bytesAdded} bytes for 4 × ${data.length}`,
      );
      const restored = path.join(work.path, 'copies-restored');
      assert.equal((await cli(['files', 'restore', r.json.id, '--target', restored])).code, 0);
      for (const n of ['a', 'b', 'c', 'd'])
        assert.ok((await readFile(path.join(restored, 'copies', n))).equals(data), n);
    });

    test('wrong passphrase: clear error, non-zero exit, nothing written', async () => {
      const beforeObjects = await listAll(backend);
      const r = await cli(['files', 'backup', path.join(work.path, 'tree')], { LIFEBOAT_PASSWORD: 'wrong' });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^lifeboat: wrong passphrase for this repository — /m);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      const j = await cli(['snapshots', '--json'], { LIFEBOAT_PASSWORD: 'wrong' });
      assert.equal(j.json.error.code, 'WRONG_KEY');
      assert.deepEqual(await listAll(backend), beforeObjects);
    });

    test('missing snapshot and bad references give one clear line', async () => {
      const r = await cli(['files', 'restore', '20000101_000000', '--target', path.join(work.path, 'nope')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no snapshot matches "20000101_000000"/);
      const u = await cli(['show', 'not-a-ref']);
      assert.equal(u.code, 2);
      const missingRepo = await runCli(['--repo', path.join(work.path, 'no-such-repo'), 'snapshots'], {
        env,
      });
      assert.equal(missingRepo.code, 1);
      assert.match(missingRepo.stderr, /no Lifeboat repository at .*lifeboat init/);
    });

    test('key rotation re-wraps the master key: old passphrase stops working, data stays', async () => {
      const before = await listAll(backend);
      const r = await cli(['key', 'rotate', '--json'], { LIFEBOAT_NEW_PASSWORD: 'rotated passphrase' });
      assert.equal(r.code, 0, r.stderr);
      const after = await listAll(backend);
      assert.deepEqual(
        after.filter((o) => !o.startsWith('keys/')),
        before.filter((o) => !o.startsWith('keys/')),
        'no data rewritten',
      );
      assert.equal((await cli(['snapshots'])).code, 1, 'old passphrase refused');
      env.LIFEBOAT_PASSWORD = 'rotated passphrase';
      const s = await cli(['snapshots', '--json']);
      assert.equal(s.code, 0, s.stderr);
      assert.ok(s.json.length >= 2);
      const keys = await cli(['key', 'list', '--json']);
      assert.equal(keys.json.length, 1);
      for (const o of after.filter((x) => x.startsWith('keys/'))) {
        const raw = (await backend.load({ type: 'keys', name: o.split(':')[0].slice(5) })).toString();
        assert.ok(!raw.includes('rotated passphrase'));
      }
    });

    test('a backup killed with SIGKILL leaves a repository that checks clean; prune reclaims its data', async () => {
      const snapshotsBefore = (await cli(['snapshots', '--json'])).json.length;
      const child = spawnCli(
        ['--repo', repoUrl, 'files', 'backup', '--stdin', '--stdin-filename', 'killed.bin'],
        {
          env: { ...env },
          cwd: work.path,
        },
      );
      child.stdin!.on('error', () => {});
      const exited = new Promise((r) => child.on('close', r));
      // Feed data until at least two packs of it are stored, then kill the process without warning.
      let packsSeen = 0;
      const packsBefore = (await listAll(backend)).filter((o) => o.startsWith('data/')).length;
      for await (const part of pseudoRandomStream('killed', 1024 * 1024 * 1024)) {
        if (!child.stdin!.write(part)) await new Promise((r) => child.stdin!.once('drain', r));
        packsSeen = (await listAll(backend)).filter((o) => o.startsWith('data/')).length - packsBefore;
        if (packsSeen >= 2) break;
      }
      child.kill('SIGKILL');
      await exited;
      assert.ok(packsSeen >= 2, 'the backup had written packs before it was killed');

      const check = await cli(['check', '--json']);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.equal(check.json.ok, true);
      assert.equal(
        (await cli(['snapshots', '--json'])).json.length,
        snapshotsBefore,
        'the partial backup is not listed',
      );

      const prune = await cli(['prune', '--json']);
      assert.equal(prune.code, 0, prune.stderr);
      assert.ok(prune.json.reclaimBytes > 0, 'prune reclaimed the partial backup');
      assert.ok(prune.json.unindexedPacks + prune.json.removePacks >= 1);

      const next = await cli(
        ['files', 'backup', '--stdin', '--stdin-filename', 'after.bin', '--json'],
        {},
        pseudoRandom('after', 3 * 1024 * 1024),
      );
      assert.equal(next.code, 0, next.stderr);
      const full = await cli(['check', '--read-data', '--json']);
      assert.equal(full.code, 0, JSON.stringify(full.json?.errors));
      assert.equal(full.json.warnings.length, 0);
    });

    test('locks: prune refuses while a backup runs; two backups run at once', async () => {
      const slow = spawnCli(
        ['--repo', repoUrl, '--verbose', 'files', 'backup', '--stdin', '--stdin-filename', 'slow.bin'],
        {
          env: { ...env },
          cwd: work.path,
        },
      );
      let err = '';
      slow.stderr!.on('data', (d) => (err += d));
      slow.stdin!.on('error', () => {});
      const slowDone = new Promise<number | null>((r) => slow.on('close', r));
      try {
        slow.stdin!.write(pseudoRandom('slow', 1024 * 1024));
        // Wait until the backup reports that it holds its lock (generous: the machine may be busy).
        for (let i = 0; i < 1200 && !err.includes('shared lock held') && slow.exitCode === null; i++)
          await new Promise((r) => setTimeout(r, 50));
        assert.match(err, /shared lock held/, `the slow backup never took its lock: ${err}`);
        const prune = await cli(['prune']);
        assert.equal(prune.code, 1);
        assert.match(prune.stderr, /repository is locked by files backup .*shared/);
        const parallel = await cli(
          ['files', 'backup', '--stdin', '--stdin-filename', 'parallel.bin', '--json'],
          {},
          pseudoRandom('parallel', 2 * 1024 * 1024),
        );
        assert.equal(parallel.code, 0, parallel.stderr);
        slow.stdin!.end(pseudoRandom('slow-end', 1024 * 1024));
        assert.equal(await slowDone, 0, err);
      } finally {
        // Never leave the child waiting on its stdin if an assertion failed.
        if (slow.exitCode === null) slow.kill('SIGKILL');
        await slowDone;
      }
      assert.equal((await cli(['prune'])).code, 0);
      assert.equal((await cli(['check', '--read-data'])).code, 0);
    });

    test('forget + prune reclaim space and keep what the policy keeps restorable', async () => {
      const before = await cli(['snapshots', '--type', 'files', '--json']);
      const forget = await cli(['forget', '--keep-last', '1', '--json']);
      assert.equal(forget.code, 0, forget.stderr);
      assert.ok(forget.json.removed >= 1);
      const prune = await cli(['prune', '--max-unused', '0', '--json']);
      assert.equal(prune.code, 0, prune.stderr);
      assert.ok(prune.json.reclaimBytes > 0);
      const remaining = await cli(['snapshots', '--json']);
      assert.ok(remaining.json.length < before.json.length);
      const check = await cli(['check', '--read-data', '--json']);
      assert.equal(check.code, 0, JSON.stringify(check.json.errors));
      for (const s of remaining.json) {
        const out = path.join(work.path, `after-prune-${s.shortId}`);
        const r = await cli(['files', 'restore', s.id, '--target', out]);
        assert.equal(r.code, 0, r.stderr);
      }
    });

    test('a flipped byte in a pack: check --read-data exits 3 naming pack and snapshots; restore refuses to write corrupt output', async () => {
      const file = path.join(work.path, 'victim', 'victim.bin');
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, pseudoRandom('victim', 3 * 1024 * 1024));
      const b = await cli(['files', 'backup', path.dirname(file), '--json']);
      assert.equal(b.code, 0, b.stderr);
      const structural = await cli(['check', '--json']);
      assert.equal(structural.code, 0);

      // The newest pack holds the victim's data.
      const packs: { name: string; size: number }[] = [];
      for await (const o of backend.list('data')) packs.push(o);
      const idx = await cli(['stats', '--json']);
      assert.equal(idx.code, 0);
      let victimPack: string | undefined;
      for (const p of packs) {
        const bytes = await backend.load({ type: 'data', name: p.name });
        if (bytes.length > 2 * 1024 * 1024) {
          const tampered = Buffer.from(bytes);
          tampered[1000] ^= 0x40;
          await backend.save({ type: 'data', name: p.name }, tampered, { overwrite: true });
          const check = await cli(['check', '--read-data', '--json']);
          if (check.json.damagedSnapshots.includes(b.json.id)) {
            victimPack = p.name;
            assert.equal(check.code, 3);
            const damaged = check.json.damagedPacks.find((d: { pack: string }) => d.pack === p.name);
            assert.ok(damaged, 'the damaged pack is named');
            assert.ok(damaged.snapshots.includes(b.json.id), 'the affected snapshot is named');
            const human = await cli(['check', '--read-data']);
            assert.equal(human.code, 3);
            assert.match(human.stdout, new RegExp(`pack ${p.name}: .*affects .*${b.json.id.slice(0, 8)}`));
            const out = path.join(work.path, 'corrupt-restore');
            const r = await cli(['files', 'restore', b.json.id, '--target', out]);
            assert.equal(r.code, 3, r.stderr);
            assert.match(r.stderr, /failed authentication|does not match/);
            const written = await readdir(path.join(out, 'victim')).catch(() => []);
            assert.deepEqual(written, [], 'no corrupt or partial file left behind');
            await backend.save({ type: 'data', name: p.name }, bytes, { overwrite: true });
            break;
          }
          await backend.save({ type: 'data', name: p.name }, bytes, { overwrite: true });
        }
      }
      assert.ok(victimPack, 'found and damaged the pack holding the snapshot');
      assert.equal((await cli(['check', '--read-data'])).code, 0, 'repaired');
      const named = await cli(['forget', b.json.id.slice(0, 12), '--dry-run', '--json']);
      assert.equal(named.code, 0, named.stderr);
      assert.equal(named.json.groups[0].remove[0].id, b.json.id);
      assert.equal((await cli(['forget', 'ffffffffffff'])).code, 1, 'an unknown id removes nothing');
    });

    test('truncated or missing pack and damaged or missing index: clear errors', async () => {
      const pack = await firstPack(backend);
      const bytes = await backend.load({ type: 'data', name: pack });
      await backend.save({ type: 'data', name: pack }, bytes.subarray(0, bytes.length - 100), {
        overwrite: true,
      });
      const truncated = await cli(['check', '--json']);
      assert.equal(truncated.code, 3);
      assert.ok(truncated.json.errors.some((e: string) => e.includes(pack) && /truncated/.test(e)));

      await backend.remove({ type: 'data', name: pack });
      const missing = await cli(['check', '--json']);
      assert.equal(missing.code, 3);
      assert.ok(
        missing.json.damagedPacks.some(
          (d: { pack: string; reason: string }) => d.pack === pack && d.reason === 'missing',
        ),
      );
      const latest = (await cli(['snapshots', '--json'])).json.filter((s: { id: string }) =>
        missing.json.damagedSnapshots.includes(s.id),
      )[0];
      if (latest) {
        const r = await cli([
          'files',
          'restore',
          latest.id,
          '--target',
          path.join(work.path, 'missing-pack'),
        ]);
        assert.equal(r.code, 3);
        assert.match(r.stderr, new RegExp(`pack ${pack} is missing`));
      }
      await backend.save({ type: 'data', name: pack }, bytes);

      const indexes: string[] = [];
      for await (const o of backend.list('index')) indexes.push(o.name);
      const indexBytes = await backend.load({ type: 'index', name: indexes[0] });
      await backend.save({ type: 'index', name: indexes[0] }, indexBytes.subarray(0, 20), {
        overwrite: true,
      });
      const damagedIndex = await cli(['snapshots']);
      assert.equal(damagedIndex.code, 0, 'listing snapshots does not need the index');
      const check = await cli(['check', '--json']);
      assert.equal(check.code, 3);
      assert.ok(check.json.errors.some((e: string) => e.includes(`index/${indexes[0]}`)));
      const restore = await cli([
        'files',
        'restore',
        'latest',
        '--target',
        path.join(work.path, 'bad-index'),
      ]);
      // A damaged index file affects only restores that need a blob only it lists (issue 9): either way
      // the damaged file is named once, and a failing restore points to `repair index`.
      assert.ok(restore.code === 0 || restore.code === 3, restore.stderr);
      assert.match(restore.stderr, new RegExp(`index/${indexes[0]}`));
      if (restore.code === 3) assert.match(restore.stderr, /repair index/);
      await backend.save({ type: 'index', name: indexes[0] }, indexBytes, { overwrite: true });
      assert.equal((await cli(['check', '--read-data'])).code, 0);
      await rm(path.join(work.path, 'bad-index'), { recursive: true, force: true });
    });
  });
}
