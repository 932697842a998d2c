// Needs: the test Key Vault (test/env/keyvault.ts: the Key Vault REST API over HTTPS with a test CA,
// a documented fake — see that file for why), reached through the real @azure/keyvault-* clients.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SecretClient } from '@azure/keyvault-secrets';
import { KeyClient } from '@azure/keyvault-keys';
import { isLifeboatError, type LifeboatError } from '../../src/core/errors.ts';
import {
  AzureKeyVaultKeystore,
  parseKeyVaultSpec,
  KIND_KEY,
  KIND_SECRET,
} from '../../src/core/keystore/azure-keyvault.ts';
import type { KeyRecord } from '../../src/core/keystore/keystore.ts';
import { Repository } from '../../src/core/repository/repository.ts';
import { LocalBackend } from '../../src/core/storage/local.ts';
import { freePort, tempDir } from '../env/index.ts';
import { startKeyVault, staticCredential, DENIED_TOKEN, type TestKeyVault } from '../env/keyvault.ts';

async function expectCode(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isLifeboatError(e), `expected LifeboatError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.oneLine()}`);
    assert.ok(!e.oneLine().includes('\n'), 'one line');
    assert.ok(e.hint, 'has a hint');
    if (pattern) assert.match(e.oneLine(), pattern);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

const ctx = (repositoryId = randomBytes(32).toString('hex')) => ({ repositoryId });
const name = (p: string) => `${p}-${randomBytes(4).toString('hex')}`;

