/**
 * Installs the real peers the tests and the demo talk to (FerretDB, kube-apiserver + etcd, an S3 server,
 * a Key Vault emulator, …) from the package registries this machine reaches, and caches them.
 *
 * Two cache levels, because CI runs in a fresh clone on the same machine:
 * - `.tools/<name>-<version>/` in the project (git-ignored): what tests and scripts use;
 * - `~/.cache/lifeboat-tools/<name>-<version>/` (or LIFEBOAT_TOOLS_CACHE): survives fresh clones, so a
 *   kube-apiserver built once is not rebuilt for every clone.
 * A directory counts as installed only once its `.complete` marker exists, so an interrupted build is
 * redone rather than half-used. Builds are serialised with a lock directory.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm, rename, writeFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TOOLS_DIR = process.env.LIFEBOAT_TOOLS_DIR ?? path.join(PROJECT_ROOT, '.tools');
export const MACHINE_CACHE =
  process.env.LIFEBOAT_TOOLS_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'lifeboat-tools');

export interface Tool {
  name: string;
  version: string;
  /** Files (relative to the tool directory) that must exist once installed. */
  files: string[];
  /** Builds or downloads the tool into `dir` (an empty directory). */
  install(dir: string): Promise<void>;
}

const MARKER = '.complete';

function isComplete(dir: string, tool: Tool): boolean {
  return existsSync(path.join(dir, MARKER)) && tool.files.every((f) => existsSync(path.join(dir, f)));
}

async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(MACHINE_CACHE, { recursive: true });
  const lock = path.join(MACHINE_CACHE, `${name}.lock`);
  const started = Date.now();
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A lock older than 2 hours belongs to a build that died with its machine.
      const s = await stat(lock).catch(() => undefined);
      if (s && Date.now() - s.mtimeMs > 2 * 3600_000) await rm(lock, { recursive: true, force: true });
      if (Date.now() - started > 3 * 3600_000) throw new Error(`timed out waiting for ${lock}`, { cause: e });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Returns the directory holding the installed tool, installing it first if needed. */
export async function ensureTool(tool: Tool, log: (msg: string) => void = () => {}): Promise<string> {
  const id = `${tool.name}-${tool.version}`;
  const local = path.join(TOOLS_DIR, id);
  if (isComplete(local, tool)) return local;
  const cached = path.join(MACHINE_CACHE, id);
  await withLock(id, async () => {
    if (isComplete(local, tool)) return;
    if (!isComplete(cached, tool)) {
      log(`installing ${id} (first time on this machine; cached in ${cached})`);
      const work = `${cached}.partial-${process.pid}`;
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      await tool.install(work);
      for (const f of tool.files) {
        if (!existsSync(path.join(work, f))) throw new Error(`${id}: install finished but ${f} is missing`);
      }
      await writeFile(path.join(work, MARKER), new Date().toISOString());
      await rm(cached, { recursive: true, force: true });
      await rename(work, cached);
    }
    await rm(local, { recursive: true, force: true });
    await mkdir(TOOLS_DIR, { recursive: true });
    await cp(cached, local, { recursive: true });
  });
  return local;
}

/** Runs a command, streaming its output to our stderr; rejects with its last output on failure. */
export function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; quiet?: boolean } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const collect = (d: Buffer) => {
      out += d.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
      if (!options.quiet) process.stderr.write(d);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-4000)}`));
    });
  });
}
