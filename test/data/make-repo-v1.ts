/**
 * Writes test/data/repo-v1: a small repository in today's format (repository format v1), committed so
 * that every later Lifeboat is tested against it (test/core/format-compat.test.ts). Run it only to
 * create the fixture again after a deliberate format change — and then keep the old one too, under a new
 * name: the point is that old repositories stay readable.
 *
 *   npx node test/data/make-repo-v1.ts [OUT_DIR]   (default test/data/repo-v1; must not exist)
 *
 * Everything goes through the real CLI, as an operator would: init with a passphrase, two `files
 * backup`s of a deterministic tree (the second after changing one file, so the big file deduplicates),
 * and a `mongodb import` of a real mongodump archive. The tree is described by FIXTURE_TREE, which the
 * compatibility test uses to check what it restores.
 */
import { mkdir, rm, stat, symlink, utimes, writeFile, chmod, readdir, lstat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../env/cli.ts';
import { pseudoRandom } from '../env/data.ts';
import { SHARED_DIR, tempDir } from '../env/index.ts';

export const FIXTURE_PASSPHRASE = 'lifeboat-format-v1';
export const FIXTURE_HOST = 'format-fixture';
export const FIXTURE_ARCHIVE = path.join(SHARED_DIR, 'testdata/mongodump/with-oplog-server4.0.archive');

/** A fixed mtime (2024-06-01T12:00:00Z) for every entry, so restored times can be compared too. */
export const FIXTURE_MTIME = new Date('2024-06-01T12:00:00Z');

export type FixtureEntry =
  | { kind: 'file'; mode: number; content: Buffer }
  | { kind: 'dir'; mode: number }
  | { kind: 'symlink'; target: string };

/**
 * Text that compresses well but is not trivially repetitive: the 2.5 MiB file costs ~0.4 MiB in the
 * repository yet is cut into several content-defined chunks (min 192 KiB, avg 512 KiB, max 4 MiB).
 */
function words(seed: string, size: number): Buffer {
  const vocabulary =
    'lifeboat backup restore snapshot chunk pack index mongodb oplog kubernetes volume'.split(' ');
  const random = pseudoRandom(seed, size);
  const out: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const w =
      vocabulary[random[i % random.length] % vocabulary.length] +
      (random[(i * 7) % random.length] % 13 === 0 ? '\n' : ' ');
    out.push(w);
    length += w.length;
  }
  return Buffer.from(out.join('')).subarray(0, size);
}

/** The tree of the given backup (1 or 2): relative path → entry. The second changes notes.txt only. */
export function fixtureTree(backup: 1 | 2): Map<string, FixtureEntry> {
  return new Map<string, FixtureEntry>([
    ['tree', { kind: 'dir', mode: 0o755 }],
    [
      'tree/notes.txt',
      {
        kind: 'file',
        mode: 0o644,
        content: Buffer.from(backup === 1 ? 'first version\n' : 'second version, changed\n'),
      },
    ],
    ['tree/empty', { kind: 'file', mode: 0o644, content: Buffer.alloc(0) }],
    ['tree/run.sh', { kind: 'file', mode: 0o755, content: Buffer.from('#!/bin/sh\necho restored\n') }],
    ['tree/secret.key', { kind: 'file', mode: 0o600, content: pseudoRandom('repo-v1 secret', 4096) }],
    ['tree/data', { kind: 'dir', mode: 0o750 }],
    ['tree/data/big.txt', { kind: 'file', mode: 0o644, content: words('repo-v1 big', 2.5 * 1024 * 1024) }],
    [
      'tree/data/random.bin',
      { kind: 'file', mode: 0o644, content: pseudoRandom('repo-v1 random', 300 * 1024) },
    ],
    ['tree/data/empty-dir', { kind: 'dir', mode: 0o700 }],
    ['tree/link-to-notes', { kind: 'symlink', target: 'notes.txt' }],
    ['tree/data/dangling', { kind: 'symlink', target: '../does-not-exist' }],
  ]);
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes a fixture tree under `root` (files and dirs first, then modes and mtimes from the leaves up). */
export async function writeFixtureTree(root: string, tree: Map<string, FixtureEntry>): Promise<void> {
  for (const [rel, e] of tree) {
    const p = path.join(root, rel);
    if (e.kind === 'dir') await mkdir(p, { recursive: true });
    else if (e.kind === 'file') await writeFile(p, e.content);
    else await symlink(e.target, p);
  }
  for (const [rel, e] of [...tree].reverse()) {
    const p = path.join(root, rel);
    if (e.kind === 'symlink') continue;
    await chmod(p, e.mode);
    await utimes(p, FIXTURE_MTIME, FIXTURE_MTIME);
  }
}

/** The environment every fixture command runs with: nothing from the user's config or key files. */
export function fixtureEnv(repo: string, configHome: string): NodeJS.ProcessEnv {
  return {
    LIFEBOAT_REPO: repo,
    LIFEBOAT_PASSWORD: FIXTURE_PASSPHRASE,
    LIFEBOAT_KEYSTORE: 'passphrase',
    LIFEBOAT_HOST: FIXTURE_HOST,
    LIFEBOAT_CONFIG: '',
    XDG_CONFIG_HOME: configHome,
  };
}

async function cli(args: string[], env: NodeJS.ProcessEnv, cwd: string) {
  const r = await runCli([...args, '--json'], { env, cwd });
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.json;
}

async function du(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += (await lstat(path.join(e.parentPath, e.name))).size;
  return n;
}

async function main(): Promise<void> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = path.resolve(process.argv[2] ?? path.join(here, 'repo-v1'));
  if (
    await stat(out).then(
      () => true,
      () => false,
    )
  )
    throw new Error(
      `${out} exists: a committed fixture is never rewritten in place (see the comment at the top)`,
    );
  const work = await tempDir('lifeboat-fixture-');
  try {
    const env = fixtureEnv(out, path.join(work.path, 'config'));
    // Relative paths from the work dir: the snapshots record <work>/tree, a throwaway path.
    await cli(['init'], env, work.path);
    await writeFixtureTree(work.path, fixtureTree(1));
    const first = await cli(
      ['files', 'backup', 'tree', '--tag', 'format-v1', '--tag', 'first'],
      env,
      work.path,
    );
    await rm(path.join(work.path, 'tree'), { recursive: true });
    await writeFixtureTree(work.path, fixtureTree(2));
    const second = await cli(
      ['files', 'backup', 'tree', '--tag', 'format-v1', '--tag', 'second'],
      env,
      work.path,
    );
    const mongo = await cli(
      ['mongodb', 'import', '--archive', FIXTURE_ARCHIVE, '--tag', 'format-v1'],
      env,
      work.path,
    );
    await cli(['check', '--read-data'], env, work.path);
    console.log(
      JSON.stringify({ first: first.id ?? first, second: second.id ?? second, mongodb: mongo.id }, null, 2),
    );
    console.log(`${out}: ${(await du(out)) / 1024 / 1024} MiB`);
  } finally {
    await work.cleanup();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
