/**
 * A small HTTP reverse proxy that sits in front of a real server (Azurite, versitygw, …) and injects the
 * faults the emulators cannot produce on demand: throttling answers (429/503), connections reset in the
 * middle of an upload, answers lost after the server already acted, and slow answers.
 *
 * Everything else is forwarded byte for byte, Host header included (S3 signatures cover it).
 * Rules are checked in order; a rule with `times` stops matching once used up.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';

export interface RequestInfo {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type FaultAction =
  /** Answer with this status (and body) without contacting the server. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Read `afterBytes` of the request body, then reset the connection (server never sees the request). */
  | { kind: 'reset-request'; afterBytes: number }
  /** Forward the request, let the server act, then reset the client's connection instead of answering. */
  | { kind: 'drop-response' }
  /** Wait, then forward. */
  | { kind: 'delay'; ms: number };

export interface FaultRule {
  match: (r: RequestInfo) => boolean;
  /** How many requests the rule applies to (default: all). */
  times?: number;
  action: FaultAction;
  /** Requests this rule has acted on. */
  hits: number;
}

export interface FaultProxy {
  url: string;
  port: number;
  /** Every request seen, in order. */
  log: RequestInfo[];
  add(rule: Omit<FaultRule, 'hits'>): FaultRule;
  clear(): void;
  close(): Promise<void>;
}

/**
 * `upstream` may be https (the test kube-apiserver): pass its CA as `upstreamCa`. Clients always reach
 * the proxy over plain http.
 */
export async function startFaultProxy(
  upstream: string,
  options: { upstreamCa?: string } = {},
): Promise<FaultProxy> {
  const up = new URL(upstream);
  const rules: FaultRule[] = [];
  const log: RequestInfo[] = [];
  const sockets = new Set<net.Socket>();
  const secure = up.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ keepAlive: true, ca: options.upstreamCa })
    : new http.Agent({ keepAlive: true });

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, dropResponse: boolean) => {
    const out = (secure ? https : http).request(
      { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers, agent },
      (upRes) => {
        if (dropResponse) {
          upRes.resume();
          upRes.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
  };

  const server = http.createServer((req, res) => {
    const info: RequestInfo = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    log.push(info);
    const rule = rules.find((r) => (r.times === undefined || r.hits < r.times) && r.match(info));
    if (!rule) return forward(req, res, false);
    rule.hits++;
    const a = rule.action;
    switch (a.kind) {
      case 'status':
        req.resume();
        req.on('end', () => {
          res.writeHead(a.status, { 'content-type': 'application/xml', ...a.headers });
          res.end(a.body ?? '');
        });
        return;
      case 'reset-request': {
        let seen = 0;
        const reset = () => req.socket.destroy();
        req.on('data', (d: Buffer) => {
          seen += d.length;
          if (seen >= a.afterBytes) reset();
        });
        req.on('end', reset);
        return;
      }
      case 'drop-response':
        return forward(req, res, true);
      case 'delay':
        req.pause();
        setTimeout(() => {
          if (!req.socket.destroyed) forward(req, res, false);
        }, a.ms);
        return;
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    add(rule) {
      const r = { ...rule, hits: 0 };
      rules.push(r);
      return r;
    },
    clear() {
      rules.length = 0;
      log.length = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Error bodies in each service's format, so SDKs parse them as the real service's. */
export const AZURE_BUSY = {
  status: 503,
  headers: { 'x-ms-error-code': 'ServerBusy' },
  body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>Ingress is over the account limit.</Message></Error>',
};
export const AZURE_THROTTLED = {
  status: 429,
  headers: { 'x-ms-error-code': 'TooManyRequests' },
  body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>TooManyRequests</Code><Message>Too many requests.</Message></Error>',
};
export const S3_SLOWDOWN = {
  status: 503,
  body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
};
export const S3_THROTTLED = {
  status: 429,
  body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>TooManyRequests</Code><Message>Too many requests.</Message></Error>',
};
