/**
 * The Kubernetes client's retry rules (src/sources/kubernetes/client.ts, core/retry.ts) against the real
 * kube-apiserver, with test/env/fault-proxy.ts in between to produce what the apiserver will not on
 * demand: 503 and 500 answers, and connections lost after the server acted.
 *
 * 429/503 are repeated for any verb (the server did not act); other 5xx and lost connections only for
 * verbs whose repetition gives the same result; a create is never repeated after the request left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { KubeClient } from '../../src/sources/kubernetes/client.ts';
import { startFaultProxy, type FaultProxy } from '../env/fault-proxy.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { startKube, type KubeTestCluster } from '../env/kube.ts';
import { admin } from '../env/kube-controllers.ts';

const NS = 'retry';

describe('Kubernetes client: transient failures through the shared retry', () => {
  let kube: KubeTestCluster;
  let proxy: FaultProxy;
  let work: TempDir;
  let client: KubeClient;
  const waits: number[] = [];

  before(async () => {
    work = await tempDir('lifeboat-kube-retry-');
    kube = await startKube();
    proxy = await startFaultProxy(kube.server, { upstreamCa: kube.caPem });
    const kubeconfig = path.join(work.path, 'kubeconfig');
    await writeFile(
      kubeconfig,
      YAML.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        // Plain http to the proxy (client-node wants the flag for a non-TLS server; nothing is skipped:
        // there is no TLS on this hop, and the proxy verifies the apiserver's certificate).
        clusters: [{ name: 'proxy', cluster: { server: proxy.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'admin', user: { token: kube.tokens.admin } }],
        contexts: [{ name: 'proxy', context: { cluster: 'proxy', user: 'admin' } }],
        'current-context': 'proxy',
      }),
      { mode: 0o600 },
    );
    client = await KubeClient.connect({ kubeconfig }, {});
    // Real backoff, but no waiting in the test: the waits are recorded instead.
    client.retry = { sleep: async (ms) => void waits.push(ms) };
    await admin(kube).post('/api/v1/namespaces', { metadata: { name: NS } });
  });
  after(async () => {
    await proxy?.close();
    await kube?.stop();
    await work?.cleanup();
  });

  const requests = (method: string, part: string) =>
    proxy.log.filter((r) => r.method === method && r.url.includes(part)).length;

  test('GET: 503 twice, a 500 and a lost answer are each repeated until the list arrives', async () => {
    const cms = await client.mustResource('v1', 'ConfigMap');
    for (const action of [
      { kind: 'status' as const, status: 503, body: '{"kind":"Status","code":503}' },
      { kind: 'status' as const, status: 503, body: '{"kind":"Status","code":503}' },
      { kind: 'status' as const, status: 500, body: '{"kind":"Status","code":500}' },
      { kind: 'drop-response' as const },
    ])
      proxy.add({ match: (r) => r.method === 'GET' && r.url.includes('/configmaps'), times: 1, action });
    proxy.log.length = 0;
    waits.length = 0;
    const items = await client.list(cms, NS);
    assert.ok(Array.isArray(items));
    assert.equal(requests('GET', '/configmaps'), 5, 'four failures, then the answer');
    assert.equal(waits.length, 4, 'a backoff before each repetition');
    proxy.clear();
  });

  test('POST: a 503 is repeated (the server did not act); the object is created once', async () => {
    const cms = await client.mustResource('v1', 'ConfigMap');
    proxy.add({
      match: (r) => r.method === 'POST' && r.url.includes('/configmaps'),
      times: 1,
      action: { kind: 'status', status: 503, body: '{"kind":"Status","code":503}' },
    });
    await client.create(cms, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'after-503', namespace: NS },
      data: { a: '1' },
    });
    assert.equal(requests('POST', '/configmaps'), 2);
    assert.equal((await admin(kube).get(`/api/v1/namespaces/${NS}/configmaps/after-503`)).status, 200);
    proxy.clear();
  });

  test('POST: a lost answer or a 500 is not repeated, and the error says the create may have happened', async () => {
    const cms = await client.mustResource('v1', 'ConfigMap');
    proxy.add({
      match: (r) => r.method === 'POST' && r.url.includes('/configmaps'),
      times: 1,
      action: { kind: 'drop-response' },
    });
    await assert.rejects(
      client.create(cms, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'lost-answer', namespace: NS },
      }),
      /not repeated, the create may have happened/,
    );
    assert.equal(requests('POST', '/configmaps'), 1, 'asked once');
    // And it had happened: repeating it blindly would have answered 409 and confused the caller.
    assert.equal((await admin(kube).get(`/api/v1/namespaces/${NS}/configmaps/lost-answer`)).status, 200);

    proxy.clear();
    proxy.add({
      match: (r) => r.method === 'POST' && r.url.includes('/configmaps'),
      times: 1,
      action: { kind: 'status', status: 500, body: '{"kind":"Status","code":500,"message":"etcd hiccup"}' },
    });
    await assert.rejects(
      client.create(cms, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'after-500', namespace: NS },
      }),
      (e: Error) => !/after \d+ attempts/.test(e.message),
    );
    assert.equal(requests('POST', '/configmaps'), 1, 'a 500 on a create is not repeated');
    proxy.clear();
  });

  test('a server that keeps failing: the error says how many attempts were made', async () => {
    const cms = await client.mustResource('v1', 'ConfigMap');
    proxy.add({
      match: (r) => r.method === 'GET' && r.url.includes('/configmaps'),
      action: { kind: 'status', status: 503, body: '{"kind":"Status","code":503}' },
    });
    await assert.rejects(client.list(cms, NS), /after 6 attempts/);
    assert.equal(requests('GET', '/configmaps'), 6);
    proxy.clear();
  });
});
