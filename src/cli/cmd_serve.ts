/**
 * `lifeboat serve`: a long-running, read-only HTTP endpoint — `/metrics` for Prometheus to scrape,
 * `/healthz`, and the status page at `/` (src/surfaces/serve/). The repository is read at most once per
 * --cache-seconds however often it is scraped, and no lock is held (nothing read here can change under
 * it: snapshots and records are write-once). Stops cleanly on SIGTERM/SIGINT.
 */
import { LifeboatError } from '../core/errors.ts';
import { int, str, usageError, type Command } from './command.ts';
import { collectorFor, STORAGE_QUOTA_OPTION } from './cmd_metrics.ts';

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw usageError(
      `--listen ${text} is not HOST:PORT`,
      'e.g. --listen 127.0.0.1:9420 or --listen 0.0.0.0:9420',
    );
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

interface ServeResult {
  url: string;
  stopped: string;
}

export const serveCommand: Command<ServeResult> = {
  path: ['serve'],
  summary: 'serve /metrics, /healthz and a read-only status page over HTTP until stopped',
  options: {
    listen: {
      type: 'string',
      arg: 'HOST:PORT',
      default: '127.0.0.1:9420',
      description: 'address to listen on (0.0.0.0:9420 inside a pod, for Prometheus to scrape)',
    },
    'cache-seconds': {
      type: 'string',
      arg: 'N',
      default: '30',
      description: 'read the repository at most every N seconds, however often it is scraped',
    },
    'storage-quota': STORAGE_QUOTA_OPTION,
  },
  help: `
The status page shows per layer the last backup and its age, the newest verified restore point, storage over
time, the last drills and recoveries against their RTO budgets, and the alerts that would fire. It is
read-only and shows no secret. See docs/monitoring.md.

  lifeboat serve --listen 0.0.0.0:9420 --storage-quota 500GiB`,
  async run(ctx, values) {
    const { host, port } = parseListen(str(values.listen) ?? '127.0.0.1:9420');
    const cacheSeconds = int(values['cache-seconds'], 'cache-seconds') ?? 30;
    if (cacheSeconds < 0) throw usageError('--cache-seconds must be 0 or more');
    const collector = await collectorFor(ctx, values, cacheSeconds * 1000);
    ctx.defer(() => collector.close());
    // Loaded here, not at start-up: node:http would weigh on every other command's heap.
    const { startServer } = await import('../surfaces/serve/server.ts');
    let server;
    try {
      server = await startServer({ host, port, collector, onError: (m) => ctx.warn(m) });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new LifeboatError('USAGE', `cannot listen on ${host}:${port}: ${code ?? (e as Error).message}`, {
        hint:
          code === 'EADDRINUSE'
            ? 'another process uses that port: choose another --listen'
            : 'check --listen (an address of this machine and a free port)',
        cause: e,
      });
    }
    ctx.defer(() => server.close());
    ctx.out.note(`lifeboat: serving ${server.url}/ (status), ${server.url}/metrics, ${server.url}/healthz`);
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await server.close();
    return { url: server.url, stopped: String((ctx.signal.reason as Error)?.message ?? 'stopped') };
  },
  human(r, out) {
    out.line(`stopped serving ${r.url}`);
  },
};