describe('Azure Key Vault keystore', () => {
  let kv: TestKeyVault;
  let secrets: SecretClient;
  let keys: KeyClient;
  const opts = { disableChallengeResourceVerification: true };
  const ks = (spec: string, token?: string) =>
    new AzureKeyVaultKeystore(spec, { credential: staticCredential(token), maxRetries: 0 });

  before(async () => {
    kv = await startKeyVault();
    secrets = new SecretClient(kv.url, staticCredential(), opts);
    keys = new KeyClient(kv.url, staticCredential(), opts);
  });
  after(async () => {
    await kv?.close();
  });

  test('spec forms', () => {
    assert.deepEqual(parseKeyVaultSpec('azurekv://prod-vault/lifeboat-master'), {
      mode: 'secret',
      vaultUrl: 'https://prod-vault.vault.azure.net',
      name: 'lifeboat-master',
    });
    assert.deepEqual(parseKeyVaultSpec('azurekv://prod-vault/secrets/m'), {
      mode: 'secret',
      vaultUrl: 'https://prod-vault.vault.azure.net',
      name: 'm',
    });
    assert.deepEqual(parseKeyVaultSpec('azurekv://prod-vault/keys/kek'), {
      mode: 'key',
      vaultUrl: 'https://prod-vault.vault.azure.net',
      name: 'kek',
    });
    assert.deepEqual(parseKeyVaultSpec('azurekv-key://prod-vault/kek'), {
      mode: 'key',
      vaultUrl: 'https://prod-vault.vault.azure.net',
      name: 'kek',
    });
    assert.deepEqual(parseKeyVaultSpec('https://127.0.0.1:8443/keys/kek'), {
      mode: 'key',
      vaultUrl: 'https://127.0.0.1:8443',
      name: 'kek',
    });
    assert.deepEqual(parseKeyVaultSpec('https://v.vault.azure.net/secrets/s'), {
      mode: 'secret',
      vaultUrl: 'https://v.vault.azure.net',
      name: 's',
    });
    for (const bad of [
      'azurekv://v/name',
      'azurekv://prod-vault/bad_name',
      'azurekv://prod-vault/a/b/c',
      'https://h/other/x',
      'https://h/secrets/x?sig=1',
      'https://u:p@h/keys/k',
      'azurekv://prod-vault/',
    ]) {
      assert.throws(
        () => parseKeyVaultSpec(bad),
        (e: unknown) => isLifeboatError(e, 'USAGE'),
        bad,
      );
    }
  });

  describe('secret mode', () => {
    test('wraps into a tagged secret, the record holds no key material, and unwraps to the same key', async () => {
      const n = name('master');
      const store = ks(`${kv.url}/secrets/${n}`);
      assert.equal(store.kind, KIND_SECRET);
      const master = randomBytes(32);
      const c = ctx();
      const record = await store.wrap(master, c);
      const json = JSON.stringify(record);
      assert.ok(
        !json.includes(master.toString('base64')) && !json.includes(master.toString('hex')),
        'record carries no key',
      );
      assert.equal(record.vault, kv.url);
      assert.equal(typeof record.version, 'string');
      const s = await secrets.getSecret(n);
      assert.equal(s.properties.tags?.['lifeboat-repository'], c.repositoryId);
      assert.equal(s.properties.version, record.version);
      assert.ok((await store.unwrap(record, c)).equals(master));
    });

    test('a later write to the same secret does not strand the old record (version pinned)', async () => {
      const n = name('pinned');
      const store = ks(`${kv.url}/secrets/${n}`);
      const c = ctx();
      const m1 = randomBytes(32);
      const r1 = await store.wrap(m1, c);
      await secrets.setSecret(n, randomBytes(32).toString('base64'), {
        tags: { 'lifeboat-repository': c.repositoryId },
      });
      assert.ok((await store.unwrap(r1, c)).equals(m1));
    });

    test("refuses to reuse another repository's secret", async () => {
      const n = name('owned');
      const store = ks(`${kv.url}/secrets/${n}`);
      await store.wrap(randomBytes(32), ctx('a'.repeat(64)));
      await expectCode(
        store.wrap(randomBytes(32), ctx('b'.repeat(64))),
        'CONFLICT',
        /another secret name|already holds/,
      );
    });

    test('a disabled secret version: KEY_UNAVAILABLE naming it; re-enabled, it opens again', async () => {
      const n = name('disabled');
      const store = ks(`${kv.url}/secrets/${n}`);
      const c = ctx();
      const m = randomBytes(32);
      const r = await store.wrap(m, c);
      await secrets.updateSecretProperties(n, String(r.version), { enabled: false });
      await expectCode(store.unwrap(r, c), 'KEY_UNAVAILABLE', /disabled.*set-attributes --enabled true/);
      await secrets.updateSecretProperties(n, String(r.version), { enabled: true });
      assert.ok((await store.unwrap(r, c)).equals(m));
    });

    test('a soft-deleted secret: KEY_UNAVAILABLE with the recover command, for reads and writes; recovered, it opens', async () => {
      const n = name('deleted');
      const store = ks(`${kv.url}/secrets/${n}`);
      const c = ctx();
      const m = randomBytes(32);
      const r = await store.wrap(m, c);
      await (await secrets.beginDeleteSecret(n, { intervalInMs: 10 })).pollUntilDone();
      await expectCode(
        store.unwrap(r, c),
        'KEY_UNAVAILABLE',
        /was deleted.*recoverable.*az keyvault secret recover/,
      );
      await expectCode(store.wrap(randomBytes(32), c), 'KEY_UNAVAILABLE', /soft-deleted/);
      await (await secrets.beginRecoverDeletedSecret(n, { intervalInMs: 10 })).pollUntilDone();
      assert.ok((await store.unwrap(r, c)).equals(m));
    });

    test('a secret that never existed: KEY_UNAVAILABLE', async () => {
      const n = name('never');
      const store = ks(`${kv.url}/secrets/${n}`);
      const record: KeyRecord = {
        kind: KIND_SECRET,
        created: '',
        vault: kv.url,
        secret: n,
        version: 'f'.repeat(32),
        check: '00',
      };
      await expectCode(store.unwrap(record, ctx()), 'KEY_UNAVAILABLE', /does not exist/);
    });

    test('access denied: PERMISSION naming the role, for wrap and unwrap', async () => {
      const n = name('denied');
      const c = ctx();
      const r = await ks(`${kv.url}/secrets/${n}`).wrap(randomBytes(32), c);
      const denied = ks(`${kv.url}/secrets/${n}`, DENIED_TOKEN);
      await expectCode(denied.wrap(randomBytes(32), c), 'PERMISSION', /Key Vault Secrets/);
      await expectCode(denied.unwrap(r, c), 'PERMISSION', /Key Vault Secrets/);
    });

    test('records of another vault object, or with a wrong check value: WRONG_KEY', async () => {
      const n = name('check');
      const store = ks(`${kv.url}/secrets/${n}`);
      const c = ctx();
      const r = await store.wrap(randomBytes(32), c);
      const other = ks(`${kv.url}/secrets/${name('other')}`);
      await assert.rejects(other.unwrap(r, c), (e: unknown) => isLifeboatError(e, 'WRONG_KEY'));
      await assert.rejects(store.unwrap({ ...r, check: '0'.repeat(32) }, c), (e: unknown) =>
        isLifeboatError(e, 'WRONG_KEY'),
      );
      await assert.rejects(store.unwrap({ ...r, kind: KIND_KEY }, c), (e: unknown) =>
        isLifeboatError(e, 'WRONG_KEY'),
      );
    });

    test('forget disables (not deletes) the version the record used', async () => {
      const n = name('forget');
      const store = ks(`${kv.url}/secrets/${n}`);
      const c = ctx();
      const r = await store.wrap(randomBytes(32), c);
      await store.forget(r, c);
      const props = [];
      for await (const p of secrets.listPropertiesOfSecretVersions(n)) props.push(p);
      assert.equal(props.length, 1);
      assert.equal(props[0].enabled, false);
    });
  });

  describe('key (envelope) mode', () => {
    test('wraps with RSA-OAEP-256 inside the vault and unwraps there; the record pins the key version', async () => {
      const n = name('kek');
      await keys.createRsaKey(n, { keySize: 2048 });
      const store = ks(`${kv.url}/keys/${n}`);
      assert.equal(store.kind, KIND_KEY);
      const m = randomBytes(32);
      const c = ctx();
      kv.log.length = 0;
      const r = await store.wrap(m, c);
      assert.equal(r.alg, 'RSA-OAEP-256');
      assert.match(String(r.keyId), new RegExp(`^${kv.url}/keys/${n}/[0-9a-f]{32}$`));
      assert.equal(Buffer.from(String(r.wrapped), 'base64').length, 256);
      assert.ok(!JSON.stringify(r).includes(m.toString('base64')));
      assert.ok((await store.unwrap(r, c)).equals(m));
      assert.ok(
        kv.log.some((l) => l.method === 'POST' && l.path.endsWith('/unwrapkey')),
        'unwrap happened in the vault',
      );
    });

    test('key rotation: a new key version wraps new records, old records still open', async () => {
      const n = name('rotate');
      await keys.createRsaKey(n, { keySize: 2048 });
      const store = ks(`${kv.url}/keys/${n}`);
      const c = ctx();
      const m = randomBytes(32);
      const old = await store.wrap(m, c);
      await keys.rotateKey(n);
      const fresh = await store.wrap(m, c);
      assert.notEqual(fresh.keyId, old.keyId);
      assert.ok((await store.unwrap(old, c)).equals(m));
      assert.ok((await store.unwrap(fresh, c)).equals(m));
    });

    test('missing, disabled and soft-deleted keys, and denied access, each give one clear error; nothing lost', async () => {
      const c = ctx();
      await expectCode(
        ks(`${kv.url}/keys/${name('missing')}`).wrap(randomBytes(32), c),
        'KEY_UNAVAILABLE',
        /does not exist/,
      );
      const n = name('kek');
      await keys.createRsaKey(n, { keySize: 2048 });
      const store = ks(`${kv.url}/keys/${n}`);
      const m = randomBytes(32);
      const r = await store.wrap(m, c);
      const version = String(r.keyId).split('/').pop()!;
      await keys.updateKeyProperties(n, version, { enabled: false });
      await expectCode(store.unwrap(r, c), 'KEY_UNAVAILABLE', /disabled/);
      await expectCode(store.wrap(randomBytes(32), c), 'KEY_UNAVAILABLE', /disabled/);
      await keys.updateKeyProperties(n, version, { enabled: true });
      await expectCode(ks(`${kv.url}/keys/${n}`, DENIED_TOKEN).unwrap(r, c), 'PERMISSION', /Crypto User/);
      await (await keys.beginDeleteKey(n, { intervalInMs: 10 })).pollUntilDone();
      await expectCode(store.unwrap(r, c), 'KEY_UNAVAILABLE', /was deleted.*az keyvault key recover/);
      await (await keys.beginRecoverDeletedKey(n, { intervalInMs: 10 })).pollUntilDone();
      assert.ok((await store.unwrap(r, c)).equals(m));
    });

    test('wrapped bytes the key cannot open: WRONG_KEY', async () => {
      const n = name('kek');
      await keys.createRsaKey(n, { keySize: 2048 });
      const store = ks(`${kv.url}/keys/${n}`);
      const r = await store.wrap(randomBytes(32), ctx());
      await assert.rejects(
        store.unwrap({ ...r, wrapped: randomBytes(256).toString('base64') }, ctx()),
        (e: unknown) => isLifeboatError(e, 'WRONG_KEY'),
      );
    });
  });

  test('vault unreachable: KEY_UNAVAILABLE saying so, in both modes', async () => {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    await expectCode(
      ks(`${url}/secrets/x`).wrap(randomBytes(32), ctx()),
      'KEY_UNAVAILABLE',
      /cannot reach the vault \(ECONNREFUSED/,
    );
    const rec: KeyRecord = {
      kind: KIND_KEY,
      created: '',
      vault: url,
      key: 'k',
      keyId: `${url}/keys/k/abc`,
      alg: 'RSA-OAEP-256',
      wrapped: 'AA==',
      check: '00',
    };
    await expectCode(ks(`${url}/keys/k`).unwrap(rec, ctx()), 'KEY_UNAVAILABLE', /cannot reach the vault/);
  });

  test('a repository initialised with a Key Vault key opens with it, and not with another keystore', async () => {
    const dir = await tempDir();
    try {
      const n = name('repo-kek');
      await keys.createRsaKey(n, { keySize: 2048 });
      const backend = new LocalBackend(`${dir.path}/repo`);
      const store = ks(`${kv.url}/keys/${n}`);
      const repo = await Repository.init(backend, store);
      const reopened = await Repository.open(backend, store);
      assert.equal(reopened.id, repo.id);
      const sn = name('repo-secret');
      await assert.rejects(Repository.open(backend, ks(`${kv.url}/secrets/${sn}`)), (e: unknown) =>
        isLifeboatError(e, 'WRONG_KEY'),
      );
    } finally {
      await dir.cleanup();
    }
  });
});

test('the keystore factory opens Key Vault specs in both modes', async () => {
  const { openKeystore } = await import('../../src/core/keystore/open.ts');
  const a = await openKeystore({ keystore: 'azurekv://prod-vault/lifeboat-master' }, {});
  assert.equal(a.kind, KIND_SECRET);
  assert.match(a.description, /https:\/\/prod-vault\.vault\.azure\.net\/secrets\/lifeboat-master/);
  const b = await openKeystore({}, { LIFEBOAT_KEYSTORE: 'https://127.0.0.1:8443/keys/kek' });
  assert.equal(b.kind, KIND_KEY);
  await assert.rejects(openKeystore({ keystore: 'azurekv://prod-vault/a/b/c' }, {}), (e: unknown) =>
    isLifeboatError(e, 'USAGE'),
  );
});
