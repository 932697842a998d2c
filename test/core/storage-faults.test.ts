// Needs: Azurite and versitygw (test/env/backends.ts), with test/env/fault-proxy.ts in front of each.
// Faults the emulators cannot produce on demand are injected by the proxy; credential and location
// errors come from the real servers themselves.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isLifeboatError, type LifeboatError } from '../../src/core/errors.ts';
import type { Backend, Handle } from '../../src/core/storage/backend.ts';
import {
  azureBackend as azureKind,
  s3Backend as s3Kind,
  type BackendUnderTest as BackendKind,
  type BackendLocation,
} from '../env/backends.ts';
import {
  startFaultProxy,
  AZURE_BUSY,
  AZURE_THROTTLED,
  S3_SLOWDOWN,
  S3_THROTTLED,
  type FaultProxy,
  type RequestInfo,
} from '../env/fault-proxy.ts';
import { id } from './backend-conformance.ts';

interface Dialect {
  kind: BackendKind;
  busy: { status: number; headers?: Record<string, string>; body: string };
  throttled: { status: number; headers?: Record<string, string>; body: string };
  /** The single request that writes a small object. */
  smallPut: (r: RequestInfo) => boolean;
  /** A request carrying one block/part of a large object. */
  partPut: (r: RequestInfo) => boolean;
  /** The request that makes a large object visible. */
  commit: (r: RequestInfo) => boolean;
  get: (r: RequestInfo) => boolean;
}

const isData = (r: RequestInfo) => r.url.includes('/repo/data/');

const dialects: Dialect[] = [
  {
    kind: azureKind,
    busy: AZURE_BUSY,
    throttled: AZURE_THROTTLED,
    smallPut: (r) => r.method === 'PUT' && isData(r) && !r.url.includes('comp='),
    partPut: (r) => r.method === 'PUT' && isData(r) && r.url.includes('comp=block&'),
    commit: (r) => r.method === 'PUT' && isData(r) && r.url.includes('comp=blocklist'),
    get: (r) => r.method === 'GET' && isData(r),
  },
  {
    kind: s3Kind,
    busy: S3_SLOWDOWN,
    throttled: S3_THROTTLED,
    smallPut: (r) => r.method === 'PUT' && isData(r) && !r.url.includes('uploadId='),
    partPut: (r) => r.method === 'PUT' && isData(r) && r.url.includes('partNumber='),
    commit: (r) => r.method === 'POST' && isData(r) && r.url.includes('uploadId='),
    get: (r) => r.method === 'GET' && isData(r),
  },
];

