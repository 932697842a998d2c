// `files backup` as a file backup tool: unchanged files taken from the parent snapshot without being
// read, unreadable files as warnings (exit 3, snapshot marked incomplete), excludes, --one-file-system.
// Everything runs the real CLI as child processes against a local repository in a temp dir.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from '../env/cli.ts';
import { pseudoRandom } from '../env/data.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { compilePattern } from '../../src/sources/files/exclude.ts';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
/**
 * A file changed this close to the start of the parent backup is read again (files.ts RACY_MS: its ctime
 * cannot tell a later change in the same clock tick apart). Trees are built, then this long is waited
 * before the first backup, so that the second one may trust them.
 */
const SETTLE_MS = 2100;
const MTIME = new Date('2024-06-01T12:00:00Z');

let work: TempDir;
let repos = 0;

before(async () => {
  work = await tempDir('lifeboat-files-');
});

after(async () => {
  // The too-long paths below defeat fs.rm (it passes whole paths to unlink); rm(1) walks with openat.
  execFileSync('rm', ['-rf', work.path]);
});

/** A fresh repository; returns a `lifeboat --repo it …` runner. */
async function newRepo() {
  const repo = path.join(work.path, `repo-${++repos}`);
  const env = { LIFEBOAT_PASSWORD: 'x', XDG_CONFIG_HOME: path.join(work.path, 'cfg') };
  const cli = (args: string[]) => runCli(['--repo', repo, ...args], { env, cwd: work.path });
  const init = await cli(['init']);
  assert.equal(init.code, 0, init.stderr);
  return cli;
}

async function treeOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(p: string, rel: string) {
    const st = await lstat(p);
    if (st.isSymbolicLink()) out[rel] = `link:${await readlink(p)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir:${(st.mode & 0o777).toString(8)}`;
      for (const n of (await readdir(p)).sort()) await walk(path.join(p, n), `${rel}/${n}`);
    } else out[rel] = `file:${(st.mode & 0o777).toString(8)}:${st.size}:${st.mtimeMs}:${await sha(p)}`;
  }
  await walk(dir, '.');
  return out;
}

async function sha(p: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256')
    .update(await readFile(p))
    .digest('hex');
}

/**
 * A directory inside `parent` whose path is just short of PATH_MAX (4096), holding a file whose path is
 * longer: every system call on that file fails with ENAMETOOLONG, whoever runs the test — unlike chmod 000,
 * which root reads through. Built bottom-up by renames, so that no path handed to the kernel is too long.
 */
async function tooLongPath(parent: string): Promise<string> {
  const seg = 'd'.repeat(200);
  const build = path.join(parent, 'building');
  await mkdir(build);
  let dirLen = path.join(parent, 'deep').length;
  await mkdir(path.join(build, 'w'));
  await writeFile(path.join(build, 'w', 'f'.repeat(250)), 'out of reach');
  let dir = '';
  while (dirLen + 251 <= 4096) {
    await mkdir(path.join(build, 'p'));
    await rename(path.join(build, 'w'), path.join(build, 'p', seg));
    await rename(path.join(build, 'p'), path.join(build, 'w'));
    dirLen += seg.length + 1;
    dir = path.join(dir, seg);
  }
  await rename(path.join(build, 'w'), path.join(parent, 'deep'));
  await rm(build, { recursive: true });
  return path.join(parent, 'deep', dir, 'f'.repeat(250));
}

