/** Shared benchmark helpers: run the real CLI, sample its peak RSS from /proc, format results. */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'lifeboat.mjs');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Measured {
  code: number | null;
  ms: number;
  peakRss: number;
  stdout: string;
  stderr: string;
}

async function hwm(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /VmHWM:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * Runs `lifeboat ARGS` as the package ships it (compiled dist/, see buildRuntime), optionally feeding stdin
 * from a generator; returns time and peak RSS.
 */
export function measureCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { input?: AsyncIterable<Uint8Array>; cwd?: string } = {},
): Promise<Measured> {
  return measureCommand(process.execPath, [BIN, ...args], { LIFEBOAT_RUNTIME: 'dist', ...env }, options);
}

/** Any command (restic, for one), measured the same way as the CLI. */
export async function measureCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { input?: AsyncIterable<Uint8Array>; cwd?: string } = {},
): Promise<Measured> {
  const { input, cwd } = options;
  const started = performance.now();
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let peak = 0;
  const timer = setInterval(async () => (peak = Math.max(peak, await hwm(child.pid!))), 50);
  const closed = new Promise<number | null>((r) => child.on('close', r));
  child.stdin.on('error', () => {});
  if (input) {
    for await (const part of input)
      if (!child.stdin.write(part)) await new Promise((r) => child.stdin.once('drain', r));
  }
  child.stdin.end();
  const code = await closed;
  clearInterval(timer);
  return { code, ms: performance.now() - started, peakRss: peak, stdout, stderr };
}

/**
 * Compiles src/ to dist/ (`npm run build`), so the bench measures the runtime the package and the
 * container run: start-up without type stripping.
 */
export async function buildRuntime(): Promise<void> {
  await rm(path.join(ROOT, 'dist'), { recursive: true, force: true });
  const r = await measureCommand(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.build.json'),
    ],
    {},
  );
  if (r.code !== 0) throw new Error(`building dist/ failed:\n${r.stdout}${r.stderr}`);
}

/** A size from the environment: `268435456`, `256MiB`, `1GiB`; `fallback` when unset. */
export function sizeFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (!text) return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)?$/.exec(text.trim());
  if (!m) throw new Error(`${name}=${text}: expected bytes or a size like 256MiB or 1GiB`);
  const unit = { KiB: 1024, MiB, GiB }[m[2] as 'KiB' | 'MiB' | 'GiB'] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

export function mbps(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

export function row(label: string, value: string, note = ''): void {
  console.log(`${label.padEnd(46)} ${value.padStart(14)}  ${note}`);
}
