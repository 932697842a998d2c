import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runSmokeTest } from '../../src/operations/smoke.ts';

test('smoke test: waits for the app to answer 2xx with the expected field; fails clearly otherwise', async () => {
  let calls = 0;
  const server = createServer((req, res) => {
    calls++;
    if (req.url === '/api/info' && calls >= 2) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ success: true, version: '6.12.0' }));
    } else if (req.url === '/bad') {
      res.end(JSON.stringify({ success: false }));
    } else {
      res.statusCode = 503;
      res.end('starting');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const ok = await runSmokeTest({ url: `${base}/api/info`, expectField: 'success', waitMs: 20_000 });
    assert.equal(ok.status, 200);
    assert.equal(ok.attempts, 2, 'the first 503 was retried');
    assert.equal(ok.version, '6.12.0');
    await assert.rejects(
      runSmokeTest({ url: `${base}/bad`, expectField: 'success', waitMs: 1_000 }),
      /smoke test .*\/bad failed after 1 attempt\(s\): answered 200 without a truthy "success"/,
    );
  } finally {
    server.close();
  }
  await assert.rejects(
    runSmokeTest({ url: `${base}/api/info`, waitMs: 1_000, timeoutMs: 500 }),
    (e: Error & { code?: string }) => e.code === 'VERIFY_FAILED' && /failed after 1 attempt/.test(e.message),
  );
});
