/**
 * The HTTP side of `lifeboat serve`: `/metrics` (Prometheus text), `/healthz` (the process answers; 200
 * even when the repository is down, which /metrics reports), `/` (the status page). Read-only: GET and
 * HEAD only, no query parameters acted on, nothing written anywhere.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsCollector } from '../../observability/collector.ts';
import { metricFamilies } from '../../observability/metrics.ts';
import { formatText, TEXT_CONTENT_TYPE } from '../../observability/prom-text.ts';
import { renderStatusPage } from './status-page.ts';

export interface ServeOptions {
  host: string;
  port: number;
  collector: MetricsCollector;
  onError(message: string): void;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  // No script, no external resource: the page is HTML and inline SVG/CSS only.
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
  'cache-control': 'no-store',
};

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': type, ...SECURITY_HEADERS, ...extra });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(405, 'text/plain; charset=utf-8', 'read-only: GET only\n', { allow: 'GET, HEAD' });
      try {
        switch (url.pathname) {
          case '/healthz':
            return send(200, 'text/plain; charset=utf-8', 'ok\n');
          case '/metrics':
            return send(200, TEXT_CONTENT_TYPE, formatText(metricFamilies(await options.collector.report())));
          case '/':
            return send(200, 'text/html; charset=utf-8', renderStatusPage(await options.collector.report()));
          default:
            return send(404, 'text/plain; charset=utf-8', 'not found: try /, /metrics or /healthz\n');
        }
      } catch (e) {
        options.onError(`serving ${url.pathname} failed: ${(e as Error).message}`);
        if (!res.headersSent)
          send(500, 'text/plain; charset=utf-8', 'internal error (see the lifeboat log)\n');
        else res.destroy();
      }
    })();
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