async function expectCode(p: Promise<unknown>, code: string, secrets: string[] = []): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isLifeboatError(e), `expected LifeboatError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.ok(!e.oneLine().includes('\n'), 'one line');
    for (const s of secrets) assert.ok(!e.oneLine().includes(s), 'no secret in the message');
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

for (const d of dialects) {
  describe(`storage faults: ${d.kind.name}`, () => {
    let proxy: FaultProxy;
    let direct: BackendLocation;
    let viaProxy: Backend;
    const data = (): Handle => ({ type: 'data', name: id() });

    before(async () => {
      proxy = await startFaultProxy(await d.kind.upstream!());
      direct = await d.kind.direct();
      await direct.backend.create();
      const name = /^(?:azure:\/\/[^/]+|s3:)\/\/?([^/?]+)/.exec(direct.url)![1];
      viaProxy = (await d.kind.direct({ endpointBase: proxy.url, name, timeoutMs: 1500 })).backend;
    });
    after(async () => {
      await viaProxy?.close();
      await direct?.backend.close();
      await direct?.cleanup();
      await proxy?.close();
    });

    test('503 busy answers to an upload are retried and the save lands', async () => {
      proxy.clear();
      const rule = proxy.add({ match: d.smallPut, times: 2, action: { kind: 'status', ...d.busy } });
      const h = data();
      const body = randomBytes(3000);
      await viaProxy.save(h, body);
      assert.equal(rule.hits, 2);
      assert.equal(proxy.log.filter(d.smallPut).length, 3, 'two refused attempts, then the one that landed');
      assert.deepEqual(await direct.backend.load(h), body);
    });

    test('429 throttling that never ends surfaces as UNREACHABLE and writes nothing', async () => {
      proxy.clear();
      proxy.add({ match: d.smallPut, action: { kind: 'status', ...d.throttled } });
      const h = data();
      const e = await expectCode(viaProxy.save(h, randomBytes(100)), 'UNREACHABLE', direct.secrets);
      assert.match(e.message, /429/);
      assert.match(e.message, /4 attempts/);
      assert.ok(e.hint);
      await expectCode(direct.backend.load(h), 'NOT_FOUND');
    });

    test('connection reset in the middle of a part upload is retried; the object is whole', async () => {
      proxy.clear();
      const rule = proxy.add({
        match: d.partPut,
        times: 2,
        action: { kind: 'reset-request', afterBytes: 256 * 1024 },
      });
      const h = data();
      const body = randomBytes(11 * 1024 * 1024);
      await viaProxy.save(h, body);
      assert.equal(rule.hits, 2);
      assert.ok((await direct.backend.load(h)).equals(body));
    });

    test('uploads that keep failing leave no object, not a partial one', async () => {
      proxy.clear();
      proxy.add({ match: d.partPut, action: { kind: 'reset-request', afterBytes: 128 * 1024 } });
      proxy.add({ match: d.smallPut, action: { kind: 'reset-request', afterBytes: 10 } });
      const large = data();
      const small = data();
      await expectCode(viaProxy.save(large, randomBytes(11 * 1024 * 1024)), 'UNREACHABLE');
      await expectCode(viaProxy.save(small, randomBytes(5000)), 'UNREACHABLE');
      proxy.clear();
      await expectCode(direct.backend.load(large), 'NOT_FOUND');
      await expectCode(direct.backend.load(small), 'NOT_FOUND');
      const listed: string[] = [];
      for await (const o of direct.backend.list('data')) listed.push(o.name);
      assert.ok(!listed.includes(large.name) && !listed.includes(small.name));
    });

    test('a write-once upload whose answer was lost is retried and recognised as done', async () => {
      proxy.clear();
      const rule = proxy.add({ match: d.smallPut, times: 1, action: { kind: 'drop-response' } });
      const h = data();
      const body = randomBytes(2000);
      await viaProxy.save(h, body);
      assert.equal(rule.hits, 1);
      assert.deepEqual(await direct.backend.load(h), body);
      // …but a real second writer still loses.
      await expectCode(viaProxy.save(h, randomBytes(2000)), 'ALREADY_EXISTS');
    });

    test('a lost answer to the large-object commit is also recognised as done', async () => {
      proxy.clear();
      const rule = proxy.add({ match: d.commit, times: 1, action: { kind: 'drop-response' } });
      const h = data();
      const body = randomBytes(11 * 1024 * 1024);
      await viaProxy.save(h, body);
      assert.equal(rule.hits, 1);
      assert.ok((await direct.backend.load(h)).equals(body));
    });

    test('reads retry through busy answers and stalled connections', async () => {
      const h = data();
      const body = randomBytes(5000);
      await direct.backend.save(h, body);
      proxy.clear();
      const busy = proxy.add({ match: d.get, times: 1, action: { kind: 'status', ...d.busy } });
      const slow = proxy.add({ match: d.get, times: 1, action: { kind: 'delay', ms: 4000 } });
      assert.deepEqual(await viaProxy.load(h, { offset: 10, length: 100 }), body.subarray(10, 110));
      assert.equal(busy.hits, 1);
      assert.equal(slow.hits, 1);
    });
  });
}

describe('storage credential and location errors', () => {
  test('azure: wrong account key -> AUTH, key not echoed', async () => {
    const { AzureBackend } = await import('../../src/core/storage/azure.ts');
    const { sharedAzurite } = await import('../env/backends.ts');
    const az = await sharedAzurite();
    const wrongKey = randomBytes(64).toString('base64');
    const b = new AzureBackend('azure://devstoreaccount1/whatever-container', {
      connectionString: az.connectionStringFor(az.endpoint, wrongKey),
      env: {},
    });
    const e = await expectCode(b.stat({ type: 'config', name: 'config' }), 'AUTH', [wrongKey]);
    assert.match(e.hint ?? '', /account key/);
  });

  test('azure: expired SAS -> AUTH naming the expiry', async () => {
    const { AzureBackend } = await import('../../src/core/storage/azure.ts');
    const { sharedAzurite } = await import('../env/backends.ts');
    const { AZURITE_ACCOUNT, AZURITE_KEY } = await import('../env/azurite.ts');
    const { generateBlobSASQueryParameters, ContainerSASPermissions, StorageSharedKeyCredential } =
      await import('@azure/storage-blob');
    const az = await sharedAzurite();
    const loc = await azureKind.direct();
    await loc.backend.create();
    const container = /azure:\/\/[^/]+\/([^/]+)/.exec(loc.url)![1];
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse('racwdl'),
        startsOn: new Date(Date.now() - 3 * 3600_000),
        expiresOn: new Date(Date.now() - 3600_000),
      },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    const b = new AzureBackend(`azure://${AZURITE_ACCOUNT}/${container}`, {
      sasToken: sas,
      endpoint: az.endpoint,
      env: {},
    });
    const e = await expectCode(b.save({ type: 'keys', name: id() }, Buffer.from('x')), 'AUTH');
    assert.match(e.oneLine(), /expir/i);
    // A valid SAS for the same container works, so the failure above is the expiry and nothing else.
    const good = generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse('racwdl'),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    const ok = new AzureBackend(`azure://${AZURITE_ACCOUNT}/${container}`, {
      sasToken: good,
      endpoint: az.endpoint,
      env: {},
    });
    await ok.save({ type: 'keys', name: id() }, Buffer.from('x'));
    await loc.cleanup();
  });

  test('azure: missing container -> NO_REPOSITORY', async () => {
    const loc = await azureKind.direct();
    await expectCode(loc.backend.load({ type: 'config', name: 'config' }), 'NO_REPOSITORY');
    await expectCode(loc.backend.save({ type: 'keys', name: id() }, Buffer.from('x')), 'NO_REPOSITORY');
  });

  test('azure and s3: nothing listening -> UNREACHABLE', async () => {
    const { freePort } = await import('../env/index.ts');
    const port = await freePort();
    for (const kind of [azureKind, s3Kind]) {
      const loc = await kind.direct({ endpointBase: `http://127.0.0.1:${port}` });
      const e = await expectCode(loc.backend.load({ type: 'config', name: 'config' }), 'UNREACHABLE');
      assert.match(e.message, /ECONNREFUSED/);
      await loc.backend.close();
    }
  });

  test('s3: wrong secret -> AUTH, missing bucket -> NO_REPOSITORY', async () => {
    const { S3Backend } = await import('../../src/core/storage/s3.ts');
    const { sharedS3 } = await import('../env/backends.ts');
    const srv = await sharedS3();
    const bucket = await srv.newBucket();
    const wrong = randomBytes(16).toString('hex');
    const b = new S3Backend(`s3://${bucket}?endpoint=${srv.endpoint}`, {
      credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: wrong },
    });
    await expectCode(b.stat({ type: 'config', name: 'config' }), 'AUTH', [wrong]);
    await expectCode(b.save({ type: 'keys', name: id() }, Buffer.from('x')), 'AUTH', [wrong]);
    b.client.destroy();
    const missing = (await s3Kind.direct()).backend;
    await expectCode(missing.load({ type: 'config', name: 'config' }), 'NO_REPOSITORY');
    await expectCode(missing.save({ type: 'keys', name: id() }, Buffer.from('x')), 'NO_REPOSITORY');
    await missing.close();
  });

  test('s3: a server that ignores If-None-Match is refused at init (UNSUPPORTED)', async () => {
    const proxy = await startFaultProxy(await s3Kind.upstream!());
    try {
      // S3 signs If-None-Match, so the proxy cannot strip it; instead it plays a server that ignores
      // it: the second conditional PUT of the probe object is answered 200, as if it had overwritten.
      let probes = 0;
      proxy.add({
        match: (r) => r.method === 'PUT' && r.url.includes('.lifeboat-probe-') && ++probes === 2,
        action: { kind: 'status', status: 200, headers: { etag: '"0"' } },
      });
      const loc = await s3Kind.direct({ endpointBase: proxy.url });
      await expectCode(loc.backend.create(), 'UNSUPPORTED');
      await loc.backend.close();
    } finally {
      await proxy.close();
    }
  });

  test('bad URLs -> USAGE with the expected form', async () => {
    const { AzureBackend } = await import('../../src/core/storage/azure.ts');
    const { S3Backend } = await import('../../src/core/storage/s3.ts');
    for (const u of [
      'azure://acct',
      'azure://UPPER/container',
      'azure://acct1/Bad_Container',
      'azure://acct1/c',
    ]) {
      const e = await expectCode(
        Promise.resolve().then(() => new AzureBackend(u, { env: {} })),
        'USAGE',
      );
      assert.ok(e.hint);
    }
    for (const u of ['s3://', 's3://B', 's3://bucket/x?colour=blue']) {
      await expectCode(
        Promise.resolve().then(() => new S3Backend(u)),
        'USAGE',
      );
    }
    await expectCode(
      Promise.resolve().then(
        () => new AzureBackend('azure://acct1/cont', { env: {}, accessTier: 'Archive' as never }),
      ),
      'USAGE',
    );
  });
});