describe('unchanged files are taken from the parent snapshot', () => {
  let cli: Awaited<ReturnType<typeof newRepo>>;
  let src: string;
  const FILES = ['a.bin', 'b.bin', 'c.bin', 'sub/d.bin', 'sub/e.bin', 'sub/small.txt', 'empty'];

  before(async () => {
    cli = await newRepo();
    src = path.join(work.path, 'tree');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    for (const [i, f] of FILES.entries()) {
      const size = f.endsWith('.bin') ? 4 * MiB + i : f === 'empty' ? 0 : 1234;
      await writeFile(path.join(src, f), pseudoRandom(f, size));
      // Whole seconds, so that setting the same mtime again later (and a restore) is exact.
      await utimes(path.join(src, f), MTIME, MTIME);
    }
    await symlink('a.bin', path.join(src, 'link'));
    await sleep(SETTLE_MS);
  });

  test('a second backup of an unchanged 20 MiB tree reads nothing; --force reads it all', async () => {
    const first = await cli(['files', 'backup', src, '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.filesNew, FILES.length);
    assert.equal(first.json.filesUnchanged, 0);
    assert.equal(first.json.parent, undefined);
    assert.ok(first.json.bytesRead >= 20 * MiB);

    const second = await cli(['files', 'backup', src, '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.json.parent, first.json.id);
    assert.equal(second.json.filesUnchanged, FILES.length);
    assert.equal(second.json.filesNew + second.json.filesChanged, 0);
    assert.equal(second.json.bytesRead, 0, 'not one byte read from disk');
    assert.equal(second.json.bytesAdded, 0, 'nothing stored');
    assert.equal(second.json.bytesUnchanged, first.json.bytesRead);
    // Processed counts every byte of the snapshot (as restic does): the progress bar reaches the total.
    assert.equal(second.json.bytesProcessed, first.json.bytesProcessed);

    const shown = await cli(['show', second.json.id, '--json']);
    assert.equal(shown.json.meta.parent, first.json.id);
    const a = shown.json.items.find((i: { name: string }) => i.name === 'tree/a.bin');
    const st = await stat(path.join(src, 'a.bin'));
    assert.equal(a.meta.ino, st.ino, 'inode recorded for the next comparison');
    assert.equal(a.meta.ctimeMs, st.ctimeMs);

    const forced = await cli(['files', 'backup', src, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /files: 7 new, 0 changed, 0 unchanged\n/);

    const human = await cli(['files', 'backup', src]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /files: 0 new, 0 changed, 7 unchanged \(20\.0 MiB not read again, taken from /,
    );

    const out = path.join(work.path, 'restored-unchanged');
    const r = await cli(['files', 'restore', second.json.id, '--target', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await treeOf(path.join(out, 'tree')), await treeOf(src));
  });

  test('a file rewritten in place with the same size and mtime is read again (its ctime moved)', async () => {
    const victim = path.join(src, 'b.bin');
    const before = await stat(victim);
    const replacement = pseudoRandom('replacement', before.size);
    await writeFile(victim, replacement);
    await utimes(victim, MTIME, MTIME);
    const now = await stat(victim);
    assert.equal(now.size, before.size);
    assert.equal(now.mtimeMs, before.mtimeMs);
    await writeFile(path.join(src, 'sub/new.txt'), 'new');
    await utimes(path.join(src, 'sub/new.txt'), MTIME, MTIME);

    const b = await cli(['files', 'backup', src, '--json']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.json.filesChanged, 1);
    assert.equal(b.json.filesNew, 1);
    assert.equal(b.json.filesUnchanged, FILES.length - 1);
    assert.equal(b.json.bytesRead, before.size + 3);

    const out = path.join(work.path, 'restored-changed');
    const r = await cli(['files', 'restore', b.json.id, '--target', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await readFile(path.join(out, 'tree/b.bin'))).equals(replacement));
    assert.deepEqual(await treeOf(path.join(out, 'tree')), await treeOf(src));
  });

  test('the parent has the same paths; --parent names one explicitly; --parent with --force is refused', async () => {
    const other = path.join(work.path, 'other');
    await mkdir(other, { recursive: true });
    await writeFile(path.join(other, 'o.txt'), 'o');
    const both = await cli(['files', 'backup', src, other, '--json']);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.json.parent, undefined, 'no earlier snapshot of exactly these two paths');

    const latestTree = (await cli(['snapshots', '--json'])).json.filter(
      (s: { paths: string[] }) => s.paths.length === 1 && s.paths[0] === src,
    );
    const pick = latestTree.at(-1).id;
    const chosen = await cli(['files', 'backup', src, other, '--parent', pick.slice(0, 8), '--json']);
    assert.equal(chosen.code, 0, chosen.stderr);
    assert.equal(chosen.json.parent, pick);
    assert.ok(chosen.json.filesUnchanged >= FILES.length - 1);

    const refused = await cli(['files', 'backup', src, '--parent', pick, '--force']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--parent or --force/);
  });

  test('a path that does not exist is an error, not a warning: nothing is committed', async () => {
    const count = (await cli(['snapshots', '--json'])).json.length;
    const r = await cli(['files', 'backup', src, path.join(work.path, 'no-such-dir')]);
    assert.notEqual(r.code, 0);
    assert.notEqual(r.code, 3);
    assert.match(r.stderr, /no-such-dir does not exist/);
    assert.equal((await cli(['snapshots', '--json'])).json.length, count);
  });
});

describe('unreadable files', () => {
  test('are warnings: the rest is saved, the snapshot is marked incomplete, exit code 3', async () => {
    const cli = await newRepo();
    const src = path.join(work.path, 'partly');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'ok.txt'), 'fine');
    await writeFile(path.join(src, 'sub/fine.bin'), pseudoRandom('fine', 300_000));
    const unreachable = await tooLongPath(src);
    const expected = [unreachable];
    const paths = [src];
    // Reading /proc/self/mem at offset 0 fails with EIO for everyone, root included: a real I/O error on
    // a file that lstat calls regular.
    if (existsSync('/proc/self/mem')) {
      paths.push('/proc/self/mem');
      expected.push('/proc/self/mem');
    }
    if (!isRoot) {
      // chmod 000 only stops someone other than root.
      await writeFile(path.join(src, 'locked.txt'), 'secret');
      await chmod(path.join(src, 'locked.txt'), 0o000);
      await mkdir(path.join(src, 'locked-dir'));
      await writeFile(path.join(src, 'locked-dir/inner'), 'x');
      await chmod(path.join(src, 'locked-dir'), 0o000);
      expected.push(path.join(src, 'locked.txt'), path.join(src, 'locked-dir'));
    }
    const b = await cli(['files', 'backup', ...paths, '--keep-last', '1', '--json']);
    if (!isRoot) await chmod(path.join(src, 'locked-dir'), 0o755);
    assert.equal(b.code, 3, b.stderr);
    assert.equal(b.json.incomplete, true);
    assert.equal(b.json.errors, expected.length);
    for (const p of expected) {
      assert.ok(
        b.stderr.split('\n').some((l) => l.startsWith(`lifeboat: warning: ${p}: `)),
        `a warning names ${p}:\n${b.stderr}`,
      );
    }
    assert.match(b.stderr, /ENAMETOOLONG/);
    if (expected.includes('/proc/self/mem')) assert.match(b.stderr, /\/proc\/self\/mem: i\/o error \(EIO\)/);
    // Retention must not let an incomplete snapshot push a complete one out.
    assert.match(b.json.retention.skipped, /incomplete/);

    const list = await cli(['snapshots', '--json']);
    assert.deepEqual(
      list.json.map((s: { id: string }) => s.id),
      [b.json.id],
    );
    assert.equal(list.json[0].incomplete, true, '`snapshots` marks it');
    const shown = await cli(['show', b.json.id, '--json']);
    assert.equal(shown.json.meta.incomplete, true);
    assert.equal(shown.json.meta.errorCount, expected.length);
    assert.deepEqual(
      shown.json.meta.errors.map((e: { path: string }) => e.path).sort(),
      [...expected].sort(),
    );

    const out = path.join(work.path, 'restored-partly');
    const r = await cli(['files', 'restore', b.json.id, '--target', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(path.join(out, 'partly/ok.txt'), 'utf8'), 'fine');
    assert.ok(
      (await readFile(path.join(out, 'partly/sub/fine.bin'))).equals(
        await readFile(path.join(src, 'sub/fine.bin')),
      ),
    );

    const human = await cli(['files', 'backup', ...paths]);
    assert.equal(human.code, 3);
    assert.match(human.stdout, /incomplete: \d+ path\(s\) could not be read/);
  });
});

describe('excludes', () => {
  test('patterns, an exclude file, and excluded directories are not even read', async () => {
    const cli = await newRepo();
    const src = path.join(work.path, 'proj');
    for (const d of ['node_modules/pkg', 'sub/cache', '.config/cache', 'keep', 'build']) {
      await mkdir(path.join(src, d), { recursive: true });
    }
    const files = {
      'main.ts': 'x',
      'app.log': 'x',
      'sub/deep.log': 'x',
      'sub/cache/blob': 'x',
      '.config/cache/blob': 'x',
      '.config/settings': 'x',
      'node_modules/pkg/index.js': 'x',
      'keep/a.tmp': 'x',
      'keep/b.txt': 'x',
      'build/out.o': 'x',
    };
    for (const [f, c] of Object.entries(files)) await writeFile(path.join(src, f), c);
    // Inside an excluded directory: walking into it would end in a warning and exit code 3.
    await tooLongPath(path.join(src, 'build'));
    const excludeFile = path.join(work.path, 'excludes.txt');
    await writeFile(excludeFile, `# generated output\n\n  ${src}/build  \n*.tmp\n`);

    const b = await cli([
      'files',
      'backup',
      src,
      '--exclude',
      '*.log',
      '--exclude',
      'node_modules',
      '--exclude',
      `${src}/**/cache`,
      '--exclude-file',
      excludeFile,
      '--json',
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stderr, '');
    const shown = await cli(['show', b.json.id, '--json']);
    const names = shown.json.items.map((i: { name: string }) => i.name).sort();
    assert.deepEqual(names, [
      'proj',
      'proj/.config',
      'proj/.config/settings',
      'proj/keep',
      'proj/keep/b.txt',
      'proj/main.ts',
      'proj/sub',
    ]);
    assert.deepEqual(shown.json.meta.excludes, [
      '*.log',
      'node_modules',
      `${src}/**/cache`,
      `${src}/build`,
      '*.tmp',
    ]);

    const bad = await cli(['files', 'backup', src, '--exclude', 'a[b']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /exclude pattern "a\[b": has an unterminated \[/);
    const missing = await cli(['files', 'backup', src, '--exclude-file', path.join(work.path, 'nope')]);
    assert.equal(missing.code, 2);
  });

  test('pattern semantics (restic): any depth unless rooted, ** for directories, dot files included', () => {
    const cases: [string, string, boolean][] = [
      ['*.log', '/a/b/x.log', true],
      ['*.log', '/a/b/xlog', false],
      ['node_modules', '/p/node_modules/a/b', true],
      ['node_modules', '/p/node_modulesx', false],
      ['/abs/dir', '/abs/dir/file', true],
      ['/abs/dir', '/x/abs/dir', false],
      ['/abs/**/cache', '/abs/.config/cache', true],
      ['/abs/**/cache', '/abs/cache', true],
      ['b/c', '/a/b/c', true],
      ['b/c', '/a/xb/c', false],
      ['*', '/.env', true],
      ['x\\[1\\]', '/d/x[1]', true],
      ['[!a-c]?', '/d/bz', false],
      ['[!a-c]?', '/d/dz', true],
      ['/tmp', '/tmpx', false],
    ];
    for (const [pattern, p, want] of cases)
      assert.equal(compilePattern(pattern).test(p), want, `${pattern} ${p}`);
  });
});

describe('--one-file-system', () => {
  // /dev/shm is a tmpfs mounted inside /dev on practically every Linux system, so no mount (and no root)
  // is needed to have a filesystem boundary inside a tree.
  const shm = '/dev/shm';
  const boundary =
    process.platform === 'linux' && existsSync(shm) && statSync('/dev').dev !== statSync(shm).dev;

  test(
    'does not cross into another filesystem; the mount point is kept, empty',
    { skip: !boundary },
    async () => {
      const cli = await newRepo();
      const marker = path.join(shm, `lifeboat-test-${process.pid}`);
      await mkdir(marker, { recursive: true });
      await writeFile(path.join(marker, 'f'), 'on tmpfs');
      try {
        const b = await cli(['files', 'backup', '/dev', '--one-file-system', '--json']);
        // /dev may hold something this user cannot read; what matters here is what was walked.
        assert.ok(b.code === 0 || b.code === 3, b.stderr);
        const shown = await cli(['show', b.json.id, '--json']);
        const items: { name: string; kind: string }[] = shown.json.items;
        assert.equal(items.find((i) => i.name === 'dev/shm')?.kind, 'dir', 'the mount point itself is kept');
        assert.deepEqual(
          items.filter((i) => i.name.startsWith('dev/shm/')),
          [],
          'nothing below the mount point',
        );
        assert.equal(shown.json.meta.oneFileSystem, true);

        // The same directory given as a path of its own is backed up, filesystem and all.
        const direct = await cli(['files', 'backup', marker, '--one-file-system', '--json']);
        assert.equal(direct.code, 0, direct.stderr);
        assert.equal(direct.json.files, 1);
      } finally {
        await rm(marker, { recursive: true, force: true });
      }
    },
  );
});
