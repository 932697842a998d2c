/** Runs the real `lifeboat` CLI as a child process (the same Node 24 that runs the tests). */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './index.ts';

export const BIN = path.join(PROJECT_ROOT, 'bin', 'lifeboat.mjs');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when --json was passed. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Data written to the child's stdin (then closed). */
  input?: Uint8Array | AsyncIterable<Uint8Array>;
}

export function spawnCli(args: string[], options: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, LIFEBOAT_CONFIG: '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.on('error', () => {});
  if (options.input instanceof Uint8Array) child.stdin!.end(options.input);
  else if (options.input) {
    (async () => {
      for await (const part of options.input as AsyncIterable<Uint8Array>) {
        if (!child.stdin!.write(part)) await new Promise((r) => child.stdin!.once('drain', r));
      }
      child.stdin!.end();
    })().catch(() => {});
  } else child.stdin!.end();
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  let json: unknown;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
  }
  return { code, signal, stdout, stderr, json };
}
