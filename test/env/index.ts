/**
 * The test-environment layer: free loopback ports, temporary directories, and real helper servers started
 * as child processes (FerretDB, Azurite, kube-apiserver, …). Each server module in this folder builds on
 * `startServer`; binaries come from scripts/tools (installed by `npm test`'s pretest step).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED_DIR = path.resolve(PROJECT_ROOT, '..', 'shared');

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

export async function tempDir(prefix = 'lifeboat-test-'): Promise<TempDir> {
  const p = await mkdtemp(path.join(tmpdir(), prefix));
  return { path: p, cleanup: () => rm(p, { recursive: true, force: true }) };
}

/** Resolves once something accepts TCP connections on host:port, or rejects after timeoutMs. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ port, host });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface ServerOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves when the server is ready; rejected readiness stops the server. */
  ready: () => Promise<void>;
  /** Where stdout/stderr go; defaults to a file in the OS temp dir. */
  logFile?: string;
}

export interface RunningServer {
  name: string;
  process: ChildProcess;
  logFile: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). Safe to call twice. */
  stop(): Promise<void>;
  /** Kills the server abruptly, as a crash would. */
  kill(): Promise<void>;
  /** The last lines of its log, for failure messages. */
  tail(): Promise<string>;
}

const running = new Set<RunningServer>();
process.once('exit', () => {
  for (const s of running) s.process.kill('SIGKILL');
});

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logFile =
    opts.logFile ?? path.join(tmpdir(), `lifeboat-${opts.name}-${process.pid}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Both streams feed one file: neither may end it, or the other would write after end. The file is
  // closed once the child's stdio has closed, so tail() after a failed start reads everything it said.
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const logClosed = new Promise<void>((resolve) => child.once('close', () => log.end(resolve)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped = false;
  const server: RunningServer = {
    name: opts.name,
    process: child,
    logFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      running.delete(server);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
    async kill() {
      stopped = true;
      running.delete(server);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async tail() {
      if (child.exitCode !== null || child.signalCode !== null) await logClosed;
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').slice(-30).join('\n');
    },
  };
  running.add(server);
  const failedEarly = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`${opts.name} exited before it was ready (code ${code}, signal ${signal})`)),
    ),
  );
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  try {
    await Promise.race([opts.ready(), failedEarly, spawnError]);
  } catch (e) {
    await server.stop();
    throw new Error(
      `${opts.name} did not start: ${(e as Error).message}\n--- ${logFile} ---\n${await server.tail()}`,
      { cause: e },
    );
  }
  failedEarly.catch(() => {});
  spawnError.catch(() => {});
  return server;
}
